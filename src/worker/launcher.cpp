// The launcher: one per cluster, with no database connection. It keeps one dynamic worker running per
// database listed in pg_consistency.database, restarts a worker that died (with a pause, so a worker that
// fails at start cannot spin), and stops workers for databases taken off the list.
#include "worker/launcher.hpp"

#include "worker/bgworker.hpp"
#include "worker/databases.hpp"
#include "worker/settings.hpp"
#include "worker/shared_state.hpp"

extern "C" {
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
}

namespace pgc::worker {

namespace {

constexpr long kRestartPauseMs = 2000;
constexpr long kMaxRestartPauseMs = 60000;

// A listed database and its worker, as the launcher sees them (process-local: the
// launcher alone starts and stops workers).
struct Managed {
  char dbname[NAMEDATALEN];  // empty = unused
  BackgroundWorkerHandle* handle;
  TimestampTz last_start;
  int quick_exits;  // exits soon after start in a row: widens the restart pause
  bool refused;     // no database slot was free (logged once)
};
Managed* g_managed = nullptr;  // database_capacity() entries
int g_capacity = 0;
bool g_overflow_logged = false;

// Database names listed in the GUC (deduplicated), at most `max`. Existence is the
// worker's business: the launcher has no database and so cannot read pg_database
// before a relcache exists.
int listed_databases(char (*out)[NAMEDATALEN], int max, int* listed) {
  char* raw = pstrdup(settings::database != nullptr ? settings::database : "");
  List* names = NIL;
  *listed = 0;
  if (!SplitIdentifierString(raw, ',', &names)) {
    ereport(WARNING, (errmsg("pg_consistency.database is not a valid list of database names: \"%s\"",
                             settings::database)));
    return 0;
  }
  int n = 0;
  ListCell* lc;
  foreach (lc, names) {
    const char* name = static_cast<const char*>(lfirst(lc));
    bool dup = false;
    for (int i = 0; i < n; i++) dup |= strcmp(out[i], name) == 0;
    if (dup) continue;
    (*listed)++;
    if (n < max) strlcpy(out[n++], name, NAMEDATALEN);
  }
  list_free(names);
  pfree(raw);
  return n;
}

// Starts the worker of m.dbname, once its database slot is claimed.
void start_worker(Managed& m) {
  m.last_start = GetCurrentTimestamp();
  m.handle = nullptr;
  if (claim_listed(m.dbname) == nullptr) {
    if (!m.refused)
      ereport(LOG,
              (errmsg("pg_consistency launcher: no worker for database \"%s\": all %d database slots are "
                      "taken",
                      m.dbname, g_capacity),
               errhint("Raise pg_consistency.max_databases (needs a restart).")));
    m.refused = true;
    return;
  }
  m.refused = false;
  BackgroundWorker w = dynamic_worker("pgc_worker_main", "pg_consistency worker");
  snprintf(w.bgw_name, BGW_MAXLEN, "pg_consistency worker for database %s", m.dbname);
  strlcpy(w.bgw_extra, m.dbname, BGW_EXTRALEN);
  m.handle = start_dynamic_worker(&w);
  if (m.handle == nullptr) {
    ereport(WARNING,
            (errmsg("pg_consistency launcher: could not start a worker for database \"%s\"", m.dbname),
             errhint("Raise max_worker_processes.")));
  }
}

// The pause before restarting a worker: 2 s, doubled per quick exit in a row, at most 60 s.
long restart_pause_ms(const Managed& m) {
  long pause = kRestartPauseMs;
  for (int i = 1; i < m.quick_exits && pause < kMaxRestartPauseMs; i++) pause *= 2;
  return pause < kMaxRestartPauseMs ? pause : kMaxRestartPauseMs;
}

// A database being dropped gets no new worker until its hold expires.
bool held(const char* dbname, TimestampTz now) {
  SharedState* s = shared();
  SpinLockAcquire(&s->mutex);
  bool h = s->held_dbname[0] != '\0' && strcmp(s->held_dbname, dbname) == 0 && now < s->held_until;
  SpinLockRelease(&s->mutex);
  return h;
}

// A managed database that is no longer listed: its worker is stopped, then its slot freed.
void unlist(Managed& m, BgwHandleStatus st) {
  if (st != BGWH_STOPPED) {
    TerminateBackgroundWorker(m.handle);
    return;
  }
  if (m.handle) pfree(m.handle);
  release_listed(m.dbname);
  m = Managed{};
}

// A listed database whose worker is not running: restarted after a pause that grows
// with quick exits.
void restart_if_due(Managed& m, TimestampTz now) {
  // It exited: a worker that lived less than a minute counts as a quick exit.
  if (m.handle != nullptr) {
    m.quick_exits = TimestampDifferenceExceeds(m.last_start, now, 60000) ? 1 : m.quick_exits + 1;
    pfree(m.handle);
    m.handle = nullptr;
  }
  if (held(m.dbname, now)) return;
  if (TimestampDifferenceExceeds(m.last_start, now, restart_pause_ms(m))) {
    if (!m.refused)
      ereport(LOG, (errmsg("pg_consistency launcher: restarting the worker for database \"%s\"", m.dbname)));
    start_worker(m);
  }
}

// One round of the launcher: workers started, restarted and stopped to match the list.
void reconcile() {
  char(*wanted)[NAMEDATALEN] = static_cast<char(*)[NAMEDATALEN]>(palloc(sizeof(*wanted) * g_capacity));
  int listed = 0;
  int n = listed_databases(wanted, g_capacity, &listed);
  if (listed > g_capacity && !g_overflow_logged)
    ereport(LOG, (errmsg("pg_consistency.database lists %d databases; only the first %d get a worker", listed,
                         g_capacity),
                  errhint("Raise pg_consistency.max_databases (needs a restart).")));
  g_overflow_logged = listed > g_capacity;
  TimestampTz now = GetCurrentTimestamp();

  for (int i = 0; i < g_capacity; i++) {
    Managed& m = g_managed[i];
    if (m.dbname[0] == '\0') continue;
    bool still_wanted = false;
    for (int j = 0; j < n; j++) still_wanted |= strcmp(wanted[j], m.dbname) == 0;
    pid_t pid;
    BgwHandleStatus st = m.handle ? GetBackgroundWorkerPid(m.handle, &pid) : BGWH_STOPPED;
    if (!still_wanted)
      unlist(m, st);
    else if (st == BGWH_STOPPED)
      restart_if_due(m, now);
  }
  for (int j = 0; j < n; j++) {
    Managed* have = nullptr;
    Managed* free_entry = nullptr;
    for (int i = 0; i < g_capacity; i++) {
      if (strcmp(g_managed[i].dbname, wanted[j]) == 0) have = &g_managed[i];
      if (free_entry == nullptr && g_managed[i].dbname[0] == '\0') free_entry = &g_managed[i];
    }
    if (have != nullptr || free_entry == nullptr || held(wanted[j], now)) continue;
    strlcpy(free_entry->dbname, wanted[j], NAMEDATALEN);
    start_worker(*free_entry);
  }
  pfree(wanted);
}

// At exit: consistency.workers shows the launcher stopped.
void launcher_exit(int, Datum) {
  SharedState* s = shared();
  SpinLockAcquire(&s->mutex);
  s->launcher_pid = 0;
  s->launcher_proc = nullptr;
  SpinLockRelease(&s->mutex);
}

}  // namespace

void register_launcher() {
  BackgroundWorker w;
  memset(&w, 0, sizeof(w));
  w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  w.bgw_start_time = BgWorkerStart_RecoveryFinished;
  w.bgw_restart_time = 1;
  snprintf(w.bgw_library_name, BGW_MAXLEN, "pg_consistency");
  snprintf(w.bgw_function_name, BGW_MAXLEN, "pgc_launcher_main");
  snprintf(w.bgw_name, BGW_MAXLEN, "pg_consistency launcher");
  snprintf(w.bgw_type, BGW_MAXLEN, "pg_consistency launcher");
  RegisterBackgroundWorker(&w);
}

}  // namespace pgc::worker

