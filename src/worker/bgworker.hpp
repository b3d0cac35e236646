// Starting our dynamic background workers (a database's worker, a component's process)
// one way.
#pragma once

#include "pg/postgres.hpp"

extern "C" {
#include "postmaster/bgworker.h"
}

namespace pgc::worker {

// A worker of this library that connects to a database, runs `function` and is not
// restarted by the postmaster (its starter restarts it); notifies this process.
BackgroundWorker dynamic_worker(const char* function, const char* type);

// Registers `w`; the handle lives in TopMemoryContext (it outlives the caller's round).
// nullptr when it could not be registered (no free slot: max_worker_processes).
BackgroundWorkerHandle* start_dynamic_worker(BackgroundWorker* w);

}  // namespace pgc::worker
