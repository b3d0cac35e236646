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
#include "utils/regproc.h"
#include "utils/syscache.h"
}

namespace pgc::eventstore {

namespace {

constexpr int kFoldChunk = 1000;
constexpr int kFoldCompactEvery = 64;
constexpr Size kFoldCompactBytes = 8 * 1024 * 1024;

// Text argument `argno` (not NULL) as an event type; raises CS002 when it cannot be one.
char* checked_type_arg(FunctionCallInfo fcinfo, int argno, int* len) {
  char* t = text_arg_cstring(fcinfo, argno, len);
  auto p = event_type_problem(std::string_view(t, *len), database_is_utf8());
  if (p) throw invalid_argument(*p);
  return t;
}

// Text argument `argno` (not NULL) as an aggregate's category; raises CS002 when it cannot
// be one (nor empty).
char* checked_category_arg(FunctionCallInfo fcinfo, int argno, int* len) {
  char* c = text_arg_cstring(fcinfo, argno, len);
  if (*len == 0) throw invalid_argument("category must not be empty");
  auto p = category_problem(std::string_view(c, *len), database_is_utf8());
  if (p) throw invalid_argument(*p);
  return c;
}

// Raises CS002 unless an upcaster from version `from` replaces a link of the chain of
// `type` or extends it (`latest` is the type's latest schema version).
void check_upcaster_link(int32 from, int32 latest, const char* type) {
  auto p = upcaster_registration_problem(from, latest);
  if (p)
    throw invalid_argument("cannot register upcaster for event type \"" + shown_name(type) + "\": " + *p);
}

// The latest snapshot of stream $1 as one row (version, state), or none; `filter` narrows
// the snapshots considered.
#define LATEST_SNAPSHOT(filter)                                                                    \
  "SELECT version, state FROM consistency.snapshots WHERE stream OPERATOR(pg_catalog.=) $1" filter \
  " ORDER BY version DESC LIMIT 1"

// A fold in progress. The state lives in `keep`, each event's work in `work`, both
// children of `outer`.
struct Fold {
  const AggregateDef* def;
  Datum stream;  // text
  MemoryContext outer;
  MemoryContext keep;
  MemoryContext work;
  int since_compact;  // events applied since the last compact()
  Datum state;        // jsonb
  int64 version;      // the version the state is at
};

// Moves the state into a fresh context and frees the old one and the events' work: memory
// stays bounded on long streams, and the state no longer points into rows about to be
// freed.
void compact(Fold* f) {
  MemoryContext fresh = AllocSetContextCreate(f->outer, "pg_consistency fold state", ALLOCSET_DEFAULT_SIZES);
  MemoryContext old = MemoryContextSwitchTo(fresh);
  f->state = PointerGetDatum(PG_DETOAST_DATUM_COPY(f->state));
  MemoryContextSwitchTo(old);
  MemoryContextDelete(f->keep);
  MemoryContextReset(f->work);
  f->keep = fresh;
  f->since_compact = 0;
}

// Starts the fold at the latest snapshot saved by a fold, or at the initial state
// (version 0). Returns the version it starts from.
int64 start_fold(Fold* f) {
  static pg::SavedPlan latest_folded(LATEST_SNAPSHOT(" AND folded"), {TEXTOID});
  f->keep = AllocSetContextCreate(f->outer, "pg_consistency fold state", ALLOCSET_DEFAULT_SIZES);
  f->work = AllocSetContextCreate(f->outer, "pg_consistency fold", ALLOCSET_DEFAULT_SIZES);
  f->since_compact = 0;
  f->version = 0;
  spi_run_as_owner(latest_folded, &f->stream, nullptr, true, 1);
  MemoryContext old = MemoryContextSwitchTo(f->keep);
  if (SPI_processed > 0) {
    bool isnull;
    f->version = pg::spi_int64(0, 1);
    f->state = PointerGetDatum(PG_DETOAST_DATUM_COPY(pg::spi_value(0, 2, &isnull)));
  } else {
    f->state = PointerGetDatum(PG_DETOAST_DATUM_COPY(f->def->initial_state));
  }
  MemoryContextSwitchTo(old);
  SPI_freetuptable(SPI_tuptable);
  return f->version;
}

struct ApplyStep {
  const Fold* fold;
  int64 version;
};

// An error raised by the apply function reaches the caller as it was raised; this line
// says which event of which stream it was folding.
void apply_error_context(void* arg) {
  const ApplyStep* s = static_cast<const ApplyStep*>(arg);
  text* stream = DatumGetTextPP(s->fold->stream);
  errcontext("folding event %lld of stream \"%s\"", static_cast<long long>(s->version),
             clipped_name(VARDATA_ANY(stream), VARSIZE_ANY_EXHDR(stream)));
}

// Applies one event row (version, type, schema_version, data), upcast first, to the
// state. Returns 0, or the event's version when the apply function returned NULL.
int64 apply_row(Fold* f, UpcastFns* fns, HeapTuple row, TupleDesc desc) {
  Datum values[4];
  bool nulls[4];
  heap_deform_tuple(row, desc, values, nulls);
  MemoryContext old = MemoryContextSwitchTo(f->work);
  int64 version = DatumGetInt64(values[0]);
  text* type = DatumGetTextPP(values[1]);
  int32 out_sv = 0;
  ApplyStep step{f, version};
  ErrorContextCallback cb{error_context_stack, apply_error_context, &step};
  error_context_stack = &cb;
  Datum data;
  try {
    data =
        upcast(fns, VARDATA_ANY(type), VARSIZE_ANY_EXHDR(type), DatumGetInt32(values[2]), values[3], &out_sv);
  } catch (...) {
    // Our own errors travel as C++ exceptions: the callback on this frame must go first.
    error_context_stack = cb.previous;
    throw;
  }
  Datum args[3] = {f->state, values[1], data};  // apply_fn(state, type, data)
  bool isnull = false;
  // The upcasters and the earlier events' calls ran in the same scope.
  Datum next = call_function_own_settings(f->def->finfo, args, 3, &isnull);
  error_context_stack = cb.previous;
  MemoryContextSwitchTo(old);
  if (isnull) return version;
  f->state = next;
  f->version = version;
  if (++f->since_compact >= kFoldCompactEvery || MemoryContextMemAllocated(f->work, true) > kFoldCompactBytes)
    compact(f);
  return 0;
}

// Folds the events after the state's version, in chunks, as the role that registered the
// aggregate (run_as_enter); our own reads of the chunks run as the owner. Returns 0, or
// the version whose apply returned NULL.
int64 fold_events(Fold* f) {
  static pg::SavedPlan chunk(
      "SELECT version, type, schema_version, data FROM consistency.events "
      "WHERE stream OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.>) $2 ORDER BY version LIMIT "
      "$3",
      {TEXTOID, INT8OID, INT8OID});
  UpcastFns* fns = new_upcast_fns(f->outer, true);
  int64 null_at = 0;
  pg::RunAsState ras;
  // No time limit of its own: the caller's statement_timeout (or an enclosing handler's
  // limit) applies, since the fold runs inside the caller's statement.
  pg::run_as_enter(&ras, f->def->registered_by, 0);
  for (;;) {
    Datum v[3] = {f->stream, Int64GetDatum(f->version), Int64GetDatum(kFoldChunk)};
    spi_run_as_owner(chunk, v, nullptr, true);
    SPITupleTable* tt = SPI_tuptable;
    uint64 n = SPI_processed;
    for (uint64 r = 0; r < n && null_at == 0; r++) null_at = apply_row(f, fns, tt->vals[r], tt->tupdesc);
    if (null_at != 0) break;
    compact(f);  // the state may point into the rows we are about to free
    SPI_freetuptable(tt);
    if (n < static_cast<uint64>(kFoldChunk)) break;
  }
  pg::run_as_leave(&ras);
  return null_at;
}

// Saves the state as a folded snapshot (and deletes the older ones) once the fold covered
// `snapshot_every` events since `start_version`, unless the database is read-only here.
// Only a fold run as above saves a snapshot.
void save_folded_snapshot(const Fold* f, int64 start_version) {
  static pg::SavedPlan save(
      "WITH saved AS (INSERT INTO consistency.snapshots (stream, version, state, folded) "
      "VALUES ($1, $2, $3, true) ON CONFLICT (stream, version) DO UPDATE SET state = EXCLUDED.state, "
      "folded = true, created_at = pg_catalog.now() RETURNING 1) "
      "DELETE FROM consistency.snapshots WHERE stream OPERATOR(pg_catalog.=) $1 AND version "
      "OPERATOR(pg_catalog.<) $2",
      {TEXTOID, INT8OID, JSONBOID});
  int32 every = f->def->snapshot_every;
  if (every <= 0 || f->version - start_version < every || XactReadOnly || RecoveryInProgress()) return;
  Datum v[3] = {f->stream, Int64GetDatum(f->version), f->state};
  spi_run_as_owner(save, v, nullptr, false);
}

// The aggregate registered for category `cat`, ready for a fold: raises CS004 when there
// is none, 42501 when the role that registered it (which folds run as) no longer exists
// or may no longer call the apply function.
const AggregateDef* aggregate_for_fold(const char* cat, int cat_len) {
  const AggregateDef* def = find_aggregate(cat, cat_len);
  if (def == nullptr) {
    char* c = clipped_name(cat, cat_len);
    throw Error(sqlstate::kUnknownObject,
                std::string("no aggregate is registered for category \"") + c + "\"", "",
                "Register one with consistency.register_aggregate(category, apply_fn, ...).");
  }
  Oid runner = def->registered_by;
  if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(runner))) {
    char* c = clipped_name(cat, cat_len);
    throw Error(sqlstate::kInsufficientPrivilege,
                std::string("cannot fold the aggregate of category \"") + c +
                    "\": the role that registered it no longer exists",
                "Folds run as the role that registered the aggregate.",
                "Register the aggregate again with consistency.register_aggregate.");
  }
  pg::require_execute(def->apply_fn, runner, "The role that registered the aggregate");
  return def;
}

