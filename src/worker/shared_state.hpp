// Shared memory of the launcher and the per-database workers: who runs where, and
// what they last did. Read by consistency.worker_status().
#pragma once

#include "pg/postgres.hpp"

extern "C" {
#include "port/atomics.h"
#include "storage/proc.h"
#include "storage/spin.h"
}

namespace pgc::worker {

inline constexpr int kMaxDatabases = 32;
// How long the launcher starts no worker for a database being dropped.
inline constexpr long kDropHoldMs = 15000;

enum class WorkerState : int {
  kStopped = 0,
  kStarting,
  kWaitingForExtension,
  kRunning,
  kBackoff,
};
const char* state_name(WorkerState s);

struct WorkerSlot {
  char dbname[NAMEDATALEN];  // set by the launcher; empty = slot free
  Oid dboid;                 // set by the worker once connected
  pid_t pid;                 // 0 = not running
  PGPROC* proc;
  WorkerState state;
  TimestampTz started_at;
  TimestampTz last_tick_at;
  uint64 ticks;
  uint64 errors;
  uint64 starts;
  char last_error[512];
  pg_atomic_uint32 wake_mask;      // bit i: component i has new work
  pg_atomic_uint32 inject_errors;  // test hook: fail this many upcoming ticks
};

// A process stopped by its hard stop (see pgc::pg::run_as_enter) while it ran the user
// code named by `label` (see worker/hard_stop.hpp), for its successor to charge.
inline constexpr int kHardStopLabelBytes = 256;
inline constexpr int kMaxHardStops = 16;
struct HardStopEntry {
  Oid dboid;
  TimestampTz at;
  char label[kHardStopLabelBytes];
};

struct SharedState {
  slock_t mutex;  // guards every non-atomic field below
  pid_t launcher_pid;
  PGPROC* launcher_proc;
  TimestampTz launcher_started_at;
  char held_dbname[NAMEDATALEN];  // DROP DATABASE in progress: start no worker for it
  TimestampTz held_until;
  WorkerSlot slots[kMaxDatabases];
  int hard_stop_count;  // entries in hard_stops, oldest first
  HardStopEntry hard_stops[kMaxHardStops];
};

// nullptr when the library was not preloaded.
SharedState* shared();

}  // namespace pgc::worker
