// Function references kept in the extension's tables across clusters (src/sql/00_base.sql):
// the marker they are bound under, and the worker binding again, once after it starts,
// the rows that another cluster bound (pg_upgrade keeps rows but not pg_proc OIDs).
#include "worker/function_refs.hpp"

#include "pg/guard.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "access/xlog.h"
#include "pgstat.h"
}

// consistency._system_identifier(): the cluster's identifier. A physical copy keeps it
// (and its OIDs); initdb, and so pg_upgrade's new cluster, makes a new one.
PGC_FUNCTION(pgc_system_identifier) { PG_RETURN_INT64(static_cast<int64>(GetSystemIdentifier())); }

namespace pgc::worker {

void rebind_function_refs() {
  static pg::SavedPlan rebind("SELECT consistency._rebind_function_refs()", {});
  pg::begin_worker_transaction("pg_consistency: binding function references made in another cluster");
  rebind.execute(nullptr, nullptr, false);
  int64 n = pg::spi_int64(0, 1);
  pg::commit_worker_transaction();
  pgstat_report_activity(STATE_IDLE, nullptr);
  if (n > 0)
    ereport(LOG, (errmsg("pg_consistency: bound %lld function reference(s) made in another cluster "
                         "by their signatures",
                         static_cast<long long>(n))));
}

}  // namespace pgc::worker
