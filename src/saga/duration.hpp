// Milliseconds of a saga duration ("30 seconds"): PostgreSQL parses the text as an interval
// (src/saga/api.cpp); the arithmetic on its fields is here, pure, for unit tests and fuzzing.
#pragma once

#include <cstdint>

namespace pgc::saga {

// An interval's fields in milliseconds, as EXTRACT(EPOCH FROM interval) counts them (a day is
// 24 hours, a month 30 days), exactly. A positive fraction of a millisecond rounds up (500
// microseconds is 1 ms, not 0), a negative one down; anything above kMaxDurationMs (a year)
// is kMaxDurationMs + 1, so that the caller refuses it without overflow.
int64_t interval_ms(int64_t time_us, int32_t days, int32_t months);

}  // namespace pgc::saga
