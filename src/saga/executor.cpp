// Saga execution in the background: claims due sagas with FOR UPDATE SKIP LOCKED and
// advances each by one step per transaction.
//
// pg_consistency.saga_workers = N > 0: the per-database worker's saga tick keeps N
// dedicated "pg_consistency saga worker" processes running for its database (dynamic
// background workers); they claim disjoint batches concurrently, and a slow step
// function never holds up the outbox relay or the other components of the per-database
// worker. N = 0: the per-database worker runs the batches itself, in its tick.
//
// A function step runs inside a subtransaction, as the role that defined the saga with
// SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION, in the same transaction
// that records its outcome: its effects and the saga's new state commit together or not
// at all. A failing step rolls back its own subtransaction only; the failure is then
// recorded in the batch's transaction.
#include <algorithm>
#include <climits>
#include <random>
#include <string>
#include <vector>

#include "common/backoff.hpp"
#include "pg/component.hpp"
#include "pg/guard.hpp"
#include "pg/roles.hpp"
#include "pg/gucs.hpp"
#include "pg/spi.hpp"
#include "saga/machine.hpp"
#include "saga/pg_saga.hpp"
#include "worker/wake.hpp"

extern "C" {
#include <signal.h>

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "commands/extension.h"
#include "parser/parse_func.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/regproc.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
}

