// Inbox messages (src/inbox/message.*). Input: one byte of flags (bit 0: null key, bit 1: null
// value, bit 2: raw value handler, the rest: number of consumer processes - 1), then fields
// cut at '\x1f': key, value, and header name/value pairs (a name without a value: a header
// without one). Properties: valid_text agrees with a strict JSON parser's UTF-8 check,
// headers_json is a JSON object that holds, per valid name, the last header's value (null
// when it has none or it is not text), and the consumer's owner process is in range.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz_input.hpp"
#include "inbox/message.hpp"

namespace {

// `s` as a JSON string literal with only what JSON requires escaped: the parser then
// checks the UTF-8 of every other byte.
std::string literal(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += "\\u00";
      out += "0123456789abcdef"[(c >> 4) & 15];
      out += "0123456789abcdef"[c & 15];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  std::vector<std::string_view> f = pgc::fuzz::fields(data + 1, size - 1, 64);
  while (f.size() > 2 && f.back().empty()) f.pop_back();

  pgc::inbox::Message m;
  m.topic = "orders";
  m.key_null = flags & 1;
  m.value_null = flags & 2;
  if (!m.key_null) m.key = std::string(f[0]);
  if (!m.value_null) m.value = std::string(f[1]);
  for (size_t i = 2; i < f.size(); i += 2) {
    pgc::relay::Header h;
    h.name = std::string(f[i]);
    h.null = i + 1 >= f.size();
    if (!h.null) h.value = std::string(f[i + 1]);
    m.headers.push_back(std::move(h));
  }

  for (size_t i = 0; i < 2; i++) {
    bool has_nul = f[i].find('\0') != std::string_view::npos;
    bool strict = nlohmann::json::accept(literal(f[i]));
    PGC_FUZZ_CHECK(pgc::inbox::valid_text(f[i]) == (strict && !has_nul));
  }

  std::string reason = pgc::inbox::unusable_reason(m, flags & 4);
  bool key_bad = !m.key_null && !pgc::inbox::valid_text(m.key);
  bool value_bad = !(flags & 4) && !m.value_null && !pgc::inbox::valid_text(m.value);
  PGC_FUZZ_CHECK(reason.empty() == (!key_bad && !value_bad));

  nlohmann::json headers = nlohmann::json::parse(pgc::inbox::headers_json(m.headers), nullptr, false);
  PGC_FUZZ_CHECK(headers.is_object());
  std::map<std::string, std::optional<std::string>> expected;
  for (const auto& h : m.headers) {
    if (!pgc::inbox::valid_text(h.name)) continue;
    expected[h.name] = h.null || !pgc::inbox::valid_text(h.value) ? std::nullopt : std::optional(h.value);
    const std::string* found = pgc::inbox::find_header(m.headers, h.name);
    const pgc::relay::Header* last = nullptr;
    for (const auto& g : m.headers)
      if (g.name == h.name) last = &g;
    PGC_FUZZ_CHECK(last->null ? found == nullptr : (found != nullptr && *found == last->value));
  }
  PGC_FUZZ_CHECK(headers.size() == expected.size());
  for (const auto& [name, value] : expected) {
    PGC_FUZZ_CHECK(headers.contains(name));
    if (value)
      PGC_FUZZ_CHECK(headers[name].is_string() && headers[name].get<std::string>() == *value);
    else
      PGC_FUZZ_CHECK(headers[name].is_null());
  }

  int processes = (flags >> 3) + 1;
  int owner = pgc::inbox::owner_process(m.key, processes);
  PGC_FUZZ_CHECK(owner >= 1 && owner <= processes);
  return 0;
}
