// Cluster-wide shared memory of the worker model: the launcher, the database being
// dropped, and the hard stops waiting to be charged. Per-database state lives in the
// slot registry (worker/databases.hpp).
#pragma once

#include "pg/postgres.hpp"

extern "C" {
#include "port/atomics.h"
#include "storage/proc.h"
#include "storage/spin.h"
}

namespace pgc::worker {

// How long the launcher starts no worker for a database being dropped.
inline constexpr long kDropHoldMs = 15000;

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
  TimestampTz launcher_settings_loaded_at;
  char held_dbname[NAMEDATALEN];  // DROP DATABASE in progress: start no worker for it
  TimestampTz held_until;
  int hard_stop_count;  // entries in hard_stops, oldest first
  HardStopEntry hard_stops[kMaxHardStops];
};

// nullptr when the library was not preloaded.
SharedState* shared();

}  // namespace pgc::worker
