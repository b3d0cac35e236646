// Processes a component asks for (Component::processes): the database's worker starts
// them as dynamic background workers, restarts one that exits (after a pause), stops
// the ones no longer wanted and all of them when it exits itself. Each runs the common
// loop (worker/loop.hpp) with the component's process_tick, and exits on its own when
// its worker is gone or its index is above the wanted count.
#pragma once

#include "pg/component.hpp"

namespace pgc::worker {

// In the database's worker: starts/stops processes to match every component's wanted
// count. Returns the milliseconds until it wants to look again.
long supervise_processes();
// In the database's worker, at exit: stops every process it started.
void stop_processes();
// True when component c runs in processes of its own now (so not in the worker's tick).
bool runs_in_processes(const pg::Component* c);

}  // namespace pgc::worker
