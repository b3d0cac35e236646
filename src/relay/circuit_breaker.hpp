// A circuit breaker for the relay's broker connection. Closed: batches go out. After
// `failure_threshold` transient failures in a row it opens: no batch goes out until a
// backoff delay (growing with each reopening, with jitter) has passed; then one trial
// batch or probe is let through (half-open). Success closes it; failure reopens it.
// Pure logic; time and randomness come from the caller.
#pragma once

#include <cstdint>

#include "common/backoff.hpp"

namespace pgc::relay {

struct CircuitBreakerPolicy {
  int failure_threshold = 1;
  BackoffPolicy backoff{250, 30000, 2.0, 0.2};
};

class CircuitBreaker {
 public:
  enum class State { kClosed, kOpen, kHalfOpen };

  explicit CircuitBreaker(CircuitBreakerPolicy policy = {}) : policy_(policy) {}

  // May a batch (or a probe) go out at now_ms? Moves Open -> HalfOpen once the delay is over.
  bool allow(int64_t now_ms);
  // Milliseconds until allow() can return true (0 when it can now).
  int64_t wait_ms(int64_t now_ms) const;
  // A batch or probe went through: closes the breaker and resets the backoff.
  void record_success();
  // unit_random in [0, 1) spreads the reopening delay.
  void record_failure(int64_t now_ms, double unit_random);

  State state() const { return state_; }
  int consecutive_failures() const { return failures_; }
  int openings() const { return openings_; }
  int64_t retry_at_ms() const { return retry_at_ms_; }

 private:
  CircuitBreakerPolicy policy_;
  State state_ = State::kClosed;
  int failures_ = 0;  // transient failures in a row
  int openings_ = 0;  // times opened since the last success
  int64_t retry_at_ms_ = 0;
};

// "closed", "open" or "half_open", for logs and tests.
const char* circuit_state_name(CircuitBreaker::State s);

}  // namespace pgc::relay
