// Outbox names (src/outbox/names.*): the whole input is tried as a topic name, a category,
// a stream name and a header name. Each check accepts exactly what its rule says, and the
// outbox's topic rule agrees with the one saga commands use (src/saga/definition.*).
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_input.hpp"
#include "outbox/names.hpp"
#include "saga/definition.hpp"

namespace {
bool topic_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  using namespace pgc::outbox;

  bool topic_ok = !topic_name_problem(s).has_value();
  bool rule = !s.empty() && s.size() <= kMaxTopicLength && s != "." && s != "..";
  for (char c : s) rule = rule && topic_char(c);
  PGC_FUZZ_CHECK(topic_ok == rule);
  PGC_FUZZ_CHECK(topic_ok == pgc::saga::valid_topic_name(std::string(s)));

  bool category_ok = !category_problem(s).has_value();
  bool category_rule = !s.empty() && s.size() <= 200;
  for (char c : s) category_rule = category_rule && c != '-' && static_cast<unsigned char>(c) >= 0x20;
  PGC_FUZZ_CHECK(category_ok == category_rule);

  std::string_view category = stream_category(s);
  PGC_FUZZ_CHECK(s.substr(0, category.size()) == category);
  PGC_FUZZ_CHECK(category.find('-') == std::string_view::npos);
  PGC_FUZZ_CHECK(category.size() == s.size() || s[category.size()] == '-');

  bool header_ok = !header_name_problem(s).has_value();
  PGC_FUZZ_CHECK(header_ok == (!s.empty() && s.size() <= 255 && s.find('\0') == std::string_view::npos));
  return 0;
}