// Raises CS002 for an apply function that returned NULL.
[[noreturn]] void throw_apply_null(const char* fname, const char* stream, int64 version) {
  throw invalid_argument(std::string("apply function ") + fname + " returned NULL for stream \"" +
                             shown_name(stream) + "\" at version " + std::to_string(version),
                         "", "An apply function must return the new state as jsonb.");
}

}  // namespace
}  // namespace pgc::eventstore

using namespace pgc::eventstore;
namespace pg = pgc::pg;

// consistency.register_upcaster(event_type, from_schema_version, fn): adds or replaces a
// link of the type's upcaster chain, under a table lock that keeps the chain contiguous.
PGC_FUNCTION(pgc_es_register_upcaster) {
  require_not_null(fcinfo, {"event_type", "from_schema_version", "fn"});
  int tlen = 0;
  char* type = checked_type_arg(fcinfo, 0, &tlen);
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
      "INSERT INTO consistency.upcasters (event_type, from_schema_version, fn_oid, registered_by) "
      "VALUES ($1, $2, $3, $4) ON CONFLICT (event_type, from_schema_version) "
      "DO UPDATE SET fn = EXCLUDED.fn, fn_oid = EXCLUDED.fn_oid, bound_cluster = EXCLUDED.bound_cluster, "
      "registered_by = EXCLUDED.registered_by, registered_at = pg_catalog.now()",
      {TEXTOID, INT4OID, REGPROCEDUREOID, OIDOID});
  Oid caller = GetUserId();
  pg::spi_connect();
  spi_run_as_owner(lock, nullptr, nullptr, false);
  Datum tv[1] = {PointerGetDatum(cstring_to_text_with_len(type, tlen))};
  spi_run_as_owner(latest, tv, nullptr, false);
  int32 current_latest = static_cast<int32>(pg::spi_int64(0, 1)) + 1;
  check_upcaster_link(from, current_latest, type);
  Datum v[4] = {tv[0], Int32GetDatum(from), ObjectIdGetDatum(fn), ObjectIdGetDatum(caller)};
  spi_run_as_owner(upsert, v, nullptr, false);
  SPI_finish();
  PG_RETURN_VOID();
}

