#include "pg/roles.hpp"

#include "pg/guard.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
}

namespace pgc::pg {

Oid extension_table_owner(const char* table) {
  return pg_call([table] {
    Oid nsp = get_namespace_oid("consistency", false);
    Oid rel = get_relname_relid(table, nsp);
    if (!OidIsValid(rel)) elog(ERROR, "pg_consistency: table consistency.%s is missing", table);
    HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(rel));
    if (!HeapTupleIsValid(tup)) elog(ERROR, "cache lookup failed for relation %u", rel);
    Oid owner = reinterpret_cast<Form_pg_class>(GETSTRUCT(tup))->relowner;
    ReleaseSysCache(tup);
    return owner;
  });
}

}  // namespace pgc::pg
