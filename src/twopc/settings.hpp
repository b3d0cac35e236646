// Two-phase commit's settings (pg_consistency.twopc_*): defined once at load, read by
// the coordinator in backends and by the worker's recovery.
#pragma once

namespace pgc::twopc {

// The points of the commit protocol where the test hooks can crash or pause.
enum DebugPoint { kDebugNone = 0, kDebugAfterPrepare = 1, kDebugAfterLocalCommit = 2 };

namespace settings {
extern int timeout_ms;            // pg_consistency.twopc_timeout
extern int recovery_interval_ms;  // pg_consistency.twopc_recovery_interval
extern int max_result_bytes;      // pg_consistency.twopc_max_result_bytes
extern int debug_crash_at;        // pg_consistency.twopc_debug_crash_at (test hook, a DebugPoint)
extern int debug_pause_at;        // pg_consistency.twopc_debug_pause_at (test hook, a DebugPoint)
extern int debug_pause_ms;        // pg_consistency.twopc_debug_pause_ms (test hook)

// At _PG_init: defines the GUCs above.
void define_settings();

// The name of a DebugPoint as the debug GUCs spell it ("after_prepare", ...).
const char* debug_point_name(int point);
}  // namespace settings

}  // namespace pgc::twopc
