// Saga durations (src/saga/duration.*): any interval's fields (16 bytes: microseconds,
// days, months, little-endian as on the machine) give a millisecond count without
// overflow, rounded away from zero, and capped at one above the limit; the same count as the
// long double arithmetic it replaced wherever that one is exact.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "fuzz_input.hpp"
#include "saga/definition.hpp"
#include "saga/duration.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint8_t raw[16] = {0};
  std::memcpy(raw, data, size < sizeof raw ? size : sizeof raw);
  int64_t time_us;
  int32_t days, months;
  std::memcpy(&time_us, raw, 8);
  std::memcpy(&days, raw + 8, 4);
  std::memcpy(&months, raw + 12, 4);

  const int64_t ms = pgc::saga::interval_ms(time_us, days, months);
  const __int128 us = static_cast<__int128>(time_us) + static_cast<__int128>(days) * 86400000000LL +
                      static_cast<__int128>(months) * 30 * 86400000000LL;
  const int64_t max = pgc::saga::kMaxDurationMs;
  PGC_FUZZ_CHECK(ms <= max + 1);
  if (ms == max + 1) {
    PGC_FUZZ_CHECK(us > static_cast<__int128>(max) * 1000);
  } else if (us >= 0) {
    PGC_FUZZ_CHECK(static_cast<__int128>(ms) * 1000 >= us && static_cast<__int128>(ms - 1) * 1000 < us);
  } else {
    PGC_FUZZ_CHECK(static_cast<__int128>(ms) * 1000 <= us && static_cast<__int128>(ms + 1) * 1000 > us);
  }
  // The former long double formula, where it holds every microsecond exactly: each term and
  // sum below 2^64 in magnitude (its 64-bit mantissa). Beyond, terms of opposite signs that
  // cancel lost milliseconds there (the corpus keeps such an input: old_formula_rounding).
  const __int128 limit = static_cast<__int128>(1) << 61;
  const __int128 day_us = static_cast<__int128>(days) * 86400000000LL;
  const __int128 month_us = static_cast<__int128>(months) * 30 * 86400000000LL;
  if (ms <= max && day_us < limit && day_us > -limit && month_us < limit && month_us > -limit &&
      time_us < limit && time_us > -limit) {
    long double l = (static_cast<long double>(time_us) + static_cast<long double>(days) * 86400000000.0L +
                     static_cast<long double>(months) * 30 * 86400000000.0L) /
                    1000.0L;
    PGC_FUZZ_CHECK(ms == static_cast<int64_t>(l < 0 ? std::floor(l) : std::ceil(l)));
  }
  return 0;
}
