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
#include "eventstore/core.hpp"
#include "eventstore/es.hpp"
#include "pg/gucs.hpp"
#include "pg/catching.hpp"
#include "pg/guard.hpp"
#include "worker/hard_stop.hpp"
#include "worker/wake.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "mb/pg_wchar.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
}

namespace pgc::eventstore {

namespace {

constexpr size_t kMaxNameBytes = 200;
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

pg::SavedPlan& plan_lock_sub() {
  static pg::SavedPlan p(
      "SELECT handler::pg_catalog.oid, categories, event_types, position, "
      "status OPERATOR(pg_catalog.=) 'active', attempts, max_attempts, owner, "
      "next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.now() "
      "FROM consistency.subscription_state WHERE name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
      {TEXTOID});
  return p;
}
pg::SavedPlan& plan_events_all() {
  static pg::SavedPlan p(
      "SELECT global_position, stream, version, type, schema_version, data, metadata "
      "FROM consistency.events WHERE global_position OPERATOR(pg_catalog.>) $1 "
      "AND global_position OPERATOR(pg_catalog.<) $2 "
      "AND ($4 IS NULL OR type OPERATOR(pg_catalog.=) ANY ($4)) ORDER BY global_position LIMIT $3",
      {INT8OID, INT8OID, INT8OID, TEXTARRAYOID});
  return p;
}
pg::SavedPlan& plan_events_categories() {
  static pg::SavedPlan p(
      "SELECT global_position, stream, version, type, schema_version, data, metadata "
      "FROM consistency.events WHERE category OPERATOR(pg_catalog.=) ANY ($5) "
      "AND global_position OPERATOR(pg_catalog.>) $1 AND global_position OPERATOR(pg_catalog.<) $2 "
      "AND ($4 IS NULL OR type OPERATOR(pg_catalog.=) ANY ($4)) "
      "ORDER BY global_position LIMIT $3",
      {INT8OID, INT8OID, INT8OID, TEXTARRAYOID, TEXTARRAYOID});
  return p;
}
// The backoff counts from the end of the batch (clock_timestamp), not from the start of its
// transaction: a slow failing handler must not eat its own backoff.
pg::SavedPlan& plan_update_sub() {
  static pg::SavedPlan p(
      "UPDATE consistency.subscription_state SET position = $2, processed = processed OPERATOR(pg_catalog.+) "
      "$3, "
      "attempts = $4, last_error = $5, status = $6, next_attempt_at = pg_catalog.clock_timestamp() "
      "OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $7 OPERATOR(pg_catalog./) 1000.0), "
      "updated_at = pg_catalog.clock_timestamp() WHERE name OPERATOR(pg_catalog.=) $1",
      {TEXTOID, INT8OID, INT8OID, INT4OID, TEXTOID, TEXTOID, INT8OID});
  return p;
}

void spi_connect() { pg::spi_connect(); }

void check_sub_name(const char* s, int len) {
  auto p =
      object_name_problem("subscription name", std::string_view(s, len), kMaxNameBytes, database_is_utf8());
  if (p) throw invalid_argument(*p);
}

char* checked_sub_name(FunctionCallInfo fcinfo, int argno, int* len) {
  if (PG_ARGISNULL(argno)) throw invalid_argument("subscription name must not be NULL");
  char* s = text_arg_cstring(fcinfo, argno, len);
  check_sub_name(s, *len);
  return s;
}

[[noreturn]] void throw_unknown(const char* name) {
  throw Error(sqlstate::kUnknownObject, "subscription \"" + shown_name(name) + "\" does not exist", "",
              "See consistency.subscriptions for the existing ones.");
}

void check_filter_element(bool categories, const char* s, int len) {
  std::optional<std::string> p;
  if (categories)
    p = category_problem(std::string_view(s, len), database_is_utf8());
  else
    p = event_type_problem(std::string_view(s, len), database_is_utf8());
  if (p) throw invalid_argument((categories ? "categories: " : "event_types: ") + *p);
}

// NULL, or a non-empty text[] without NULLs whose elements are valid.
void check_filter(FunctionCallInfo fcinfo, int argno, bool categories) {
  if (PG_ARGISNULL(argno)) return;
  const char* what = categories ? "categories" : "event_types";
  ArrayType* arr = PG_GETARG_ARRAYTYPE_P(argno);
  Datum* elems;
  bool* nulls;
  int n;
  deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
  if (n == 0) {
    char msg[128];
    snprintf(msg, sizeof(msg), "%s must not be an empty array (NULL means all)", what);
    throw invalid_argument(msg);
  }
  for (int i = 0; i < n; i++) {
    if (nulls[i]) {
      char msg[128];
      snprintf(msg, sizeof(msg), "%s must not contain NULL", what);
      throw invalid_argument(msg);
    }
    text* t = DatumGetTextPP(elems[i]);
    check_filter_element(categories, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
  }
}

void check_handler_signature(Oid fn) {
  HeapTuple tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
  if (!HeapTupleIsValid(tup))
    throw invalid_argument("handler function " + std::to_string(fn) + " does not exist");
  Form_pg_proc p = reinterpret_cast<Form_pg_proc>(GETSTRUCT(tup));
  static const Oid expected[6] = {INT8OID, TEXTOID, INT8OID, TEXTOID, JSONBOID, JSONBOID};
  bool ok = p->pronargs == 6 && p->prorettype == VOIDOID && !p->proretset && p->prokind == PROKIND_FUNCTION;
  for (int i = 0; ok && i < 6; i++) ok = p->proargtypes.values[i] == expected[i];
  ReleaseSysCache(tup);
  if (!ok) {
    char* name = format_procedure(fn);
    throw invalid_argument(std::string("handler function ") + name + " has the wrong signature",
                           "It must be handler(global_position bigint, stream text, version bigint, "
                           "type text, data jsonb, metadata jsonb) RETURNS void.");
  }
}

// The scope of the handler call in progress. Static, so that the error path below reads
// it from memory after the longjmp.
pg::RunAsState g_handler_scope;

// Calls the handler for row `r` as `owner` (upcasting as `owner` too). Raises PostgreSQL
// errors only (pg::run_in_subtransaction catches those): our own C++ errors are
// converted on the way out.
void invoke_handler(FmgrInfo* finfo, UpcastFns* fns, Oid owner, HeapTuple tup, TupleDesc desc,
                    TimestampTz started) {
  Datum values[7];
  bool nulls[7];
  heap_deform_tuple(tup, desc, values, nulls);
  pg::run_as_enter(&g_handler_scope, owner, settings::subscription_handler_timeout_ms);
  text* type = DatumGetTextPP(values[3]);
  int32 sv = 0;
  Datum data =
      upcast(fns, VARDATA_ANY(type), VARSIZE_ANY_EXHDR(type), DatumGetInt32(values[4]), values[5], &sv);
  LOCAL_FCINFO(fcinfo, 6);
  InitFunctionCallInfoData(*fcinfo, finfo, 6, InvalidOid, nullptr, nullptr);
  Datum args[6] = {values[0], values[1], values[2], values[3], data, values[6]};
  for (int i = 0; i < 6; i++) {
    fcinfo->args[i].value = args[i];
    fcinfo->args[i].isnull = false;
  }
  (void)FunctionCallInvoke(fcinfo);
  pg::run_as_leave(&g_handler_scope);
  // A handler that caught the cancellation of its time limit and went on has overrun it
  // all the same: the call fails (its effects roll back) and counts as an attempt.
  int limit = settings::subscription_handler_timeout_ms;
  if (limit > 0 && TimestampDifferenceExceeds(started, GetCurrentTimestamp(), limit))
    ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED),
                    errmsg("the handler returned after its time limit had passed")));
}

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
  if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED && settings::subscription_handler_timeout_ms > 0 &&
      TimestampDifferenceExceeds(call.started, GetCurrentTimestamp(),
                                 settings::subscription_handler_timeout_ms))
    appendStringInfo(&buf, "timed out after pg_consistency.subscription_handler_timeout (%d ms): ",
                     settings::subscription_handler_timeout_ms);
  appendStringInfo(&buf, "%s", edata->message ? edata->message : "unknown error");
  if (edata->sqlerrcode != 0) appendStringInfo(&buf, " (SQLSTATE %s)", unpack_sql_state(edata->sqlerrcode));
  if (edata->detail) appendStringInfo(&buf, " DETAIL: %s", edata->detail);
  *error = buf.data;
  FreeErrorData(edata);
  return false;
}

