// The SQL functions that create, drop, reset, wait for and step subscriptions
// (subscriptions.cpp runs them in the worker). Handlers run as the role that created the
// subscription; only that role or a member of consistency_admin may change it.
#include "eventstore/core.hpp"
#include "eventstore/es.hpp"
#include "pg/guard.hpp"
#include "worker/wake.hpp"

extern "C" {
#include "utils/array.h"
#include "utils/timestamp.h"
}

namespace pgc::eventstore {

namespace {

constexpr size_t kMaxNameBytes = 200;

// Raises CS002 when `s` cannot name a subscription.
void check_sub_name(const char* s, int len) {
  auto p =
      object_name_problem("subscription name", std::string_view(s, len), kMaxNameBytes, database_is_utf8());
  if (p) throw invalid_argument(*p);
}

// The subscription name argument `argno`, checked (CS002 when NULL or invalid).
char* checked_sub_name(FunctionCallInfo fcinfo, int argno) {
  if (PG_ARGISNULL(argno)) throw invalid_argument("subscription name must not be NULL");
  int len = 0;
  char* s = text_arg_cstring(fcinfo, argno, &len);
  check_sub_name(s, len);
  return s;
}

// Raises CS002 when `s` cannot be an element of the categories (or event_types) filter.
void check_filter_element(bool categories, const char* s, int len) {
  std::optional<std::string> p;
  if (categories)
    p = category_problem(std::string_view(s, len), database_is_utf8());
  else
    p = event_type_problem(std::string_view(s, len), database_is_utf8());
  if (p) throw invalid_argument((categories ? "categories: " : "event_types: ") + *p);
}

// Raises CS002 unless filter argument `argno` is NULL, or a non-empty text[] without
// NULLs whose elements are valid.
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

// Raises CS002 unless `fn` has the signature of a subscription handler.
void check_handler_signature(Oid fn) {
  static const Oid args[6] = {INT8OID, TEXTOID, INT8OID, TEXTOID, JSONBOID, JSONBOID};
  check_signature(fn, args, 6, VOIDOID, "handler",
                  "handler(global_position bigint, stream text, version bigint, type text, data jsonb, "
                  "metadata jsonb) RETURNS void");
}

// `iv` in milliseconds, at most a year.
int64 interval_ms(const Interval* iv) {
  // Months count as 30 days, as in PostgreSQL's interval arithmetic on epochs.
  double usec = static_cast<double>(iv->time) + static_cast<double>(iv->day) * USECS_PER_DAY +
                static_cast<double>(iv->month) * DAYS_PER_MONTH * USECS_PER_DAY;
  double ms = usec / 1000.0;
  if (ms > 365.0 * 24 * 3600 * 1000) ms = 365.0 * 24 * 3600 * 1000;
  return static_cast<int64>(ms);
}

// Makes appends in this database wake the worker (until it recounts the active
// subscriptions), and wakes it once this transaction commits.
void wake_worker_at_commit() {
  if (!subscriptions_may_be_active()) set_active_subscriptions(1);
  worker::wake_at_commit(&kComponent);
}

// Locks subscription `name` and checks that the caller may manage it.
void lock_for_management(Datum name, const char* name_c) {
  static pg::SavedPlan lock(
      "SELECT owner FROM consistency.subscription_state WHERE name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
      {TEXTOID});
  spi_run_as_owner(lock, &name, nullptr, false, 1);
  if (SPI_processed == 0) throw_unknown_subscription(name_c);
  Oid owner = static_cast<Oid>(pg::spi_int64(0, 1));
  require_manage_rights(owner, "subscription", name_c);
}

// A checkpoint beyond the last position handed out would pass over every event appended
// until the sequence got there (check_integrity() reports it as
// eventstore.subscription_positions), so create and reset refuse one.
void check_position_handed_out(int64 position, const char* what) {
  static pg::SavedPlan last("SELECT last_value FROM consistency.event_position_seq", {});
  pg::spi_connect();
  spi_run_as_owner(last, nullptr, nullptr, true, 1);
  int64 handed_out = pg::spi_int64(0, 1);
  SPI_finish();
  if (position > handed_out)
    throw pgc::invalid_argument(std::string(what) + " " + std::to_string(position) +
                                    " lies beyond the last event position handed out (" +
                                    std::to_string(handed_out) + ")",
                                "", "Positions come from consistency.read_all or last_appended_position().");
}

// Runs `plan`, a change of subscription $1 = args[0], as the owner once the caller's
// right to manage the subscription has been checked under its row lock.
void change_subscription(pg::SavedPlan& plan, const Datum* args, const char* name_c) {
  pg::spi_connect();
  lock_for_management(args[0], name_c);
  spi_run_as_owner(plan, args, nullptr, false);
  SPI_finish();
}

}  // namespace
}  // namespace pgc::eventstore

using namespace pgc::eventstore;
namespace pg = pgc::pg;

