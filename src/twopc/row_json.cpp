#include "twopc/row_json.hpp"

namespace pgc::twopc {

namespace {
bool is_digit(char c) { return c >= '0' && c <= '9'; }
}  // namespace

bool is_json_number(std::string_view s) {
  std::size_t i = 0, n = s.size();
  if (i < n && s[i] == '-') i++;
  if (i >= n) return false;
  if (s[i] == '0') {
    i++;
  } else if (is_digit(s[i])) {
    while (i < n && is_digit(s[i])) i++;
  } else {
    return false;
  }
  if (i < n && s[i] == '.') {
    i++;
    if (i >= n || !is_digit(s[i])) return false;
    while (i < n && is_digit(s[i])) i++;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= n || !is_digit(s[i])) return false;
    while (i < n && is_digit(s[i])) i++;
  }
  return i == n;
}

void append_json_string(std::string& out, std::string_view s) {
  static const char* hex = "0123456789abcdef";
  out.push_back('"');
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(hex[c >> 4]);
          out.push_back(hex[c & 0xF]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

void append_json_value(std::string& out, uint32_t type, std::string_view v, bool is_null) {
  if (is_null) {
    out += "null";
    return;
  }
  switch (type) {
    case type_oid::kBool:
      if (v == "t" || v == "true") {
        out += "true";
        return;
      }
      if (v == "f" || v == "false") {
        out += "false";
        return;
      }
      break;
    case type_oid::kInt2:
    case type_oid::kInt4:
    case type_oid::kInt8:
    case type_oid::kOid:
    case type_oid::kFloat4:
    case type_oid::kFloat8:
    case type_oid::kNumeric:
      if (is_json_number(v)) {
        out.append(v.data(), v.size());
        return;
      }
      break;  // NaN, Infinity, -Infinity
    case type_oid::kJson:
    case type_oid::kJsonb:
      if (!v.empty()) {
        out.append(v.data(), v.size());
        return;
      }
      break;
    default:
      break;
  }
  append_json_string(out, v);
}

void JsonRow::add(std::string_view name, uint32_t type, std::string_view value, bool is_null) {
  if (!first_) buf_.push_back(',');
  first_ = false;
  append_json_string(buf_, name);
  buf_.push_back(':');
  append_json_value(buf_, type, value, is_null);
}

std::string JsonRow::finish() {
  std::string out = std::move(buf_);
  out.push_back('}');
  buf_ = "{";
  first_ = true;
  return out;
}

}  // namespace pgc::twopc
