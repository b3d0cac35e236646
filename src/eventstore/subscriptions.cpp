// Subscriptions: the worker calls each subscription's handler for the matching events in
// global order, below the read horizon, in the transaction that advances the checkpoint.
// Each event runs in a subtransaction, as the subscription's owner through
// pgc::pg::run_as_enter (a security-restricted operation, search_path = pg_catalog,
// pg_temp, every setting the handler changes rolled back) with the time limit
// pg_consistency.subscription_handler_timeout; a failing or timed-out event rolls back
// only itself, the checkpoint stays before it, and the failure is counted (retry with
// backoff, then parked). A batch also ends early once it has run for that long, so one
// slow subscription cannot keep the worker from the others. A handler that catches its
// cancellation and goes on is ended with the worker by the hard stop (run_as_enter);
// the restarted worker charges that as a failed attempt before anything else
// (charge_hard_stops), so the subscription is parked after its attempts.
#include <random>

#include "common/backoff.hpp"
#include "correlation/context.hpp"
#include "eventstore/core.hpp"
#include "eventstore/es.hpp"
#include "worker/settings.hpp"
#include "pg/catching.hpp"
#include "pg/guard.hpp"
#include "worker/hard_stop.hpp"

extern "C" {
#include "access/htup_details.h"
#include "mb/pg_wchar.h"
#include "pgstat.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
}

