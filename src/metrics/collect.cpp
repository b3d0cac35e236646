#include "metrics/collect.hpp"

namespace pgc::metrics {

namespace {

constexpr const char* kRelayAckHelp =
    "Seconds from an outbox row's creation (the start of the publishing transaction) to Kafka's "
    "acknowledgement of its message.";
constexpr const char* kSagaDurationHelp =
    "Seconds from a saga's start to the end state it reached (outcome: completed, compensated, failed, "
    "aborted).";
constexpr const char* kSagaStepHelp =
    "Seconds of one attempt of a saga step: a function step's call, or a command step from sending its "
    "command to the reply or the reply timeout.";
constexpr const char* kSagasTotalHelp =
    "Sagas that reached each status since the server started (counted as they change, no table scan).";

bool any(const Histogram& h) { return h.snapshot().count() > 0; }

}  // namespace

std::vector<HistogramSeries> histograms(const Area& a) {
  std::vector<HistogramSeries> out;
  out.push_back({kRelayAckFamily, kRelayAckHelp, {}, a.relay_ack.snapshot()});

  auto saga_rows = [&](const SagaSeries& e, bool overflow) {
    for (std::size_t k = 0; k < kSagaOutcomes; k++) {
      if (!any(e.duration[k])) continue;
      const char* outcome =
          saga_status_name(static_cast<SagaStatus>(k + static_cast<int>(SagaStatus::kCompleted)));
      out.push_back(
          {kSagaDurationFamily,
           kSagaDurationHelp,
           {{"outcome", overflow ? kOverflowLabel : outcome}, {"saga", overflow ? kOverflowLabel : e.name}},
           e.duration[k].snapshot()});
    }
  };
  for (std::size_t i = 0; i < a.sagas.size(); i++) saga_rows(a.sagas.entries[i], false);
  saga_rows(a.sagas.entries[SagaTable::capacity()], true);

  auto step_row = [&](const StepSeries& e, bool overflow) {
    if (!any(e.seconds)) return;
    const char* outcome = overflow ? kOverflowLabel : step_outcome_name(static_cast<StepOutcome>(e.outcome));
    out.push_back({kSagaStepFamily,
                   kSagaStepHelp,
                   {{"outcome", outcome},
                    {"saga", overflow ? kOverflowLabel : e.saga},
                    {"step", overflow ? kOverflowLabel : e.step}},
                   e.seconds.snapshot()});
  };
  for (std::size_t i = 0; i < a.steps.size(); i++) step_row(a.steps.entries[i], false);
  step_row(a.steps.entries[StepTable::capacity()], true);
  return out;
}

std::vector<CounterSeries> counters(const Area& a) {
  std::vector<CounterSeries> out;
  auto saga_counts = [&](const SagaSeries& e, const char* name) {
    for (std::size_t s = 0; s < kSagaStatuses; s++)
      out.push_back({kSagasTotal,
                     kSagasTotalHelp,
                     {{"saga", name}, {"status", saga_status_name(static_cast<SagaStatus>(s))}},
                     e.reached[s].load(std::memory_order_relaxed)});
  };
  for (std::size_t i = 0; i < a.sagas.size(); i++) saga_counts(a.sagas.entries[i], a.sagas.entries[i].name);
  if (a.sagas.overflow.load(std::memory_order_relaxed) > 0)
    saga_counts(a.sagas.entries[SagaTable::capacity()], kOverflowLabel);

  constexpr const char* kOverflowHelp =
      "Observations recorded under the label value _other because a label table was full or a name "
      "longer than 63 bytes.";
  out.push_back({"pg_consistency_metrics_overflow_total",
                 kOverflowHelp,
                 {{"table", "sagas"}},
                 a.sagas.overflow.load(std::memory_order_relaxed)});
  out.push_back({"pg_consistency_metrics_overflow_total",
                 kOverflowHelp,
                 {{"table", "steps"}},
                 a.steps.overflow.load(std::memory_order_relaxed)});
  out.push_back({"pg_consistency_metrics_dropped_total",
                 "Saga observations dropped because one transaction made more than 1024.",
                 {},
                 a.dropped.load(std::memory_order_relaxed)});
  return out;
}

}  // namespace pgc::metrics
