#include "worker/drop_database.hpp"

#include <csignal>
#include <cstring>

#include "pg/postgres.hpp"
#include "worker/databases.hpp"
#include "worker/shared_state.hpp"

extern "C" {
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "postmaster/bgworker.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/timestamp.h"
}

namespace pgc::worker {

namespace {

ProcessUtility_hook_type g_prev_hook = nullptr;

// Every background worker of this library connected to database `db`. Our bgw_type
// values all start with "pg_consistency".
void terminate_our_processes(Oid db) {
  pid_t pids[256];
  int n = 0;
  LWLockAcquire(ProcArrayLock, LW_SHARED);
  for (uint32 i = 0; i < ProcGlobal->allProcCount && n < 256; i++) {
    PGPROC* proc = &ProcGlobal->allProcs[i];
    if (proc->pid != 0 && proc->databaseId == db && proc->isBackgroundWorker) pids[n++] = proc->pid;
  }
  LWLockRelease(ProcArrayLock);
  for (int i = 0; i < n; i++) {
    const char* type = GetBackgroundWorkerTypeByPid(pids[i]);
    if (type != nullptr && strncmp(type, "pg_consistency", 14) == 0) (void)kill(pids[i], SIGTERM);
  }
}

// Before DROP DATABASE of a database we serve, by a role that may drop it: no new
// worker for a while, and our processes there asked to exit.
void hold_and_terminate(const char* dbname, Oid db) {
  SharedState* s = shared();
  if (s == nullptr || !OidIsValid(db) || !pg_database_ownercheck(db, GetUserId())) return;
  if (!is_listed(dbname) && find_database(db) == nullptr) return;
  SpinLockAcquire(&s->mutex);
  strlcpy(s->held_dbname, dbname, NAMEDATALEN);
  s->held_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kDropHoldMs);
  SpinLockRelease(&s->mutex);
  terminate_our_processes(db);
}

// Holds and terminates before DROP DATABASE, frees the slot after it.
void utility_hook(PlannedStmt* pstmt, const char* query, bool read_only_tree, ProcessUtilityContext context,
                  ParamListInfo params, QueryEnvironment* env, DestReceiver* dest, QueryCompletion* qc) {
  Node* stmt = pstmt->utilityStmt;
  const char* dropped = nullptr;
  Oid dropped_oid = InvalidOid;
  if (stmt != nullptr && IsA(stmt, DropdbStmt)) {
    dropped = reinterpret_cast<DropdbStmt*>(stmt)->dbname;
    dropped_oid = get_database_oid(dropped, true);
    hold_and_terminate(dropped, dropped_oid);
  }
  if (g_prev_hook != nullptr)
    g_prev_hook(pstmt, query, read_only_tree, context, params, env, dest, qc);
  else
    standard_ProcessUtility(pstmt, query, read_only_tree, context, params, env, dest, qc);
  // Dropped (an error would not have come here): its slot is free for another database.
  // A database still listed is claimed again by the launcher, which shows its worker
  // failing to connect.
  if (OidIsValid(dropped_oid)) release_dropped(dropped_oid, dropped);
}

}  // namespace

void install_drop_database_hook() {
  g_prev_hook = ProcessUtility_hook;
  ProcessUtility_hook = utility_hook;
}

}  // namespace pgc::worker
