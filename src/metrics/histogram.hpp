// Latency histograms in shared memory, updated by the code paths that measure: fixed
// bucket bounds in seconds, one relaxed atomic add per bucket and one for the sum (no
// lock, nothing to allocate), read at scrape time. Zeroed memory is an empty histogram.
// Pure C++ (no PostgreSQL header): the same code runs in the unit tests.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pgc::metrics {

// Upper bounds in seconds: from a relay acknowledgement (milliseconds) to a long saga
// (an hour). One set for every histogram, so that dashboards can compare them.
inline constexpr std::array<double, 16> kBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                   0.5,   1,      2.5,   5,    10,    30,   60,  300};
// Buckets kept: one per bound and one above every bound (+Inf).
inline constexpr std::size_t kBuckets = kBounds.size() + 1;

static_assert(std::atomic<uint64_t>::is_always_lock_free, "shared-memory counters need lock-free atomics");

// A consistent-enough copy for one scrape (buckets and sum are read one after the other).
struct Snapshot {
  std::array<uint64_t, kBuckets> cumulative{};  // [i]: observations <= kBounds[i]; last: all
  double sum_seconds = 0;
  uint64_t count() const { return cumulative.back(); }
};

struct Histogram {
  std::atomic<uint64_t> buckets[kBuckets];  // per bucket, not cumulative: one add per observation
  std::atomic<uint64_t> sum_us;             // microseconds: an integer sum stays exact and atomic

  // Negative or NaN durations (a clock stepped back) count as 0.
  void observe(double seconds) noexcept;
  Snapshot snapshot() const noexcept;
};

// Index of the bucket an observation of `seconds` falls in (the first bound >= seconds).
std::size_t bucket_of(double seconds) noexcept;

// The `le` label of bucket i: the bound as Prometheus clients print it ("0.005", "1",
// "300"), "+Inf" for the last.
std::string format_bound(std::size_t i);

// One exposition sample of a histogram: `suffix` is "_bucket", "_sum" or "_count"; `le`
// is set for buckets only.
struct Sample {
  const char* suffix;
  std::string le;
  double value;
};
// The samples of one histogram series, in exposition order: buckets (cumulative,
// ascending, +Inf last), sum, count.
std::vector<Sample> samples(const Snapshot& s);

}  // namespace pgc::metrics
