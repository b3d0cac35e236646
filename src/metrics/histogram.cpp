#include "metrics/histogram.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace pgc::metrics {

std::size_t bucket_of(double seconds) noexcept {
  if (!(seconds > 0)) return 0;  // NaN and negatives: the first bucket
  return static_cast<std::size_t>(std::lower_bound(kBounds.begin(), kBounds.end(), seconds) -
                                  kBounds.begin());
}

void Histogram::observe(double seconds) noexcept {
  if (!(seconds > 0)) seconds = 0;
  buckets[bucket_of(seconds)].fetch_add(1, std::memory_order_relaxed);
  // Up to ~584,000 years of summed time fit in 64 bits of microseconds.
  double us = std::min(seconds * 1e6, 1e15);
  sum_us.fetch_add(static_cast<uint64_t>(std::llround(us)), std::memory_order_relaxed);
}

Snapshot Histogram::snapshot() const noexcept {
  Snapshot s;
  uint64_t running = 0;
  for (std::size_t i = 0; i < kBuckets; i++) {
    running += buckets[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  s.sum_seconds = static_cast<double>(sum_us.load(std::memory_order_relaxed)) / 1e6;
  return s;
}

std::string format_bound(std::size_t i) {
  if (i >= kBounds.size()) return "+Inf";
  // %g with enough digits for every bound gives the short forms Go and Python clients use.
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", kBounds[i]);
  return buf;
}

std::vector<Sample> samples(const Snapshot& s) {
  std::vector<Sample> out;
  out.reserve(kBuckets + 2);
  for (std::size_t i = 0; i < kBuckets; i++)
    out.push_back({"_bucket", format_bound(i), static_cast<double>(s.cumulative[i])});
  out.push_back({"_sum", {}, s.sum_seconds});
  out.push_back({"_count", {}, static_cast<double>(s.count())});
  return out;
}

}  // namespace pgc::metrics
