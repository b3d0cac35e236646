#include "twopc/gid.hpp"

#include <limits>

namespace pgc::twopc {

namespace {

constexpr std::string_view kTag = "pgc_";

// Reads one decimal number up to the next '_' (or the end); no sign, no leading zero
// unless the number is 0, no overflow past `max`.
bool take_number(std::string_view& s, uint64_t max, uint64_t* out) {
  std::size_t n = 0;
  uint64_t v = 0;
  while (n < s.size() && s[n] != '_') {
    char c = s[n];
    if (c < '0' || c > '9') return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (max - d) / 10) return false;
    v = v * 10 + d;
    n++;
  }
  if (n == 0 || (n > 1 && s[0] == '0')) return false;
  *out = v;
  s.remove_prefix(n);
  return true;
}

// Consumes one '_'; false when s does not start with one.
bool take_separator(std::string_view& s) {
  if (s.empty() || s[0] != '_') return false;
  s.remove_prefix(1);
  return true;
}

}  // namespace

std::string gid_prefix(uint64_t system_id, uint32_t database) {
  return std::string(kTag) + std::to_string(system_id) + "_" + std::to_string(database) + "_";
}

std::string format_gid(const Gid& g) {
  return gid_prefix(g.system_id, g.database) + std::to_string(g.xid) + "_" + std::to_string(g.participant);
}

std::optional<Gid> parse_gid(std::string_view s) {
  if (s.size() > kMaxGidLength || s.substr(0, kTag.size()) != kTag) return std::nullopt;
  s.remove_prefix(kTag.size());
  uint64_t sysid = 0, db = 0, xid = 0, part = 0;
  if (!take_number(s, std::numeric_limits<uint64_t>::max(), &sysid) || !take_separator(s) ||
      !take_number(s, std::numeric_limits<uint32_t>::max(), &db) || !take_separator(s) ||
      !take_number(s, std::numeric_limits<uint64_t>::max(), &xid) || !take_separator(s) ||
      !take_number(s, static_cast<uint64_t>(std::numeric_limits<int32_t>::max()), &part) || !s.empty())
    return std::nullopt;
  if (part == 0) return std::nullopt;
  Gid g;
  g.system_id = sysid;
  g.database = static_cast<uint32_t>(db);
  g.xid = xid;
  g.participant = static_cast<int32_t>(part);
  return g;
}

}  // namespace pgc::twopc
