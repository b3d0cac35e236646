// The per-database slot registry: one slot of shared memory per database that uses the
// extension, shared by every component, and the one place slots are claimed and freed.
//
// A slot holds the status of the database's background processes (its worker and the
// processes components ask for) and one area per component that declared
// database_size (relay status, two-phase commit counters, event store flags, ...).
// There are pg_consistency.max_databases slots. A slot is claimed
//   - by the launcher, by name, for a database listed in pg_consistency.database (before
//     its worker has connected and the OID is known), or
//   - by the first process of a database that asks for its area (by OID);
// the worker joins the two when it connects. A slot is freed when its database is dropped
// (after DROP DATABASE) or taken off pg_consistency.database (once its worker stopped).
// When every slot is taken, claiming fails with a LOG naming the setting, once per
// process and database; callers then go on without shared state (the launcher starts
// no worker for that database and says so).
#pragma once

#include "pg/component.hpp"
#include "pg/postgres.hpp"

extern "C" {
#include "port/atomics.h"
#include "storage/proc.h"
#include "storage/spin.h"
}

namespace pgc::worker {

enum class WorkerState : int {
  kStopped = 0,
  kStarting,
  kWaitingForExtension,
  kRunning,
  kBackoff,
};
const char* state_name(WorkerState s);

// One background process of ours in a database: its worker, or a process a component
// asked for. Non-atomic fields are guarded by the registry's lock.
struct ProcessSlot {
  bool in_use;
  int component;  // index of the component whose process this is; -1: the database's worker
  int index;      // 1..N within its component (0 for the worker)
  pid_t pid;      // 0 = not running
  PGPROC* proc;
  WorkerState state;
  TimestampTz started_at;
  TimestampTz last_tick_at;
  TimestampTz settings_loaded_at;  // read the configuration: at start, then at each reload
  uint64 ticks;
  uint64 errors;
  uint64 starts;
  char last_error[256];
  pg_atomic_uint32 wake_mask;      // bit i: component i has new work
  pg_atomic_uint32 inject_errors;  // test hook: fail this many upcoming ticks
};

// Processes a database may have besides its worker (all components together).
inline constexpr int kMaxProcessesPerDatabase = 32;

struct DatabaseSlot {
  pg_atomic_uint32 dboid;  // InvalidOid while claimed by name only, or free
  bool in_use;
  bool listed;  // claimed for pg_consistency.database by the launcher
  char dbname[NAMEDATALEN];
  ProcessSlot worker;
  ProcessSlot processes[kMaxProcessesPerDatabase];
  // the components' areas follow (see area_of)
};

// False without shared_preload_libraries.
bool have_databases();
// The registry's lock (a spinlock: hold it only to copy or set a few fields).
slock_t* databases_lock();
// pg_consistency.max_databases as shared memory was sized (0 without preload), and
// slot i of it, for readers that walk every slot under databases_lock().
int database_capacity();
DatabaseSlot* database_at(int i);

// This database's slot, claimed on first use (claim = false: only if it has one);
// nullptr without preload or when full. Cheap once known (one atomic read).
DatabaseSlot* my_database(bool claim = true);
// Component c's area in slot d (c must have declared database_size).
void* area_of(DatabaseSlot* d, const pg::Component* c);
// area_of(my_database(), c), or nullptr.
void* my_area(const pg::Component* c);
// The slot of database `dboid` if it has one (no claim).
DatabaseSlot* find_database(Oid dboid);

// Launcher: claims (or finds) the slot of a listed database by name. nullptr when full.
DatabaseSlot* claim_listed(const char* dbname);
// Launcher: the database is no longer listed and its worker has stopped: free its slot.
void release_listed(const char* dbname);
// True when `dbname` is listed (the launcher holds a slot for it).
bool is_listed(const char* dbname);
// Worker: at connect, joins the launcher's slot for `dbname` with any slot this
// database's sessions claimed by OID. ERROR when no slot is free.
DatabaseSlot* join_as_worker(const char* dbname);
// After DROP DATABASE: frees the slot of `dboid` (and of `dbname` unless listed).
void release_dropped(Oid dboid, const char* dbname);

}  // namespace pgc::worker
