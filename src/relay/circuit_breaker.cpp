#include "relay/circuit_breaker.hpp"

#include <algorithm>

namespace pgc::relay {

bool CircuitBreaker::allow(int64_t now_ms) {
  switch (state_) {
    case State::kClosed:
      return true;
    case State::kHalfOpen:
      // One trial is already out; wait for its outcome.
      return false;
    case State::kOpen:
      if (now_ms >= retry_at_ms_) {
        state_ = State::kHalfOpen;
        return true;
      }
      return false;
  }
  return false;
}

int64_t CircuitBreaker::wait_ms(int64_t now_ms) const {
  if (state_ != State::kOpen) return 0;
  return std::max<int64_t>(0, retry_at_ms_ - now_ms);
}

void CircuitBreaker::record_success() {
  state_ = State::kClosed;
  failures_ = 0;
  openings_ = 0;
  retry_at_ms_ = 0;
}

void CircuitBreaker::record_failure(int64_t now_ms, double unit_random) {
  failures_++;
  if (state_ == State::kHalfOpen || failures_ >= std::max(1, policy_.failure_threshold)) {
    openings_++;
    state_ = State::kOpen;
    retry_at_ms_ = now_ms + backoff_delay_ms(policy_.backoff, openings_, unit_random);
  }
}

const char* circuit_state_name(CircuitBreaker::State s) {
  switch (s) {
    case CircuitBreaker::State::kClosed:
      return "closed";
    case CircuitBreaker::State::kOpen:
      return "open";
    case CircuitBreaker::State::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

}  // namespace pgc::relay
