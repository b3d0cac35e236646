#include "inbox/message.hpp"

#include <cstdio>

namespace pgc::inbox {

int owner_process(std::string_view name, int processes) {
  if (processes <= 1) return 1;
  uint32_t h = 2166136261u;
  for (unsigned char c : name) {
    h ^= c;
    h *= 16777619u;
  }
  return static_cast<int>(h % static_cast<uint32_t>(processes)) + 1;
}

bool valid_text(std::string_view s) {
  std::size_t i = 0, n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;
    if (c < 0x80) {
      i++;
      continue;
    }
    int len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (int k = 1; k < len; k++) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

namespace {
void append_json_string(std::string* out, std::string_view s) {
  out->push_back('"');
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(ch);
        }
    }
  }
  out->push_back('"');
}
}  // namespace

std::string headers_json(const std::vector<relay::Header>& headers) {
  std::string out = "{";
  bool first = true;
  for (const auto& h : headers) {
    if (!valid_text(h.name)) continue;
    if (!first) out.push_back(',');
    first = false;
    append_json_string(&out, h.name);
    out.push_back(':');
    if (h.null || !valid_text(h.value))
      out.append("null");
    else
      append_json_string(&out, h.value);
  }
  out.push_back('}');
  return out;
}

const std::string* find_header(const std::vector<relay::Header>& headers, std::string_view name) {
  const std::string* found = nullptr;
  for (const auto& h : headers)
    if (h.name == name) found = h.null ? nullptr : &h.value;
  return found;
}

std::string unusable_reason(const Message& m, bool raw_value) {
  if (!m.key_null && !valid_text(m.key))
    return "CS002: the message key is not valid UTF-8 text (or holds a NUL byte)";
  if (!raw_value && !m.value_null && !valid_text(m.value))
    return "CS002: the message value is not valid JSON (not UTF-8 text) for a jsonb handler";
  return "";
}

}  // namespace pgc::inbox
