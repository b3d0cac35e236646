#include "eventstore/settings.hpp"

#include <climits>

#include "pg/postgres.hpp"

extern "C" {
#include "utils/guc.h"
}

namespace pgc::eventstore::settings {

int max_event_bytes = 1024 * 1024;
int subscription_max_attempts = 10;
int subscription_batch_size = 100;
int subscription_retry_delay_ms = 500;
int subscription_max_retry_delay_ms = 60000;
int subscription_handler_timeout_ms = 5000;

void define_settings() {
  DefineCustomIntVariable("pg_consistency.max_event_bytes", "Largest event accepted by append_events.",
                          "Size of an event's data plus metadata in jsonb storage format.", &max_event_bytes,
                          1024 * 1024, 64, MaxAllocSize / 4, PGC_SUSET, GUC_UNIT_BYTE, nullptr, nullptr,
                          nullptr);
  DefineCustomIntVariable("pg_consistency.subscription_max_attempts",
                          "Failed attempts after which a new subscription is parked (status failed).",
                          "Taken when the subscription is created.", &subscription_max_attempts, 10, 1, 1000,
                          PGC_USERSET, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("pg_consistency.subscription_batch_size",
                          "Events a subscription handles per transaction.", nullptr, &subscription_batch_size,
                          100, 1, 100000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "pg_consistency.subscription_retry_delay",
      "Delay before the first retry of a failed subscription handler; doubles per failure.", nullptr,
      &subscription_retry_delay_ms, 500, 1, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("pg_consistency.subscription_max_retry_delay",
                          "Longest delay between retries of a failed subscription handler.", nullptr,
                          &subscription_max_retry_delay_ms, 60000, 1, 24 * 3600 * 1000, PGC_SIGHUP,
                          GUC_UNIT_MS, nullptr, nullptr, nullptr);
  // Superuser-only: the value protects the shared per-database worker from slow handlers,
  // so no tenant may raise it; a superuser may still set it per database (ALTER DATABASE
  // ... SET, applied when the worker connects) or for a _subscription_step session.
  DefineCustomIntVariable("pg_consistency.subscription_handler_timeout",
                          "Longest a subscription handler may run for one event (0 = no limit).",
                          "A handler call that takes longer is cancelled and counts as a failed attempt; "
                          "a batch also ends early once it has run this long.",
                          &subscription_handler_timeout_ms, 5000, 0, INT_MAX, PGC_SUSET, GUC_UNIT_MS, nullptr,
                          nullptr, nullptr);
}

}  // namespace pgc::eventstore::settings
