// Saga execution in the background: claims due sagas with FOR UPDATE SKIP LOCKED and
// advances each by up to saga_chain_steps steps per transaction (advance.cpp).
//
// pg_consistency.saga_workers = N > 0: the database's worker keeps N "pg_consistency saga
// worker" processes of this component running (worker/processes.hpp); they claim
// disjoint batches concurrently, and a slow step function never holds up the outbox
// relay or the other components of the worker. N = 0: the worker runs the batches
// itself, in its tick. Either way the loop, error backoff, wake-ups at commit and status
// rows are the worker model's.
//
// A function step runs inside a subtransaction, in the same transaction that records its
// outcome (its effects and the saga's new state commit together or not at all), through
// pgc::pg::RunAs: as the role that defined the saga, as a security-restricted operation,
// with search_path = pg_catalog, pg_temp, a time limit (the step's timeout, else
// pg_consistency.saga_step_timeout), and every setting it changes rolled back when it
// returns. It is called by the OID stored when the saga was defined, never by name
// (steps.cpp). A failing step rolls back its own subtransaction only; the failure is
// then recorded in the batch's transaction.
//
// One saga cannot stop the others: an error while advancing a saga outside its steps'
// subtransactions (storing its state, appending its audit events) rolls the batch back
// once; the worker then runs that saga alone, each step in a subtransaction of its own,
// and records the failure as a failed attempt of the step whose outcome could not be
// stored (retried with backoff, then compensated), or, when even that cannot be stored,
// parks the saga for a minute with the reason in last_error.
//
// A step that catches the cancellation of its time limit and goes on is ended with its
// process by the hard stop; hard_stops.cpp charges it on the next batch.
#include <string>

#include "pg/component.hpp"
#include "pg/run_as.hpp"
#include "pg/spi.hpp"
#include "saga/advance.hpp"
#include "saga/settings.hpp"
#include "worker/settings.hpp"
#include "worker/wake.hpp"

extern "C" {
#include "access/xact.h"
#include "commands/extension.h"
#include "pgstat.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

namespace pgc::saga::backend {

using pgc::pg::pg_call;
using pgc::pg::PgError;

bool begin_batch(const char* activity) {
  bool installed = pg_call([&] {
    pgc::pg::begin_worker_transaction(nullptr);
    if (!OidIsValid(get_extension_oid("pg_consistency", true))) return false;
    pgstat_report_activity(STATE_RUNNING, activity);
    return true;
  });
  if (!installed) pg_call([] { pgc::pg::commit_worker_transaction(); });
  return installed;
}

void commit_batch() {
  pg_call([] {
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
    pgstat_report_activity(STATE_IDLE, nullptr);
  });
}

namespace {

// How long the worker runs batches in one tick when there are no saga workers, so the
// other components get their turn.
constexpr long kInlineBudgetMs = 200;

// One transaction: claims up to saga_batch_size due sagas and advances each. When one
// saga makes the batch fail outside its steps, the batch is rolled back and that saga
// is advanced alone in a second transaction (advance_one), which records its failure:
// the next batch goes on with the others instead of claiming it first again. Any other
// error propagates (the caller logs it and backs off).
BatchResult run_batch(int worker_id) {
  BatchResult result;
  charge_hard_stops(worker_id);
  if (!begin_batch("pg_consistency: advancing sagas")) {
    result.ready = false;
    return result;
  }
  bool poisoned = false;
  pg_uuid_t poison{};
  std::string why;
  try {
    advance_due(worker_id, settings::batch_size, false, &result);
  } catch (const PgError& e) {
    if (!current_saga(&poison)) throw;
    poisoned = true;
    why = clip_text(pgc::pg::take_error_text(e));
  } catch (const std::exception& e) {
    if (!current_saga(&poison)) throw;
    poisoned = true;
    why = clip_text(e.what());
  }
  if (!poisoned) {
    commit_batch();
    return result;
  }
  clear_current_saga();
  std::string poison_text = uuid_text(poison);
  pg_call([&] {
    AbortOutOfAnyTransaction();
    pgc::pg::disarm_statement_timeout();
    ereport(LOG, (errmsg("pg_consistency: saga %s made a batch fail outside its steps; "
                         "advancing it alone: %s",
                         poison_text.c_str(), why.c_str())));
  });
  result = BatchResult{};
  if (!begin_batch("pg_consistency: advancing a saga alone")) {
    result.ready = false;
    return result;
  }
  advance_one(worker_id, poison, &result);
  commit_batch();
  return result;
}

// The wait after a batch: none when it advanced sagas (more may be due), else until the
// next due saga, at most the poll interval.
long wait_after(const BatchResult& r) {
  if (r.processed > 0) return 0;
  long wait = worker::settings::poll_interval_ms;
  if (r.ready && r.next_due_ms >= 0 && r.next_due_ms < wait) wait = r.next_due_ms;
  return wait;
}

// In the worker, when there are no saga workers: batches for up to kInlineBudgetMs.
long worker_tick() {
  TimestampTz start = GetCurrentTimestamp();
  for (;;) {
    BatchResult r = run_batch(0);
    if (r.processed == 0) return wait_after(r);
    if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), kInlineBudgetMs)) return 0;
  }
}

// In saga worker `index`: one batch.
long process_tick(int index) { return wait_after(run_batch(index)); }

// Batches hold their row locks until they commit: settle a deadlock between two saga
// workers in 100 ms rather than the default second (the step that loses is deferred).
void process_start(int) { SetConfigOption("deadlock_timeout", "100ms", PGC_SUSET, PGC_S_OVERRIDE); }

// How many saga worker processes the worker model keeps for a database.
int processes() { return settings::workers; }

const pgc::pg::Component kComponent = {"saga",
                                       settings::define_settings,
                                       nullptr,
                                       nullptr,
                                       worker_tick,
                                       nullptr,
                                       0,
                                       nullptr,
                                       processes,
                                       process_tick,
                                       process_start,
                                       "pg_consistency saga worker"};
pgc::pg::ComponentRegistrar registrar(&kComponent);

}  // namespace

void wake_workers_at_commit() {
  pg_call([] { pgc::worker::wake_at_commit(&kComponent); });
}

}  // namespace pgc::saga::backend