namespace pgc::saga::pg {

namespace {

using pgc::pg::pg_call;
using pgc::pg::PgError;
using pgc::pg::SavedPlan;

constexpr int kMaxExecutors = 16;
constexpr int kMaxExecutorSlots = 64;
constexpr long kRestartPauseMs = 1000;
constexpr long kInlineBudgetMs = 200;

int g_saga_workers = 1;
int g_batch_size = 16;
int g_chain_steps = 4;

// ---------------------------------------------------------------------------------
// Shared memory: where the saga workers of each database are, so that a committing
// backend can set their latches directly.

struct ExecutorSlot {
  Oid dboid;
  pid_t pid;
  PGPROC* proc;
};

struct SagaShared {
  slock_t mutex;
  ExecutorSlot slots[kMaxExecutorSlots];
};

SagaShared* g_shared = nullptr;

Size shmem_size() { return MAXALIGN(sizeof(SagaShared)); }

void shmem_init() {
  bool found = false;
  g_shared = static_cast<SagaShared*>(
      ShmemInitStruct("pg_consistency saga workers", sizeof(SagaShared), &found));
  if (!found) {
    memset(g_shared, 0, sizeof(SagaShared));
    SpinLockInit(&g_shared->mutex);
  }
}

void wake_executors(Oid dboid) {
  if (g_shared == nullptr) return;
  PGPROC* procs[kMaxExecutorSlots];
  int n = 0;
  SpinLockAcquire(&g_shared->mutex);
  for (auto& slot : g_shared->slots)
    if (slot.pid != 0 && slot.dboid == dboid) procs[n++] = slot.proc;
  SpinLockRelease(&g_shared->mutex);
  // A stale PGPROC only costs a spurious wake-up of whoever owns it now.
  for (int i = 0; i < n; i++) SetLatch(&procs[i]->procLatch);
}

// The saga workers of the backend's database, at commit (see wake_workers_at_commit).
void wake_my_executors() { wake_executors(MyDatabaseId); }

// ---------------------------------------------------------------------------------
// GUCs and the component.

void define_gucs() {
  DefineCustomIntVariable(
      "pg_consistency.saga_workers", "Saga worker processes per database.",
      "N > 0 keeps N dedicated saga workers per database that claim due sagas concurrently "
      "(FOR UPDATE SKIP LOCKED); 0 runs saga steps inside the per-database worker.",
      &g_saga_workers, 1, 0, kMaxExecutors, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "pg_consistency.saga_batch_size", "Sagas a saga worker claims per transaction.",
      "The steps of a batch share one commit.", &g_batch_size, 16, 1, 1000, PGC_SIGHUP, 0,
      nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "pg_consistency.saga_chain_steps",
      "Consecutive steps one saga may run in one transaction.",
      "A saga goes on with its next step in the same transaction while that step is due at "
      "once; 1 runs every step in a transaction of its own.",
      &g_chain_steps, 4, 1, 100, PGC_SUSET, 0, nullptr, nullptr, nullptr);
}

long worker_tick();
void worker_exit();

const pgc::pg::Component kComponent = {"saga", define_gucs, shmem_size, shmem_init, worker_tick,
                                       worker_exit};
pgc::pg::ComponentRegistrar registrar(&kComponent);

// ---------------------------------------------------------------------------------
// One batch.

struct BatchStats {
  int64 steps = 0, step_failures = 0, retries = 0, compensations = 0, compensation_failures = 0,
        timeouts = 0, conflicts = 0;
};

// A step that lost a deadlock or serialization conflict runs again after 20-40 ms.
constexpr int64_t kConflictDelayMs = 20;

double unit_random() {
  static std::minstd_rand rng(static_cast<unsigned>(MyProcPid) ^
                              static_cast<unsigned>(GetCurrentTimestamp()));
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

// The search_path of this process before we narrowed it: step functions run with it,
// as they would in a session of their own.
std::string g_step_search_path;

std::string error_text(const PgError& e) {
  std::string m = e.what();
  if (e.edata() != nullptr && e.edata()->detail != nullptr) m += " (" + std::string(e.edata()->detail) + ")";
  FreeErrorData(e.edata());
  return m;
}

// Arms statement_timeout for a step function; disarms it, and forgets a timeout that
// fired after the function had already returned. A statement timeout already running
// (a session calling _advance_sagas) keeps its own deadline: the earlier one applies
// during the step, and the session's is restored afterwards.
class StepTimeout {
 public:
  explicit StepTimeout(int64_t ms) {
    if (ms <= 0) return;
    int delay = static_cast<int>(std::min<int64_t>(ms, INT_MAX));
    pg_call([&] {
      if (get_timeout_active(STATEMENT_TIMEOUT)) {
        outer_finish_ = get_timeout_finish_time(STATEMENT_TIMEOUT);
        if (outer_finish_ <= TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay)) return;
      }
      enable_timeout_after(STATEMENT_TIMEOUT, delay);
      armed_ = true;
    });
  }
  ~StepTimeout() {
    if (!armed_) return;
    disable_timeout(STATEMENT_TIMEOUT, true);
    if (get_timeout_indicator(STATEMENT_TIMEOUT, true)) QueryCancelPending = false;
    if (outer_finish_ != 0) enable_timeout_at(STATEMENT_TIMEOUT, outer_finish_);
  }
  StepTimeout(const StepTimeout&) = delete;
  StepTimeout& operator=(const StepTimeout&) = delete;

 private:
  bool armed_ = false;
  TimestampTz outer_finish_ = 0;
};

// Calls the step function as the saga's owner. Returns its jsonb object, or 0 for NULL.
Datum call_step_function(const SagaRow& row, const Action& a, int64_t timeout_ms) {
  Oid fn = InvalidOid;
  bool role_exists = false, may_execute = false, right_shape = false;
  pg_call([&] {
    List* names = stringToQualifiedNameList(a.function.c_str());
    Oid argtypes[2] = {UUIDOID, JSONBOID};
    fn = LookupFuncName(names, 2, argtypes, true);
    role_exists = SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(row.owner));
    if (OidIsValid(fn)) {
      HeapTuple tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
      if (HeapTupleIsValid(tup)) {
        Form_pg_proc p = reinterpret_cast<Form_pg_proc>(GETSTRUCT(tup));
        right_shape = p->prokind == PROKIND_FUNCTION && !p->proretset && p->prorettype == JSONBOID;
        ReleaseSysCache(tup);
      }
      if (role_exists) may_execute = pg_proc_aclcheck(fn, row.owner, ACL_EXECUTE) == ACLCHECK_OK;
    }
  });
  if (!OidIsValid(fn) || !right_shape)
    throw Error(sqlstate::kUnknownObject,
                "step function " + a.function + "(uuid, jsonb) returning jsonb does not exist");
  if (!role_exists)
    throw Error(sqlstate::kUnknownObject, "the role that defined saga \"" + row.name +
                                              "\" (OID " + std::to_string(row.owner) +
                                              ") no longer exists");
  if (!may_execute)
    throw Error(sqlstate::kInsufficientPrivilege,
                "permission denied for function " + a.function + " (the saga's role may not execute it)");

