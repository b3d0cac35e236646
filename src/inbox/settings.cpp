#include "inbox/settings.hpp"

#include <climits>

#include "pg/postgres.hpp"

extern "C" {
#include "utils/guc.h"
}

namespace pgc::inbox::settings {

int workers = 1;
int max_attempts = 5;
int dedupe_window_s = 7 * 24 * 3600;
int batch_size = 500;
int handler_timeout_ms = 30000;
int retry_ms = 200;
int max_retry_ms = 10000;

void define_settings() {
  DefineCustomIntVariable(
      "pg_consistency.consumer_workers", "Consumer processes per database for the inbox.",
      "Consumers are spread over them by a stable hash of their name; each consumer is served by "
      "one process. 0 runs the consumers inside the per-database worker.",
      &workers, 1, 0, 16, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("pg_consistency.consumer_max_attempts",
                          "Handler attempts of one message before it goes to consumer_dead_letters.", nullptr,
                          &max_attempts, 5, 1, 1000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "pg_consistency.consumer_dedupe_window",
      "How long a consumer remembers the ce_id of the messages it handled.",
      "A message whose ce_id header was handled by the same consumer within this window is skipped.",
      &dedupe_window_s, 7 * 24 * 3600, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("pg_consistency.consumer_batch_size",
                          "Messages a consumer applies per transaction.", nullptr, &batch_size, 500, 1,
                          100000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  // PGC_SUSET: no tenant can lift its own limit.
  DefineCustomIntVariable(
      "pg_consistency.consumer_handler_timeout", "Time limit of one consumer handler call.",
      "The call is cancelled and counts as a failed attempt; 0: no limit.", &handler_timeout_ms, 30000, 0,
      INT_MAX, PGC_SUSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("pg_consistency.consumer_retry_backoff",
                          "First pause before a failed message is tried again (doubling).", nullptr,
                          &retry_ms, 200, 1, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("pg_consistency.consumer_max_retry_backoff",
                          "Longest pause before a failed message is tried again.", nullptr, &max_retry_ms,
                          10000, 1, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
}

}  // namespace pgc::inbox::settings
