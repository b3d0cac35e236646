// Waking the database's worker when there is new work, so a committed row is picked up
// within milliseconds instead of at the next poll.
#pragma once

#include "pg/component.hpp"

namespace pgc::worker {

// Sets the latch of this database's worker now, flagging `c` as having work.
void wake_now(const pg::Component* c);
// Same, but only once the current transaction commits (nothing on abort).
void wake_at_commit(const pg::Component* c);
// Registers the transaction callback behind wake_at_commit; called from _PG_init.
void install_wake_callback();

}  // namespace pgc::worker
