#include "worker/drop_database.hpp"

#include <csignal>
#include <cstring>

#include "pg/postgres.hpp"
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

void hold_and_terminate(const char* dbname) {
  SharedState* s = shared();
  if (s == nullptr || dbname == nullptr) return;
  Oid db = get_database_oid(dbname, true);
  if (!OidIsValid(db) || !pg_database_ownercheck(db, GetUserId())) return;
  bool served = false;
  SpinLockAcquire(&s->mutex);
  for (auto& slot : s->slots) served |= strcmp(slot.dbname, dbname) == 0;
  if (served) {
    strlcpy(s->held_dbname, dbname, NAMEDATALEN);
    s->held_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kDropHoldMs);
  }
  SpinLockRelease(&s->mutex);
  if (served) terminate_our_processes(db);
}

void utility_hook(PlannedStmt* pstmt, const char* query, bool read_only_tree, ProcessUtilityContext context,
                  ParamListInfo params, QueryEnvironment* env, DestReceiver* dest, QueryCompletion* qc) {
  Node* stmt = pstmt->utilityStmt;
  if (stmt != nullptr && IsA(stmt, DropdbStmt))
    hold_and_terminate(reinterpret_cast<DropdbStmt*>(stmt)->dbname);
  if (g_prev_hook != nullptr)
    g_prev_hook(pstmt, query, read_only_tree, context, params, env, dest, qc);
  else
    standard_ProcessUtility(pstmt, query, read_only_tree, context, params, env, dest, qc);
}

}  // namespace

void install_drop_database_hook() {
  g_prev_hook = ProcessUtility_hook;
  ProcessUtility_hook = utility_hook;
}

}  // namespace pgc::worker