namespace pgc::eventstore {

namespace {

// The hard-stop label of a subscription's batch: the prefix, then its name.
constexpr const char* kHardStopPrefix = "subscription:";
constexpr int kMaxErrorBytes = 2000;

struct BatchResult {
  int handled;
  bool failed;
  bool moved;      // the checkpoint advanced
  bool full;       // a whole batch was handled: more may be waiting
  int64 retry_ms;  // after a failure: when to try again
};

// A subscription's row, as lock_subscription reads it.
struct Subscription {
  Oid handler;
  Datum categories;   // text[], or NULL
  Datum event_types;  // text[], or NULL
  bool all_categories;
  bool all_event_types;
  int64 position;
  bool active;
  int32 attempts;
  int32 max_attempts;
  Oid owner;
  bool due;  // next_attempt_at has come
};

// Locks the row of subscription `name` (text) for this transaction and reads it into
// *sub; false when there is none.
bool lock_subscription(Datum name, Subscription* sub) {
  static pg::SavedPlan lock(
      "SELECT consistency._bound_function(handler, handler_oid, bound_cluster), categories, event_types, "
      "position, "
      "status OPERATOR(pg_catalog.=) 'active', attempts, max_attempts, owner, "
      "next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.now() "
      "FROM consistency.subscription_state WHERE name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
      {TEXTOID});
  spi_run_as_owner(lock, &name, nullptr, false, 1);
  if (SPI_processed == 0) return false;
  Datum f[9];
  bool fn[9];
  heap_deform_tuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, f, fn);
  sub->handler = DatumGetObjectId(f[0]);
  sub->categories = f[1];
  sub->event_types = f[2];
  sub->all_categories = fn[1];
  sub->all_event_types = fn[2];
  sub->position = DatumGetInt64(f[3]);
  sub->active = DatumGetBool(f[4]);
  sub->attempts = DatumGetInt32(f[5]);
  sub->max_attempts = DatumGetInt32(f[6]);
  sub->owner = DatumGetObjectId(f[7]);
  sub->due = DatumGetBool(f[8]);
  return true;
}

// The events a subscription handles next; the filters follow.
#define HANDLER_EVENTS                                                                       \
  "SELECT global_position, stream, version, type, schema_version, data, metadata, event_id " \
  "FROM consistency.events WHERE "
// After position $1, below the read horizon $2, of the types $4 (NULL = all), at most $3.
#define NEXT_BELOW_HORIZON                                                                   \
  "global_position OPERATOR(pg_catalog.>) $1 AND global_position OPERATOR(pg_catalog.<) $2 " \
  "AND ($4 IS NULL OR type OPERATOR(pg_catalog.=) ANY ($4)) ORDER BY global_position LIMIT $3"

// Reads the next `batch` events of `sub` below `horizon` into SPI_tuptable, as the owner,
// with a snapshot taken after the horizon.
void read_next_events(const Subscription& sub, int64 horizon, int batch) {
  static pg::SavedPlan all(HANDLER_EVENTS NEXT_BELOW_HORIZON, {INT8OID, INT8OID, INT8OID, TEXTARRAYOID});
  static pg::SavedPlan of_categories(HANDLER_EVENTS
                                     "category OPERATOR(pg_catalog.=) ANY ($5) AND " NEXT_BELOW_HORIZON,
                                     {INT8OID, INT8OID, INT8OID, TEXTARRAYOID, TEXTARRAYOID});
  Datum ev[5] = {Int64GetDatum(sub.position), Int64GetDatum(horizon), Int64GetDatum(batch), sub.event_types,
                 sub.categories};
  char evn[6] = {' ', ' ', ' ', sub.all_event_types ? 'n' : ' ', sub.all_categories ? 'n' : ' ', '\0'};
  spi_run_latest_as_owner(sub.all_categories ? all : of_categories, ev, evn);
}

// Records the outcome of a batch (or of a hard stop) in the row of subscription `name`:
// its checkpoint, the events handled, the attempts, the error (or NULL) and status, and
// the next attempt `delay_ms` from now. The backoff counts from the end of the batch
// (clock_timestamp), not from the start of its transaction: a slow failing handler must
// not eat its own backoff.
void update_subscription(Datum name, int64 position, int64 handled, int32 attempts, const char* error,
                         const char* status, int64 delay_ms) {
  static pg::SavedPlan update(
      "UPDATE consistency.subscription_state SET position = $2, processed = processed OPERATOR(pg_catalog.+) "
      "$3, "
      "attempts = $4, last_error = $5, status = $6, next_attempt_at = pg_catalog.clock_timestamp() "
      "OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $7 OPERATOR(pg_catalog./) 1000.0), "
      "updated_at = pg_catalog.clock_timestamp() WHERE name OPERATOR(pg_catalog.=) $1",
      {TEXTOID, INT8OID, INT8OID, INT4OID, TEXTOID, TEXTOID, INT8OID});
  Datum uv[7] = {name,
                 Int64GetDatum(position),
                 Int64GetDatum(handled),
                 Int32GetDatum(attempts),
                 error ? CStringGetTextDatum(error) : (Datum)0,
                 CStringGetTextDatum(status),
                 Int64GetDatum(delay_ms)};
  char un[8] = {' ', ' ', ' ', ' ', error ? ' ' : 'n', ' ', ' ', '\0'};
  spi_run_as_owner(update, uv, un, false);
}

// True when the handler time limit is set and has passed since `since`.
bool past_time_limit(TimestampTz since) {
  int limit = settings::subscription_handler_timeout_ms;
  return limit > 0 && TimestampDifferenceExceeds(since, GetCurrentTimestamp(), limit);
}

// The scope of the handler call in progress. Static, so that the error path below reads
// it from memory after the longjmp.
pg::RunAsState g_handler_scope;

// Calls the handler for row `r` as `owner` (upcasting as `owner` too), with the event's
// correlation ids in effect (left by the subtransaction's abort on an error). Raises
// PostgreSQL errors only (pg::run_in_subtransaction catches those): our own C++ errors
// are converted on the way out.
void invoke_handler(FmgrInfo* finfo, UpcastFns* fns, Oid owner, HeapTuple tup, TupleDesc desc,
                    TimestampTz started) {
  Datum values[8];
  bool nulls[8];
  heap_deform_tuple(tup, desc, values, nulls);
  int context = correlation::enter_event(values[7], values[6]);
  pg::run_as_enter(&g_handler_scope, owner, settings::subscription_handler_timeout_ms);
  text* type = DatumGetTextPP(values[3]);
  int32 sv = 0;
  Datum data =
      upcast(fns, VARDATA_ANY(type), VARSIZE_ANY_EXHDR(type), DatumGetInt32(values[4]), values[5], &sv);
  Datum args[6] = {values[0], values[1], values[2], values[3], data, values[6]};
  bool isnull = false;
  (void)call_function_own_settings(finfo, args, 6, &isnull);  // the upcasters ran in the same scope
  pg::run_as_leave(&g_handler_scope);
  correlation::leave(context);
  // A handler that caught the cancellation of its time limit and went on has overrun it
  // all the same: the call fails (its effects roll back) and counts as an attempt.
  if (past_time_limit(started))
    ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED),
                    errmsg("the handler returned after its time limit had passed")));
}