// consistency.create_subscription(name, handler, categories, event_types, from_position):
// the handler will run as the calling role.
PGC_FUNCTION(pgc_es_create_subscription) {
  char* name = checked_sub_name(fcinfo, 0);
  if (PG_ARGISNULL(1)) throw pgc::invalid_argument("handler must not be NULL");
  Oid handler = PG_GETARG_OID(1);
  check_handler_signature(handler);
  check_filter(fcinfo, 2, true);
  check_filter(fcinfo, 3, false);
  if (PG_ARGISNULL(4)) throw pgc::invalid_argument("from_position must not be NULL");
  int64 from = PG_GETARG_INT64(4);
  if (from < 0)
    throw pgc::invalid_argument("from_position must not be negative, not " + std::to_string(from));
  check_position_handed_out(from, "from_position");
  Oid caller = GetUserId();
  // Handlers run as the role that creates the subscription: it must be allowed to call
  // the handler (checked again before every batch).
  pg::require_execute(handler, caller, "The subscription's owner");
  static pg::SavedPlan insert(
      "INSERT INTO consistency.subscription_state "
      "(name, handler_oid, categories, event_types, position, max_attempts, owner) "
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
  pg::spi_connect();
  spi_run_as_owner(insert, v, nulls, false);
  bool inserted = SPI_processed > 0;
  SPI_finish();
  if (!inserted)
    throw pgc::Error("42710", "subscription \"" + shown_name(name) + "\" already exists", "",
                     "Drop it first, or reset it with consistency.reset_subscription.");
  wake_worker_at_commit();
  PG_RETURN_VOID();
}

// consistency.drop_subscription(name): for its owner or a member of consistency_admin.
PGC_FUNCTION(pgc_es_drop_subscription) {
  char* name = checked_sub_name(fcinfo, 0);
  static pg::SavedPlan del("DELETE FROM consistency.subscription_state WHERE name OPERATOR(pg_catalog.=) $1",
                           {TEXTOID});
  Datum v[1] = {CStringGetTextDatum(name)};
  change_subscription(del, v, name);
  PG_RETURN_VOID();
}

// consistency.reset_subscription(name, to_position): moves the checkpoint and makes a
// parked subscription active again.
PGC_FUNCTION(pgc_es_reset_subscription) {
  char* name = checked_sub_name(fcinfo, 0);
  if (PG_ARGISNULL(1)) throw pgc::invalid_argument("to_position must not be NULL");
  int64 to = PG_GETARG_INT64(1);
  if (to < 0) throw pgc::invalid_argument("to_position must not be negative, not " + std::to_string(to));
  check_position_handed_out(to, "to_position");
  static pg::SavedPlan reset(
      "UPDATE consistency.subscription_state SET position = $2, status = 'active', attempts = 0, "
      "last_error = NULL, next_attempt_at = pg_catalog.now(), updated_at = pg_catalog.now() "
      "WHERE name OPERATOR(pg_catalog.=) $1",
      {TEXTOID, INT8OID});
  Datum v[2] = {CStringGetTextDatum(name), Int64GetDatum(to)};
  change_subscription(reset, v, name);
  wake_worker_at_commit();
  PG_RETURN_VOID();
}

bool pgc::eventstore::subscription_progress(Datum name, SubscriptionProgress* out) {
  static pg::SavedPlan read(
      "SELECT position, status OPERATOR(pg_catalog.=) 'failed' FROM consistency.subscription_state "
      "WHERE name OPERATOR(pg_catalog.=) $1",
      {TEXTOID});
  Datum v[1] = {name};
  spi_run_latest_as_owner(read, v, nullptr, 1);
  if (SPI_processed == 0) return false;
  bool isnull = false;
  out->position = pg::spi_int64(0, 1);
  out->failed = DatumGetBool(pg::spi_value(0, 2, &isnull));
  SPI_freetuptable(SPI_tuptable);
  return true;
}

// consistency.wait_for_subscription(name, position, timeout): waits until the
// subscription's checkpoint reaches `position` (true), or it is parked or the timeout
// passes (false).
PGC_FUNCTION(pgc_es_wait_for_subscription) {
  char* name = checked_sub_name(fcinfo, 0);
  if (PG_ARGISNULL(1)) throw pgc::invalid_argument("position must not be NULL");
  int64 target = PG_GETARG_INT64(1);
  if (PG_ARGISNULL(2)) throw pgc::invalid_argument("timeout must not be NULL");
  int64 timeout_ms = interval_ms(PG_GETARG_INTERVAL_P(2));
  if (timeout_ms < 0) throw pgc::invalid_argument("timeout must not be negative");
  Datum v = CStringGetTextDatum(name);
  TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
  pg::spi_connect();
  bool reached = false;
  for (;;) {
    prepare_progress_wait();
    SubscriptionProgress p{};
    if (!subscription_progress(v, &p)) {
      cancel_progress_wait();
      throw_unknown_subscription(name);
    }
    int64 position = p.position;
    bool failed = p.failed;
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

// consistency._subscription_step(name): one batch now, in the caller's transaction and
// whatever the schedule; returns the events handled.
PGC_FUNCTION(pgc_es_subscription_step) {
  char* name = checked_sub_name(fcinfo, 0);
  pg::spi_connect();
  int handled = subscription_step(CStringGetTextDatum(name), name);
  SPI_finish();
  PG_RETURN_INT32(handled);
}
