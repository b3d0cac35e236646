#include "worker/loop.hpp"

#include <random>

#include "common/backoff.hpp"
#include "pg/catching.hpp"
#include "pg/version.hpp"
#include "worker/settings.hpp"
#include "worker/wake.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

namespace pgc::worker {

namespace {

// Tasks due this close to now run in the same round (microseconds).
constexpr TimestampTz kCoalesceUs = 20000;

ProcessSlot* g_me = nullptr;
MemoryContext g_loop_cxt = nullptr;
const char* g_who = "";

void set_state(WorkerState st) {
  SpinLockAcquire(databases_lock());
  g_me->state = st;
  SpinLockRelease(databases_lock());
}

// At exit: the process's row says stopped (a component process gives its row up).
void vacate(int, Datum) {
  if (g_me == nullptr) return;
  SpinLockAcquire(databases_lock());
  g_me->pid = 0;
  g_me->proc = nullptr;
  g_me->state = WorkerState::kStopped;
  // A component's process gives its row up; the database's worker keeps its own, so
  // consistency.workers shows it stopped.
  if (g_me->component >= 0) g_me->in_use = false;
  SpinLockRelease(databases_lock());
}

// The extension is installed (and committed) here at the library's version, and we are
// not a standby. Asked again at most once a second while all goes well (it costs a
// transaction, and a busy process runs rounds back to back), at once after a round with
// an error or when it was not. Between a new library and ALTER EXTENSION UPDATE the
// schema is older than the code: nothing runs (logged once per version seen).
bool extension_ready(bool last_round_clean) {
  static bool ready = false;
  static TimestampTz checked_at = 0;
  static char reported[NAMEDATALEN] = "";
  TimestampTz now = GetCurrentTimestamp();
  if (ready && last_round_clean && !TimestampDifferenceExceeds(checked_at, now, 1000)) return true;
  checked_at = now;
  if (RecoveryInProgress()) return ready = false;
  StartTransactionCommand();
  const char* installed = pg::installed_version();
  ready = installed != nullptr && strcmp(installed, pg::library_version()) == 0;
  if (installed != nullptr && !ready && strncmp(reported, installed, sizeof(reported)) != 0) {
    strlcpy(reported, installed, sizeof(reported));
    ereport(LOG, (errmsg("%s: pg_consistency is installed here at version %s and the library is %s: "
                         "waiting for ALTER EXTENSION pg_consistency UPDATE",
                         g_who, installed, pg::library_version())));
  }
  CommitTransactionCommand();
  return ready;
}

// Calls a task; a C++ exception is turned into an ERROR here.
long call_task(Task* t) {
  pg::CapturedError captured;
  try {
    return t->run(t->arg);
  } catch (...) {
    captured = pg::capture_current_exception();
  }
  pg::raise_captured(captured);
}

// Runs one task; an ERROR inside is caught (its transaction aborted), logged, recorded
// and backed off (1 s doubling to 60 s, with jitter). Returns the delay before its next run.
long run_task(Task* t) {
  struct Call {
    Task* t;
    long next_ms;
  } call{t, 0};
  ErrorData* edata = pg::run_aborting_on_error(
      [](void* p) {
        auto* c = static_cast<Call*>(p);
        c->next_ms = call_task(c->t);
      },
      &call, g_loop_cxt);
  if (edata == nullptr) {
    t->failures = 0;
    return call.next_ms;
  }
  t->failures++;
  static std::minstd_rand rng(static_cast<unsigned>(MyProcPid));
  long next_ms = static_cast<long>(backoff_delay_ms(BackoffPolicy{1000, 60000, 2.0, 0.2}, t->failures,
                                                    std::uniform_real_distribution<double>(0.0, 1.0)(rng)));
  const char* message = edata->message ? edata->message : "unknown error";
  ereport(LOG, (errmsg("%s: %s failed: %s", g_who, t->name, message),
                edata->detail ? errdetail("%s", edata->detail) : 0,
                errhint("Retrying in %ld ms (failure %d in a row).", next_ms, t->failures)));
  SpinLockAcquire(databases_lock());
  g_me->errors++;
  snprintf(g_me->last_error, sizeof(g_me->last_error), "%s: %s", t->name, message);
  SpinLockRelease(databases_lock());
  FreeErrorData(edata);
  return next_ms;
}

// `due` moved to the nearest point of this process's grid of poll intervals (so at least
// half an interval away) when the task asked for a poll interval or more. Tasks that started at different
// times, or were backed off, or ran before an interval was reloaded keep their own phase otherwise, and an
// idle process then wakes once per phase instead of once per interval. Shorter delays (a retry due, a busy
// task) are kept as asked. The grid is offset by the pid so that the processes of a cluster do not all wake
// at the same instant.
TimestampTz on_grid(TimestampTz due, long next_ms) {
  long grid_ms = settings::poll_interval_ms;
  if (grid_ms <= 0 || next_ms < grid_ms) return due;
  TimestampTz grid = static_cast<TimestampTz>(grid_ms) * 1000;
  TimestampTz offset = static_cast<TimestampTz>(MyProcPid) * 7919 % grid;
  TimestampTz k = (due - offset + grid / 2) / grid;
  return k * grid + offset;
}

// Runs the due tasks; returns how long to wait before the next round. `readable`: the
// task whose descriptor the last wait found readable, or nullptr. *clean: no task failed.
long run_round(Task* tasks, int ntasks, uint32 woken, const Task* readable, bool* clean) {
  long wait_ms = settings::poll_interval_ms;
  bool failing = false;
  // Periods count from the round's start, not from the end of each task's run: counted
  // from the end, every task in a round is due a run-time later than the one before it,
  // and once the runs are slower than kCoalesceUs (a sanitized build, a loaded machine)
  // the tasks drift apart into one round each.
  const TimestampTz round_start = GetCurrentTimestamp();
  for (int i = 0; i < ntasks; i++) {
    Task* t = &tasks[i];
    if (t->active != nullptr && !t->active(t->arg)) continue;
    TimestampTz now = GetCurrentTimestamp();
    bool signalled = (t->wake_bit >= 0 && (woken & (1u << t->wake_bit))) || t == readable;
    if (signalled && t->failures == 0) t->next_due = now;
    // Due within kCoalesceUs counts as due: tasks whose periods drifted apart by a few
    // milliseconds run in one round instead of one round each.
    if (now + kCoalesceUs >= t->next_due) {
      // Committing a transaction leaves TopMemoryContext current: what a task allocates
      // outside its transactions must go to the loop's context, which each round resets.
      MemoryContextSwitchTo(g_loop_cxt);
      long next = run_task(t);
      TimestampTz after = GetCurrentTimestamp();
      t->next_due = on_grid(TimestampTzPlusMilliseconds(round_start, next), next);
      // A run longer than its own period: the next run waits a full period from now,
      // so a slow task does not take every round.
      if (t->next_due <= after && next > 0) t->next_due = TimestampTzPlusMilliseconds(after, next);
    }
    failing |= t->failures > 0;
    // Rounded up: a sub-millisecond remainder truncated to 0 made an idle process spin
    // through empty rounds until the task was due.
    long until = static_cast<long>((t->next_due - GetCurrentTimestamp() + 999) / 1000);
    if (until < wait_ms) wait_ms = until < 0 ? 0 : until;
  }
  MemoryContextSwitchTo(g_loop_cxt);
  set_state(failing ? WorkerState::kBackoff : WorkerState::kRunning);
  *clean = !failing;
  return wait_ms;
}

// The first active task with a descriptor now (*fd), or nullptr (*fd = -1). A task
// backing off after errors is not watched: it would not drain its descriptor, and a
// readable one would turn the wait into a busy loop.
Task* socket_task(Task* tasks, int ntasks, int* fd) {
  *fd = -1;
  for (int i = 0; i < ntasks; i++) {
    Task* t = &tasks[i];
    if (t->socket == nullptr || t->failures > 0 || (t->active != nullptr && !t->active(t->arg))) continue;
    *fd = t->socket(t->arg);
    if (*fd >= 0) return t;
  }
  return nullptr;
}

}  // namespace

void occupy(ProcessSlot* me) {
  g_me = me;
  SpinLockAcquire(databases_lock());
  me->pid = MyProcPid;
  me->proc = MyProc;
  me->state = WorkerState::kStarting;
  me->started_at = GetCurrentTimestamp();
  me->settings_loaded_at = me->started_at;
  me->starts++;
  SpinLockRelease(databases_lock());
  before_shmem_exit(vacate, 0);
}

void run_loop(ProcessSlot* me, Task* tasks, int ntasks, const LoopHooks& hooks) {
  g_me = me;
  g_who = hooks.who;
  g_loop_cxt = AllocSetContextCreate(TopMemoryContext, "pg_consistency loop", ALLOCSET_DEFAULT_SIZES);
  MemoryContextSwitchTo(g_loop_cxt);
  TimestampTz last_wake = 0;
  bool clean = true;
  const Task* readable = nullptr;
  for (;;) {
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
      // Shown in consistency.workers: an operator (or a test) can see that a reload
      // reached this process, rather than guess.
      SpinLockAcquire(databases_lock());
      me->settings_loaded_at = GetCurrentTimestamp();
      SpinLockRelease(databases_lock());
    }
    if (hooks.stay != nullptr && !hooks.stay()) proc_exit(0);
    long wait_ms = settings::poll_interval_ms;
    uint32 woken = pg_atomic_exchange_u32(&me->wake_mask, 0);
    if (extension_ready(clean)) {
      wait_ms = run_round(tasks, ntasks, woken, readable, &clean);
    } else {
      set_state(WorkerState::kWaitingForExtension);
    }
    SpinLockAcquire(databases_lock());
    me->ticks++;
    me->last_tick_at = GetCurrentTimestamp();
    SpinLockRelease(databases_lock());
    MemoryContextReset(g_loop_cxt);
    // A backend sends its table statistics when it goes idle; a background process only
    // when asked. Without them autovacuum never sees the rows our processes delete
    // (relay batches, dedupe entries) and those tables bloat. Once a round, covering every
    // transaction the tasks committed or aborted; PostgreSQL sends at most once a second.
    if (!IsTransactionOrTransactionBlock()) (void)pgstat_report_stat(false);
    int fd;
    Task* watched = socket_task(tasks, ntasks, &fd);
    readable = wait_paced(wait_ms, &last_wake, fd) ? watched : nullptr;
  }
}

}  // namespace pgc::worker
