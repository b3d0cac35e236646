// What one database keeps of the latency metrics: its area in the slot registry
// (worker/databases.hpp). Zeroed bytes are an empty area. Pure C++.
#pragma once

#include <atomic>
#include <cstdint>

#include "metrics/histogram.hpp"
#include "metrics/series.hpp"

namespace pgc::metrics {

struct Area {
  Histogram relay_ack;            // pg_consistency_relay_commit_to_ack_seconds
  SagaTable sagas;                // pg_consistency_sagas_total, pg_consistency_saga_duration_seconds
  StepTable steps;                // pg_consistency_saga_step_seconds
  std::atomic<uint64_t> dropped;  // observations a transaction made beyond Pending::kCapacity
};

}  // namespace pgc::metrics
