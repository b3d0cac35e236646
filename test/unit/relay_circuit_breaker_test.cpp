#include "relay/circuit_breaker.hpp"

#include <gtest/gtest.h>

using pgc::relay::CircuitBreaker;
using pgc::relay::CircuitBreakerPolicy;
using State = CircuitBreaker::State;

namespace {
CircuitBreakerPolicy policy(int threshold) {
  CircuitBreakerPolicy p;
  p.failure_threshold = threshold;
  p.backoff = {100, 1000, 2.0, 0.0};  // no jitter: exact delays
  return p;
}
}  // namespace

TEST(CircuitBreaker, ClosedLetsEverythingThrough) {
  CircuitBreaker cb(policy(3));
  EXPECT_EQ(cb.state(), State::kClosed);
  for (int i = 0; i < 10; i++) EXPECT_TRUE(cb.allow(i));
  EXPECT_EQ(cb.wait_ms(0), 0);
}

TEST(CircuitBreaker, OpensAfterThresholdAndWaits) {
  CircuitBreaker cb(policy(3));
  cb.record_failure(1000, 0.5);
  cb.record_failure(1000, 0.5);
  EXPECT_EQ(cb.state(), State::kClosed) << "below the threshold";
  cb.record_failure(1000, 0.5);
  EXPECT_EQ(cb.state(), State::kOpen);
  EXPECT_FALSE(cb.allow(1000));
  EXPECT_FALSE(cb.allow(1099));
  EXPECT_EQ(cb.wait_ms(1050), 50);
  EXPECT_TRUE(cb.allow(1100)) << "one trial after the delay";
  EXPECT_EQ(cb.state(), State::kHalfOpen);
  EXPECT_FALSE(cb.allow(1101)) << "only one trial while half-open";
}

TEST(CircuitBreaker, HalfOpenFailureReopensWithLongerDelay) {
  CircuitBreaker cb(policy(1));
  cb.record_failure(0, 0.5);
  EXPECT_EQ(cb.retry_at_ms(), 100);
  ASSERT_TRUE(cb.allow(100));
  cb.record_failure(100, 0.5);
  EXPECT_EQ(cb.state(), State::kOpen);
  EXPECT_EQ(cb.retry_at_ms(), 100 + 200);
  ASSERT_TRUE(cb.allow(300));
  cb.record_failure(300, 0.5);
  EXPECT_EQ(cb.retry_at_ms(), 300 + 400);
  EXPECT_EQ(cb.openings(), 3);
}

TEST(CircuitBreaker, DelayIsCapped) {
  CircuitBreaker cb(policy(1));
  int64_t now = 0;
  for (int i = 0; i < 40; i++) {
    cb.record_failure(now, 0.5);
    EXPECT_LE(cb.retry_at_ms() - now, 1000);
    now = cb.retry_at_ms();
    ASSERT_TRUE(cb.allow(now));
  }
}

TEST(CircuitBreaker, SuccessClosesAndResets) {
  CircuitBreaker cb(policy(1));
  cb.record_failure(0, 0.5);
  ASSERT_TRUE(cb.allow(100));
  cb.record_failure(100, 0.5);
  ASSERT_TRUE(cb.allow(300));
  cb.record_success();
  EXPECT_EQ(cb.state(), State::kClosed);
  EXPECT_EQ(cb.consecutive_failures(), 0);
  EXPECT_EQ(cb.openings(), 0);
  cb.record_failure(1000, 0.5);
  EXPECT_EQ(cb.retry_at_ms(), 1100) << "the delay starts over after a success";
}

TEST(CircuitBreaker, DoesNotSpinWhileOpen) {
  // A relay asking every millisecond during a 10 s outage gets only a handful of trials.
  CircuitBreakerPolicy p;
  p.failure_threshold = 1;
  p.backoff = {250, 30000, 2.0, 0.2};
  CircuitBreaker cb(p);
  int trials = 0;
  for (int64_t t = 0; t < 10000; t++) {
    if (cb.allow(t)) {
      trials++;
      cb.record_failure(t, 0.3);  // the broker is still down
    }
  }
  EXPECT_LE(trials, 8);
  EXPECT_GE(trials, 3);
}

TEST(CircuitBreaker, JitterSpreadsReopening) {
  CircuitBreakerPolicy p;
  p.failure_threshold = 1;
  p.backoff = {1000, 60000, 2.0, 0.2};
  CircuitBreaker a(p), b(p);
  a.record_failure(0, 0.0);
  b.record_failure(0, 0.99);
  EXPECT_EQ(a.retry_at_ms(), 800);
  EXPECT_GE(b.retry_at_ms(), 1190);
  EXPECT_STREQ(pgc::relay::circuit_state_name(a.state()), "open");
}
