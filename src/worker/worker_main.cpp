// A database's worker: runs the tick of every registered component (worker/loop.hpp),
// and supervises the processes components ask for (worker/processes.hpp).
#include "pg/component.hpp"
#include "pg/run_as.hpp"
#include "worker/databases.hpp"
#include "worker/function_refs.hpp"
#include "worker/loop.hpp"
#include "worker/processes.hpp"
#include "worker/settings.hpp"

extern "C" {
#include "access/xact.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
}

namespace pgc::worker {

namespace {

ProcessSlot* g_me = nullptr;
bool g_refs_bound = false;  // function references of another cluster bound again

// At exit: the components' processes are stopped and their exit hooks run.
void worker_exit(int, Datum) {
  stop_processes();
  for (int i = 0; i < pg::component_count(); i++) {
    const pg::Component* c = pg::component_at(i);
    if (c->worker_exit != nullptr) c->worker_exit();
  }
}

// The foundation's own tick: once, the function references that another cluster bound
// (after pg_upgrade) bound again here; the test hook that makes a tick fail inside a
// transaction.
long self_tick() {
  if (!g_refs_bound) {
    rebind_function_refs();
    g_refs_bound = true;
  }
  uint32 pending = pg_atomic_read_u32(&g_me->inject_errors);
  if (pending > 0) {
    pg_atomic_fetch_sub_u32(&g_me->inject_errors, 1);
    StartTransactionCommand();
    elog(ERROR, "injected failure (consistency._debug_fail_worker_ticks)");
  }
  return settings::poll_interval_ms;
}

const pg::Component kSelf = {"worker", nullptr, nullptr, nullptr, self_tick, nullptr};
pg::ComponentRegistrar registrar(&kSelf);

// Task adapters: a component's worker_tick (while it does not run in processes of its
// own) and the supervision of processes.
long component_tick(void* arg) { return static_cast<const pg::Component*>(arg)->worker_tick(); }
bool component_in_worker(void* arg) { return !runs_in_processes(static_cast<const pg::Component*>(arg)); }
long processes_tick(void*) { return supervise_processes(); }

}  // namespace
}  // namespace pgc::worker

// The entry of a database's worker: connects, joins its database's slot, then runs the
// common loop with one task per component tick and the supervision of processes.
extern "C" PGDLLEXPORT void pgc_worker_main(Datum) {
  using namespace pgc::worker;
  namespace pg = pgc::pg;
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, die);
  BackgroundWorkerUnblockSignals();

  char dbname[NAMEDATALEN];
  strlcpy(dbname, MyBgworkerEntry->bgw_extra, NAMEDATALEN);
  // FATALs if the database does not exist; the launcher retries with a growing pause.
  BackgroundWorkerInitializeConnection(dbname, nullptr, 0);
  pg::pin_process_search_path();
  g_me = &join_as_worker(dbname)->worker;
  occupy(g_me);
  before_shmem_exit(worker_exit, 0);

  // One task per component that has a tick, then the supervision of processes.
  static Task tasks[pg::kMaxComponents + 1];
  int n = 0;
  for (int i = 0; i < pg::component_count(); i++) {
    const pg::Component* c = pg::component_at(i);
    if (c->worker_tick == nullptr) continue;
    tasks[n++] = Task{c->name, i, component_tick, const_cast<pg::Component*>(c), component_in_worker, 0, 0};
    if (c->wait_socket != nullptr)
      tasks[n - 1].socket = [](void* arg) { return static_cast<const pg::Component*>(arg)->wait_socket(); };
  }
  tasks[n++] = Task{"processes", -1, processes_tick, nullptr, nullptr, 0, 0};

  pgstat_report_appname("pg_consistency worker");
  ereport(LOG, (errmsg("pg_consistency worker started for database \"%s\"", dbname)));
  run_loop(g_me, tasks, n, LoopHooks{"pg_consistency worker", nullptr});
}
