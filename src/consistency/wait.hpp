// Waiting for a token (docs/consistency.md): on a standby until replay has passed the
// token's WAL position; with a subscription, until its checkpoint has passed every event
// the token covers. Plain-data code: an ERROR (cancel, timeout of the statement) may
// longjmp straight through it.
#pragma once

#include "consistency/token.hpp"
#include "pg/postgres.hpp"

namespace pgc::consistency {

inline constexpr int kMaxSubscriptionBytes = 200;

struct WaitTarget {
  Token token;
  bool has_subscription;
  char subscription[kMaxSubscriptionBytes + 1];  // NUL-terminated
  int64 timeout_ms;
};

// Reads token/timeout/subscription from arguments 0..2 (CS002 for a malformed or foreign
// token, a NULL or negative timeout, an invalid subscription name).
WaitTarget wait_target(FunctionCallInfo fcinfo);

// The token argument `argno`, checked against this cluster and database (CS002).
Token token_arg(FunctionCallInfo fcinfo, int argno, const char* what);

// Waits for `t` with SPI connected; true once reached, false on timeout or when the
// subscription is parked. CS004 for an unknown subscription. With `nonatomic` (SPI
// connected with SPI_OPT_NONATOMIC), first commits, and commits again after every look
// at the subscription, so no snapshot and no lock is held while waiting.
bool wait_for(const WaitTarget* t, bool nonatomic);

}  // namespace pgc::consistency
