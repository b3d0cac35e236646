// The loop every background process of ours runs (a database's worker, and the
// processes components ask for): wait on the latch, and on each wake-up or timeout run
// every task that is due. An ERROR inside a task is logged, recorded in the process's
// slot and answered with a growing pause for that task only; the process goes on, in the
// manner of the autovacuum launcher. A wake-up (a bit in the slot's wake mask) makes a
// task due at once unless it is pausing after errors.
#pragma once

#include "worker/databases.hpp"

namespace pgc::worker {

struct Task {
  const char* name;        // in log lines and last_error
  int wake_bit;            // bit of the wake mask that makes it due; -1: none
  long (*run)(void* arg);  // returns the milliseconds until it wants to run again
  void* arg;
  bool (*active)(void* arg);  // nullptr: always; false: skipped this round
  TimestampTz next_due;
  int failures;  // in a row
  // nullptr, or a descriptor the loop waits on beside the latch while this task is
  // active (-1: none now). Readable makes the task due at once, as a wake bit does; the
  // task reads it empty (the wait is level-triggered). Only the first one is watched.
  int (*socket)(void* arg) = nullptr;
};

struct LoopHooks {
  const char* who;  // "pg_consistency worker", "pg_consistency saga worker 2"
  bool (*stay)();   // checked every round; false: the process exits (nullptr: stays)
};

// Marks this process as running in `me` (pid, PGPROC, start), releases it at exit.
void occupy(ProcessSlot* me);
// Never returns (the process exits through proc_exit or die()).
[[noreturn]] void run_loop(ProcessSlot* me, Task* tasks, int ntasks, const LoopHooks& hooks);

}  // namespace pgc::worker
