// Acting with the extension's rights (or a saga definer's) for a scope.
#pragma once

#include "pg/postgres.hpp"

namespace pgc::pg {

// Owner of consistency.<table>, i.e. the role that ran CREATE EXTENSION. Raises (as
// PgError) when the table is missing.
Oid extension_table_owner(const char* table);

// SetUserIdAndSecContext(role, current context | extra_flags) for a scope; restored by
// the destructor, also on exceptions (an ERROR that aborts the transaction restores it
// as well).
class RoleScope {
 public:
  RoleScope(Oid role, int extra_flags);
  ~RoleScope();
  RoleScope(const RoleScope&) = delete;
  RoleScope& operator=(const RoleScope&) = delete;

 private:
  Oid saved_user_ = InvalidOid;
  int saved_context_ = 0;
};

}  // namespace pgc::pg
