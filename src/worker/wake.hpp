// Waking the database's worker when there is new work, so a committed row is picked up
// within milliseconds instead of at the next poll.
#pragma once

#include "pg/component.hpp"

extern "C" {
#include "postgres.h"
#include "utils/timestamp.h"
}

namespace pgc::worker {

// Sets the latch of this database's worker now, flagging `c` as having work.
void wake_now(const pg::Component* c);
// Same, but only once the current transaction commits (nothing on abort).
void wake_at_commit(const pg::Component* c);
// Calls fn once when the current transaction commits (however often it was asked for in
// the transaction; nothing on abort or PREPARE): for waking processes other than the
// database's worker. fn runs in the commit callback: it must not raise an ERROR.
void call_at_commit(void (*fn)());
// Waits on this process's latch for up to timeout_ms (nothing when <= 0), letting
// latch wake-ups through at most once per millisecond. Each commit that finds a worker
// asleep on its latch costs the committing backend a kill() and the worker a wake-up;
// at thousands of commits a second that was a fifth of the CPU of a publish-heavy load.
// After a wake-up the next wait first pauses off the latch (SetLatch then only sets
// the flag), so later commits are taken together in one tick, at most 1 ms later.
// *last_wake: when the latch last woke this process (0 at first). With socket >= 0 it
// also waits for that descriptor to become readable; returns true when it is.
bool wait_paced(long timeout_ms, TimestampTz* last_wake, int socket = -1);
// Registers the transaction callback behind wake_at_commit; called from _PG_init.
void install_wake_callback();

}  // namespace pgc::worker