// The launcher process: reconciles once a second, or at once on a latch wake-up or SIGHUP.
extern "C" PGDLLEXPORT void pgc_launcher_main(Datum) {
  using namespace pgc::worker;
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, die);
  BackgroundWorkerUnblockSignals();
  // No database, but a backend entry, so it shows in pg_stat_activity. It never reads
  // a catalog (that needs a database).
  BackgroundWorkerInitializeConnection(nullptr, nullptr, 0);

  SharedState* s = shared();
  SpinLockAcquire(&s->mutex);
  s->launcher_pid = MyProcPid;
  s->launcher_proc = MyProc;
  s->launcher_started_at = GetCurrentTimestamp();
  s->launcher_settings_loaded_at = s->launcher_started_at;
  SpinLockRelease(&s->mutex);
  before_shmem_exit(launcher_exit, 0);
  g_capacity = database_capacity();
  g_managed = static_cast<Managed*>(MemoryContextAllocZero(TopMemoryContext, sizeof(Managed) * g_capacity));
  ereport(LOG, (errmsg("pg_consistency launcher started")));

  MemoryContext loop_cxt =
      AllocSetContextCreate(TopMemoryContext, "pg_consistency launcher", ALLOCSET_DEFAULT_SIZES);
  MemoryContextSwitchTo(loop_cxt);
  for (;;) {
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
      SpinLockAcquire(&s->mutex);
      s->launcher_settings_loaded_at = GetCurrentTimestamp();
      SpinLockRelease(&s->mutex);
    }
    reconcile();
    MemoryContextReset(loop_cxt);
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
  }
}
