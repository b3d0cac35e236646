// The launcher: one per cluster, with no database connection. It keeps one dynamic worker running per
// database listed in pg_consistency.database, restarts a worker that died (with a pause, so a worker that
// fails at start cannot spin), and stops workers for databases taken off the list.
#include "worker/launcher.hpp"

#include "pg/gucs.hpp"
#include "worker/shared_state.hpp"

extern "C" {
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
}

namespace pgc::worker {

namespace {

constexpr long kRestartPauseMs = 2000;
constexpr long kMaxRestartPauseMs = 60000;

struct Managed {
  char dbname[NAMEDATALEN];  // empty = unused
  BackgroundWorkerHandle* handle;
  TimestampTz last_start;
  int quick_exits;  // exits soon after start in a row: widens the restart pause
};
Managed g_managed[kMaxDatabases];

// Database names listed in the GUC (deduplicated). Existence is the worker's business:
// the launcher has no database and so cannot read pg_database before a relcache exists.
int listed_databases(char (*out)[NAMEDATALEN]) {
  char* raw = pstrdup(gucs::database != nullptr ? gucs::database : "");
  List* names = NIL;
  if (!SplitIdentifierString(raw, ',', &names)) {
    ereport(WARNING, (errmsg("pg_consistency.database is not a valid list of database names: \"%s\"",
                             gucs::database)));
    return 0;
  }
  int n = 0;
  ListCell* lc;
  foreach (lc, names) {
    const char* name = static_cast<const char*>(lfirst(lc));
    bool dup = false;
    for (int i = 0; i < n; i++) dup |= strcmp(out[i], name) == 0;
    if (!dup && n < kMaxDatabases) strlcpy(out[n++], name, NAMEDATALEN);
  }
  list_free(names);
  pfree(raw);
  return n;
}

bool start_worker(int slot_index, const char* dbname) {
  BackgroundWorker w;
  memset(&w, 0, sizeof(w));
  w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  w.bgw_start_time = BgWorkerStart_RecoveryFinished;
  w.bgw_restart_time = BGW_NEVER_RESTART;  // the launcher restarts it, with a pause
  snprintf(w.bgw_library_name, BGW_MAXLEN, "pg_consistency");
  snprintf(w.bgw_function_name, BGW_MAXLEN, "pgc_worker_main");
  snprintf(w.bgw_name, BGW_MAXLEN, "pg_consistency worker for database %s", dbname);
  snprintf(w.bgw_type, BGW_MAXLEN, "pg_consistency worker");
  w.bgw_main_arg = Int32GetDatum(slot_index);
  w.bgw_notify_pid = MyProcPid;
  strlcpy(w.bgw_extra, dbname, BGW_EXTRALEN);

  Managed& m = g_managed[slot_index];
  strlcpy(m.dbname, dbname, NAMEDATALEN);
  m.last_start = GetCurrentTimestamp();
  m.handle = nullptr;
  if (!RegisterDynamicBackgroundWorker(&w, &m.handle)) {
    ereport(WARNING, (errmsg("pg_consistency launcher: could not start a worker for database \"%s\"", dbname),
                      errhint("Raise max_worker_processes.")));
    return false;
  }
  return true;
}

long restart_pause_ms(const Managed& m) {
  long pause = kRestartPauseMs;
  for (int i = 1; i < m.quick_exits && pause < kMaxRestartPauseMs; i++) pause *= 2;
  return pause < kMaxRestartPauseMs ? pause : kMaxRestartPauseMs;
}

void release_slot(int i) {
  SharedState* s = shared();
  SpinLockAcquire(&s->mutex);
  s->slots[i].dboid = InvalidOid;
  s->slots[i].dbname[0] = '\0';
  SpinLockRelease(&s->mutex);
}

// A database being dropped gets no new worker until its hold expires.
bool held(const char* dbname, TimestampTz now) {
  SharedState* s = shared();
  SpinLockAcquire(&s->mutex);
  bool h = s->held_dbname[0] != '\0' && strcmp(s->held_dbname, dbname) == 0 && now < s->held_until;
  SpinLockRelease(&s->mutex);
  return h;
}

void reconcile() {
  char wanted[kMaxDatabases][NAMEDATALEN];
  int n = listed_databases(wanted);
  TimestampTz now = GetCurrentTimestamp();

  for (int i = 0; i < kMaxDatabases; i++) {
    Managed& m = g_managed[i];
    if (m.dbname[0] == '\0') continue;
    bool still_wanted = false;
    for (int j = 0; j < n; j++) still_wanted |= strcmp(wanted[j], m.dbname) == 0;
    pid_t pid;
    BgwHandleStatus st = m.handle ? GetBackgroundWorkerPid(m.handle, &pid) : BGWH_STOPPED;
    if (!still_wanted) {
      if (st != BGWH_STOPPED) {
        TerminateBackgroundWorker(m.handle);
      } else {
        if (m.handle) pfree(m.handle);
        m = Managed{};
        release_slot(i);
      }
      continue;
    }
    if (st != BGWH_STOPPED) continue;
    // It exited: a worker that lived less than a minute counts as a quick exit.
    if (m.handle != nullptr) {
      m.quick_exits = TimestampDifferenceExceeds(m.last_start, now, 60000) ? 1 : m.quick_exits + 1;
      pfree(m.handle);
      m.handle = nullptr;
    }
    if (held(m.dbname, now)) continue;
    if (TimestampDifferenceExceeds(m.last_start, now, restart_pause_ms(m))) {
      ereport(LOG, (errmsg("pg_consistency launcher: restarting the worker for database \"%s\"", m.dbname)));
      start_worker(i, m.dbname);
    }
  }
  for (int j = 0; j < n; j++) {
    bool have = false;
    int free_slot = -1;
    for (int i = 0; i < kMaxDatabases; i++) {
      if (strcmp(g_managed[i].dbname, wanted[j]) == 0) have = true;
      if (free_slot < 0 && g_managed[i].dbname[0] == '\0') free_slot = i;
    }
    if (!have && free_slot >= 0 && !held(wanted[j], now)) start_worker(free_slot, wanted[j]);
  }
}

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
  SpinLockRelease(&s->mutex);
  before_shmem_exit(launcher_exit, 0);
  ereport(LOG, (errmsg("pg_consistency launcher started")));

  for (;;) {
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
    reconcile();
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
  }
}
