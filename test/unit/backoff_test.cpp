#include "common/backoff.hpp"

#include <gtest/gtest.h>

using pgc::backoff_delay_ms;
using pgc::BackoffPolicy;

TEST(Backoff, GrowsExponentiallyWithoutJitter) {
  BackoffPolicy p{100, 100000, 2.0, 0.0};
  EXPECT_EQ(backoff_delay_ms(p, 1, 0.5), 100);
  EXPECT_EQ(backoff_delay_ms(p, 2, 0.5), 200);
  EXPECT_EQ(backoff_delay_ms(p, 3, 0.5), 400);
  EXPECT_EQ(backoff_delay_ms(p, 6, 0.5), 3200);
}

TEST(Backoff, CappedAtMaximumEvenForHugeAttempts) {
  BackoffPolicy p{100, 5000, 2.0, 0.0};
  EXPECT_EQ(backoff_delay_ms(p, 10, 0.0), 5000);
  EXPECT_EQ(backoff_delay_ms(p, 1000000, 0.0), 5000);
}

TEST(Backoff, JitterStaysWithinBandAndCap) {
  BackoffPolicy p{1000, 60000, 2.0, 0.2};
  EXPECT_EQ(backoff_delay_ms(p, 1, 0.0), 800);
  EXPECT_EQ(backoff_delay_ms(p, 1, 0.5), 1000);
  EXPECT_EQ(backoff_delay_ms(p, 1, 0.999999), 1199);
  EXPECT_LE(backoff_delay_ms(p, 50, 0.99), 60000);
}

TEST(Backoff, DegenerateInputsAreSafe) {
  BackoffPolicy p{-5, -10, 0.1, 7.0};
  EXPECT_GE(backoff_delay_ms(p, 0, 2.0), 0);
  EXPECT_GE(backoff_delay_ms(p, -3, -1.0), 0);
}
