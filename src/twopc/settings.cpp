#include "twopc/settings.hpp"

#include <climits>

#include "pg/postgres.hpp"

extern "C" {
#include "utils/guc.h"
}

namespace pgc::twopc::settings {

int timeout_ms = 30000;
int recovery_interval_ms = 10000;
int max_result_bytes = 64 * 1024 * 1024;
int debug_crash_at = kDebugNone;
int debug_pause_at = kDebugNone;
int debug_pause_ms = 0;

namespace {

const struct config_enum_entry kDebugPoints[] = {
    {"none", kDebugNone, false},
    {"after_prepare", kDebugAfterPrepare, false},
    {"after_local_commit", kDebugAfterLocalCommit, false},
    {"", kDebugNone, true},
    {nullptr, 0, false},
};

}  // namespace

const char* debug_point_name(int point) {
  return point == kDebugAfterPrepare       ? "after_prepare"
         : point == kDebugAfterLocalCommit ? "after_local_commit"
                                           : "none";
}

void define_settings() {
  DefineCustomIntVariable(
      "pg_consistency.twopc_timeout",
      "Longest wait for a participant: connecting, each statement, PREPARE, COMMIT PREPARED.",
      "A participant that does not answer in time is cancelled and the call fails with CS005 "
      "(after the local commit, the worker finishes the work instead). Every wait also "
      "ends at once on a query cancel or pg_terminate_backend.",
      &timeout_ms, 30000, 10, 3600 * 1000, PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("pg_consistency.twopc_max_result_bytes",
                          "Largest result remote_query returns: the size of its JSON rows.",
                          "A larger result fails with 54000 (program_limit_exceeded); the participant's "
                          "statement is cancelled. Rows are read one at a time, so memory stays bounded.",
                          &max_result_bytes, 64 * 1024 * 1024, 1024, INT_MAX, PGC_SUSET, GUC_UNIT_BYTE,
                          nullptr, nullptr, nullptr);
  DefineCustomIntVariable("pg_consistency.twopc_recovery_interval",
                          "How often the worker looks for prepared transactions left on participants.",
                          "It also looks at once when a backend could not finish COMMIT PREPARED.",
                          &recovery_interval_ms, 10000, 50, 24 * 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS,
                          nullptr, nullptr, nullptr);
  DefineCustomEnumVariable("pg_consistency.twopc_debug_crash_at",
                           "Test hook: PANIC (crash the server) at this point of the two-phase commit.",
                           "after_prepare: every participant is prepared, the local commit has not happened. "
                           "after_local_commit: the local commit is durable, no COMMIT PREPARED was sent.",
                           &debug_crash_at, kDebugNone, kDebugPoints, PGC_SUSET, GUC_NOT_IN_SAMPLE, nullptr,
                           nullptr, nullptr);
  DefineCustomEnumVariable("pg_consistency.twopc_debug_pause_at",
                           "Test hook: pause for pg_consistency.twopc_debug_pause_ms at this point of the "
                           "two-phase commit.",
                           nullptr, &debug_pause_at, kDebugNone, kDebugPoints, PGC_SUSET, GUC_NOT_IN_SAMPLE,
                           nullptr, nullptr, nullptr);
  DefineCustomIntVariable("pg_consistency.twopc_debug_pause_ms",
                          "Test hook: length of the pause of twopc_debug_pause_at.", nullptr, &debug_pause_ms,
                          0, 0, 3600 * 1000, PGC_SUSET, GUC_UNIT_MS | GUC_NOT_IN_SAMPLE, nullptr, nullptr,
                          nullptr);
}

}  // namespace pgc::twopc::settings