// consistency.save_snapshot(stream, version, state): a snapshot saved by hand (not
// `folded`, so aggregate_state never starts from it).
PGC_FUNCTION(pgc_es_save_snapshot) {
  StreamArg stream = stream_arg(fcinfo);
  if (PG_ARGISNULL(1)) throw pgc::invalid_argument("version must not be NULL");
  int64 version = PG_GETARG_INT64(1);
  if (version < 1)
    throw pgc::invalid_argument("snapshot version must be at least 1, not " + std::to_string(version));
  if (PG_ARGISNULL(2)) throw pgc::invalid_argument("state must not be NULL");
  Datum state = PG_GETARG_DATUM(2);
  refuse_reserved_stream(stream.name, stream.len, "save a snapshot of");

  static pg::SavedPlan current(
      "SELECT version FROM consistency.streams WHERE stream OPERATOR(pg_catalog.=) $1", {TEXTOID});
  static pg::SavedPlan upsert(
      "INSERT INTO consistency.snapshots (stream, version, state) VALUES ($1, $2, $3) "
      "ON CONFLICT (stream, version) DO UPDATE SET state = EXCLUDED.state, folded = false, "
      "created_at = pg_catalog.now()",
      {TEXTOID, INT8OID, JSONBOID});
  pg::spi_connect();
  spi_run_as_owner(current, &stream.text, nullptr, false);
  int64 stream_version = SPI_processed > 0 ? pg::spi_int64(0, 1) : 0;
  if (version > stream_version)
    throw pgc::invalid_argument("cannot save a snapshot of stream \"" + shown_name(stream.name) +
                                    "\" at version " + std::to_string(version) +
                                    ": the stream is at version " + std::to_string(stream_version),
                                "", "A snapshot describes the state after an event that exists.");
  Datum v[3] = {stream.text, Int64GetDatum(version), state};
  spi_run_as_owner(upsert, v, nullptr, false);
  SPI_finish();
  PG_RETURN_VOID();
}

