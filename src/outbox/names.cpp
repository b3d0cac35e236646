#include "outbox/names.hpp"

namespace pgc::outbox {

std::optional<std::string> topic_name_problem(std::string_view topic) {
  if (topic.empty()) return std::string("topic name is empty");
  if (topic.size() > kMaxTopicLength)
    return "topic name is " + std::to_string(topic.size()) + " characters long (at most " +
           std::to_string(kMaxTopicLength) + " allowed)";
  if (topic == "." || topic == "..") return "topic name \"" + std::string(topic) + "\" is reserved";
  for (char c : topic) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-';
    if (!ok) {
      unsigned char u = static_cast<unsigned char>(c);
      std::string shown = (u >= 0x20 && u < 0x7f) ? std::string("'") + c + "'"
                                                  : "byte 0x" + std::string(1, "0123456789abcdef"[u >> 4]) +
                                                        std::string(1, "0123456789abcdef"[u & 15]);
      return "topic name contains " + shown + " (allowed: letters, digits, '.', '_', '-')";
    }
  }
  return std::nullopt;
}

std::optional<std::string> category_problem(std::string_view category) {
  if (category.empty()) return std::string("category is empty");
  if (category.size() > 200) return std::string("category is longer than 200 bytes");
  for (char c : category) {
    if (c == '-')
      return std::string(
          "category contains '-' (a category is the part of a stream name before the first '-')");
    if (static_cast<unsigned char>(c) < 0x20) return std::string("category contains a control character");
  }
  return std::nullopt;
}

std::string_view stream_category(std::string_view stream) {
  auto dash = stream.find('-');
  return dash == std::string_view::npos ? stream : stream.substr(0, dash);
}

std::optional<std::string> header_name_problem(std::string_view name) {
  if (name.empty()) return std::string("header name is empty");
  if (name.size() > 255) return std::string("header name is longer than 255 bytes");
  if (name.find('\0') != std::string_view::npos) return std::string("header name contains a NUL byte");
  return std::nullopt;
}

}  // namespace pgc::outbox
