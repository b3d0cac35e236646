// Two-phase commit: GUCs, shared-memory counters and the catalog helpers used by the
// coordinator (backends), the recovery (worker) and the operations functions.
#pragma once

#include <string>
#include <vector>

#include "pg/component.hpp"
#include "pg/postgres.hpp"
#include "pg/roles.hpp"

extern "C" {
#include "port/atomics.h"
#include "storage/spin.h"
}

namespace pgc::twopc {

// ---- GUCs ----
namespace gucs {
extern int timeout_ms;            // pg_consistency.twopc_timeout
extern int recovery_interval_ms;  // pg_consistency.twopc_recovery_interval
extern int debug_crash_at;        // pg_consistency.twopc_debug_crash_at (test hook)
extern int debug_pause_at;        // pg_consistency.twopc_debug_pause_at (test hook)
extern int debug_pause_ms;        // pg_consistency.twopc_debug_pause_ms (test hook)
}  // namespace gucs

enum DebugPoint { kDebugNone = 0, kDebugAfterPrepare = 1, kDebugAfterLocalCommit = 2 };

// The test hooks: PANIC / pause at `point` when the GUCs ask for it.
void debug_point(DebugPoint point);

// ---- shared-memory counters, one slot per coordinator database ----
struct Stats {
  Oid dboid;
  pg_atomic_uint64 prepared;           // PREPARE TRANSACTION that succeeded
  pg_atomic_uint64 committed;          // COMMIT PREPARED by the committing backend
  pg_atomic_uint64 rolled_back;        // ROLLBACK PREPARED by the aborting backend
  pg_atomic_uint64 commit_deferred;    // COMMIT/ROLLBACK PREPARED left to recovery
  pg_atomic_uint64 recovery_commits;   // COMMIT PREPARED by recovery
  pg_atomic_uint64 recovery_rollbacks; // ROLLBACK PREPARED by recovery
  pg_atomic_uint64 recovery_runs;
  pg_atomic_uint64 recovery_failures;  // participant passes that failed (unreachable, ...)
  pg_atomic_uint32 in_doubt;           // our prepared transactions seen at the last pass
  pg_atomic_uint32 unreachable;        // participants not reachable at the last pass
  pg_atomic_uint64 last_recovery_at;   // TimestampTz of the last finished pass (0 = never)
};

inline constexpr int kMaxStatsDatabases = 32;

// This database's slot, created on first use; nullptr without shared_preload_libraries.
Stats* my_stats();
inline void count(pg_atomic_uint64 Stats::*field, uint64 n = 1) {
  if (Stats* s = my_stats()) pg_atomic_fetch_add_u64(&(s->*field), n);
}

extern const pg::Component kComponent;

// ---- catalog ----
struct ParticipantRow {
  int32 id = 0;
  std::string name;
  std::string conninfo;
  bool trusted = false;
};

// Switches to the owner of consistency.twopc_participants for the scope, so that the
// catalog is read and written with the extension's rights, not the caller's.
class AsCatalogOwner {
 public:
  AsCatalogOwner();

 private:
  pg::RoleScope scope_;
};

// SPI must be connected; runs as the catalog owner. Never returns conninfo in errors.
bool lookup_participant(const std::string& name, ParticipantRow* out);
std::vector<ParticipantRow> list_participants();

}  // namespace pgc::twopc
