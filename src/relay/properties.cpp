#include "relay/properties.hpp"

namespace pgc::relay {

namespace {
std::string_view trim(std::string_view s) {
  const char* ws = " \t\r\n";
  auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  auto e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}
}  // namespace

bool is_reserved_property(std::string_view name) {
  static const char* const kReserved[] = {"bootstrap.servers",
                                          "metadata.broker.list",
                                          "transactional.id",
                                          "enable.idempotence",
                                          "partitioner",
                                          "partitioner_cb",
                                          "dr_cb",
                                          "dr_msg_cb",
                                          "error_cb",
                                          "log_cb",
                                          "opaque",
                                          "log.queue",
                                          "enable.gapless.guarantee"};
  for (const char* r : kReserved)
    if (name == r) return true;
  return false;
}

bool parse_properties(std::string_view text, Properties* out, std::string* error) {
  out->clear();
  std::size_t pos = 0;
  int index = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find_first_of(";\n", pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view entry = trim(text.substr(pos, end - pos));
    pos = end + 1;
    if (entry.empty()) continue;
    index++;
    auto eq = entry.find('=');
    if (eq == std::string_view::npos) {
      *error = "entry " + std::to_string(index) + " has no '=' (expected name=value)";
      return false;
    }
    std::string_view name = trim(entry.substr(0, eq));
    std::string_view value = trim(entry.substr(eq + 1));
    if (name.empty()) {
      *error = "entry " + std::to_string(index) + " has an empty name";
      return false;
    }
    for (char c : name) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                c == '_' || c == '-';
      if (!ok) {
        *error = "entry " + std::to_string(index) + " has an invalid property name";
        return false;
      }
    }
    if (is_reserved_property(name)) {
      *error = "property \"" + std::string(name) + "\" is set by the relay itself and cannot be overridden";
      return false;
    }
    out->emplace_back(std::string(name), std::string(value));
  }
  return true;
}

}  // namespace pgc::relay