  Datum result = 0;
  bool isnull = true, is_object = false;
  {
    SettingScope path("search_path", g_step_search_path.c_str());
    StepTimeout timeout(timeout_ms);
    pgc::pg::RoleScope as_owner(row.owner, SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
    pg_call([&] {
      FmgrInfo flinfo;
      fmgr_info(fn, &flinfo);
      LOCAL_FCINFO(fcinfo, 2);
      InitFunctionCallInfoData(*fcinfo, &flinfo, 2, InvalidOid, nullptr, nullptr);
      fcinfo->args[0].value = UUIDPGetDatum(&row.id);
      fcinfo->args[0].isnull = false;
      fcinfo->args[1].value = row.data;
      fcinfo->args[1].isnull = row.data == 0;
      Datum r = FunctionCallInvoke(fcinfo);
      isnull = fcinfo->isnull;
      if (!isnull) {
        Jsonb* jb = DatumGetJsonbP(r);
        is_object = JB_ROOT_IS_OBJECT(jb);
        result = PointerGetDatum(jb);
      }
    });
  }
  if (isnull) return 0;
  if (!is_object)
    throw Error(sqlstate::kInvalidArgument,
                "step function " + a.function + " returned a JSON value that is not an object");
  return result;
}

// What in_subtransaction reports: "" when the body succeeded.
struct SubResult {
  std::string error;
  int sqlerrcode = 0;
  bool ok() const { return error.empty(); }
  // Lost to a concurrent transaction: worth running again, not a failure of the step.
  bool conflict() const {
    return sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
           sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE;
  }
};

// Runs `body` in a subtransaction: releases it on success, else rolls it back and
// returns the error.
template <typename F>
SubResult in_subtransaction(F&& body) {
  MemoryContext cxt = CurrentMemoryContext;
  ResourceOwner owner = CurrentResourceOwner;
  pg_call([] { BeginInternalSubTransaction(nullptr); });
  MemoryContextSwitchTo(cxt);
  SubResult r;
  try {
    body();
    pg_call([] { ReleaseCurrentSubTransaction(); });
    MemoryContextSwitchTo(cxt);
    CurrentResourceOwner = owner;
    return r;
  } catch (const PgError& e) {
    r.sqlerrcode = e.sqlerrcode();
    r.error = error_text(e);
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  if (r.error.empty()) r.error = "unknown error";
  pg_call([] { RollbackAndReleaseCurrentSubTransaction(); });
  MemoryContextSwitchTo(cxt);
  CurrentResourceOwner = owner;
  return r;
}

Datum merge_data(Datum data, Datum output) {
  if (data == 0) return output;
  return pg_call([&] { return DirectFunctionCall2(jsonb_concat, data, output); });
}

// Advances one claimed saga: runs what is due, and goes on with the next step while one
// is due at once (up to pg_consistency.saga_chain_steps), all in this transaction. Each
// function step runs in its own subtransaction and sees the data its predecessors
// returned. The saga's row is written and its audit events appended once, at the end,
// in the batch's transaction (which holds the row lock: an update from inside a
// subtransaction would turn that lock into a MultiXact).
void process(SagaRow& row, BatchStats& st) {
  const Definition& def = *row.def;
  std::vector<Event> events;
  bool set_error = false;
  std::string error;
  bool data_changed = false;
  bool deferral = false;
  for (int n = 0; n < g_chain_steps; n++) {
    TimestampTz now = GetCurrentTimestamp();
    Work w = next_work(row.state, def, now);
    if (w.kind == Work::Kind::kNone) break;
    bool compensating = row.state.status == Status::kCompensating;
    Transition t;
    Datum output = 0;
    bool waiting = false;
    bool deferred_now = false;
    switch (w.kind) {
      case Work::Kind::kNone:
        break;
      case Work::Kind::kSagaTimeout:
        st.timeouts++;
        st.step_failures++;
        t = saga_timed_out(row.state, def, now);
        break;
      case Work::Kind::kReplyTimeout:
        st.timeouts++;
        (compensating ? st.compensation_failures : st.step_failures)++;
        t = reply_timed_out(row.state, def, now, unit_random());
        break;
      case Work::Kind::kRunAction:
      case Work::Kind::kRunCompensation: {
        const Action& a = current_action(row.state, def);
        State attempt = begin_attempt(row.state);
        row.state = attempt;
        (compensating ? st.compensations : st.steps)++;
        if (attempt.attempts > 1) st.retries++;
        SubResult r;
        std::string failure;
        if (a.is_function()) {
          int64_t timeout_ms = def.steps[static_cast<size_t>(attempt.step)].timeout_ms;
          r = in_subtransaction([&] { output = call_step_function(row, a, timeout_ms); });
          if (r.ok()) t = succeeded(attempt, def, GetCurrentTimestamp());
          failure = r.error;
        } else {
          int64 outbox_id = 0;
          r = in_subtransaction(
              [&] { outbox_id = publish_command(row, a, attempt.attempts, compensating); });
          if (r.ok()) {
            t = command_sent(attempt, def, GetCurrentTimestamp());
            t.events.front().data.set("outbox_id", json::Value::integer(outbox_id));
            waiting = true;
          } else {
            failure = "could not send command \"" + a.command + "\": " + r.error;
          }
        }
        if (!r.ok() && r.conflict()) {
          // A deadlock or serialization failure against a concurrent transaction (often
          // another saga worker's batch): the attempt did not happen; run it again soon.
          st.conflicts++;
          (compensating ? st.compensations : st.steps)--;
          if (attempt.attempts > 1) st.retries--;
          row.state = deferred(attempt, GetCurrentTimestamp(),
                               kConflictDelayMs + static_cast<int64_t>(unit_random() * kConflictDelayMs));
          deferred_now = true;
          break;
        }
        if (!r.ok()) {
          output = 0;
          (compensating ? st.compensation_failures : st.step_failures)++;
          t = failed(attempt, def, GetCurrentTimestamp(), failure, unit_random());
        }
        break;
      }
    }
    if (deferred_now) {
      deferral = true;
      break;
    }
    if (output != 0) {
      t.events.front().raw_json = jsonb_text(output);
      row.data = merge_data(row.data, output);
      data_changed = true;
    }
    for (Event& e : t.events) events.push_back(std::move(e));
    if (t.set_error) {
      set_error = true;
      error = t.error;
    }
    row.state = t.state;
    if (waiting) break;
  }
  if (events.empty() && !deferral) return;
  store_state(row, row.state, events, set_error, error, data_changed ? row.data : 0);
}

struct Claimed {
  pg_uuid_t id;
  char* name;
  int32 version;
  Oid owner;
  char* definition_xmin;
  Datum data;
};

struct BatchResult {
  int processed = 0;
  long next_due_ms = -1;  // when processed == 0: until the next due saga (-1: none)
  bool ready = true;      // false: the extension is not installed here
};

// The due sagas first (an index scan in next_run_at order, locked, skipping rows other
// workers hold), then their definitions: a join inside the locking query could be
// planned as a scan and sort of every due row.
SavedPlan& claim_plan() {
  static SavedPlan plan(
      "WITH due AS MATERIALIZED ("
      "  SELECT id, name, definition_version, data, status, step_index, failed_step, phase, "
      "         attempts, next_run_at, deadline "
      "    FROM consistency.saga_instances "
      "   WHERE status IN ('running', 'compensating') AND next_run_at <= $1 "
      "   ORDER BY next_run_at "
      "   LIMIT $2 "
      "     FOR UPDATE SKIP LOCKED) "
      "SELECT s.id, s.name, s.definition_version, d.owner, d.xmin::text, s.data, "
      "       s.status, s.step_index, s.failed_step, s.phase, s.attempts, s.next_run_at, s.deadline "
      "  FROM due s "
      "  JOIN consistency.saga_definitions d "
      "    ON d.name = s.name AND d.version = s.definition_version "
      " ORDER BY s.next_run_at",
      {TIMESTAMPTZOID, INT4OID});
  return plan;
}

// Claims up to `limit` due sagas and advances each by one step, in the current
// transaction (SPI connected). Sets result->processed, and next_due_ms when none was due.
void advance_due(int worker_id, int limit, BatchResult* result) {
  static SavedPlan next_plan(
      "SELECT min(next_run_at) FROM consistency.saga_instances "
      " WHERE status IN ('running', 'compensating') AND next_run_at > $1",
      {TIMESTAMPTZOID});
  static SavedPlan stats_plan(
      "INSERT INTO consistency.saga_worker_stats AS w "
      "  (worker, steps_executed, step_failures, retries, compensations, compensation_failures, "
      "   timeouts, conflicts, updated_at) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, clock_timestamp()) "
      "ON CONFLICT (worker) DO UPDATE SET "
      "  steps_executed = w.steps_executed + excluded.steps_executed, "
      "  step_failures = w.step_failures + excluded.step_failures, "
      "  retries = w.retries + excluded.retries, "
      "  compensations = w.compensations + excluded.compensations, "
      "  compensation_failures = w.compensation_failures + excluded.compensation_failures, "
      "  timeouts = w.timeouts + excluded.timeouts, conflicts = w.conflicts + excluded.conflicts, "
      "  updated_at = excluded.updated_at",
      {INT4OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID});

  if (g_step_search_path.empty()) {
    const char* sp = GetConfigOption("search_path", true, false);
    g_step_search_path = sp != nullptr && *sp != '\0' ? sp : "\"$user\", public";
  }
  SettingScope path("search_path", kSafeSearchPath);
  TimestampTz now = GetCurrentTimestamp();
  std::vector<Claimed> claimed;
  std::vector<State> state_of;
  claimed.reserve(static_cast<size_t>(limit));
  uint64 n = pg_call([&] {
    Datum args[2] = {TimestampTzGetDatum(now), Int32GetDatum(limit)};
    claim_plan().execute(args, nullptr, false, 0);
    return SPI_processed;
  });
  for (uint64 i = 0; i < n; i++) {
    Claimed c{};
    pg_call([&] {
      bool isnull = false;
      c.id = *DatumGetUUIDP(pgc::pg::spi_value(i, 1, &isnull));
      c.name = pgc::pg::spi_text_copy(i, 2);
      c.version = DatumGetInt32(pgc::pg::spi_value(i, 3, &isnull));
      c.owner = DatumGetObjectId(pgc::pg::spi_value(i, 4, &isnull));
      c.definition_xmin = pgc::pg::spi_text_copy(i, 5);
      Datum d = pgc::pg::spi_value(i, 6, &isnull);
      c.data = isnull ? 0 : SPI_datumTransfer(d, false, -1);
    });
    State s;
    read_state(i, 7, &s);
    claimed.push_back(c);
    state_of.push_back(s);
  }
  BatchStats st;
  for (size_t i = 0; i < claimed.size(); i++) {
    SagaRow row;
    row.id = claimed[i].id;
    row.id_text = uuid_text(row.id);
    row.name = claimed[i].name ? claimed[i].name : "";
    row.version = claimed[i].version;
    row.owner = claimed[i].owner;
    row.state = state_of[i];
    row.def = definition_by_version(row.name, row.version,
                                    claimed[i].definition_xmin ? claimed[i].definition_xmin : "");
    row.data = claimed[i].data;
    process(row, st);
  }
  result->processed = static_cast<int>(claimed.size());
  if (result->processed > 0) {
    pg_call([&] {
      Datum v[8] = {Int32GetDatum(worker_id), Int64GetDatum(st.steps),
                    Int64GetDatum(st.step_failures), Int64GetDatum(st.retries),
                    Int64GetDatum(st.compensations), Int64GetDatum(st.compensation_failures),
                    Int64GetDatum(st.timeouts), Int64GetDatum(st.conflicts)};
      stats_plan.execute(v, nullptr, false, 0);
    });
    return;
  }
  int64 next = pg_call([&] {
    Datum arg = TimestampTzGetDatum(now);
    next_plan.execute(&arg, nullptr, false, 1);
    bool isnull = true;
    Datum d = pgc::pg::spi_value(0, 1, &isnull);
    return isnull ? static_cast<int64>(-1) : static_cast<int64>(DatumGetTimestampTz(d));
  });
  if (next >= 0) {
    TimestampTz t = GetCurrentTimestamp();
    result->next_due_ms = next <= t ? 0 : static_cast<long>((next - t + 999) / 1000);
  }
}

// One transaction: claims up to saga_batch_size due sagas and advances each one step.
BatchResult run_batch(int worker_id) {
  BatchResult result;
  bool installed = pg_call([] {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    PushActiveSnapshot(GetTransactionSnapshot());
    if (!OidIsValid(get_extension_oid("pg_consistency", true))) return false;
    pgstat_report_activity(STATE_RUNNING, "pg_consistency: advancing sagas");
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "pg_consistency: SPI_connect failed");
    return true;
  });
  if (!installed) {
    pg_call([] {
      PopActiveSnapshot();
      CommitTransactionCommand();
    });
    result.ready = false;
    return result;
  }
  advance_due(worker_id, g_batch_size, &result);
  pg_call([] {
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
    pgstat_report_activity(STATE_IDLE, nullptr);
  });
  return result;
}

long wait_for(const BatchResult& r) {
  long wait = pgc::gucs::poll_interval_ms;
  if (r.next_due_ms >= 0 && r.next_due_ms < wait) wait = r.next_due_ms;
  return wait;
}

// ---------------------------------------------------------------------------------
// The per-database worker's tick: supervise the saga workers, or run batches inline.

BackgroundWorkerHandle* g_handles[kMaxExecutors + 1];
TimestampTz g_last_start[kMaxExecutors + 1];

struct ExecutorArgs {
  Oid dboid;
  pid_t parent;
};

void start_executor(int index) {
  BackgroundWorker w;
  memset(&w, 0, sizeof(w));
  w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  w.bgw_start_time = BgWorkerStart_RecoveryFinished;
  w.bgw_restart_time = BGW_NEVER_RESTART;  // the per-database worker restarts it
  snprintf(w.bgw_library_name, BGW_MAXLEN, "pg_consistency");
  snprintf(w.bgw_function_name, BGW_MAXLEN, "pgc_saga_worker_main");
  snprintf(w.bgw_name, BGW_MAXLEN, "pg_consistency saga worker %d for database %u", index,
           MyDatabaseId);
  snprintf(w.bgw_type, BGW_MAXLEN, "pg_consistency saga worker");
  w.bgw_main_arg = Int32GetDatum(index);
  w.bgw_notify_pid = MyProcPid;
  ExecutorArgs args{MyDatabaseId, MyProcPid};
  static_assert(sizeof(ExecutorArgs) <= BGW_EXTRALEN, "bgw_extra too small");
  memcpy(w.bgw_extra, &args, sizeof(args));
  g_last_start[index] = GetCurrentTimestamp();
  MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
  BackgroundWorkerHandle* handle = nullptr;
  bool ok = RegisterDynamicBackgroundWorker(&w, &handle);
  MemoryContextSwitchTo(old);
  if (!ok) {
    ereport(WARNING, (errmsg("pg_consistency: could not start saga worker %d", index),
                      errhint("Raise max_worker_processes or lower pg_consistency.saga_workers.")));
    return;
  }
  g_handles[index] = handle;
}

BgwHandleStatus executor_status(int index) {
  pid_t pid;
  return g_handles[index] ? GetBackgroundWorkerPid(g_handles[index], &pid) : BGWH_STOPPED;
}

void forget_executor(int index) {
  if (g_handles[index] != nullptr) pfree(g_handles[index]);
  g_handles[index] = nullptr;
}

long supervise() {
  TimestampTz now = GetCurrentTimestamp();
  for (int i = 1; i <= kMaxExecutors; i++) {
    BgwHandleStatus st = executor_status(i);
    if (i <= g_saga_workers) {
      if (st != BGWH_STOPPED) continue;
      forget_executor(i);
      if (TimestampDifferenceExceeds(g_last_start[i], now, kRestartPauseMs)) start_executor(i);
    } else if (st != BGWH_STOPPED) {
      TerminateBackgroundWorker(g_handles[i]);
    } else {
      forget_executor(i);
    }
  }
  // Woken or not, the saga workers look at once; a spurious look costs one query.
  wake_executors(MyDatabaseId);
  return std::min<long>(pgc::gucs::poll_interval_ms, kRestartPauseMs);
}

long worker_tick() {
  if (g_saga_workers > 0) return supervise();
  for (int i = 1; i <= kMaxExecutors; i++)
    if (executor_status(i) != BGWH_STOPPED) TerminateBackgroundWorker(g_handles[i]);
  TimestampTz start = GetCurrentTimestamp();
  for (;;) {
    BatchResult r = run_batch(0);
    if (r.processed == 0) return wait_for(r);
    if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), kInlineBudgetMs)) return 0;
  }
}