// consistency.load_snapshot(stream): the stream's latest snapshot, folded or not.
PGC_FUNCTION(pgc_es_load_snapshot) {
  StreamArg stream = stream_arg(fcinfo);
  InitMaterializedSRF(fcinfo, 0);
  ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  static pg::SavedPlan latest(LATEST_SNAPSHOT(""), {TEXTOID});
  pg::spi_connect();
  spi_run(latest, &stream.text, nullptr, true, 1);
  if (SPI_processed > 0) {
    Datum values[2];
    bool nulls[2];
    heap_deform_tuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, values, nulls);
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  }
  SPI_finish();
  return (Datum)0;
}

// consistency.register_aggregate(category, apply_fn, initial_state, snapshot_every):
// registers or replaces the category's aggregate; a new function or initial state drops
// the category's snapshots.
PGC_FUNCTION(pgc_es_register_aggregate) {
  require_not_null(fcinfo, {"category", "apply_fn", "initial_state", "snapshot_every"});
  int clen = 0;
  char* category = checked_category_arg(fcinfo, 0, &clen);
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
      "SELECT consistency._bound_function(apply_fn, apply_fn_oid, bound_cluster) OPERATOR(pg_catalog.=) $2 "
      "AND initial_state OPERATOR(pg_catalog.=) $3 "
      "FROM consistency.aggregates WHERE category OPERATOR(pg_catalog.=) $1 FOR UPDATE",
      {TEXTOID, OIDOID, JSONBOID});
  static pg::SavedPlan upsert(
      "INSERT INTO consistency.aggregates (category, apply_fn_oid, initial_state, snapshot_every, "
      "registered_by) "
      "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (category) DO UPDATE SET apply_fn = EXCLUDED.apply_fn, "
      "apply_fn_oid = EXCLUDED.apply_fn_oid, bound_cluster = EXCLUDED.bound_cluster, "
      "initial_state = EXCLUDED.initial_state, snapshot_every = EXCLUDED.snapshot_every, "
      "registered_by = EXCLUDED.registered_by, registered_at = pg_catalog.now()",
      {TEXTOID, REGPROCEDUREOID, JSONBOID, INT4OID, OIDOID});
  static pg::SavedPlan drop_snapshots(
      "DELETE FROM consistency.snapshots WHERE pg_catalog.split_part(stream, '-', 1) OPERATOR(pg_catalog.=) "
      "$1",
      {TEXTOID});
  Oid caller = GetUserId();
  pg::spi_connect();
  Datum cat = PointerGetDatum(cstring_to_text_with_len(category, clen));
  Datum ev[3] = {cat, ObjectIdGetDatum(fn), initial};
  spi_run_as_owner(existing, ev, nullptr, false);
  bool changed = false;
  if (SPI_processed > 0) {
    bool isnull = false;
    Datum same = pg::spi_value(0, 1, &isnull);
    changed = isnull || !DatumGetBool(same);
  }
  Datum v[5] = {cat, ObjectIdGetDatum(fn), initial, Int32GetDatum(every), ObjectIdGetDatum(caller)};
  spi_run_as_owner(upsert, v, nullptr, false);
  // Snapshots folded by another function or from another initial state are wrong now.
  if (changed) spi_run_as_owner(drop_snapshots, &cat, nullptr, false);
  SPI_finish();
  PG_RETURN_VOID();
}

// consistency.aggregate_state(stream): (version, state) of the stream's fold.
PGC_FUNCTION(pgc_es_aggregate_state) {
  StreamArg stream = stream_arg(fcinfo);
  int cat_len = static_cast<int>(category_of(std::string_view(stream.name, stream.len)).size());
  InitMaterializedSRF(fcinfo, 0);
  ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  pg::spi_connect();
  Fold f;
  f.def = aggregate_for_fold(stream.name, cat_len);
  f.stream = stream.text;
  f.outer = CurrentMemoryContext;  // SPI procedure memory
  int64 start_version = start_fold(&f);
  int64 null_at = fold_events(&f);
  if (null_at != 0) throw_apply_null(format_procedure(f.def->apply_fn), stream.name, null_at);
  save_folded_snapshot(&f, start_version);
  Datum values[2] = {Int64GetDatum(f.version), f.state};
  bool nulls[2] = {false, false};
  tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  SPI_finish();
  return (Datum)0;
}
