#include "saga/observe.hpp"

#include "metrics/metrics.hpp"
#include "metrics/saga_events.hpp"
#include "saga/pg_saga.hpp"

extern "C" {
#include "utils/timestamp.h"
}

namespace pgc::saga::backend {

void observe_transition(const SagaRow& row, const std::vector<Event>& events, int64_t created_at) {
  if (!metrics::g_enabled) return;
  double seconds = -1;
  for (const Event& e : events) {
    metrics::SagaStatus s;
    if (!metrics::status_reached(e, &s)) continue;
    if (seconds < 0 && metrics::outcome_slot(s) >= 0)
      seconds = static_cast<double>(GetCurrentTimestamp() - created_at) / 1e6;
    metrics::saga_reached(row.name, s, seconds);
  }
}

void observe_step(const SagaRow& row, const std::string& step, bool compensating, bool ok, double seconds) {
  using metrics::StepOutcome;
  StepOutcome o = compensating ? (ok ? StepOutcome::kCompensated : StepOutcome::kCompensationFailed)
                               : (ok ? StepOutcome::kSucceeded : StepOutcome::kFailed);
  metrics::step_ended(row.name, step, o, seconds);
}

void observe_step_timeout(const SagaRow& row, const std::string& step, double seconds) {
  metrics::step_ended(row.name, step, metrics::StepOutcome::kTimedOut, seconds);
}

}  // namespace pgc::saga::backend
