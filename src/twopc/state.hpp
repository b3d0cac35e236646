// Two-phase commit: shared-memory counters and the catalog helpers used by the
// coordinator (backends), the recovery (worker) and the operations functions.
#pragma once

#include <string>
#include <vector>

#include "pg/component.hpp"
#include "pg/postgres.hpp"
#include "pg/spi.hpp"
#include "twopc/settings.hpp"

extern "C" {
#include "port/atomics.h"
#include "storage/spin.h"
}

namespace pgc::twopc {

// The test hooks: PANIC / pause at `point` when the debug settings ask for it.
void debug_point(DebugPoint point);

// ---- shared-memory counters: the area of each database's slot (worker/databases.hpp) ----
struct Stats {
  pg_atomic_uint64 prepared;            // PREPARE TRANSACTION that succeeded
  pg_atomic_uint64 committed;           // COMMIT PREPARED by the committing backend
  pg_atomic_uint64 rolled_back;         // ROLLBACK PREPARED by the aborting backend
  pg_atomic_uint64 commit_deferred;     // COMMIT/ROLLBACK PREPARED left to recovery
  pg_atomic_uint64 recovery_commits;    // COMMIT PREPARED by recovery
  pg_atomic_uint64 recovery_rollbacks;  // ROLLBACK PREPARED by recovery
  pg_atomic_uint64 recovery_runs;
  pg_atomic_uint64 recovery_failures;  // participant passes that failed (unreachable, ...)
  pg_atomic_uint32 in_doubt;           // our prepared transactions seen at the last pass
  pg_atomic_uint32 unreachable;        // participants not reachable at the last pass
  pg_atomic_uint64 last_recovery_at;   // TimestampTz of the last finished pass (0 = never)
};

// This database's counters, claimed on first use; nullptr without preload or when the registry is full.
Stats* my_stats();
// Adds n to this database's counter `field` (nothing without shared memory).
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

// The owner of consistency.twopc_participants: every catalog statement of the pillar runs
// as this role inside a pg::OwnerScope (catalog-only search path, no pg_temp), so that
// nothing a caller can create is resolved with the extension's rights.
Oid catalog_owner();

// Runs `plan` with `args` and `nulls` (as SPI_execute_plan takes them; SPI connected, as
// whatever role the caller set) and returns column 1 of the rows it returns, NULLs left
// out. For pass-by-value columns (oid, xid8), whose values outlive SPI_finish.
std::vector<Datum> plan_column(pg::SavedPlan& plan, const Datum* args, const char* nulls = nullptr,
                               bool read_only = true);

// `name` as shown in a message: at most 200 bytes, cut on a character boundary of the
// database encoding ("..." appended when cut). Valid participant names are never cut.
std::string shown_name(const std::string& name);

// SPI must be connected; both run as the catalog owner and never put a conninfo into an
// error. The participant named `name` (false when there is none); every participant, by
// name.
bool lookup_participant(const std::string& name, ParticipantRow* out);
std::vector<ParticipantRow> list_participants();

// True when `role` may run statements on participant `id`: a superuser, a role with the
// privileges of consistency_admin, or one with the privileges of a role the participant
// is granted to (consistency.twopc_participant_grants, read at each call as the catalog
// owner; superusers and admins need no read).
bool may_use_participant(int32 id, Oid role);

// Why a conninfo cannot be used, or "" when it can: it must parse and name the remote
// role with a non-empty user= (the server's own OS identity is never borrowed).
// Never quotes the conninfo.
std::string conninfo_problem(const std::string& conninfo);

}  // namespace pgc::twopc