// invoke_handler with our C++ errors raised as PostgreSQL errors (after the catch).
void invoke_handler_pg(FmgrInfo* finfo, UpcastFns* fns, Oid owner, HeapTuple tup, TupleDesc desc,
                       TimestampTz started) {
  pg::CapturedError captured;
  bool failed = false;
  try {
    invoke_handler(finfo, fns, owner, tup, desc, started);
  } catch (...) {
    captured = pg::capture_current_exception();
    failed = true;
  }
  if (failed) pg::raise_captured(captured);
}

// Runs one event in a subtransaction. On failure returns false with *error set
// (palloc'd in the caller's context).
bool handle_event(FmgrInfo* finfo, UpcastFns* fns, Oid owner, HeapTuple tup, TupleDesc desc, char** error) {
  struct Call {
    FmgrInfo* finfo;
    UpcastFns* fns;
    Oid owner;
    HeapTuple tup;
    TupleDesc desc;
    TimestampTz started;
  } call{finfo, fns, owner, tup, desc, GetCurrentTimestamp()};
  memset(&g_handler_scope, 0, sizeof(g_handler_scope));
  ErrorData* edata = pg::run_in_subtransaction(
      [](void* p) {
        auto* c = static_cast<Call*>(p);
        invoke_handler_pg(c->finfo, c->fns, c->owner, c->tup, c->desc, c->started);
      },
      &call,
      // First of all: a time limit still armed must not cancel the rollback. The
      // subtransaction's abort restores the identity and the settings.
      [](void*) { pg::run_as_disarm_timeout(&g_handler_scope); });
  if (edata == nullptr) return true;
  StringInfoData buf;
  initStringInfo(&buf);
  if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED && past_time_limit(call.started))
    appendStringInfo(&buf, "timed out after pg_consistency.subscription_handler_timeout (%d ms): ",
                     settings::subscription_handler_timeout_ms);
  appendStringInfo(&buf, "%s", edata->message ? edata->message : "unknown error");
  if (edata->sqlerrcode != 0) appendStringInfo(&buf, " (SQLSTATE %s)", unpack_sql_state(edata->sqlerrcode));
  if (edata->detail) appendStringInfo(&buf, " DETAIL: %s", edata->detail);
  *error = buf.data;
  FreeErrorData(edata);
  return false;
}

// A uniform random number in [0, 1) for the backoff's jitter.
double unit_random() {
  static std::minstd_rand rng(static_cast<unsigned>(MyProcPid) ^
                              static_cast<unsigned>(GetCurrentTimestamp()));
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

// Park or retry (and when) after failed attempt number `attempts`, by the retry settings.
RetryDecision decide_retry(int attempts, int max_attempts) {
  BackoffPolicy policy{settings::subscription_retry_delay_ms,
                       Max(settings::subscription_max_retry_delay_ms, settings::subscription_retry_delay_ms),
                       2.0, 0.2};
  return after_failure(attempts, max_attempts, policy, unit_random());
}

// Cuts error text `s` in place to kMaxErrorBytes, on a character boundary.
char* clip(char* s) {
  if (s != nullptr && strlen(s) > static_cast<size_t>(kMaxErrorBytes)) {
    int len = pg_mbcliplen(s, strlen(s), kMaxErrorBytes);
    s[len] = '\0';
  }
  return s;
}

// Why the handler of `sub` cannot run now (its owner or handler is gone, or the owner
// may no longer execute it), palloc'd; nullptr when it can.
char* handler_problem(const Subscription& sub) {
  if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(sub.owner)))
    return psprintf("the subscription's owner (role %u) no longer exists", sub.owner);
  if (!SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(sub.handler)))
    return psprintf("the handler function %u no longer exists", sub.handler);
  if (!pg::may_execute(sub.handler, sub.owner))
    return psprintf("permission denied for function %s: the subscription's owner (%s) may not execute it",
                    format_procedure(sub.handler), GetUserNameFromId(sub.owner, true));
  return nullptr;
}

// What handling the rows of a batch came to.
struct Handled {
  int count;       // events handled
  int64 last;      // position of the last event handled (or the old checkpoint)
  bool cut_short;  // the batch ran out of time before its last event
  char* error;     // the failure (palloc'd), or nullptr
};