double unit_random() {
  static std::minstd_rand rng(static_cast<unsigned>(MyProcPid) ^
                              static_cast<unsigned>(GetCurrentTimestamp()));
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

RetryDecision decide_retry(int attempts, int max_attempts) {
  BackoffPolicy policy{settings::subscription_retry_delay_ms,
                       Max(settings::subscription_max_retry_delay_ms, settings::subscription_retry_delay_ms),
                       2.0, 0.2};
  return after_failure(attempts, max_attempts, policy, unit_random());
}

char* clip(char* s) {
  if (s != nullptr && strlen(s) > static_cast<size_t>(kMaxErrorBytes)) {
    int len = pg_mbcliplen(s, strlen(s), kMaxErrorBytes);
    s[len] = '\0';
  }
  return s;
}

// One batch of subscription `name` in the current transaction (SPI connected).
BatchResult run_batch(Datum name, const char* name_c, bool honor_schedule, bool missing_ok) {
  BatchResult res = {0, false, false, false, 0};
  SavedUser su;
  Datum nv[1] = {name};
  enter_owner(&su);
  spi_run(plan_lock_sub(), nv, nullptr, false, 1);
  leave_owner(&su);
  if (SPI_processed == 0) {
    if (missing_ok) return res;
    throw_unknown(name_c);
  }
  SPITupleTable* st = SPI_tuptable;
  Datum f[9];
  bool fn[9];
  heap_deform_tuple(st->vals[0], st->tupdesc, f, fn);
  Oid handler = DatumGetObjectId(f[0]);
  int64 position = DatumGetInt64(f[3]);
  bool active = DatumGetBool(f[4]);
  int32 attempts = DatumGetInt32(f[5]);
  int32 max_attempts = DatumGetInt32(f[6]);
  Oid owner = DatumGetObjectId(f[7]);
  bool due = DatumGetBool(f[8]);
  if (!active || (honor_schedule && !due)) return res;

  int64 horizon = read_horizon();
  int batch = settings::subscription_batch_size;
  Datum ev[5] = {Int64GetDatum(position), Int64GetDatum(horizon), Int64GetDatum(batch), f[2], f[1]};
  char evn[6] = {' ', ' ', ' ', fn[2] ? 'n' : ' ', fn[1] ? 'n' : ' ', '\0'};
  enter_owner(&su);
  spi_run_latest(fn[1] ? plan_events_all() : plan_events_categories(), ev, evn);
  leave_owner(&su);
  SPITupleTable* tt = SPI_tuptable;
  uint64 n = SPI_processed;

  int64 last = position;
  char* error = nullptr;
  bool cut_short = false;  // the batch ran out of time before its last event
  if (n > 0) {
    if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(owner))) {
      error = psprintf("the subscription's owner (role %u) no longer exists", owner);
    } else if (!SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(handler))) {
      error = psprintf("the handler function %u no longer exists", handler);
    } else if (!pg::may_execute(handler, owner)) {
      error = psprintf("permission denied for function %s: the subscription's owner (%s) may not execute it",
                       format_procedure(handler), GetUserNameFromId(owner, true));
    } else {
      // A fresh FmgrInfo per batch, used only as the owner in the pinned context.
      FmgrInfo finfo;
      fmgr_info(handler, &finfo);
      UpcastFns* fns = new_upcast_fns(CurrentMemoryContext);
      MemoryContext row_cxt =
          AllocSetContextCreate(CurrentMemoryContext, "pg_consistency handler", ALLOCSET_DEFAULT_SIZES);
      TimestampTz batch_start = GetCurrentTimestamp();
      char* label = psprintf("%s%s", kHardStopPrefix, name_c);
      worker::set_hard_stop_label(label);
      for (uint64 r = 0; r < n; r++) {
        if (r > 0 && settings::subscription_handler_timeout_ms > 0 &&
            TimestampDifferenceExceeds(batch_start, GetCurrentTimestamp(),
                                       settings::subscription_handler_timeout_ms)) {
          cut_short = true;  // the rest waits for the next turn, after the others
          break;
        }
        MemoryContext old = MemoryContextSwitchTo(row_cxt);
        char* err = nullptr;
        bool ok = handle_event(&finfo, fns, owner, tt->vals[r], tt->tupdesc, &err);
        MemoryContextSwitchTo(old);
        if (!ok) {
          bool isnull;
          int64 pos = DatumGetInt64(SPI_getbinval(tt->vals[r], tt->tupdesc, 1, &isnull));
          error = psprintf("handler %s failed at global position " INT64_FORMAT ": %s",
                           format_procedure(handler), pos, err);
          break;
        }
        bool isnull;
        last = DatumGetInt64(SPI_getbinval(tt->vals[r], tt->tupdesc, 1, &isnull));
        res.handled++;
        MemoryContextReset(row_cxt);
      }
      worker::clear_hard_stop_label();
      pfree(label);
      MemoryContextDelete(row_cxt);
    }
  }
  bool complete = error == nullptr && !cut_short && n < static_cast<uint64>(batch);
  int64 next = next_checkpoint(position, last, complete, horizon);
  res.moved = next != position;
  res.full = error == nullptr && (cut_short || n == static_cast<uint64>(batch));
  res.failed = error != nullptr;

  int32 new_attempts = 0;
  const char* status = "active";
  int64 delay = 0;
  if (error != nullptr) {
    new_attempts = attempts + 1;
    RetryDecision d = decide_retry(new_attempts, max_attempts);
    if (d.park) status = "failed";
    delay = d.delay_ms;
    res.retry_ms = d.park ? 0 : d.delay_ms;
  }
  if (res.moved || error != nullptr || attempts != 0) {
    Datum uv[7] = {name,
                   Int64GetDatum(next),
                   Int64GetDatum(res.handled),
                   Int32GetDatum(new_attempts),
                   error ? CStringGetTextDatum(clip(error)) : (Datum)0,
                   CStringGetTextDatum(status),
                   Int64GetDatum(delay)};
    char un[8] = {' ', ' ', ' ', ' ', error ? ' ' : 'n', ' ', ' ', '\0'};
    enter_owner(&su);
    spi_run(plan_update_sub(), uv, un, false);
    leave_owner(&su);
  }
  return res;
}

