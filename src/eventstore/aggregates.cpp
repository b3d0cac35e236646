// Upcaster registration, snapshots and aggregates.
//
// aggregate_state(stream) = the latest folded snapshot (or the registered initial state)
// plus the fold of the later events, upcast, through the category's apply function. When
// the fold covered at least `snapshot_every` events it saves a snapshot at the version it
// reached, so the next call folds only the events after it.
//
// Who runs what: the fold -- upcasters and apply function -- runs as the role that
// registered the aggregate, never as the caller: pgc::pg::run_as_enter (a
// security-restricted operation with search_path = pg_catalog, pg_temp, every setting the
// code changes rolled back). A snapshot is saved only from such a fold and is marked
// `folded`; aggregate_state starts only from folded snapshots, so neither a caller's
// search path nor a hand-saved snapshot (save_snapshot) can change what later readers get.
#include "eventstore/core.hpp"
#include "eventstore/es.hpp"
#include "pg/guard.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/pg_proc.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
}

namespace pgc::eventstore {

namespace {

constexpr int kFoldChunk = 1000;
constexpr int kFoldCompactEvery = 64;
constexpr Size kFoldCompactBytes = 8 * 1024 * 1024;

// Raises CS002 unless `fn` takes exactly `argtypes` and returns `rettype` (not a set).
void check_signature(Oid fn, const Oid* argtypes, int nargs, Oid rettype, const char* role,
                     const char* expected) {
  HeapTuple tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
  if (!HeapTupleIsValid(tup))
    throw invalid_argument(std::string(role) + " function " + std::to_string(fn) + " does not exist");
  Form_pg_proc p = reinterpret_cast<Form_pg_proc>(GETSTRUCT(tup));
  bool ok =
      p->pronargs == nargs && p->prorettype == rettype && !p->proretset && p->prokind == PROKIND_FUNCTION;
  for (int i = 0; ok && i < nargs; i++) ok = p->proargtypes.values[i] == argtypes[i];
  ReleaseSysCache(tup);
  if (!ok) {
    char* name = format_procedure(fn);
    throw invalid_argument(std::string(role) + " function " + name + " has the wrong signature",
                           std::string("It must be ") + expected + ".");
  }
}

void check_type_name(const char* t, int len) {
  auto p = event_type_problem(std::string_view(t, len), database_is_utf8());
  if (p) throw invalid_argument(*p);
}

void check_category_name(const char* c, int len) {
  if (len == 0) throw invalid_argument("category must not be empty");
  auto p = category_problem(std::string_view(c, len), database_is_utf8());
  if (p) throw invalid_argument(*p);
}

void check_upcaster_link(int32 from, int32 latest, const char* type) {
  auto p = upcaster_registration_problem(from, latest);
  if (p)
    throw invalid_argument("cannot register upcaster for event type \"" + shown_name(type) + "\": " + *p);
}

pg::SavedPlan& plan_latest_snapshot() {
  static pg::SavedPlan p(
      "SELECT version, state FROM consistency.snapshots WHERE stream OPERATOR(pg_catalog.=) $1 "
      "ORDER BY version DESC LIMIT 1",
      {TEXTOID});
  return p;
}

pg::SavedPlan& plan_latest_folded_snapshot() {
  static pg::SavedPlan p(
      "SELECT version, state FROM consistency.snapshots WHERE stream OPERATOR(pg_catalog.=) $1 AND folded "
      "ORDER BY version DESC LIMIT 1",
      {TEXTOID});
  return p;
}

pg::SavedPlan& plan_fold_events() {
  static pg::SavedPlan p(
      "SELECT version, type, schema_version, data FROM consistency.events "
      "WHERE stream OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.>) $2 ORDER BY version LIMIT "
      "$3",
      {TEXTOID, INT8OID, INT8OID});
  return p;
}

pg::SavedPlan& plan_save_auto_snapshot() {
  static pg::SavedPlan p(
      "WITH saved AS (INSERT INTO consistency.snapshots (stream, version, state, folded) "
      "VALUES ($1, $2, $3, true) ON CONFLICT (stream, version) DO UPDATE SET state = EXCLUDED.state, "
      "folded = true, created_at = pg_catalog.now() RETURNING 1) "
      "DELETE FROM consistency.snapshots WHERE stream OPERATOR(pg_catalog.=) $1 AND version "
      "OPERATOR(pg_catalog.<) $2",
      {TEXTOID, INT8OID, JSONBOID});
  return p;
}

// Calls apply_fn(state, type, data) and returns the new state; *isnull when it returned NULL.
Datum apply_event(const AggregateDef* def, Datum state, Datum type, Datum data, bool* isnull) {
  LOCAL_FCINFO(fcinfo, 3);
  InitFunctionCallInfoData(*fcinfo, def->finfo, 3, InvalidOid, nullptr, nullptr);
  fcinfo->args[0].value = state;
  fcinfo->args[0].isnull = false;
  fcinfo->args[1].value = type;
  fcinfo->args[1].isnull = false;
  fcinfo->args[2].value = data;
  fcinfo->args[2].isnull = false;
  Datum r = FunctionCallInvoke(fcinfo);
  *isnull = fcinfo->isnull;
  return r;
}

[[noreturn]] void throw_apply_null(const char* fname, const char* stream, int64 version) {
  throw invalid_argument(std::string("apply function ") + fname + " returned NULL for stream \"" +
                             shown_name(stream) + "\" at version " + std::to_string(version),
                         "", "An apply function must return the new state as jsonb.");
}

}  // namespace
}  // namespace pgc::eventstore

