// The saga pillar's feed of the latency metrics (src/metrics): statuses reached and saga
// durations from a transition's audit events, and step attempt durations. Applied when
// the transaction commits.
#pragma once

#include <string>
#include <vector>

#include "saga/machine.hpp"

namespace pgc::saga::backend {

struct SagaRow;

// After a transition of `row` was stored: the statuses its events reached; at an end
// state, the saga's duration since `created_at` (TimestampTz).
void observe_transition(const SagaRow& row, const std::vector<Event>& events, int64_t created_at);
// An attempt of the current step (or its compensation) of `row` ended after `seconds`.
void observe_step(const SagaRow& row, const std::string& step, bool compensating, bool ok, double seconds);
// A command step's awaited reply did not come in time.
void observe_step_timeout(const SagaRow& row, const std::string& step, double seconds);

}  // namespace pgc::saga::backend
