// Observations made inside a transaction wait here until it commits: a saga counted as
// completed by a transaction that then rolls back never completed. Subtransactions are
// honoured too: what a rolled-back subtransaction observed is dropped, what a committed
// one observed belongs to its parent. Fixed capacity, nothing allocated: beyond it
// observations are dropped and counted. Pure C++ (no PostgreSQL header).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "metrics/histogram.hpp"

namespace pgc::metrics {

struct Observation {
  std::atomic<uint64_t>* counter = nullptr;  // incremented, when set
  Histogram* histogram = nullptr;            // observes `seconds`, when set
  double seconds = 0;
  int level = 1;  // transaction nesting level that made it (1: top level)
};

class Pending {
 public:
  static constexpr std::size_t kCapacity = 1024;

  // False (and counted in dropped()) when full.
  bool add(const Observation& o) noexcept;
  // Top-level commit: applies everything to shared memory, then forgets it.
  void commit() noexcept;
  // Top-level abort (or PREPARE: a prepared transaction's outcome is decided elsewhere).
  void abort() noexcept { n_ = 0; }
  // The subtransaction at nesting level `level` committed: its observations move to the parent.
  void commit_sub(int level) noexcept;
  // It rolled back: its observations (and those of its children) are dropped.
  void abort_sub(int level) noexcept;

  std::size_t size() const { return n_; }
  uint64_t dropped() const { return dropped_; }

 private:
  std::array<Observation, kCapacity> items_{};
  std::size_t n_ = 0;
  uint64_t dropped_ = 0;
};

}  // namespace pgc::metrics