// Calls the handler of subscription `name_c` for the `n` rows of `tt` in order, each in
// its own subtransaction, until one fails or the batch has run for the time limit.
Handled handle_rows(const Subscription& sub, const char* name_c, SPITupleTable* tt, uint64 n) {
  Handled h = {0, sub.position, false, nullptr};
  // A fresh FmgrInfo per batch, used only as the owner in the pinned context.
  FmgrInfo finfo;
  fmgr_info(sub.handler, &finfo);
  UpcastFns* fns = new_upcast_fns(CurrentMemoryContext, true);
  MemoryContext row_cxt =
      AllocSetContextCreate(CurrentMemoryContext, "pg_consistency handler", ALLOCSET_DEFAULT_SIZES);
  TimestampTz batch_start = GetCurrentTimestamp();
  char* label = psprintf("%s%s", kHardStopPrefix, name_c);
  worker::set_hard_stop_label(label);
  for (uint64 r = 0; r < n; r++) {
    if (r > 0 && past_time_limit(batch_start)) {
      h.cut_short = true;  // the rest waits for the next turn, after the others
      break;
    }
    MemoryContext old = MemoryContextSwitchTo(row_cxt);
    char* err = nullptr;
    bool ok = handle_event(&finfo, fns, sub.owner, tt->vals[r], tt->tupdesc, &err);
    MemoryContextSwitchTo(old);
    bool isnull;
    int64 pos = DatumGetInt64(SPI_getbinval(tt->vals[r], tt->tupdesc, 1, &isnull));
    if (!ok) {
      h.error = psprintf("handler %s failed at global position " INT64_FORMAT ": %s",
                         format_procedure(sub.handler), pos, err);
      break;
    }
    h.last = pos;
    h.count++;
    MemoryContextReset(row_cxt);
  }
  worker::clear_hard_stop_label();
  pfree(label);
  MemoryContextDelete(row_cxt);
  return h;
}

// One batch of subscription `name` in the current transaction (SPI connected).
BatchResult run_batch(Datum name, const char* name_c, bool honor_schedule, bool missing_ok) {
  BatchResult res = {0, false, false, false, 0};
  Subscription sub;
  if (!lock_subscription(name, &sub)) {
    if (missing_ok) return res;
    throw_unknown_subscription(name_c);
  }
  if (!sub.active || (honor_schedule && !sub.due)) return res;

  int64 horizon = read_horizon();
  int batch = settings::subscription_batch_size;
  read_next_events(sub, horizon, batch);
  SPITupleTable* tt = SPI_tuptable;
  uint64 n = SPI_processed;
  Handled h = {0, sub.position, false, nullptr};
  if (n > 0) {
    h.error = handler_problem(sub);
    if (h.error == nullptr) h = handle_rows(sub, name_c, tt, n);
  }
  res.handled = h.count;
  bool complete = h.error == nullptr && !h.cut_short && n < static_cast<uint64>(batch);
  int64 next = next_checkpoint(sub.position, h.last, complete, horizon);
  res.moved = next != sub.position;
  res.full = h.error == nullptr && (h.cut_short || n == static_cast<uint64>(batch));
  res.failed = h.error != nullptr;

  int32 new_attempts = 0;
  const char* status = "active";
  int64 delay = 0;
  if (h.error != nullptr) {
    new_attempts = sub.attempts + 1;
    RetryDecision d = decide_retry(new_attempts, sub.max_attempts);
    if (d.park) status = "failed";
    delay = d.delay_ms;
    res.retry_ms = d.park ? 0 : d.delay_ms;
  }
  if (res.moved || h.error != nullptr || sub.attempts != 0)
    update_subscription(name, next, res.handled, new_attempts, clip(h.error), status, delay);
  return res;
}

// In the worker: one batch of `name` in its own transaction.
BatchResult process_in_transaction(const char* name) {
  pg::begin_worker_transaction(nullptr);
  char* activity = psprintf("pg_consistency: subscription %s", name);
  pgstat_report_activity(STATE_RUNNING, activity);
  BatchResult r = run_batch(CStringGetTextDatum(name), name, true, true);
  pg::commit_worker_transaction();
  if (r.moved) broadcast_progress();
  return r;
}