void worker_exit() {
  for (int i = 1; i <= kMaxExecutors; i++)
    if (g_handles[i] != nullptr) TerminateBackgroundWorker(g_handles[i]);
}

// ---------------------------------------------------------------------------------
// The saga worker process.

int g_slot = -1;
MemoryContext g_loop_cxt = nullptr;

void release_slot(int, Datum) {
  if (g_shared == nullptr || g_slot < 0) return;
  SpinLockAcquire(&g_shared->mutex);
  g_shared->slots[g_slot] = ExecutorSlot{};
  SpinLockRelease(&g_shared->mutex);
}

void claim_slot() {
  if (g_shared == nullptr) return;
  SpinLockAcquire(&g_shared->mutex);
  for (int i = 0; i < kMaxExecutorSlots; i++) {
    if (g_shared->slots[i].pid == 0) {
      g_shared->slots[i] = ExecutorSlot{MyDatabaseId, MyProcPid, MyProc};
      g_slot = i;
      break;
    }
  }
  SpinLockRelease(&g_shared->mutex);
  if (g_slot >= 0) before_shmem_exit(release_slot, 0);
}

BatchResult call_batch(int index) {
  pgc::pg::CapturedError captured;
  try {
    return run_batch(index);
  } catch (...) {
    captured = pgc::pg::capture_current_exception();
  }
  pgc::pg::raise_captured(captured);
}

