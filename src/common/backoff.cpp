#include "common/backoff.hpp"

#include <algorithm>
#include <cmath>

namespace pgc {

int64_t backoff_delay_ms(const BackoffPolicy& policy, int attempt, double unit_random) {
  if (attempt < 1) attempt = 1;
  const double initial = static_cast<double>(std::max<int64_t>(policy.initial_ms, 0));
  const double cap = static_cast<double>(std::max<int64_t>(policy.max_ms, policy.initial_ms));
  const double multiplier = std::max(policy.multiplier, 1.0);
  // Grow in log space so a large attempt count cannot overflow.
  double exp_delay = initial * std::pow(multiplier, std::min(attempt - 1, 1000));
  if (!std::isfinite(exp_delay) || exp_delay > cap) exp_delay = cap;
  const double jitter = std::clamp(policy.jitter, 0.0, 1.0);
  const double r = std::clamp(unit_random, 0.0, 1.0);
  double delay = exp_delay * (1.0 - jitter + 2.0 * jitter * r);
  delay = std::min(delay, cap);
  return static_cast<int64_t>(std::max(delay, 0.0));
}

}  // namespace pgc