using namespace pgc::eventstore;
namespace pg = pgc::pg;

PGC_FUNCTION(pgc_es_register_upcaster) {
  if (PG_ARGISNULL(0)) throw pgc::invalid_argument("event_type must not be NULL");
  if (PG_ARGISNULL(1)) throw pgc::invalid_argument("from_schema_version must not be NULL");
  if (PG_ARGISNULL(2)) throw pgc::invalid_argument("fn must not be NULL");
  int tlen = 0;
  char* type = text_arg_cstring(fcinfo, 0, &tlen);
  check_type_name(type, tlen);
  int32 from = PG_GETARG_INT32(1);
  Oid fn = PG_GETARG_OID(2);
  Oid args[1] = {JSONBOID};
  check_signature(fn, args, 1, JSONBOID, "upcaster", "fn(data jsonb) RETURNS jsonb");
  // Readers run upcasters as themselves and need EXECUTE too (checked when they read);
  // a role may not register a function it could not call itself.
  pg::require_execute(fn, GetUserId(), "The registering role");

  static pg::SavedPlan lock("LOCK TABLE consistency.upcasters IN SHARE ROW EXCLUSIVE MODE", {});
  static pg::SavedPlan latest(
      "SELECT pg_catalog.count(*) FROM consistency.upcasters WHERE event_type OPERATOR(pg_catalog.=) $1",
      {TEXTOID});
  static pg::SavedPlan upsert(
      "INSERT INTO consistency.upcasters (event_type, from_schema_version, fn, registered_by) "
      "VALUES ($1, $2, $3, $4) ON CONFLICT (event_type, from_schema_version) "
      "DO UPDATE SET fn = EXCLUDED.fn, registered_by = EXCLUDED.registered_by, registered_at = "
      "pg_catalog.now()",
      {TEXTOID, INT4OID, REGPROCEDUREOID, OIDOID});
  Oid caller = GetUserId();
  pg::spi_connect();
  SavedUser su;
  enter_owner(&su);
  spi_run(lock, nullptr, nullptr, false);
  Datum tv[1] = {PointerGetDatum(cstring_to_text_with_len(type, tlen))};
  spi_run(latest, tv, nullptr, false);
  int32 current_latest = static_cast<int32>(pgc::pg::spi_int64(0, 1)) + 1;
  check_upcaster_link(from, current_latest, type);
  Datum v[4] = {tv[0], Int32GetDatum(from), ObjectIdGetDatum(fn), ObjectIdGetDatum(caller)};
  spi_run(upsert, v, nullptr, false);
  leave_owner(&su);
  SPI_finish();
  PG_RETURN_VOID();
}

