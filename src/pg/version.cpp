// consistency.version(), and the diagnostics that prove the C++/PostgreSQL boundary.
#include <malloc.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "pg/version.hpp"

#include "pg/guard.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
}

#ifndef PGC_VERSION
#error "PGC_VERSION must be defined by the build"
#endif

namespace pgc::pg {

const char* library_version() { return PGC_VERSION; }

// As PostgreSQL's get_extension_oid, for the version column.
char* installed_version() {
  Relation rel = table_open(ExtensionRelationId, AccessShareLock);
  ScanKeyData key;
  ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
              CStringGetDatum("pg_consistency"));
  SysScanDesc scan = systable_beginscan(rel, ExtensionNameIndexId, true, nullptr, 1, &key);
  HeapTuple tup = systable_getnext(scan);
  char* version = nullptr;
  if (HeapTupleIsValid(tup)) {
    bool isnull = true;
    Datum d = heap_getattr(tup, Anum_pg_extension_extversion, RelationGetDescr(rel), &isnull);
    if (!isnull) version = text_to_cstring(DatumGetTextPP(d));
  }
  systable_endscan(scan);
  table_close(rel, AccessShareLock);
  return version;
}

}  // namespace pgc::pg

PGC_FUNCTION(pgc_version) { PG_RETURN_TEXT_P(cstring_to_text(pgc::pg::library_version())); }

// Raises each kind of failure the boundary must convert: our Error (SQLSTATE kept),
// std::exception, bad_alloc, a non-exception throw, and a PostgreSQL error caught by
// pg_call and carried through C++ frames.
PGC_FUNCTION(pgc_test_raise) {
  std::string kind = text_to_cstring(PG_GETARG_TEXT_PP(0));
  std::vector<std::string> live_objects(4, std::string(256, 'x'));  // must be destroyed
  if (kind == "contract")
    throw pgc::invalid_argument("test: invalid argument from C++", "detail from C++", "hint from C++");
  if (kind == "std") throw std::runtime_error("test: std::runtime_error from C++");
  if (kind == "bad_alloc") throw std::bad_alloc();
  if (kind == "unknown") throw 42;
  if (kind == "pg")
    pgc::pg::pg_call([] { return DirectFunctionCall1(int4in, CStringGetDatum("not a number")); });
  PG_RETURN_TEXT_P(cstring_to_text(("no error: " + kind).c_str()));
}

// Runs `iterations` PostgreSQL errors inside pg_call while C++ objects that own heap
// memory are live, catching each as PgError. Returns how many were caught.
PGC_FUNCTION(pgc_test_guarded_errors) {
  int32 iterations = PG_GETARG_INT32(0);
  int64 caught = 0;
  for (int32 i = 0; i < iterations; i++) {
    std::vector<std::string> owned(8, std::string(512, 'y'));
    try {
      pgc::pg::pg_call([] { return DirectFunctionCall1(int4in, CStringGetDatum("x")); });
    } catch (const pgc::pg::PgError& e) {
      if (e.sqlerrcode() == ERRCODE_INVALID_TEXT_REPRESENTATION) caught++;
      FreeErrorData(e.edata());
    }
  }
  PG_RETURN_INT64(caught);
}

// Bytes this backend holds: malloc'd (C++ heap) plus PostgreSQL memory contexts.
PGC_FUNCTION(pgc_test_backend_memory) {
  struct mallinfo2 mi = mallinfo2();
  int64 pg_bytes = static_cast<int64>(MemoryContextMemAllocated(TopMemoryContext, true));
  PG_RETURN_INT64(static_cast<int64>(mi.uordblks) + pg_bytes);
}
