// The labelled series of one database, in its slot of shared memory: fixed tables with
// a bounded number of label sets, so that a tenant naming sagas or steps at will cannot
// grow shared memory or a scrape without bound. Pure C++ (no PostgreSQL header).
//
// Reading and updating a series takes no lock: a table's entries are written once, before
// its count is published (release), and only counters change afterwards. Adding a label
// set takes the table's spin flag for the few stores it needs. When a table is full, or a
// name is longer than kNameBytes - 1, the observation goes to the table's last entry,
// shown with the label value kOverflowLabel.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "metrics/histogram.hpp"

namespace pgc::metrics {

inline constexpr std::size_t kNameBytes = 64;
inline constexpr const char* kOverflowLabel = "_other";

// Statuses a saga reaches (pg_consistency_sagas_total{status}), in the saga pillar's order.
enum class SagaStatus : uint8_t { kRunning, kCompensating, kCompleted, kCompensated, kFailed, kAborted };
inline constexpr std::size_t kSagaStatuses = 6;
const char* saga_status_name(SagaStatus s);
// The end states a saga's duration is observed at (outcome label): completed, compensated,
// failed, aborted.
inline constexpr std::size_t kSagaOutcomes = 4;
// The duration slot of an end state; -1 for running and compensating.
int outcome_slot(SagaStatus s);

// How one attempt of a step ended (pg_consistency_saga_step_seconds{outcome}).
enum class StepOutcome : uint8_t { kSucceeded, kFailed, kTimedOut, kCompensated, kCompensationFailed };
inline constexpr std::size_t kStepOutcomes = 5;
const char* step_outcome_name(StepOutcome o);

// `hash` of the label values is compared before the names: a lookup scans the table.
struct SagaSeries {
  uint32_t hash;
  char name[kNameBytes];
  std::atomic<uint64_t> reached[kSagaStatuses];
  Histogram duration[kSagaOutcomes];
};

struct StepSeries {
  uint32_t hash;
  char saga[kNameBytes];
  char step[kNameBytes];
  uint8_t outcome;
  Histogram seconds;
};

// Entries [0, count) are published label sets; entries[N - 1] is the overflow series.
template <typename Entry, std::size_t N>
struct Table {
  std::atomic<uint32_t> count;
  std::atomic<uint32_t> adding;    // spin flag for adding a label set
  std::atomic<uint64_t> overflow;  // observations that went to the overflow series
  Entry entries[N];

  static constexpr std::size_t capacity() { return N - 1; }
  // Published entries (the overflow one is not among them).
  std::size_t size() const { return count.load(std::memory_order_acquire); }
};

inline constexpr std::size_t kMaxSagaSeries = 64;   // 63 saga names + _other
inline constexpr std::size_t kMaxStepSeries = 192;  // 191 (saga, step, outcome) + _other

using SagaTable = Table<SagaSeries, kMaxSagaSeries>;
using StepTable = Table<StepSeries, kMaxStepSeries>;

// The series of saga `name` (the overflow one when the table is full or the name too long).
SagaSeries& saga_series(SagaTable& t, std::string_view name) noexcept;
StepSeries& step_series(StepTable& t, std::string_view saga, std::string_view step, StepOutcome o) noexcept;
// True for the overflow entry of its table.
bool is_overflow(const SagaTable& t, const SagaSeries& e);
bool is_overflow(const StepTable& t, const StepSeries& e);

}  // namespace pgc::metrics
