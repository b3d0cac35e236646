#include "saga/duration.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "saga/definition.hpp"

using pgc::saga::interval_ms;
using pgc::saga::kMaxDurationMs;

namespace {
constexpr int64_t kUsPerDay = 86400LL * 1000 * 1000;
}

TEST(SagaDuration, FieldsAddUpAsEpochDoes) {
  EXPECT_EQ(interval_ms(30LL * 1000 * 1000, 0, 0), 30000);
  EXPECT_EQ(interval_ms(0, 2, 0), 2 * 86400000LL);
  EXPECT_EQ(interval_ms(0, 0, 1), 30 * 86400000LL);  // a month is 30 days
  EXPECT_EQ(interval_ms(1000, 1, 1), 31 * 86400000LL + 1);
}

TEST(SagaDuration, FractionsRoundAwayFromZero) {
  EXPECT_EQ(interval_ms(500, 0, 0), 1);  // 500 microseconds is 1 ms, not 0
  EXPECT_EQ(interval_ms(1, 0, 0), 1);
  EXPECT_EQ(interval_ms(1001, 0, 0), 2);
  EXPECT_EQ(interval_ms(-1, 0, 0), -1);
  EXPECT_EQ(interval_ms(-1001, 0, 0), -2);
  EXPECT_EQ(interval_ms(0, 0, 0), 0);
}

TEST(SagaDuration, BeyondAYearIsOneAboveTheLimit) {
  EXPECT_EQ(interval_ms(0, 366, 0), kMaxDurationMs);
  EXPECT_EQ(interval_ms(1, 366, 0), kMaxDurationMs + 1);
  EXPECT_EQ(interval_ms(0, 0, std::numeric_limits<int32_t>::max()), kMaxDurationMs + 1);
  EXPECT_EQ(interval_ms(std::numeric_limits<int64_t>::max(), std::numeric_limits<int32_t>::max(),
                        std::numeric_limits<int32_t>::max()),
            kMaxDurationMs + 1);
}

TEST(SagaDuration, MostNegativeFieldsDoNotOverflow) {
  const int64_t min_us = std::numeric_limits<int64_t>::min();
  const int32_t min32 = std::numeric_limits<int32_t>::min();
  // Exact: -2^63 us - 2^31 days - 2^31 * 30 days, in ms rounded down.
  __int128 us = static_cast<__int128>(min_us) + static_cast<__int128>(min32) * kUsPerDay +
                static_cast<__int128>(min32) * 30 * kUsPerDay;
  EXPECT_EQ(interval_ms(min_us, min32, min32), static_cast<int64_t>(us / 1000 - (us % 1000 != 0)));
  EXPECT_LT(interval_ms(min_us, min32, min32), 0);
}

// Months and days far beyond 2^64 microseconds that cancel: a long double sum (the former
// formula) lost the microsecond and gave 86400000.
TEST(SagaDuration, CancellingLargeFieldsStayExact) {
  EXPECT_EQ(interval_ms(1, -600000029, 20000001), 86400001);
  EXPECT_EQ(interval_ms(-1, 600000029, -20000001), -86400001);
}