// In the worker: one batch of `name` in its own transaction.
BatchResult process_in_transaction(const char* name) {
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  spi_connect();
  PushActiveSnapshot(GetTransactionSnapshot());
  char* activity = psprintf("pg_consistency: subscription %s", name);
  pgstat_report_activity(STATE_RUNNING, activity);
  BatchResult r = run_batch(CStringGetTextDatum(name), name, true, true);
  SPI_finish();
  PopActiveSnapshot();
  CommitTransactionCommand();
  if (r.moved) broadcast_progress();
  return r;
}

int64 interval_ms(const Interval* iv) {
  // Months count as 30 days, as in PostgreSQL's interval arithmetic on epochs.
  double usec = static_cast<double>(iv->time) + static_cast<double>(iv->day) * USECS_PER_DAY +
                static_cast<double>(iv->month) * DAYS_PER_MONTH * USECS_PER_DAY;
  double ms = usec / 1000.0;
  if (ms > 365.0 * 24 * 3600 * 1000) ms = 365.0 * 24 * 3600 * 1000;
  return static_cast<int64>(ms);
}

// A worker before us was ended by its hard stop while subscription `name` ran its
// handler (which caught the cancellation of its time limit and went on): a failed
// attempt, with the usual backoff, then parked. The checkpoint stays where it is.
void charge_hard_stop(const char* name, TimestampTz at) {
  SavedUser su;
  Datum nv[1] = {CStringGetTextDatum(name)};
  enter_owner(&su);
  spi_run(plan_lock_sub(), nv, nullptr, false, 1);
  leave_owner(&su);
  if (SPI_processed == 0) return;  // dropped since
  Datum f[9];
  bool fn[9];
  heap_deform_tuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, f, fn);
  Oid handler = DatumGetObjectId(f[0]);
  int64 position = DatumGetInt64(f[3]);
  bool active = DatumGetBool(f[4]);
  int32 attempts = DatumGetInt32(f[5]);
  int32 max_attempts = DatumGetInt32(f[6]);
  if (!active) return;
  char* error = psprintf(
      "handler %s ran past its time limit (pg_consistency.subscription_handler_timeout, %d ms) "
      "and did not stop when cancelled; the worker was stopped at %s",
      format_procedure(handler), settings::subscription_handler_timeout_ms, timestamptz_to_str(at));
  int32 new_attempts = attempts + 1;
  RetryDecision d = decide_retry(new_attempts, max_attempts);
  ereport(LOG, (errmsg("pg_consistency: subscription \"%s\": %s; attempt %d of %d%s", name, error,
                       new_attempts, max_attempts, d.park ? ", parked" : "")));
  Datum uv[7] = {nv[0],
                 Int64GetDatum(position),
                 Int64GetDatum(0),
                 Int32GetDatum(new_attempts),
                 CStringGetTextDatum(clip(error)),
                 CStringGetTextDatum(d.park ? "failed" : "active"),
                 Int64GetDatum(d.delay_ms)};
  enter_owner(&su);
  spi_run(plan_update_sub(), uv, nullptr, false);
  leave_owner(&su);
}

