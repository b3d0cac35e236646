#include "consistency/token.hpp"

#include <cstdio>

namespace pgc::consistency {

namespace {

// The fields after the prefix: widths in hex digits, in order.
constexpr int kWidths[4] = {16, 8, 16, 16};
constexpr const char* kNames[4] = {"system identifier", "database", "WAL position", "event position"};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // upper case too: one spelling per token, so equal tokens are equal texts
}

}  // namespace

std::string format_token(const Token& t) {
  char buf[kTokenLength + 1];
  std::snprintf(buf, sizeof(buf), "pgc1-%016llx-%08x-%016llx-%016llx",
                static_cast<unsigned long long>(t.system_id), static_cast<unsigned>(t.database),
                static_cast<unsigned long long>(t.lsn),
                static_cast<unsigned long long>(static_cast<uint64_t>(t.position)));
  return std::string(buf, kTokenLength);
}

ParsedToken parse_token(std::string_view s) {
  ParsedToken out;
  if (s.substr(0, 3) != "pgc" || s.size() < kTokenPrefix.size()) {
    out.problem = "it is not a pg_consistency token (they start with \"pgc1-\")";
    return out;
  }
  if (s.substr(0, kTokenPrefix.size()) != kTokenPrefix) {
    out.problem = "unknown token version (this server reads version 1, \"pgc1-\")";
    return out;
  }
  if (s.size() != kTokenLength) {
    out.problem = "a version 1 token has " + std::to_string(kTokenLength) + " characters, not " +
                  std::to_string(s.size());
    return out;
  }
  uint64_t v[4] = {0, 0, 0, 0};
  size_t at = kTokenPrefix.size();
  for (int f = 0; f < 4; f++) {
    if (f > 0) {
      if (s[at] != '-') {
        out.problem = std::string("expected '-' before the ") + kNames[f];
        return out;
      }
      at++;
    }
    for (int i = 0; i < kWidths[f]; i++, at++) {
      int h = hex_value(s[at]);
      if (h < 0) {
        out.problem = std::string("the ") + kNames[f] + " must be lower-case hexadecimal";
        return out;
      }
      v[f] = (v[f] << 4) | static_cast<uint64_t>(h);
    }
  }
  Token t;
  t.system_id = v[0];
  t.database = static_cast<uint32_t>(v[1]);
  t.lsn = v[2];
  if (v[3] > static_cast<uint64_t>(INT64_MAX)) {
    out.problem = "the event position is out of range";
    return out;
  }
  t.position = static_cast<int64_t>(v[3]);
  if (t.system_id == 0 || t.database == 0 || t.lsn == 0 || t.position < 1) {
    out.problem = "a field is zero, which no server issues";
    return out;
  }
  out.token = t;
  return out;
}

std::optional<std::string> mismatch(const Token& a, const Token& b) {
  if (a.system_id != b.system_id) return std::string("the tokens come from different clusters");
  if (a.database != b.database) return std::string("the tokens come from different databases");
  return std::nullopt;
}

bool covers(const Token& a, const Token& b) { return a.lsn >= b.lsn && a.position >= b.position; }

Token combine(const Token& a, const Token& b) {
  Token t = a;
  if (b.lsn > t.lsn) t.lsn = b.lsn;
  if (b.position > t.position) t.position = b.position;
  return t;
}

uint64_t insert_end(uint64_t insert, uint64_t page_size, uint64_t segment_size, uint64_t short_header,
                    uint64_t long_header) {
  if (page_size == 0 || segment_size == 0) return insert;
  uint64_t in_segment = insert % segment_size;
  // A segment's first page has the long header; every other page the short one.
  uint64_t header = in_segment < page_size ? long_header : short_header;
  if (insert % page_size == header && insert >= header) return insert - header;
  return insert;
}

}  // namespace pgc::consistency
