#include "worker/settings.hpp"

#include "pg/postgres.hpp"

extern "C" {
#include "miscadmin.h"
#include "utils/guc.h"
}

namespace pgc::worker::settings {

char* database = nullptr;
int poll_interval_ms = 1000;
int max_databases = 32;
int integrity_max_rows = 10000;

void define_settings() {
  DefineCustomStringVariable("pg_consistency.database",
                             "Databases (comma-separated) in which the pg_consistency worker runs.",
                             "The worker waits in a listed database until CREATE EXTENSION pg_consistency.",
                             &database, "postgres", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "pg_consistency.poll_interval", "Longest time the worker sleeps between checks for work.",
      "Commits of new work wake the worker at once; this is the fallback.", &poll_interval_ms, 1000, 10,
      3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
  // Read by the SQL checks themselves (consistency._check_scan_limit()); defined here so
  // that SET validates it and SHOW documents it.
  DefineCustomIntVariable(
      "pg_consistency.integrity_max_rows",
      "Most rows one consistency.check_integrity() check reads from a table that grows with traffic.",
      "Each check reads the most recent rows up to this many through an index and says in its detail when "
      "it was capped.",
      &integrity_max_rows, 10000, 1, INT_MAX, PGC_USERSET, 0, nullptr, nullptr, nullptr);
  // A postmaster-only setting can only be defined while preloading (PostgreSQL refuses it
  // later); without preload there is no shared memory to size anyway.
  if (!process_shared_preload_libraries_in_progress) return;
  DefineCustomIntVariable(
      "pg_consistency.max_databases", "Databases that shared memory has a slot for.",
      "One slot per database that uses the extension (its worker, relay status, two-phase commit counters, "
      "event store flags and background processes). Databases listed in pg_consistency.database and "
      "databases "
      "whose sessions use the extension each take one; a slot is freed when its database is dropped or taken "
      "off pg_consistency.database.",
      &max_databases, 32, 1, 1024, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
}

}  // namespace pgc::worker::settings
