// Exponential backoff with jitter, shared by the worker's error handling, subscription
// retries, saga step retries and the relay. Pure logic: no PostgreSQL headers.
#pragma once

#include <cstdint>

namespace pgc {

struct BackoffPolicy {
  int64_t initial_ms = 100;
  int64_t max_ms = 10000;
  double multiplier = 2.0;
  double jitter = 0.2;  // +/- fraction of the delay, so retries of many peers spread out
};

// Delay before retry number `attempt` (1 = first retry). `unit_random` in [0, 1) comes
// from the caller so the function stays deterministic under test.
int64_t backoff_delay_ms(const BackoffPolicy& policy, int attempt, double unit_random);

}  // namespace pgc