int g_failures = 0;

// One batch under PG_TRY: an ERROR is logged and answered with a growing pause.
long guarded_batch(int index, bool* again) {
  volatile long wait_ms = 0;
  *again = false;
  PG_TRY();
  {
    BatchResult r = call_batch(index);
    g_failures = 0;
    if (r.processed > 0) *again = true;
    else wait_ms = r.ready ? wait_for(r) : pgc::gucs::poll_interval_ms;
  }
  PG_CATCH();
  {
    HOLD_INTERRUPTS();
    MemoryContextSwitchTo(g_loop_cxt);
    ErrorData* edata = CopyErrorData();
    FlushErrorState();
    AbortOutOfAnyTransaction();
    pgstat_report_activity(STATE_IDLE, nullptr);
    g_failures++;
    // 1 s doubling to 60 s, without jitter: one worker's retries need no spreading.
    wait_ms = static_cast<long>(
        pgc::backoff_delay_ms(pgc::BackoffPolicy{1000, 60000, 2.0, 0.0}, g_failures, 0.0));
    ereport(LOG, (errmsg("pg_consistency saga worker %d: %s", index,
                         edata->message ? edata->message : "unknown error"),
                  edata->detail ? errdetail("%s", edata->detail) : 0,
                  errhint("Retrying in %ld ms.", (long)wait_ms)));
    FreeErrorData(edata);
    RESUME_INTERRUPTS();
  }
  PG_END_TRY();
  return wait_ms;
}

}  // namespace

