// The read horizon in WAL (docs/consistency.md, "Gap-safe read_all on a standby"): the
// primary's worker publishes the event store's read horizon into a one-row table; a
// standby caps read_all at the value it has replayed.
#pragma once

#include "pg/postgres.hpp"

namespace pgc::pg {
struct Component;
}

namespace pgc::consistency {

// The consistency component: its settings and the publishing tick.
extern const pg::Component kComponent;

// On a standby: the read horizon last published by the primary and replayed here. Every
// position below it that will ever commit has committed (and is replayed) before the
// value's own commit record. Connects SPI itself (nested is fine).
int64 replayed_read_horizon();

}  // namespace pgc::consistency