// A worker before us was ended by its hard stop while subscription `name` ran its
// handler (which caught the cancellation of its time limit and went on): a failed
// attempt, with the usual backoff, then parked. The checkpoint stays where it is.
void charge_hard_stop(const char* name, TimestampTz at) {
  Datum name_d = CStringGetTextDatum(name);
  Subscription sub;
  if (!lock_subscription(name_d, &sub)) return;  // dropped since
  if (!sub.active) return;
  char* error = psprintf(
      "handler %s ran past its time limit (pg_consistency.subscription_handler_timeout, %d ms) "
      "and did not stop when cancelled; the worker was stopped at %s",
      format_procedure(sub.handler), settings::subscription_handler_timeout_ms, timestamptz_to_str(at));
  int32 new_attempts = sub.attempts + 1;
  RetryDecision d = decide_retry(new_attempts, sub.max_attempts);
  ereport(LOG, (errmsg("pg_consistency: subscription \"%s\": %s; attempt %d of %d%s", name, error,
                       new_attempts, sub.max_attempts, d.park ? ", parked" : "")));
  update_subscription(name_d, sub.position, 0, new_attempts, clip(error), d.park ? "failed" : "active",
                      d.delay_ms);
}

// Charges the hard stops of subscriptions of this database left by earlier workers, in
// one transaction.
void charge_hard_stops() {
  worker::HardStopEntry entries[worker::kMaxHardStops];
  int n = worker::take_hard_stops(kHardStopPrefix, entries, worker::kMaxHardStops);
  if (n == 0) return;
  pg::begin_worker_transaction(nullptr);
  for (int i = 0; i < n; i++) charge_hard_stop(entries[i].label + strlen(kHardStopPrefix), entries[i].at);
  pg::commit_worker_transaction();
}

}  // namespace

long subscriptions_tick() {
  MemoryContext tick_cxt = CurrentMemoryContext;
  static pg::SavedPlan list(
      "SELECT name, GREATEST(0, pg_catalog.ceil(EXTRACT(epoch FROM next_attempt_at OPERATOR(pg_catalog.-) "
      "pg_catalog.now()) OPERATOR(pg_catalog.*) 1000))::pg_catalog.int8 "
      "FROM consistency.subscription_state WHERE status OPERATOR(pg_catalog.=) 'active' "
      "ORDER BY next_attempt_at, name",
      {});
  charge_hard_stops();
  MemoryContextSwitchTo(tick_cxt);
  pg::begin_worker_transaction(nullptr);
  pgstat_report_activity(STATE_RUNNING, "pg_consistency: subscriptions");
  spi_run(list, nullptr, nullptr, true);
  uint64 n = SPI_processed;
  char** names = static_cast<char**>(MemoryContextAlloc(tick_cxt, sizeof(char*) * (n + 1)));
  int64* waits = static_cast<int64*>(MemoryContextAlloc(tick_cxt, sizeof(int64) * (n + 1)));
  for (uint64 i = 0; i < n; i++) {
    bool isnull;
    int len = 0;
    names[i] = copy_text_to(tick_cxt, pg::spi_value(i, 1, &isnull), &len);
    waits[i] = pg::spi_int64(i, 2);
  }
  pg::commit_worker_transaction();
  MemoryContextSwitchTo(tick_cxt);
  set_active_subscriptions(static_cast<uint32>(n));

  long next = worker::settings::poll_interval_ms;
  for (uint64 i = 0; i < n; i++) {
    if (waits[i] > 0) {
      if (waits[i] < next) next = static_cast<long>(waits[i]);
      continue;
    }
    BatchResult r = process_in_transaction(names[i]);
    MemoryContextSwitchTo(tick_cxt);
    if (r.full) next = 0;
    if (r.failed && r.retry_ms > 0 && r.retry_ms < next) next = static_cast<long>(r.retry_ms);
  }
  pgstat_report_activity(STATE_IDLE, nullptr);
  return next;
}

int subscription_step(Datum name, const char* name_c) {
  return run_batch(name, name_c, false, false).handled;
}

[[noreturn]] void throw_unknown_subscription(const char* name) {
  throw Error(sqlstate::kUnknownObject, "subscription \"" + shown_name(name) + "\" does not exist", "",
              "See consistency.subscriptions for the existing ones.");
}

}  // namespace pgc::eventstore
