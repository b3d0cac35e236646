// consistency.saga_diagram(saga_id) and consistency.saga_definition_diagram(name): read the
// compiled definition, the saga's row and its audit stream, and hand them to the pure
// writer (diagram.hpp).
//
// Like saga_status, they are for readers (EXECUTE granted to consistency_reader), who read
// every saga and every event stream: the statements run with the extension owner's rights
// inside pgc::pg::OwnerScope (catalog-only search path), read-only, no user code inside.
#include <cstdlib>
#include <string>
#include <vector>

#include "pg/guard.hpp"
#include "pg/roles.hpp"
#include "pg/run_as.hpp"
#include "pg/spi.hpp"
#include "saga/diagram.hpp"
#include "saga/pg_saga.hpp"

extern "C" {
#include "utils/builtins.h"
}

namespace {

using pgc::Error;
using pgc::pg::pg_call;
using pgc::pg::SavedPlan;
namespace sqlstate = pgc::sqlstate;
namespace saga = pgc::saga;
namespace diagram = pgc::saga::diagram;
namespace sp = pgc::saga::backend;

// Column `col` of SPI row `row` as a string ("" for NULL).
std::string column_text(uint64 row, int col) {
  char* s = pg_call([&] { return pgc::pg::spi_text_copy(row, col); });
  return s == nullptr ? std::string() : std::string(s);
}

Datum text_result(const std::string& s) {
  return pg_call(
      [&] { return PointerGetDatum(cstring_to_text_with_len(s.data(), static_cast<int>(s.size()))); });
}

// The saga's audit events, in stream order; only the members the diagram reads.
std::vector<diagram::HistoryEvent> read_history(const std::string& id_text) {
  static SavedPlan plan(
      "SELECT e.type, e.data OPERATOR(pg_catalog.->>) 'step', e.data OPERATOR(pg_catalog.->>) 'attempt', "
      "       pg_catalog.jsonb_typeof(e.data OPERATOR(pg_catalog.->) 'retry_in_ms') "
      "         OPERATOR(pg_catalog.=) 'number', "
      "       e.data OPERATOR(pg_catalog.->>) 'phase', e.data OPERATOR(pg_catalog.->>) 'status' "
      "  FROM consistency.events e "
      " WHERE e.stream OPERATOR(pg_catalog.=) $1 "
      " ORDER BY e.version",
      {TEXTOID});
  std::string stream = "saga-" + id_text;
  uint64 n = pg_call([&] {
    Datum arg = CStringGetTextDatum(stream.c_str());
    plan.execute(&arg, nullptr, true, 0);
    return SPI_processed;
  });
  std::vector<diagram::HistoryEvent> out;
  out.reserve(n);
  for (uint64 i = 0; i < n; i++) {
    diagram::HistoryEvent e;
    e.type = column_text(i, 1);
    e.step = column_text(i, 2);
    e.attempt = std::atoi(column_text(i, 3).c_str());
    bool isnull = false;
    Datum retry = pg_call([&] { return pgc::pg::spi_value(i, 4, &isnull); });
    e.retry_follows = !isnull && DatumGetBool(retry);
    e.phase = column_text(i, 5);
    e.status = column_text(i, 6);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

// consistency.saga_definition_diagram(name text) RETURNS text: the latest version.
PGC_FUNCTION(pgc_saga_definition_diagram) {
  if (PG_ARGISNULL(0)) throw pgc::invalid_argument("saga name must not be NULL");
  std::string name = pg_call([&] { return std::string(text_to_cstring(PG_GETARG_TEXT_PP(0))); });
  static SavedPlan plan(
      "SELECT version, compiled FROM consistency.saga_definitions "
      " WHERE name OPERATOR(pg_catalog.=) $1 ORDER BY version DESC LIMIT 1",
      {TEXTOID});
  Oid owner_of_tables = pgc::pg::extension_table_owner("saga_definitions");
  std::string text;
  {
    pgc::pg::SpiScope spi;
    pgc::pg::OwnerScope as_owner(owner_of_tables);
    bool found = pg_call([&] {
      Datum arg = CStringGetTextDatum(name.c_str());
      plan.execute(&arg, nullptr, true, 1);
      return SPI_processed == 1;
    });
    if (!found)
      throw Error(sqlstate::kUnknownObject,
                  "saga definition \"" + sp::clip_text(name, 200) + "\" does not exist", {},
                  "Define it first with consistency.define_saga.");
    bool isnull = false;
    int version = 0;
    Datum compiled = pg_call([&] {
      version = DatumGetInt32(pgc::pg::spi_value(0, 1, &isnull));
      return pgc::pg::spi_value(0, 2, &isnull);
    });
    auto def = sp::definition_from_compiled(compiled);
    text = diagram::definition_diagram(name, version, *def);
  }
  return text_result(text);
}

// consistency.saga_diagram(saga_id uuid) RETURNS text
PGC_FUNCTION(pgc_saga_diagram) {
  if (PG_ARGISNULL(0)) throw pgc::invalid_argument("saga id must not be NULL");
  const pg_uuid_t id = *PG_GETARG_UUID_P(0);
  static SavedPlan plan(
      "SELECT s.name, s.definition_version, d.compiled, "
      "       s.status, s.step_index, s.failed_step, s.phase, s.attempts, s.next_run_at, s.deadline "
      "  FROM consistency.saga_instances s "
      "  LEFT JOIN consistency.saga_definitions d "
      "    ON d.name OPERATOR(pg_catalog.=) s.name "
      "   AND d.version OPERATOR(pg_catalog.=) s.definition_version "
      " WHERE s.id OPERATOR(pg_catalog.=) $1",
      {UUIDOID});
  Oid owner_of_tables = pgc::pg::extension_table_owner("saga_instances");
  diagram::Instance saga;
  saga.id = sp::uuid_text(id);
  std::string text;
  {
    pgc::pg::SpiScope spi;
    pgc::pg::OwnerScope as_owner(owner_of_tables);
    bool found = pg_call([&] {
      Datum arg = UUIDPGetDatum(&id);
      plan.execute(&arg, nullptr, true, 1);
      return SPI_processed == 1;
    });
    if (!found) throw Error(sqlstate::kUnknownObject, "saga " + saga.id + " does not exist");
    std::string name = column_text(0, 1);
    bool isnull = false, no_definition = false;
    int version = 0;
    Datum compiled = pg_call([&] {
      version = DatumGetInt32(pgc::pg::spi_value(0, 2, &isnull));
      Datum d = pgc::pg::spi_value(0, 3, &no_definition);
      return d;
    });
    if (no_definition)
      throw Error(sqlstate::kUnknownObject,
                  "saga " + saga.id + ": its definition \"" + sp::clip_text(name, 200) + "\" version " +
                      std::to_string(version) + " does not exist",
                  {}, "consistency.check_integrity() reports such sagas.");
    auto def = sp::definition_from_compiled(compiled);
    sp::read_state(0, 4, &saga.state);
    saga.history = read_history(saga.id);
    text = diagram::saga_diagram(name, version, *def, saga);
  }
  return text_result(text);
}
