// Global transaction identifiers (gids) of pg_consistency's two-phase commit, and their
// parsing. A gid names the coordinator (cluster system identifier + database oid), the
// coordinator's local transaction (full 64-bit xid) and the participant it was prepared
// on, so that recovery can tell from the gid alone which local transaction decides it:
//
//     pgc_<system identifier>_<database oid>_<full xid>_<participant id>
//
// All four parts are unsigned decimal numbers without leading zeros. No PostgreSQL
// header here: unit-tested on its own.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgc::twopc {

struct Gid {
  uint64_t system_id = 0;   // GetSystemIdentifier() of the coordinator's cluster
  uint32_t database = 0;    // coordinator's database oid
  uint64_t xid = 0;         // coordinator's full transaction id (epoch << 32 | xid)
  int32_t participant = 0;  // consistency.twopc_participants.id (> 0)

  bool operator==(const Gid& o) const {
    return system_id == o.system_id && database == o.database && xid == o.xid && participant == o.participant;
  }
};

// PostgreSQL's limit for a gid is GIDSIZE (200 bytes including the terminator).
inline constexpr std::size_t kMaxGidLength = 199;

// The gid of g, in the format above.
std::string format_gid(const Gid& g);

// The prefix shared by every gid of one coordinator database: "pgc_<sysid>_<dboid>_".
std::string gid_prefix(uint64_t system_id, uint32_t database);

// Parses a gid written by format_gid; nullopt for anything else (other software's gids,
// malformed numbers, leading zeros, overflow, participant 0, trailing text).
std::optional<Gid> parse_gid(std::string_view text);

}  // namespace pgc::twopc