// Charges the hard stops of subscriptions of this database left by earlier workers, in
// one transaction.
void charge_hard_stops() {
  worker::HardStopEntry entries[worker::kMaxHardStops];
  int n = worker::take_hard_stops(kHardStopPrefix, entries, worker::kMaxHardStops);
  if (n == 0) return;
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  spi_connect();
  PushActiveSnapshot(GetTransactionSnapshot());
  for (int i = 0; i < n; i++) charge_hard_stop(entries[i].label + strlen(kHardStopPrefix), entries[i].at);
  SPI_finish();
  PopActiveSnapshot();
  CommitTransactionCommand();
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
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  spi_connect();
  PushActiveSnapshot(GetTransactionSnapshot());
  pgstat_report_activity(STATE_RUNNING, "pg_consistency: subscriptions");
  spi_run(list, nullptr, nullptr, true);
  uint64 n = SPI_processed;
  char** names = static_cast<char**>(MemoryContextAlloc(tick_cxt, sizeof(char*) * (n + 1)));
  int64* waits = static_cast<int64*>(MemoryContextAlloc(tick_cxt, sizeof(int64) * (n + 1)));
  for (uint64 i = 0; i < n; i++) {
    bool isnull;
    text* t = DatumGetTextPP(pg::spi_value(i, 1, &isnull));
    names[i] = static_cast<char*>(MemoryContextAlloc(tick_cxt, VARSIZE_ANY_EXHDR(t) + 1));
    memcpy(names[i], VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
    names[i][VARSIZE_ANY_EXHDR(t)] = '\0';
    waits[i] = pg::spi_int64(i, 2);
  }
  SPI_finish();
  PopActiveSnapshot();
  CommitTransactionCommand();
  MemoryContextSwitchTo(tick_cxt);
  set_active_subscriptions(static_cast<uint32>(n));

  long next = gucs::poll_interval_ms;
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

}  // namespace pgc::eventstore

using namespace pgc::eventstore;
namespace pg = pgc::pg;

PGC_FUNCTION(pgc_es_create_subscription) {
  int nlen = 0;
  char* name = checked_sub_name(fcinfo, 0, &nlen);
  if (PG_ARGISNULL(1)) throw pgc::invalid_argument("handler must not be NULL");
  Oid handler = PG_GETARG_OID(1);
  check_handler_signature(handler);
  check_filter(fcinfo, 2, true);
  check_filter(fcinfo, 3, false);
  if (PG_ARGISNULL(4)) throw pgc::invalid_argument("from_position must not be NULL");
  int64 from = PG_GETARG_INT64(4);
  if (from < 0)
    throw pgc::invalid_argument("from_position must not be negative, not " + std::to_string(from));
  Oid caller = GetUserId();
  // Handlers run as the role that creates the subscription: it must be allowed to call
  // the handler (checked again before every batch).
  pg::require_execute(handler, caller, "The subscription's owner");
  static pg::SavedPlan insert(
      "INSERT INTO consistency.subscription_state "
      "(name, handler, categories, event_types, position, max_attempts, owner) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING",
      {TEXTOID, REGPROCEDUREOID, TEXTARRAYOID, TEXTARRAYOID, INT8OID, INT4OID, OIDOID});
  Datum v[7] = {CStringGetTextDatum(name),
                ObjectIdGetDatum(handler),
                PG_ARGISNULL(2) ? (Datum)0 : PG_GETARG_DATUM(2),
                PG_ARGISNULL(3) ? (Datum)0 : PG_GETARG_DATUM(3),
                Int64GetDatum(from),
                Int32GetDatum(settings::subscription_max_attempts),
                ObjectIdGetDatum(caller)};
  char nulls[8] = {' ', ' ', PG_ARGISNULL(2) ? 'n' : ' ', PG_ARGISNULL(3) ? 'n' : ' ', ' ', ' ', ' ', '\0'};
  spi_connect();
  SavedUser su;
  enter_owner(&su);
  spi_run(insert, v, nulls, false);
  leave_owner(&su);
  bool inserted = SPI_processed > 0;
  SPI_finish();
  if (!inserted)
    throw pgc::Error("42710", "subscription \"" + shown_name(name) + "\" already exists", "",
                     "Drop it first, or reset it with consistency.reset_subscription.");
  if (!subscriptions_may_be_active()) set_active_subscriptions(1);  // the worker recounts
  pgc::worker::wake_at_commit(&kComponent);
  PG_RETURN_VOID();
}

namespace {
// Locks subscription `name` and checks that the caller may manage it.
void lock_for_management(Datum name, const char* name_c) {
  static pg::SavedPlan lock(
      "SELECT owner FROM consistency.subscription_state WHERE name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
      {TEXTOID});
  SavedUser su;
  Datum v[1] = {name};
  enter_owner(&su);
  spi_run(lock, v, nullptr, false, 1);
  leave_owner(&su);
  if (SPI_processed == 0) throw_unknown(name_c);
  Oid owner = static_cast<Oid>(pgc::pg::spi_int64(0, 1));
  require_manage_rights(owner, "subscription", name_c);
}
}  // namespace

PGC_FUNCTION(pgc_es_drop_subscription) {
  int nlen = 0;
  char* name = checked_sub_name(fcinfo, 0, &nlen);
  static pg::SavedPlan del("DELETE FROM consistency.subscription_state WHERE name OPERATOR(pg_catalog.=) $1",
                           {TEXTOID});
  Datum v[1] = {CStringGetTextDatum(name)};
  spi_connect();
  lock_for_management(v[0], name);
  SavedUser su;
  enter_owner(&su);
  spi_run(del, v, nullptr, false);
  leave_owner(&su);
  SPI_finish();
  PG_RETURN_VOID();
}

PGC_FUNCTION(pgc_es_reset_subscription) {
  int nlen = 0;
  char* name = checked_sub_name(fcinfo, 0, &nlen);
  if (PG_ARGISNULL(1)) throw pgc::invalid_argument("to_position must not be NULL");
  int64 to = PG_GETARG_INT64(1);
  if (to < 0) throw pgc::invalid_argument("to_position must not be negative, not " + std::to_string(to));
  static pg::SavedPlan reset(
      "UPDATE consistency.subscription_state SET position = $2, status = 'active', attempts = 0, "
      "last_error = NULL, next_attempt_at = pg_catalog.now(), updated_at = pg_catalog.now() "
      "WHERE name OPERATOR(pg_catalog.=) $1",
      {TEXTOID, INT8OID});
  Datum v[2] = {CStringGetTextDatum(name), Int64GetDatum(to)};
  spi_connect();
  lock_for_management(v[0], name);
  SavedUser su;
  enter_owner(&su);
  spi_run(reset, v, nullptr, false);
  leave_owner(&su);
  SPI_finish();
  if (!subscriptions_may_be_active()) set_active_subscriptions(1);
  pgc::worker::wake_at_commit(&kComponent);
  PG_RETURN_VOID();
}

PGC_FUNCTION(pgc_es_wait_for_subscription) {
  int nlen = 0;
  char* name = checked_sub_name(fcinfo, 0, &nlen);
  if (PG_ARGISNULL(1)) throw pgc::invalid_argument("position must not be NULL");
  int64 target = PG_GETARG_INT64(1);
  if (PG_ARGISNULL(2)) throw pgc::invalid_argument("timeout must not be NULL");
  int64 timeout_ms = interval_ms(PG_GETARG_INTERVAL_P(2));
  if (timeout_ms < 0) throw pgc::invalid_argument("timeout must not be negative");
  static pg::SavedPlan read(
      "SELECT position, status OPERATOR(pg_catalog.=) 'failed' FROM consistency.subscription_state "
      "WHERE name OPERATOR(pg_catalog.=) $1",
      {TEXTOID});
  Datum v[1] = {CStringGetTextDatum(name)};
  TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
  spi_connect();
  bool reached = false;
  for (;;) {
    prepare_progress_wait();
    SavedUser su;
    enter_owner(&su);
    spi_run_latest(read, v, nullptr, 1);
    leave_owner(&su);
    if (SPI_processed == 0) {
      cancel_progress_wait();
      throw_unknown(name);
    }
    bool isnull;
    int64 position = pgc::pg::spi_int64(0, 1);
    bool failed = DatumGetBool(pgc::pg::spi_value(0, 2, &isnull));
    SPI_freetuptable(SPI_tuptable);
    if (position >= target) {
      reached = true;
      break;
    }
    if (failed) break;  // parked: it will not get there without reset_subscription
    long remaining = static_cast<long>((deadline - GetCurrentTimestamp()) / 1000);
    if (remaining <= 0) break;
    // Woken by the worker's broadcast after each checkpoint commit; the 1 s cap only
    // bounds the wait if a broadcast is missed (e.g. the worker restarted).
    wait_progress(Min(remaining, 1000L));
    CHECK_FOR_INTERRUPTS();
  }
  cancel_progress_wait();
  SPI_finish();
  PG_RETURN_BOOL(reached);
}

PGC_FUNCTION(pgc_es_subscription_step) {
  int nlen = 0;
  char* name = checked_sub_name(fcinfo, 0, &nlen);
  spi_connect();
  BatchResult r = run_batch(CStringGetTextDatum(name), name, false, false);
  SPI_finish();
  PG_RETURN_INT32(r.handled);
}
