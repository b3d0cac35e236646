// What a background process was running when its hard stop ended it, so that the
// process that takes over can charge it.
//
// A pillar names the user code it is about to call (set_hard_stop_label, e.g.
// "subscription:<name>", "saga:<uuid>:..."), and clears the name when the code returns.
// If the process is then ended by the hard stop of pgc::pg::run_as_enter (user code that
// caught the cancellation of its time limit and went on), an exit callback logs it and
// appends {database, label, time} to a small ring in shared memory (kMaxHardStops; when
// full the oldest entry is dropped and logged). The restarted process takes the entries
// of its database with its prefix and counts each as a failed attempt.
#pragma once

#include "pg/postgres.hpp"
#include "worker/shared_state.hpp"

namespace pgc::worker {

// Process-local and cheap (a bounded copy); `label` is cut to fit kHardStopLabelBytes.
void set_hard_stop_label(const char* label);
void clear_hard_stop_label();

// Moves the entries of this database (MyDatabaseId) whose label starts with `prefix`
// into out[0..max), oldest first; returns how many. Entries that do not fit stay.
int take_hard_stops(const char* prefix, HardStopEntry* out, int max);
// Puts an entry taken but not charged (its object was busy) back at the end of the ring.
void put_back_hard_stop(const HardStopEntry& e);

}  // namespace pgc::worker
