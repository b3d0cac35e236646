// read_stream and read_all. Both return events upcast to the latest schema version of
// their type; read_all only returns positions below the read horizon and reads them with
// a snapshot taken after the horizon was computed (docs/eventstore.md).
#include "eventstore/core.hpp"
#include "eventstore/es.hpp"
#include "pg/guard.hpp"

namespace pgc::eventstore {

namespace {

constexpr int kCols = 9;  // global_position .. created_at, as selected below

// The events read_stream and read_all return, in this column order; the WHERE clause
// follows.
#define SELECT_EVENTS                                                                                    \
  "SELECT global_position, stream, version, event_id, type, schema_version, data, metadata, created_at " \
  "FROM consistency.events WHERE "
// read_all's range: after position $1, below the read horizon $2, at most $3 events.
#define BELOW_HORIZON                                                                        \
  "global_position OPERATOR(pg_catalog.>) $1 AND global_position OPERATOR(pg_catalog.<) $2 " \
  "ORDER BY global_position LIMIT $3"

// Emits the rows of SPI_tuptable into the function's tuplestore. Rows already at the
// latest schema version of their type are stored as they are; the others are upcast in
// a per-row memory context, as the caller (who must be allowed to execute the
// upcasters), in the caller's own context: nothing runs with raised rights here.
void emit_rows(ReturnSetInfo* rsinfo) {
  SPITupleTable* tt = SPI_tuptable;
  uint64 n = SPI_processed;
  MemoryContext row_cxt = nullptr;
  UpcastFns* fns = nullptr;
  for (uint64 r = 0; r < n; r++) {
    bool isnull;
    text* type = DatumGetTextPP(SPI_getbinval(tt->vals[r], tt->tupdesc, 5, &isnull));
    int32 sv = DatumGetInt32(SPI_getbinval(tt->vals[r], tt->tupdesc, 6, &isnull));
    if (sv >= latest_schema_version(VARDATA_ANY(type), VARSIZE_ANY_EXHDR(type))) {
      tuplestore_puttuple(rsinfo->setResult, tt->vals[r]);
      continue;
    }
    if (row_cxt == nullptr) {
      fns = new_upcast_fns(CurrentMemoryContext, false);
      row_cxt =
          AllocSetContextCreate(CurrentMemoryContext, "pg_consistency read row", ALLOCSET_DEFAULT_SIZES);
    }
    Datum values[kCols];
    bool nulls[kCols];
    heap_deform_tuple(tt->vals[r], tt->tupdesc, values, nulls);
    MemoryContext old = MemoryContextSwitchTo(row_cxt);
    int32 out_sv = sv;
    values[6] = upcast(fns, VARDATA_ANY(type), VARSIZE_ANY_EXHDR(type), sv, values[6], &out_sv);
    values[5] = Int32GetDatum(out_sv);
    MemoryContextSwitchTo(old);
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    MemoryContextReset(row_cxt);
  }
  if (row_cxt != nullptr) MemoryContextDelete(row_cxt);
}

// The max_count argument `argno`: raises CS002 unless it is at least 1.
int64 checked_count(FunctionCallInfo fcinfo, int argno) {
  if (PG_ARGISNULL(argno)) throw invalid_argument("max_count must not be NULL");
  int32 c = PG_GETARG_INT32(argno);
  if (c < 1) throw invalid_argument("max_count must be at least 1, not " + std::to_string(c));
  return c;
}

// Raises CS002 when `c` cannot be a category filter.
void check_category(const char* c, int len) {
  auto p = category_problem(std::string_view(c, len), database_is_utf8());
  if (p) throw invalid_argument(*p);
}

}  // namespace
}  // namespace pgc::eventstore

using namespace pgc::eventstore;
namespace pg = pgc::pg;

// consistency.read_stream(stream, from_version, max_count).
PGC_FUNCTION(pgc_es_read_stream) {
  static pg::SavedPlan events(SELECT_EVENTS
                              "stream OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.>=) $2 "
                              "ORDER BY version LIMIT $3",
                              {TEXTOID, INT8OID, INT8OID});
  StreamArg stream = stream_arg(fcinfo);
  if (PG_ARGISNULL(1)) throw pgc::invalid_argument("from_version must not be NULL");
  int64 from = PG_GETARG_INT64(1);
  if (from < 0) throw pgc::invalid_argument("from_version must not be negative, not " + std::to_string(from));
  int64 count = checked_count(fcinfo, 2);
  InitMaterializedSRF(fcinfo, 0);
  pg::spi_connect();
  Datum v[3] = {stream.text, Int64GetDatum(from), Int64GetDatum(count)};
  spi_run(events, v, nullptr, true);
  emit_rows(reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo));
  SPI_finish();
  return (Datum)0;
}

// consistency.read_all(after_position, max_count, category): events in global order,
// below the read horizon.
PGC_FUNCTION(pgc_es_read_all) {
  static pg::SavedPlan all(SELECT_EVENTS BELOW_HORIZON, {INT8OID, INT8OID, INT8OID});
  static pg::SavedPlan of_category(SELECT_EVENTS "category OPERATOR(pg_catalog.=) $4 AND " BELOW_HORIZON,
                                   {INT8OID, INT8OID, INT8OID, TEXTOID});
  if (PG_ARGISNULL(0)) throw pgc::invalid_argument("after_position must not be NULL");
  int64 after = PG_GETARG_INT64(0);
  if (after < 0)
    throw pgc::invalid_argument("after_position must not be negative, not " + std::to_string(after));
  int64 count = checked_count(fcinfo, 1);
  text* category = nullptr;
  if (!PG_ARGISNULL(2)) {
    category = PG_GETARG_TEXT_PP(2);
    check_category(VARDATA_ANY(category), VARSIZE_ANY_EXHDR(category));
  }
  InitMaterializedSRF(fcinfo, 0);
  pg::spi_connect();
  // The horizon first, then a snapshot: see docs/eventstore.md.
  int64 horizon = pgc::eventstore::read_horizon();
  if (horizon - 1 > after) {
    Datum v[4] = {Int64GetDatum(after), Int64GetDatum(horizon), Int64GetDatum(count),
                  PointerGetDatum(category)};
    spi_run_latest(category != nullptr ? of_category : all, v, nullptr);
    emit_rows(reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo));
  }
  SPI_finish();
  return (Datum)0;
}
