// Who owns the extension's objects (the role whose rights our own statements use).
#pragma once

#include "pg/postgres.hpp"

namespace pgc::pg {

// Owner of consistency.<table>, i.e. the role that ran CREATE EXTENSION. Raises (as
// PgError) when the table is missing.
Oid extension_table_owner(const char* table);

}  // namespace pgc::pg
