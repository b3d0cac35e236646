#include "saga/settings.hpp"

#include <climits>

#include "pg/postgres.hpp"

extern "C" {
#include "utils/guc.h"
}

namespace pgc::saga::settings {

namespace {
// Saga worker processes per database at most (the worker model allows 16 per component).
constexpr int kMaxWorkers = 16;
}  // namespace

int workers = 1;
int batch_size = 16;
int chain_steps = 4;
int step_timeout_ms = 30000;

void define_settings() {
  DefineCustomIntVariable(
      "pg_consistency.saga_workers", "Saga worker processes per database.",
      "N > 0 keeps N dedicated saga workers per database that claim due sagas concurrently "
      "(FOR UPDATE SKIP LOCKED); 0 runs saga steps inside the per-database worker.",
      &workers, 1, 0, kMaxWorkers, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("pg_consistency.saga_batch_size", "Sagas a saga worker claims per transaction.",
                          "The steps of a batch share one commit.", &batch_size, 16, 1, 1000, PGC_SIGHUP, 0,
                          nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "pg_consistency.saga_chain_steps", "Consecutive steps one saga may run in one transaction.",
      "A saga goes on with its next step in the same transaction while that step is due at "
      "once; 1 runs every step in a transaction of its own.",
      &chain_steps, 4, 1, 100, PGC_SUSET, 0, nullptr, nullptr, nullptr);
  // PGC_SUSET: no tenant can lift its own limit (SET needs a superuser), yet a superuser
  // can set it per database (ALTER DATABASE ... SET, read by saga workers when they
  // start) or in a session that runs _advance_sagas.
  DefineCustomIntVariable(
      "pg_consistency.saga_step_timeout",
      "Time limit of a saga function step or compensation, and the most a step's own \"timeout\" may give "
      "it.",
      "The step is cancelled (a statement timeout) and counts as a failed attempt; 0: no limit.",
      &step_timeout_ms, 30000, 0, INT_MAX, PGC_SUSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);
}

}  // namespace pgc::saga::settings
