// The saga worker's internals, shared by the files that advance sagas in the background:
//   steps.cpp       calling a function step as the saga's owner, and its limits
//   advance.cpp     claiming due sagas and advancing each (process), isolation of a saga
//                   that fails outside its steps, _advance_sagas
//   hard_stops.cpp  charging steps that a hard stop ended with their process
//   workers.cpp     the component: a batch per transaction, in the worker or in saga
//                   worker processes (worker/processes.hpp)
// See workers.cpp for the whole picture.
#pragma once

#include <string>
#include <vector>

#include "pg/catching.hpp"
#include "saga/machine.hpp"
#include "saga/pg_saga.hpp"

namespace pgc::saga::backend {

// The hard-stop label of a function step: the prefix, then "<saga id>:<r|c>:<step>"
// (r: its action, c: its compensation).
inline constexpr const char* kHardStopPrefix = "saga:";

// What a batch did, added to consistency.saga_worker_stats.
struct BatchStats {
  int64 steps = 0, step_failures = 0, retries = 0, compensations = 0, compensation_failures = 0, timeouts = 0,
        conflicts = 0;
};

struct BatchResult {
  int processed = 0;
  long next_due_ms = -1;  // when processed == 0: until the next due saga (-1: none)
  bool ready = true;      // false: the extension is not installed here
};

using SubResult = pgc::pg::SubtransactionResult;

// pg::in_subtransaction, with the error clipped to fit an audit event and last_error.
template <typename F>
SubResult in_subtransaction(F&& body) {
  SubResult r = pgc::pg::in_subtransaction(static_cast<F&&>(body));
  if (!r.ok()) r.error = clip_text(r.error);
  return r;
}

// ---- steps.cpp
double unit_random();
// The step's time limit in ms (its own timeout capped by saga_step_timeout; 0: none).
int64_t step_limit_ms(const Step& step);
// Calls the step function as the saga's owner; its jsonb object, or 0 for NULL.
Datum call_step_function(const SagaRow& row, const Step& step, const Action& a);
// data || output (jsonb), data may be 0.
Datum merge_data(Datum data, Datum output);
// Conflicts in a row of saga `id` (deadlock/serialization), counted by this process.
int note_conflict(const std::string& id);
void forget_conflicts(const std::string& id);

// ---- advance.cpp
// Advances one claimed saga by up to max_steps steps in this transaction; false when
// nothing was due.
bool process(SagaRow& row, BatchStats& st, int max_steps);
// Records why a saga could not be advanced (a failed attempt, else parked).
void record_outside_failure(SagaRow& row, const std::string& why, BatchStats& st);
void advance_due(int worker_id, int limit, bool isolate, BatchResult* result);
void advance_one(int worker_id, const pg_uuid_t& id, BatchResult* result);
// Claims saga `id` if it is active and free; false when it is not.
bool claim_one(const pg_uuid_t& id, SagaRow* row);
// Adds a batch's figures to consistency.saga_worker_stats for worker `worker_id`.
void save_stats(int worker_id, const BatchStats& st);
// The saga being advanced outside any subtransaction of its own, if any: an error that
// escapes the batch then is that saga's.
bool current_saga(pg_uuid_t* id);
void clear_current_saga();

// ---- hard_stops.cpp
// Charges the hard stops of this database's sagas that earlier processes left, in a
// transaction of its own.
void charge_hard_stops(int worker_id);

// ---- workers.cpp
// Starts a transaction with SPI connected; false (nothing open) when the extension is
// not installed in this database.
bool begin_batch(const char* activity);
void commit_batch();

}  // namespace pgc::saga::backend