PGC_FUNCTION(pgc_es_save_snapshot) {
  int len = 0;
  char* stream = checked_stream_arg(fcinfo, 0, "stream", &len);
  if (PG_ARGISNULL(1)) throw pgc::invalid_argument("version must not be NULL");
  int64 version = PG_GETARG_INT64(1);
  if (version < 1)
    throw pgc::invalid_argument("snapshot version must be at least 1, not " + std::to_string(version));
  if (PG_ARGISNULL(2)) throw pgc::invalid_argument("state must not be NULL");
  Datum state = PG_GETARG_DATUM(2);
  refuse_reserved_stream(stream, len, "save a snapshot of");

  static pg::SavedPlan current(
      "SELECT version FROM consistency.streams WHERE stream OPERATOR(pg_catalog.=) $1", {TEXTOID});
  static pg::SavedPlan upsert(
      "INSERT INTO consistency.snapshots (stream, version, state) VALUES ($1, $2, $3) "
      "ON CONFLICT (stream, version) DO UPDATE SET state = EXCLUDED.state, folded = false, "
      "created_at = pg_catalog.now()",
      {TEXTOID, INT8OID, JSONBOID});
  pg::spi_connect();
  SavedUser su;
  enter_owner(&su);
  Datum sv[1] = {PointerGetDatum(cstring_to_text_with_len(stream, len))};
  spi_run(current, sv, nullptr, false);
  int64 stream_version = SPI_processed > 0 ? pgc::pg::spi_int64(0, 1) : 0;
  if (version > stream_version)
    throw pgc::invalid_argument("cannot save a snapshot of stream \"" + shown_name(stream) +
                                    "\" at version " + std::to_string(version) +
                                    ": the stream is at version " + std::to_string(stream_version),
                                "", "A snapshot describes the state after an event that exists.");
  Datum v[3] = {sv[0], Int64GetDatum(version), state};
  spi_run(upsert, v, nullptr, false);
  leave_owner(&su);
  SPI_finish();
  PG_RETURN_VOID();
}

PGC_FUNCTION(pgc_es_load_snapshot) {
  int len = 0;
  char* stream = checked_stream_arg(fcinfo, 0, "stream", &len);
  InitMaterializedSRF(fcinfo, 0);
  ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  pg::spi_connect();
  Datum v[1] = {PointerGetDatum(cstring_to_text_with_len(stream, len))};
  spi_run(plan_latest_snapshot(), v, nullptr, true, 1);
  if (SPI_processed > 0) {
    Datum values[2];
    bool nulls[2];
    heap_deform_tuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, values, nulls);
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  }
  SPI_finish();
  return (Datum)0;
}

