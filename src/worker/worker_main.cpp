// The per-database worker: waits on its latch, and on each wake-up or timeout runs the
// tick of every registered component that is due. An ERROR inside a tick is logged,
// recorded in shared memory and answered with a backoff for that component only; the
// worker itself goes on (no restart loop), in the manner of the autovacuum launcher.
#include <random>

#include "common/backoff.hpp"
#include "pg/component.hpp"
#include "pg/gucs.hpp"
#include "pg/catching.hpp"
#include "pg/guard.hpp"
#include "pg/run_as.hpp"
#include "worker/shared_state.hpp"
#include "worker/wake.hpp"

extern "C" {
#include "access/xlog.h"
#include "commands/extension.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/timestamp.h"
}

namespace pgc::worker {

namespace {

// Components due this close to now run in the same tick (microseconds).
constexpr TimestampTz kCoalesceUs = 20000;

int g_slot = -1;
MemoryContext g_loop_cxt = nullptr;
TimestampTz g_next_due[pg::kMaxComponents];
int g_failures[pg::kMaxComponents];

WorkerSlot& my_slot() { return shared()->slots[g_slot]; }

void set_state(WorkerState st) {
  SharedState* s = shared();
  SpinLockAcquire(&s->mutex);
  my_slot().state = st;
  SpinLockRelease(&s->mutex);
}

void worker_exit(int, Datum) {
  for (int i = 0; i < pg::component_count(); i++) {
    const pg::Component* c = pg::component_at(i);
    if (c->worker_exit != nullptr) c->worker_exit();
  }
  SharedState* s = shared();
  SpinLockAcquire(&s->mutex);
  my_slot().pid = 0;
  my_slot().proc = nullptr;
  my_slot().state = WorkerState::kStopped;
  SpinLockRelease(&s->mutex);
}

// The extension is installed (and committed) here and we are not a standby.
bool extension_ready() {
  if (RecoveryInProgress()) return false;
  StartTransactionCommand();
  bool ok = OidIsValid(get_extension_oid("pg_consistency", true));
  CommitTransactionCommand();
  return ok;
}

// Calls a component's tick; a C++ exception is turned into an ERROR here.
long call_tick(const pg::Component* c) {
  pg::CapturedError captured;
  try {
    return c->worker_tick();
  } catch (...) {
    captured = pg::capture_current_exception();
  }
  pg::raise_captured(captured);
}

// Runs one tick; an ERROR inside is caught (its transaction aborted), logged, recorded
// and backed off. Returns the delay before its next run.
long run_tick(int i) {
  struct Call {
    const pg::Component* c;
    long next_ms;
  } call{pg::component_at(i), 0};
  ErrorData* edata = pg::run_aborting_on_error(
      [](void* p) {
        auto* call = static_cast<Call*>(p);
        call->next_ms = call_tick(call->c);
      },
      &call, g_loop_cxt);
  if (edata == nullptr) {
    g_failures[i] = 0;
    return call.next_ms;
  }
  const pg::Component* c = call.c;
  long next_ms = 0;
  g_failures[i]++;
  BackoffPolicy policy{1000, 60000, 2.0, 0.2};
  static std::minstd_rand rng(static_cast<unsigned>(MyProcPid));
  next_ms = backoff_delay_ms(policy, g_failures[i], std::uniform_real_distribution<double>(0.0, 1.0)(rng));
  ereport(LOG, (errmsg("pg_consistency worker: %s failed: %s", c->name,
                       edata->message ? edata->message : "unknown error"),
                edata->detail ? errdetail("%s", edata->detail) : 0,
                errhint("Retrying in %ld ms (failure %d in a row).", (long)next_ms, g_failures[i])));
  SharedState* s = shared();
  SpinLockAcquire(&s->mutex);
  my_slot().errors++;
  snprintf(my_slot().last_error, sizeof(my_slot().last_error), "%s: %s", c->name,
           edata->message ? edata->message : "unknown error");
  SpinLockRelease(&s->mutex);
  FreeErrorData(edata);
  return next_ms;
}

// The foundation's own tick: the test hook that makes a tick fail inside a transaction.
long self_tick() {
  WorkerSlot& slot = my_slot();
  uint32 pending = pg_atomic_read_u32(&slot.inject_errors);
  if (pending > 0) {
    pg_atomic_fetch_sub_u32(&slot.inject_errors, 1);
    StartTransactionCommand();
    elog(ERROR, "injected failure (consistency._debug_fail_worker_ticks)");
  }
  return gucs::poll_interval_ms;
}

const pg::Component kSelf = {"worker", nullptr, nullptr, nullptr, self_tick, nullptr};
pg::ComponentRegistrar registrar(&kSelf);

void main_loop() {
  TimestampTz last_wake = 0;
  for (;;) {
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
    long wait_ms = gucs::poll_interval_ms;
    uint32 woken = pg_atomic_exchange_u32(&my_slot().wake_mask, 0);
    bool ready = extension_ready();
    if (ready) {
      bool failing = false;
      for (int i = 0; i < pg::component_count(); i++) {
        const pg::Component* c = pg::component_at(i);
        if (c->worker_tick == nullptr) continue;
        TimestampTz now = GetCurrentTimestamp();
        // A wake-up makes a component due at once, unless it is backing off after errors.
        if ((woken & (1u << i)) && g_failures[i] == 0) g_next_due[i] = now;
        // Due within kCoalesceUs counts as due: components whose periods drifted apart by a
        // few milliseconds run in one tick instead of one tick each.
        if (now + kCoalesceUs >= g_next_due[i]) {
          long next = run_tick(i);
          g_next_due[i] = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), next);
        }
        failing |= g_failures[i] > 0;
        // Rounded up: a sub-millisecond remainder truncated to 0 made an idle worker spin
        // through empty ticks until the component was due.
        long until = (long)((g_next_due[i] - GetCurrentTimestamp() + 999) / 1000);
        if (until < wait_ms) wait_ms = until < 0 ? 0 : until;
      }
      set_state(failing ? WorkerState::kBackoff : WorkerState::kRunning);
    } else {
      set_state(WorkerState::kWaitingForExtension);
    }
    SharedState* s = shared();
    SpinLockAcquire(&s->mutex);
    my_slot().ticks++;
    my_slot().last_tick_at = GetCurrentTimestamp();
    SpinLockRelease(&s->mutex);
    MemoryContextReset(g_loop_cxt);

