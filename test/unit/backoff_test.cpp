#include "common/backoff.hpp"

#include <gtest/gtest.h>

using pgc::backoff_delay_ms;
using pgc::BackoffPolicy;

namespace {

// One call of backoff_delay_ms and the bounds its result must lie in (equal bounds: the
// exact delay).
struct Case {
  const char* what;
  BackoffPolicy policy;
  int attempt;
  double unit_random;
  int64_t min_ms;
  int64_t max_ms;
};

constexpr int64_t kAny = INT64_MAX;

const Case kCases[] = {
    // Grows exponentially without jitter.
    {"first retry", {100, 100000, 2.0, 0.0}, 1, 0.5, 100, 100},
    {"second retry", {100, 100000, 2.0, 0.0}, 2, 0.5, 200, 200},
    {"third retry", {100, 100000, 2.0, 0.0}, 3, 0.5, 400, 400},
    {"sixth retry", {100, 100000, 2.0, 0.0}, 6, 0.5, 3200, 3200},
    // Capped at the maximum, even for huge attempts.
    {"capped", {100, 5000, 2.0, 0.0}, 10, 0.0, 5000, 5000},
    {"capped, huge attempt", {100, 5000, 2.0, 0.0}, 1000000, 0.0, 5000, 5000},
    // Jitter stays within its band and the cap.
    {"jitter low end", {1000, 60000, 2.0, 0.2}, 1, 0.0, 800, 800},
    {"jitter middle", {1000, 60000, 2.0, 0.2}, 1, 0.5, 1000, 1000},
    {"jitter high end", {1000, 60000, 2.0, 0.2}, 1, 0.999999, 1199, 1199},
    {"jitter under the cap", {1000, 60000, 2.0, 0.2}, 50, 0.99, 0, 60000},
    // Degenerate inputs are safe.
    {"degenerate policy", {-5, -10, 0.1, 7.0}, 0, 2.0, 0, kAny},
    {"degenerate attempt and random", {-5, -10, 0.1, 7.0}, -3, -1.0, 0, kAny},
};

}  // namespace

TEST(Backoff, DelaysOfATableOfPoliciesAndAttempts) {
  for (const Case& c : kCases) {
    int64_t delay = backoff_delay_ms(c.policy, c.attempt, c.unit_random);
    if (c.min_ms == c.max_ms) {
      EXPECT_EQ(delay, c.min_ms) << c.what;
    } else {
      EXPECT_GE(delay, c.min_ms) << c.what;
      EXPECT_LE(delay, c.max_ms) << c.what;
    }
  }
}
