#include "worker/processes.hpp"

#include <cerrno>
#include <csignal>

#include "pg/run_as.hpp"
#include "worker/bgworker.hpp"
#include "worker/databases.hpp"
#include "worker/loop.hpp"
#include "worker/settings.hpp"

extern "C" {
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/timestamp.h"
}

namespace pgc::worker {

namespace {

// The most processes one component may ask for.
constexpr int kMaxPerComponent = 16;
constexpr long kRestartPauseMs = 1000;

struct Started {
  BackgroundWorkerHandle* handle;
  TimestampTz last_start;
};
Started g_started[pg::kMaxComponents][kMaxPerComponent + 1];

// What a process needs to know at start, in bgw_extra.
struct ProcessArgs {
  Oid dboid;
  pid_t parent;
  int component;
  int index;
};

// How many processes component c wants now, within 0..kMaxPerComponent.
int wanted(const pg::Component* c) {
  if (c->processes == nullptr || c->process_tick == nullptr) return 0;
  int n = c->processes();
  return n < 0 ? 0 : (n > kMaxPerComponent ? kMaxPerComponent : n);
}

// Registers process `index` of component ci as a dynamic bgworker of this database.
void start_process(int ci, int index) {
  const pg::Component* c = pg::component_at(ci);
  BackgroundWorker w = dynamic_worker("pgc_process_main", c->process_type);
  snprintf(w.bgw_name, BGW_MAXLEN, "%s %d for database %u", c->process_type, index, MyDatabaseId);
  ProcessArgs args{MyDatabaseId, MyProcPid, ci, index};
  static_assert(sizeof(ProcessArgs) <= BGW_EXTRALEN, "bgw_extra too small");
  memcpy(w.bgw_extra, &args, sizeof(args));
  Started& s = g_started[ci][index];
  s.last_start = GetCurrentTimestamp();
  s.handle = start_dynamic_worker(&w);
  if (s.handle == nullptr) {
    ereport(WARNING, (errmsg("pg_consistency: could not start %s %d", c->process_type, index),
                      errhint("Raise max_worker_processes, or ask for fewer processes.")));
  }
}

// True while the process behind the handle runs (or is starting).
bool running(const Started& s) {
  pid_t pid;
  return s.handle != nullptr && GetBackgroundWorkerPid(s.handle, &pid) != BGWH_STOPPED;
}

// Drops the handle of a process that has stopped.
void forget(Started& s) {
  if (s.handle != nullptr) pfree(s.handle);
  s.handle = nullptr;
}

// ---- in the process ----

const pg::Component* g_component = nullptr;
ProcessArgs g_args;
char g_who[BGW_MAXLEN + 32];

// The process's one task: its component's process_tick.
long tick_of_process(void*) { return g_component->process_tick(g_args.index); }

// Gone when the worker that started us is, or when no longer wanted.
bool stay() {
  if (kill(g_args.parent, 0) != 0 && errno == ESRCH) return false;
  return g_args.index <= wanted(g_component);
}

// This process's row in its database's slot: the one it had before a restart, else a
// free one. ERROR when the database has kMaxProcessesPerDatabase already.
ProcessSlot* claim_process_slot(DatabaseSlot* d) {
  ProcessSlot* mine = nullptr;
  SpinLockAcquire(databases_lock());
  for (auto& p : d->processes)
    if (p.in_use && p.component == g_args.component && p.index == g_args.index) mine = &p;
  for (auto& p : d->processes)
    if (mine == nullptr && !p.in_use) {
      mine = &p;
      mine->starts = 0;
      mine->ticks = 0;
      mine->errors = 0;
      mine->last_error[0] = '\0';
    }
  if (mine != nullptr) {
    mine->in_use = true;
    mine->component = g_args.component;
    mine->index = g_args.index;
  }
  SpinLockRelease(databases_lock());
  if (mine == nullptr)
    ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                    errmsg("%s: database already has %d pg_consistency processes", g_who,
                           kMaxProcessesPerDatabase)));
  return mine;
}

}  // namespace

bool runs_in_processes(const pg::Component* c) { return wanted(c) > 0; }

long supervise_processes() {
  TimestampTz now = GetCurrentTimestamp();
  bool any = false;
  for (int ci = 0; ci < pg::component_count(); ci++) {
    const pg::Component* c = pg::component_at(ci);
    if (c->process_tick == nullptr) continue;
    any = true;
    int n = wanted(c);
    for (int i = 1; i <= kMaxPerComponent; i++) {
      Started& s = g_started[ci][i];
      bool up = running(s);
      if (i <= n) {
        if (up) continue;
        forget(s);
        if (TimestampDifferenceExceeds(s.last_start, now, kRestartPauseMs)) start_process(ci, i);
      } else if (up) {
        TerminateBackgroundWorker(s.handle);
      } else {
        forget(s);
      }
    }
  }
  return any ? kRestartPauseMs : settings::poll_interval_ms;
}

void stop_processes() {
  for (auto& per_component : g_started)
    for (auto& s : per_component)
      if (s.handle != nullptr) TerminateBackgroundWorker(s.handle);
}

}  // namespace pgc::worker

// The entry of a component's process: connects to its database, takes its row in the
// database's slot, then runs the common loop with the component's process_tick.
extern "C" PGDLLEXPORT void pgc_process_main(Datum) {
  using namespace pgc::worker;
  memcpy(&g_args, MyBgworkerEntry->bgw_extra, sizeof(g_args));
  g_component = pgc::pg::component_at(g_args.component);
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, die);
  BackgroundWorkerUnblockSignals();
  if (g_component == nullptr || g_component->process_tick == nullptr) proc_exit(1);
  snprintf(g_who, sizeof(g_who), "%s %d", g_component->process_type, g_args.index);
  BackgroundWorkerInitializeConnectionByOid(g_args.dboid, InvalidOid, 0);
  // Our own statements resolve names in pg_catalog only, whatever the database's or
  // role's default search_path says; user code gets the same path from RunAs.
  pgc::pg::pin_process_search_path();
  DatabaseSlot* d = my_database();
  if (d == nullptr) proc_exit(1);  // no slot: logged by my_database
  ProcessSlot* me = claim_process_slot(d);
  occupy(me);
  if (g_component->process_start != nullptr) g_component->process_start(g_args.index);
  pgstat_report_appname(g_component->process_type);
  ereport(LOG, (errmsg("%s started", g_who)));
  Task task{
      g_component->name, pgc::pg::component_index(g_component), tick_of_process, nullptr, nullptr, 0, 0};
  if (g_component->wait_socket != nullptr) task.socket = [](void*) { return g_component->wait_socket(); };
  run_loop(me, &task, 1, LoopHooks{g_who, stay});
}