    wait_paced(wait_ms, &last_wake);
  }
}

}  // namespace
}  // namespace pgc::worker

extern "C" PGDLLEXPORT void pgc_worker_main(Datum arg) {
  using namespace pgc::worker;
  g_slot = DatumGetInt32(arg);
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, die);
  BackgroundWorkerUnblockSignals();

  SharedState* s = shared();
  char dbname[NAMEDATALEN];
  strlcpy(dbname, MyBgworkerEntry->bgw_extra, NAMEDATALEN);
  SpinLockAcquire(&s->mutex);
  strlcpy(s->slots[g_slot].dbname, dbname, NAMEDATALEN);
  SpinLockRelease(&s->mutex);
  // FATALs if the database does not exist; the launcher retries with a growing pause.
  BackgroundWorkerInitializeConnection(dbname, nullptr, 0);
  pgc::pg::pin_process_search_path();

  SpinLockAcquire(&s->mutex);
  WorkerSlot& slot = s->slots[g_slot];
  slot.dboid = MyDatabaseId;
  slot.pid = MyProcPid;
  slot.proc = MyProc;
  slot.state = WorkerState::kStarting;
  slot.started_at = GetCurrentTimestamp();
  slot.starts++;
  SpinLockRelease(&s->mutex);
  before_shmem_exit(worker_exit, 0);

  g_loop_cxt = AllocSetContextCreate(TopMemoryContext, "pg_consistency worker loop", ALLOCSET_DEFAULT_SIZES);
  MemoryContextSwitchTo(g_loop_cxt);
  pgstat_report_appname("pg_consistency worker");
  ereport(LOG, (errmsg("pg_consistency worker started for database \"%s\"", dbname)));
  main_loop();
}