PGC_FUNCTION(pgc_es_register_aggregate) {
  if (PG_ARGISNULL(0)) throw pgc::invalid_argument("category must not be NULL");
  if (PG_ARGISNULL(1)) throw pgc::invalid_argument("apply_fn must not be NULL");
  if (PG_ARGISNULL(2)) throw pgc::invalid_argument("initial_state must not be NULL");
  if (PG_ARGISNULL(3)) throw pgc::invalid_argument("snapshot_every must not be NULL");
  int clen = 0;
  char* category = text_arg_cstring(fcinfo, 0, &clen);
  check_category_name(category, clen);
  Oid fn = PG_GETARG_OID(1);
  Oid args[3] = {JSONBOID, TEXTOID, JSONBOID};
  check_signature(fn, args, 3, JSONBOID, "apply",
                  "apply_fn(state jsonb, type text, data jsonb) RETURNS jsonb");
  // Folds run as the registering role: it must be allowed to call the function.
  pg::require_execute(fn, GetUserId(), "The registering role");
  Datum initial = PG_GETARG_DATUM(2);
  int32 every = PG_GETARG_INT32(3);
  if (every < 0)
    throw pgc::invalid_argument("snapshot_every must be 0 (never) or positive, not " + std::to_string(every));

  static pg::SavedPlan existing(
      "SELECT apply_fn::pg_catalog.oid OPERATOR(pg_catalog.=) $2 AND initial_state OPERATOR(pg_catalog.=) $3 "
      "FROM consistency.aggregates WHERE category OPERATOR(pg_catalog.=) $1 FOR UPDATE",
      {TEXTOID, OIDOID, JSONBOID});
  static pg::SavedPlan upsert(
      "INSERT INTO consistency.aggregates (category, apply_fn, initial_state, snapshot_every, registered_by) "
      "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (category) DO UPDATE SET apply_fn = EXCLUDED.apply_fn, "
      "initial_state = EXCLUDED.initial_state, snapshot_every = EXCLUDED.snapshot_every, "
      "registered_by = EXCLUDED.registered_by, registered_at = pg_catalog.now()",
      {TEXTOID, REGPROCEDUREOID, JSONBOID, INT4OID, OIDOID});
  static pg::SavedPlan drop_snapshots(
      "DELETE FROM consistency.snapshots WHERE pg_catalog.split_part(stream, '-', 1) OPERATOR(pg_catalog.=) "
      "$1",
      {TEXTOID});
  Oid caller = GetUserId();
  pg::spi_connect();
  SavedUser su;
  enter_owner(&su);
  Datum cat = PointerGetDatum(cstring_to_text_with_len(category, clen));
  Datum ev[3] = {cat, ObjectIdGetDatum(fn), initial};
  spi_run(existing, ev, nullptr, false);
  bool changed = false;
  if (SPI_processed > 0) {
    bool isnull = false;
    Datum same = pgc::pg::spi_value(0, 1, &isnull);
    changed = isnull || !DatumGetBool(same);
  }
  Datum v[5] = {cat, ObjectIdGetDatum(fn), initial, Int32GetDatum(every), ObjectIdGetDatum(caller)};
  spi_run(upsert, v, nullptr, false);
  // Snapshots folded by another function or from another initial state are wrong now.
  if (changed) {
    Datum dv[1] = {cat};
    spi_run(drop_snapshots, dv, nullptr, false);
  }
  leave_owner(&su);
  SPI_finish();
  PG_RETURN_VOID();
}

