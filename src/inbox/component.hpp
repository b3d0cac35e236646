// The inbox's component (src/inbox/worker.cpp) as the SQL functions see it.
#pragma once

namespace pgc::inbox {

// Wakes the consumer processes when the current transaction commits (a consumer was
// created, paused, resumed, reset or dropped).
void wake_consumers_at_commit();

}  // namespace pgc::inbox
