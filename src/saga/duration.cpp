#include "saga/duration.hpp"

#include "saga/definition.hpp"

namespace pgc::saga {

int64_t interval_ms(int64_t time_us, int32_t days, int32_t months) {
  constexpr __int128 kUsPerDay = 86400LL * 1000 * 1000;
  // At most 2^63 + 2^31 * 30 * 8.64e10 in magnitude: far inside 128 bits.
  __int128 us = static_cast<__int128>(time_us) + static_cast<__int128>(days) * kUsPerDay +
                static_cast<__int128>(months) * 30 * kUsPerDay;
  if (us > static_cast<__int128>(kMaxDurationMs) * 1000) return kMaxDurationMs + 1;
  __int128 ms = us / 1000;  // truncates toward zero
  if (us % 1000 > 0) ms += 1;
  if (us % 1000 < 0) ms -= 1;
  return static_cast<int64_t>(ms);  // >= -2^31 * 30 * 8.64e7 - 2^63 / 1000: fits
}

}  // namespace pgc::saga
