// The foundation's settings: which databases get a worker, how often it looks for work,
// and how many databases shared memory has room for.
#pragma once

namespace pgc::worker::settings {

extern char* database;          // pg_consistency.database: comma-separated list
extern int poll_interval_ms;    // pg_consistency.poll_interval
extern int max_databases;       // pg_consistency.max_databases (postmaster start only)
extern int integrity_max_rows;  // pg_consistency.integrity_max_rows

void define_settings();

}  // namespace pgc::worker::settings
