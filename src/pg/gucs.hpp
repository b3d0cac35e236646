// GUCs owned by the foundation. Pillars define theirs in their own Component.
#pragma once

namespace pgc::gucs {
extern char* database;        // pg_consistency.database: comma-separated list
extern int poll_interval_ms;  // pg_consistency.poll_interval
}  // namespace pgc::gucs
