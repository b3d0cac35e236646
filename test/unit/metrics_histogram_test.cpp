#include "metrics/histogram.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

using namespace pgc::metrics;

namespace {

// A histogram in zeroed memory, as shared memory gives it.
std::unique_ptr<Histogram> zeroed() {
  auto h = std::make_unique<Histogram>();
  std::memset(static_cast<void*>(h.get()), 0, sizeof(Histogram));
  return h;
}

TEST(MetricsHistogram, BucketOfUsesUpperBoundsInclusive) {
  EXPECT_EQ(bucket_of(0.0), 0u);
  EXPECT_EQ(bucket_of(0.001), 0u);   // le="0.001" includes 0.001
  EXPECT_EQ(bucket_of(0.0011), 1u);  // next bound 0.0025
  EXPECT_EQ(bucket_of(1.0), 9u);     // le="1"
  EXPECT_EQ(bucket_of(300.0), kBounds.size() - 1);
  EXPECT_EQ(bucket_of(300.5), kBounds.size());  // +Inf
  EXPECT_EQ(bucket_of(-3.0), 0u);
  EXPECT_EQ(bucket_of(std::nan("")), 0u);
}

TEST(MetricsHistogram, BoundsAscend) {
  for (std::size_t i = 1; i < kBounds.size(); i++) EXPECT_LT(kBounds[i - 1], kBounds[i]);
}

TEST(MetricsHistogram, SnapshotIsCumulativeWithSumInSeconds) {
  auto h = zeroed();
  h->observe(0.0005);
  h->observe(0.004);
  h->observe(0.004);
  h->observe(2.0);
  h->observe(1000.0);
  Snapshot s = h->snapshot();
  EXPECT_EQ(s.count(), 5u);
  EXPECT_EQ(s.cumulative[0], 1u);                   // <= 0.001
  EXPECT_EQ(s.cumulative[1], 1u);                   // <= 0.0025
  EXPECT_EQ(s.cumulative[2], 3u);                   // <= 0.005
  EXPECT_EQ(s.cumulative[9], 3u);                   // <= 1
  EXPECT_EQ(s.cumulative[10], 4u);                  // <= 2.5
  EXPECT_EQ(s.cumulative[kBounds.size() - 1], 4u);  // <= 300
  EXPECT_EQ(s.cumulative[kBounds.size()], 5u);      // +Inf
  EXPECT_NEAR(s.sum_seconds, 0.0005 + 0.008 + 2.0 + 1000.0, 1e-6);
}

TEST(MetricsHistogram, NegativeDurationsCountAsZero) {
  auto h = zeroed();
  h->observe(-5);
  Snapshot s = h->snapshot();
  EXPECT_EQ(s.cumulative[0], 1u);
  EXPECT_EQ(s.sum_seconds, 0.0);
}

TEST(MetricsHistogram, ConcurrentObservationsAreAllCounted) {
  auto h = zeroed();
  constexpr int kThreads = 4, kEach = 50000;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; t++)
    ts.emplace_back([&, t] {
      for (int i = 0; i < kEach; i++) h->observe(t == 0 ? 0.002 : 0.02);
    });
  for (auto& t : ts) t.join();
  Snapshot s = h->snapshot();
  EXPECT_EQ(s.count(), static_cast<uint64_t>(kThreads * kEach));
  EXPECT_EQ(s.cumulative[1], static_cast<uint64_t>(kEach));  // 0.002 <= 0.0025
  EXPECT_NEAR(s.sum_seconds, kEach * 0.002 + 3.0 * kEach * 0.02, 1e-3);
}

TEST(MetricsHistogram, BoundsFormatLikePrometheusClients) {
  EXPECT_EQ(format_bound(0), "0.001");
  EXPECT_EQ(format_bound(1), "0.0025");
  EXPECT_EQ(format_bound(9), "1");
  EXPECT_EQ(format_bound(10), "2.5");
  EXPECT_EQ(format_bound(kBounds.size() - 1), "300");
  EXPECT_EQ(format_bound(kBounds.size()), "+Inf");
}

TEST(MetricsHistogram, SamplesAreBucketsThenSumThenCount) {
  auto h = zeroed();
  h->observe(0.03);
  h->observe(7);
  std::vector<Sample> ss = samples(h->snapshot());
  ASSERT_EQ(ss.size(), kBuckets + 2);
  double last = 0;
  for (std::size_t i = 0; i < kBuckets; i++) {
    EXPECT_STREQ(ss[i].suffix, "_bucket");
    EXPECT_EQ(ss[i].le, format_bound(i));
    EXPECT_GE(ss[i].value, last);  // cumulative: never decreasing
    last = ss[i].value;
  }
  EXPECT_EQ(ss[kBuckets - 1].le, "+Inf");
  EXPECT_EQ(ss[kBuckets - 1].value, 2);
  EXPECT_STREQ(ss[kBuckets].suffix, "_sum");
  EXPECT_TRUE(ss[kBuckets].le.empty());
  EXPECT_NEAR(ss[kBuckets].value, 7.03, 1e-9);
  EXPECT_STREQ(ss[kBuckets + 1].suffix, "_count");
  EXPECT_EQ(ss[kBuckets + 1].value, 2);
}

}  // namespace
