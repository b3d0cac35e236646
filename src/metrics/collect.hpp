// What a scrape reads from a database's area: the histogram series and the saga
// counters, with their metric names, help texts and labels. Pure C++.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "metrics/area.hpp"

namespace pgc::metrics {

inline constexpr const char* kRelayAckFamily = "pg_consistency_relay_commit_to_ack_seconds";
inline constexpr const char* kSagaDurationFamily = "pg_consistency_saga_duration_seconds";
inline constexpr const char* kSagaStepFamily = "pg_consistency_saga_step_seconds";
inline constexpr const char* kSagasTotal = "pg_consistency_sagas_total";

using Labels = std::vector<std::pair<std::string, std::string>>;  // name, value

struct HistogramSeries {
  const char* family;
  const char* help;
  Labels labels;
  Snapshot snapshot;
};

struct CounterSeries {
  const char* metric;
  const char* help;
  Labels labels;
  uint64_t value;
};

// The relay's histogram always; a saga's duration per outcome and a step's per outcome once
// observed. Overflow series carry kOverflowLabel in every label they have.
std::vector<HistogramSeries> histograms(const Area& a);
// pg_consistency_sagas_total for every status of every saga seen, the overflow counters
// of the label tables and the observations dropped by full transactions.
std::vector<CounterSeries> counters(const Area& a);

}  // namespace pgc::metrics