void wake_workers_at_commit() {
  // The per-database worker runs sagas itself only without saga workers.
  if (g_saga_workers == 0 || g_shared == nullptr) pgc::worker::wake_at_commit(&kComponent);
  if (g_shared != nullptr) pg_call([] { pgc::worker::call_at_commit(wake_my_executors); });
}

}  // namespace pgc::saga::pg

// consistency._advance_sagas(max_sagas int) RETURNS int: advances up to max_sagas due
// sagas by one step in the caller's transaction, as a saga worker would. For tests and
// for databases without the worker; superuser only.
PGC_FUNCTION(pgc_advance_sagas) {
  using namespace pgc::saga::pg;
  int32 limit = PG_ARGISNULL(0) ? 100 : PG_GETARG_INT32(0);
  if (limit < 1) throw pgc::invalid_argument("max_sagas must be at least 1");
  pg_call([] {
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "pg_consistency: SPI_connect failed");
  });
  BatchResult r;
  advance_due(-1, limit, &r);
  pg_call([] { SPI_finish(); });
  PG_RETURN_INT32(r.processed);
}

extern "C" PGDLLEXPORT void pgc_saga_worker_main(Datum arg) {
  using namespace pgc::saga::pg;
  int index = DatumGetInt32(arg);
  ExecutorArgs args;
  memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, die);
  BackgroundWorkerUnblockSignals();
  BackgroundWorkerInitializeConnectionByOid(args.dboid, InvalidOid, 0);
  claim_slot();
  // Batches hold their row locks until they commit: settle a deadlock between two saga
  // workers in 100 ms rather than the default second (the step that loses is deferred).
  SetConfigOption("deadlock_timeout", "100ms", PGC_SUSET, PGC_S_OVERRIDE);
  g_loop_cxt = AllocSetContextCreate(TopMemoryContext, "pg_consistency saga worker loop",
                                     ALLOCSET_DEFAULT_SIZES);
  MemoryContextSwitchTo(g_loop_cxt);
  pgstat_report_appname("pg_consistency saga worker");
  ereport(LOG, (errmsg("pg_consistency saga worker %d started", index)));
  TimestampTz last_wake = 0;

  for (;;) {
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
    // Gone when the per-database worker that started us is, or when no longer wanted.
    if (kill(args.parent, 0) != 0 && errno == ESRCH) proc_exit(0);
    if (index > g_saga_workers) proc_exit(0);
    bool again = false;
    long wait_ms = guarded_batch(index, &again);
    MemoryContextReset(g_loop_cxt);
    if (again) continue;
    pgc::worker::wait_paced(wait_ms, &last_wake);
  }
}