PGC_FUNCTION(pgc_es_aggregate_state) {
  int len = 0;
  char* stream = checked_stream_arg(fcinfo, 0, "stream", &len);
  const char* cat = stream;
  int cat_len = len;
  {
    std::string_view c = category_of(std::string_view(stream, len));
    cat_len = static_cast<int>(c.size());
  }
  InitMaterializedSRF(fcinfo, 0);
  ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  pg::spi_connect();
  const AggregateDef* def = find_aggregate(cat, cat_len);
  if (def == nullptr) {
    char* c = clipped_name(cat, cat_len);
    throw pgc::Error(pgc::sqlstate::kUnknownObject,
                     std::string("no aggregate is registered for category \"") + c + "\"", "",
                     "Register one with consistency.register_aggregate(category, apply_fn, ...).");
  }
  // The fold runs as the role that registered the aggregate, which must still exist and
  // still be allowed to call the apply function.
  Oid runner = def->registered_by;
  if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(runner))) {
    char* c = clipped_name(cat, cat_len);
    throw pgc::Error(pgc::sqlstate::kInsufficientPrivilege,
                     std::string("cannot fold the aggregate of category \"") + c +
                         "\": the role that registered it no longer exists",
                     "Folds run as the role that registered the aggregate.",
                     "Register the aggregate again with consistency.register_aggregate.");
  }
  pg::require_execute(def->apply_fn, runner, "The role that registered the aggregate");

  Datum stream_d = PointerGetDatum(cstring_to_text_with_len(stream, len));
  MemoryContext outer = CurrentMemoryContext;  // SPI procedure memory
  SavedUser su;

  // Start: the latest snapshot saved by a fold, or the initial state.
  MemoryContext keep = AllocSetContextCreate(outer, "pg_consistency fold state", ALLOCSET_DEFAULT_SIZES);
  MemoryContext work = AllocSetContextCreate(outer, "pg_consistency fold", ALLOCSET_DEFAULT_SIZES);
  int64 snapshot_version = 0;
  Datum state;
  {
    Datum v[1] = {stream_d};
    enter_owner(&su);
    spi_run(plan_latest_folded_snapshot(), v, nullptr, true, 1);
    leave_owner(&su);
    MemoryContext old = MemoryContextSwitchTo(keep);
    if (SPI_processed > 0) {
      bool isnull;
      snapshot_version = pgc::pg::spi_int64(0, 1);
      state = PointerGetDatum(PG_DETOAST_DATUM_COPY(pgc::pg::spi_value(0, 2, &isnull)));
    } else {
      state = PointerGetDatum(PG_DETOAST_DATUM_COPY(def->initial_state));
    }
    MemoryContextSwitchTo(old);
    SPI_freetuptable(SPI_tuptable);
  }

  // Fold the later events in chunks, as the registering role in the pinned context; our
  // own reads of the chunks run as the owner. Every few events the state is copied into
  // a fresh context and the old ones are freed, so memory stays bounded on long streams.
  UpcastFns* fns = new_upcast_fns(outer);
  int64 version = snapshot_version;
  int64 null_at = 0;  // the version whose apply returned NULL
  int since_compact = 0;
  pg::RunAsState ras;
  // No time limit of its own: the caller's statement_timeout (or an enclosing handler's
  // limit) applies, since the fold runs inside the caller's statement.
  pg::run_as_enter(&ras, runner, 0);
  for (;;) {
    Datum v[3] = {stream_d, Int64GetDatum(version), Int64GetDatum(kFoldChunk)};
    enter_owner(&su);
    spi_run(plan_fold_events(), v, nullptr, true);
    leave_owner(&su);
    SPITupleTable* tt = SPI_tuptable;
    uint64 n = SPI_processed;
    for (uint64 r = 0; r < n; r++) {
      Datum values[4];
      bool nulls[4];
      heap_deform_tuple(tt->vals[r], tt->tupdesc, values, nulls);
      MemoryContext old = MemoryContextSwitchTo(work);
      int64 ev_version = DatumGetInt64(values[0]);
      text* type = DatumGetTextPP(values[1]);
      int32 out_sv = 0;
      Datum data = upcast(fns, VARDATA_ANY(type), VARSIZE_ANY_EXHDR(type), DatumGetInt32(values[2]),
                          values[3], &out_sv);
      bool isnull = false;
      Datum next = apply_event(def, state, values[1], data, &isnull);
      MemoryContextSwitchTo(old);
      if (isnull) {
        null_at = ev_version;
        break;
      }
      state = next;
      version = ev_version;
      if (++since_compact >= kFoldCompactEvery || MemoryContextMemAllocated(work, true) > kFoldCompactBytes) {
        MemoryContext fresh =
            AllocSetContextCreate(outer, "pg_consistency fold state", ALLOCSET_DEFAULT_SIZES);
        MemoryContext o2 = MemoryContextSwitchTo(fresh);
        state = PointerGetDatum(PG_DETOAST_DATUM_COPY(state));
        MemoryContextSwitchTo(o2);
        MemoryContextDelete(keep);
        MemoryContextReset(work);
        keep = fresh;
        since_compact = 0;
      }
    }
    if (null_at != 0) break;
    // The state may point into the rows we are about to free.
    MemoryContext fresh = AllocSetContextCreate(outer, "pg_consistency fold state", ALLOCSET_DEFAULT_SIZES);
    MemoryContext o2 = MemoryContextSwitchTo(fresh);
    state = PointerGetDatum(PG_DETOAST_DATUM_COPY(state));
    MemoryContextSwitchTo(o2);
    MemoryContextDelete(keep);
    MemoryContextReset(work);
    keep = fresh;
    since_compact = 0;
    SPI_freetuptable(tt);
    if (n < static_cast<uint64>(kFoldChunk)) break;
  }
  pg::run_as_leave(&ras);
  if (null_at != 0) throw_apply_null(format_procedure(def->apply_fn), stream, null_at);

  // Only a fold run as above saves a snapshot; it is marked folded.
  if (def->snapshot_every > 0 && version - snapshot_version >= def->snapshot_every && !XactReadOnly &&
      !RecoveryInProgress()) {
    enter_owner(&su);
    Datum v[3] = {stream_d, Int64GetDatum(version), state};
    spi_run(plan_save_auto_snapshot(), v, nullptr, false);
    leave_owner(&su);
  }

  Datum values[2] = {Int64GetDatum(version), state};
  bool nulls[2] = {false, false};
  tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  SPI_finish();
  return (Datum)0;
}
