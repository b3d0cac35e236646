#include "consistency/wait.hpp"

#include "common/error.hpp"
#include "consistency/settings.hpp"
#include "eventstore/es.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/timestamp.h"
}

namespace pgc::consistency {

namespace {

// Interval `iv` in milliseconds (months as 30 days, as PostgreSQL's epoch arithmetic),
// at most a year.
int64 interval_ms(const Interval* iv) {
  double usec = static_cast<double>(iv->time) + static_cast<double>(iv->day) * USECS_PER_DAY +
                static_cast<double>(iv->month) * DAYS_PER_MONTH * USECS_PER_DAY;
  double ms = usec / 1000.0;
  double year = 365.0 * 24 * 3600 * 1000;
  if (ms > year) ms = year;
  return static_cast<int64>(ms);
}

// Throws CS002 for a token of another cluster or database. The system identifier is
// the same on a primary and its physical standbys.
void check_local(const Token& t, const char* what) {
  Token here;
  here.system_id = GetSystemIdentifier();
  here.database = MyDatabaseId;
  if (auto m = mismatch(here, t))
    throw invalid_argument(
        std::string(what) + " was not issued for this database",
        "The token names system " + std::to_string(t.system_id) + ", database " + std::to_string(t.database) +
            "; this is system " + std::to_string(here.system_id) + ", database " +
            std::to_string(here.database) + ".",
        "Tokens are valid on the primary that issued them, its standbys and the same database.");
}

// The WAL position this server has reached: replayed on a standby, inserted on a primary.
XLogRecPtr reached_lsn(bool standby) {
  return standby ? GetXLogReplayRecPtr(nullptr) : GetXLogInsertRecPtr();
}

}  // namespace

Token token_arg(FunctionCallInfo fcinfo, int argno, const char* what) {
  if (PG_ARGISNULL(argno)) throw invalid_argument(std::string(what) + " must not be NULL");
  text* arg = PG_GETARG_TEXT_PP(argno);
  Token out;
  {
    ParsedToken p = parse_token(std::string_view(VARDATA_ANY(arg), VARSIZE_ANY_EXHDR(arg)));
    if (!p.token)
      throw invalid_argument(
          "malformed consistency token: " + p.problem, "",
          "Pass a token returned by consistency.session_token() or consistency.max_token().");
    out = *p.token;
  }
  check_local(out, what);
  return out;
}

WaitTarget wait_target(FunctionCallInfo fcinfo) {
  WaitTarget t{};
  t.token = token_arg(fcinfo, 0, "token");
  if (PG_ARGISNULL(1)) throw invalid_argument("timeout must not be NULL");
  t.timeout_ms = interval_ms(PG_GETARG_INTERVAL_P(1));
  if (t.timeout_ms < 0) throw invalid_argument("timeout must not be negative");
  t.has_subscription = !PG_ARGISNULL(2);
  if (t.has_subscription) {
    text* s = PG_GETARG_TEXT_PP(2);
    int len = VARSIZE_ANY_EXHDR(s);
    if (len == 0) throw invalid_argument("subscription name must not be empty");
    if (len > kMaxSubscriptionBytes)
      throw invalid_argument("subscription name is longer than " + std::to_string(kMaxSubscriptionBytes) +
                             " bytes, so no subscription has it");
    memcpy(t.subscription, VARDATA_ANY(s), len);
    t.subscription[len] = '\0';
    if (strlen(t.subscription) != static_cast<size_t>(len))
      throw invalid_argument("subscription name must not contain a NUL byte");
  }
  return t;
}

bool wait_for(const WaitTarget* t, bool nonatomic) {
  TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), t->timeout_ms);
  // The CALL's own snapshot goes with the transaction that ran it so far.
  if (nonatomic) pg::spi_commit();
  // In SPI's procedure context, which outlives the commits below.
  Datum name = t->has_subscription ? CStringGetTextDatum(t->subscription) : (Datum)0;
  bool reached = false;
  bool on_cv = false;
  for (;;) {
    bool standby = RecoveryInProgress();
    bool sleep_on_cv = false;
    if (reached_lsn(standby) >= t->token.lsn) {
      if (!t->has_subscription) {
        reached = true;
        break;
      }
      // On the primary the worker broadcasts after each checkpoint; prepare before
      // looking, so a broadcast in between is not lost. A standby learns of checkpoints
      // only by replay, which wakes nobody.
      if (!standby) {
        eventstore::prepare_progress_wait();
        on_cv = sleep_on_cv = true;
      }
      eventstore::SubscriptionProgress s{};
      if (!eventstore::subscription_progress(name, &s)) {
        if (on_cv) eventstore::cancel_progress_wait();
        eventstore::throw_unknown_subscription(t->subscription);
      }
      if (nonatomic) pg::spi_commit();
      if (s.position >= t->token.position - 1) {
        reached = true;
        break;
      }
      if (s.failed) break;  // parked: it gets there only after reset_subscription
    }
    long remaining = static_cast<long>((deadline - GetCurrentTimestamp()) / 1000);
    if (remaining <= 0) break;
    if (sleep_on_cv) {
      // The 1 s cap only bounds a missed broadcast (e.g. the worker restarted).
      eventstore::wait_progress(Min(remaining, 1000L));
    } else {
      long nap = Min(remaining, static_cast<long>(settings::replay_poll_interval_ms));
      (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, nap, PG_WAIT_EXTENSION);
      ResetLatch(MyLatch);
    }
    CHECK_FOR_INTERRUPTS();
  }
  if (on_cv) eventstore::cancel_progress_wait();
  return reached;
}

}  // namespace pgc::consistency
