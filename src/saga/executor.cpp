// Saga execution in the background: claims due sagas with FOR UPDATE SKIP LOCKED and
// advances each by one step per transaction.
//
// pg_consistency.saga_workers = N > 0: the per-database worker's saga tick keeps N
// dedicated "pg_consistency saga worker" processes running for its database (dynamic
// background workers); they claim disjoint batches concurrently, and a slow step
// function never holds up the outbox relay or the other components of the per-database
// worker. N = 0: the per-database worker runs the batches itself, in its tick.
//
// A function step runs inside a subtransaction, in the same transaction that records its
// outcome (its effects and the saga's new state commit together or not at all), through
// pgc::pg::RunAs: as the role that defined the saga, as a security-restricted operation,
// with search_path = pg_catalog, pg_temp, a time limit (the step's timeout, else
// pg_consistency.saga_step_timeout), and every setting it changes rolled back when it
// returns. It is called by the OID stored when the saga was defined, never by name.
// A failing step rolls back its own subtransaction only; the failure is then recorded
// in the batch's transaction.
//
// One saga cannot stop the others: an error while advancing a saga outside its steps'
// subtransactions (storing its state, appending its audit events) rolls the batch back
// once; the worker then runs that saga alone, each step in a subtransaction of its own,
// and records the failure as a failed attempt of the step whose outcome could not be
// stored (retried with backoff, then compensated), or, when even that cannot be stored,
// parks the saga for a minute with the reason in last_error.
//
// A step that catches the cancellation of its time limit and goes on is ended with its
// process by the hard stop (pgc::pg::run_as_enter); the batch's transaction is lost. The
// step was labelled (worker/hard_stop.hpp) with its saga, step and direction: the next
// batch of any saga worker of the database first charges it a failed attempt
// (charge_hard_stops), so the saga is retried with backoff, then compensated or failed.
#include <algorithm>
#include <climits>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/backoff.hpp"
#include "pg/component.hpp"
#include "pg/catching.hpp"
#include "pg/guard.hpp"
#include "eventstore/es.hpp"
#include "pg/gucs.hpp"
#include "pg/run_as.hpp"
#include "pg/spi.hpp"
#include "saga/machine.hpp"
#include "saga/pg_saga.hpp"
#include "worker/hard_stop.hpp"
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

namespace pgc::saga::backend {

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
int g_step_timeout_ms = 30000;

// The hard-stop label of a function step: the prefix, then "<saga id>:<r|c>:<step>"
// (r: its action, c: its compensation).
constexpr const char* kHardStopPrefix = "saga:";

// A parked saga (see record_outside_failure) is looked at again after this pause.
constexpr int64_t kParkMs = 60000;

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
  g_shared =
      static_cast<SagaShared*>(ShmemInitStruct("pg_consistency saga workers", sizeof(SagaShared), &found));
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
  DefineCustomIntVariable("pg_consistency.saga_batch_size", "Sagas a saga worker claims per transaction.",
                          "The steps of a batch share one commit.", &g_batch_size, 16, 1, 1000, PGC_SIGHUP, 0,
                          nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "pg_consistency.saga_chain_steps", "Consecutive steps one saga may run in one transaction.",
      "A saga goes on with its next step in the same transaction while that step is due at "
      "once; 1 runs every step in a transaction of its own.",
      &g_chain_steps, 4, 1, 100, PGC_SUSET, 0, nullptr, nullptr, nullptr);
  // PGC_SUSET: no tenant can lift its own limit (SET needs a superuser), yet a superuser
  // can set it per database (ALTER DATABASE ... SET, read by saga workers when they
  // start) or in a session that runs _advance_sagas.
  DefineCustomIntVariable(
      "pg_consistency.saga_step_timeout",
      "Time limit of a saga function step or compensation, and the most a step's own \"timeout\" may give "
      "it.",
      "The step is cancelled (a statement timeout) and counts as a failed attempt; 0: no limit.",
      &g_step_timeout_ms, 30000, 0, INT_MAX, PGC_SUSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);
}

long worker_tick();
void worker_exit();

const pgc::pg::Component kComponent = {"saga", define_gucs, shmem_size, shmem_init, worker_tick, worker_exit};
pgc::pg::ComponentRegistrar registrar(&kComponent);

// ---------------------------------------------------------------------------------
// One batch.

struct BatchStats {
  int64 steps = 0, step_failures = 0, retries = 0, compensations = 0, compensation_failures = 0, timeouts = 0,
        conflicts = 0;
};

// A step that lost a deadlock or serialization conflict runs again after 20-40 ms (times
// the number of conflicts in a row), without counting an attempt, at most
// kMaxConflictsInARow times in a row: a step that raises these codes itself is not
// deferred forever.
constexpr int64_t kConflictDelayMs = 20;
constexpr int kMaxConflictsInARow = 10;

// Conflicts in a row per saga (this process only; bounded).
std::unordered_map<std::string, int> g_conflicts;

int note_conflict(const std::string& id) {
  if (g_conflicts.size() > 10000) g_conflicts.clear();
  return ++g_conflicts[id];
}

void forget_conflicts(const std::string& id) {
  if (!g_conflicts.empty()) g_conflicts.erase(id);
}

double unit_random() {
  static std::minstd_rand rng(static_cast<unsigned>(MyProcPid) ^
                              static_cast<unsigned>(GetCurrentTimestamp()));
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

// The message (and detail) of an error, clipped: a step's error text goes into an audit
// event and last_error, and must not make them too large to store.
std::string error_text(const PgError& e) {
  std::string m = e.what();
  if (e.edata() != nullptr && e.edata()->detail != nullptr) m += " (" + std::string(e.edata()->detail) + ")";
  FreeErrorData(e.edata());
  return clip_text(m);
}

// The step's time limit: its own timeout, else pg_consistency.saga_step_timeout; and
// never more than that setting while it is set, so a tenant's definition cannot hold a
// saga worker longer than the superuser allows (0 and kNoLimit: none).
int64_t step_limit_ms(const Step& step) {
  int64_t cap = g_step_timeout_ms;
  if (step.timeout_ms == kNoLimit) return cap;
  return cap > 0 ? std::min<int64_t>(step.timeout_ms, cap) : step.timeout_ms;
}

// Calls the step function, by the OID stored at definition, as the saga's owner (see
// pgc::pg::RunAs). Returns its jsonb object, or 0 for NULL.
Datum call_step_function(const SagaRow& row, const Step& step, const Action& a) {
  Oid fn = static_cast<Oid>(a.function_oid);
  if (!OidIsValid(fn))
    throw Error(sqlstate::kUnknownObject, "step function " + a.function + " of saga \"" +
                                              clip_text(row.name, 200) +
                                              "\" was stored without its OID; define the saga again");
  bool exists = false, role_exists = false, may_execute = false, right_shape = false;
  pg_call([&] {
    role_exists = SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(row.owner));
    HeapTuple tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
    if (HeapTupleIsValid(tup)) {
      exists = true;
      Form_pg_proc p = reinterpret_cast<Form_pg_proc>(GETSTRUCT(tup));
      right_shape = p->prokind == PROKIND_FUNCTION && !p->proretset && p->prorettype == JSONBOID &&
                    p->pronargs == 2 && p->proargtypes.values[0] == UUIDOID &&
                    p->proargtypes.values[1] == JSONBOID;
      ReleaseSysCache(tup);
    }
    if (exists && role_exists) may_execute = pgc::pg::may_execute(fn, row.owner);
  });
  if (!exists)
    throw Error(sqlstate::kUnknownObject,
                "step function " + a.function + " (OID " + std::to_string(fn) +
                    ") no longer exists; a function created since under that name is not "
                    "called: define the saga again to use it");
  if (!right_shape)
    throw Error(sqlstate::kUnknownObject, "step function " + a.function + " (OID " + std::to_string(fn) +
                                              ") is no longer fn(uuid, jsonb) returning jsonb");
  if (!role_exists)
    throw Error(sqlstate::kUnknownObject, "the role that defined saga \"" + clip_text(row.name, 200) +
                                              "\" (OID " + std::to_string(row.owner) + ") no longer exists");
  if (!may_execute)
    throw Error(sqlstate::kInsufficientPrivilege,
                "permission denied for function " + a.function + " (the saga's role may not execute it)");

  Datum result = 0;
  bool isnull = true, is_object = false;
  int64 bytes = 0;
  {
    pgc::pg::RunAs as_owner(row.owner, step_limit_ms(step));
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
        bytes = static_cast<int64>(VARSIZE_ANY_EXHDR(jb));
        result = PointerGetDatum(jb);
      }
    });
  }
  if (isnull) return 0;
  if (!is_object)
    throw Error(sqlstate::kInvalidArgument,
                "step function " + a.function + " returned a JSON value that is not an object");
  // The output goes into the step's audit event: refuse it here, as a failed attempt,
  // rather than fail the batch when the event is appended.
  int64 event_bytes = bytes + static_cast<int64>(step.name.size()) + 64;
  if (event_bytes > pgc::eventstore::g_max_event_bytes)
    throw Error(sqlstate::kInvalidArgument, "step function " + a.function + " returned " +
                                                std::to_string(bytes) +
                                                " bytes of output; its audit event may hold at most " +
                                                std::to_string(pgc::eventstore::g_max_event_bytes) +
                                                " bytes (pg_consistency.max_event_bytes)");
  return result;
}

// What in_subtransaction reports: "" when the body succeeded.
struct SubResult {
  std::string error;
  int sqlerrcode = 0;
  bool ok() const { return error.empty(); }
  // Lost to a concurrent transaction: worth running again, not a failure of the step.
  bool conflict() const {
    return sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED || sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE;
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
// is due at once (up to `max_steps`), all in this transaction. Each function step runs
// in its own subtransaction and sees the data its predecessors returned. The saga's row
// is written and its audit events appended once, at the end, in the batch's transaction
// (which holds the row lock: an update from inside a subtransaction would turn that lock
// into a MultiXact). Returns false when nothing was due.
bool process(SagaRow& row, BatchStats& st, int max_steps) {
  const Definition& def = *row.def;
  std::vector<Event> events;
  bool set_error = false;
  std::string error;
  bool data_changed = false;
  bool deferral = false;
  for (int n = 0; n < max_steps; n++) {
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
          const Step& step = def.steps[static_cast<size_t>(attempt.step)];
          char label[96];
          snprintf(label, sizeof(label), "%s%s:%c:%d", kHardStopPrefix, row.id_text.c_str(),
                   compensating ? 'c' : 'r', attempt.step);
          pgc::worker::set_hard_stop_label(label);
          r = in_subtransaction([&] { output = call_step_function(row, step, a); });
          pgc::worker::clear_hard_stop_label();
          if (r.ok()) t = succeeded(attempt, def, GetCurrentTimestamp());
          failure = r.error;
          int64_t limit = step_limit_ms(step);
          if (!r.ok() && r.sqlerrcode == ERRCODE_QUERY_CANCELED && limit > 0)
            failure = "step function " + a.function + " ran past its time limit of " + format_ms(limit) +
                      ": " + r.error;
        } else {
          int64 outbox_id = 0;
          r = in_subtransaction([&] { outbox_id = publish_command(row, a, attempt.attempts, compensating); });
          if (r.ok()) {
            t = command_sent(attempt, def, GetCurrentTimestamp());
            t.events.front().data.set("outbox_id", json::Value::integer(outbox_id));
            waiting = true;
          } else {
            failure = "could not send command \"" + a.command + "\": " + r.error;
          }
        }
        int conflicts = !r.ok() && r.conflict() ? note_conflict(row.id_text) : 0;
        if (conflicts > kMaxConflictsInARow) {
          forget_conflicts(row.id_text);
          failure += " (" + std::to_string(conflicts) + " conflicts in a row: counted as a failed attempt)";
        } else if (conflicts > 0) {
          // A deadlock or serialization failure against a concurrent transaction (often
          // another saga worker's batch): the attempt did not happen; run it again soon.
          st.conflicts++;
          (compensating ? st.compensations : st.steps)--;
          if (attempt.attempts > 1) st.retries--;
          row.state = deferred(
              attempt, GetCurrentTimestamp(),
              conflicts * (kConflictDelayMs + static_cast<int64_t>(unit_random() * kConflictDelayMs)));
          deferred_now = true;
          break;
        }
        if (conflicts == 0) forget_conflicts(row.id_text);
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
  if (events.empty() && !deferral) return false;
  store_state(row, row.state, events, set_error, error, data_changed ? row.data : 0);
  return true;
}

// A saga whose outcome could not be recorded: the step it was at has a failed attempt
// with the reason (retried with its backoff, then compensated, like any failure), in a
// subtransaction of its own. When even that cannot be stored, the saga is parked: due
// again in kParkMs, with the reason in last_error (no audit event: appending is what
// may be failing). Raises only when the saga cannot be parked either.
void record_outside_failure(SagaRow& row, const std::string& why, BatchStats& st) {
  std::string step = current_step_name(row.state, *row.def);
  std::string reason = clip_text("could not record the outcome of step \"" + step + "\": " + why);
  bool compensating = row.state.status == Status::kCompensating;
  SubResult r = in_subtransaction([&] {
    State attempt =
        row.state.phase == Phase::kWaiting && row.state.attempts > 0 ? row.state : begin_attempt(row.state);
    Transition t = failed(attempt, *row.def, GetCurrentTimestamp(), reason, unit_random());
    store_state(row, t.state, t.events, true, t.error, 0);
  });
  if (r.ok()) {
    (compensating ? st.compensation_failures : st.step_failures)++;
    return;
  }
  std::string parked = clip_text(reason + "; the failure could not be recorded either (" + r.error +
                                 "); parked for " + format_ms(kParkMs));
  static SavedPlan park_plan(
      "UPDATE consistency.saga_instances "
      "   SET next_run_at = pg_catalog.clock_timestamp() "
      "                     OPERATOR(pg_catalog.+) $2::pg_catalog.interval, "
      "       last_error = $3, updated_at = pg_catalog.clock_timestamp() "
      " WHERE id OPERATOR(pg_catalog.=) $1",
      {UUIDOID, TEXTOID, TEXTOID});
  SubResult p = in_subtransaction([&] {
    std::string delay = std::to_string(kParkMs) + " ms";
    pg_call([&] {
      Datum v[3] = {UUIDPGetDatum(&row.id), CStringGetTextDatum(delay.c_str()),
                    CStringGetTextDatum(parked.c_str())};
      park_plan.execute(v, nullptr, false, 0);
    });
  });
  if (!p.ok())
    throw Error(sqlstate::kInternal, "saga " + row.id_text + ": " + parked + "; parking failed: " + p.error);
  pg_call([&] {
    ereport(WARNING, (errmsg("pg_consistency: saga %s parked: %s", row.id_text.c_str(), parked.c_str())));
  });
}

// Advances one saga apart from the others, for a saga that made a batch fail or from
// _advance_sagas: the whole chain in a subtransaction; if that fails outside a step, the
// steps again one per subtransaction, so that the failure is charged to the step whose
// outcome could not be stored.
void process_isolated(SagaRow& row, BatchStats& st) {
  SagaRow before = row;
  BatchStats st_before = st;
  SubResult r = in_subtransaction([&] { process(row, st, g_chain_steps); });
  if (r.ok()) return;
  row = before;
  st = st_before;
  if (r.conflict()) return;  // lost to a concurrent transaction: due again, as it was
  for (int n = 0; n < g_chain_steps; n++) {
    before = row;
    st_before = st;
    bool stepped = false;
    r = in_subtransaction([&] { stepped = process(row, st, 1); });
    if (r.ok()) {
      if (!stepped || !is_active(row.state.status) || row.state.phase == Phase::kWaiting) return;
      continue;
    }
    row = before;
    st = st_before;
    if (!r.conflict()) record_outside_failure(row, r.error, st);
    return;
  }
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

// The saga being advanced in the batch's transaction, outside any subtransaction of
// its own: an error that escapes the batch while it is set is that saga's.
struct {
  bool set = false;
  pg_uuid_t id;
} g_current;

#define PGC_SAGA_CLAIM_COLUMNS                                                            \
  "SELECT s.id, s.name, s.definition_version, d.owner, d.xmin::pg_catalog.text, s.data, " \
  "       s.status, s.step_index, s.failed_step, s.phase, s.attempts, s.next_run_at, s.deadline "

// The due sagas first (an index scan in next_run_at order, locked, skipping rows other
// workers hold), then their definitions: a join inside the locking query could be
// planned as a scan and sort of every due row.
SavedPlan& claim_plan() {
  static SavedPlan plan(
      "WITH due AS MATERIALIZED ("
      "  SELECT id, name, definition_version, data, status, step_index, failed_step, phase, "
      "         attempts, next_run_at, deadline "
      "    FROM consistency.saga_instances "
      "   WHERE status OPERATOR(pg_catalog.=) ANY ('{running,compensating}'::pg_catalog.text[]) "
      "     AND next_run_at OPERATOR(pg_catalog.<=) $1 "
      "   ORDER BY next_run_at "
      "   LIMIT $2 "
      "     FOR UPDATE SKIP LOCKED) " PGC_SAGA_CLAIM_COLUMNS
      "  FROM due s "
      "  JOIN consistency.saga_definitions d "
      "    ON d.name OPERATOR(pg_catalog.=) s.name "
      "   AND d.version OPERATOR(pg_catalog.=) s.definition_version "
      " ORDER BY s.next_run_at",
      {TIMESTAMPTZOID, INT4OID});
  return plan;
}

// One saga by id, if it is active and no other worker holds it.
SavedPlan& claim_one_plan() {
  static SavedPlan plan(
      PGC_SAGA_CLAIM_COLUMNS
      "  FROM consistency.saga_instances s "
      "  JOIN consistency.saga_definitions d "
      "    ON d.name OPERATOR(pg_catalog.=) s.name "
      "   AND d.version OPERATOR(pg_catalog.=) s.definition_version "
      " WHERE s.id OPERATOR(pg_catalog.=) $1 "
      "   AND s.status OPERATOR(pg_catalog.=) ANY ('{running,compensating}'::pg_catalog.text[]) "
      "   FOR UPDATE OF s SKIP LOCKED",
      {UUIDOID});
  return plan;
}

// Reads the claimed rows of the last claim query.
void read_claimed(std::vector<Claimed>& claimed, std::vector<State>& state_of) {
  uint64 n = SPI_processed;
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
}

SagaRow row_of(const Claimed& c, const State& s) {
  SagaRow row;
  row.id = c.id;
  row.id_text = uuid_text(row.id);
  row.name = c.name ? c.name : "";
  row.version = c.version;
  row.owner = c.owner;
  row.state = s;
  row.data = c.data;
  return row;
}

void save_stats(int worker_id, const BatchStats& st) {
  static SavedPlan stats_plan(
      "INSERT INTO consistency.saga_worker_stats AS w "
      "  (worker, steps_executed, step_failures, retries, compensations, compensation_failures, "
      "   timeouts, conflicts, updated_at) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, pg_catalog.clock_timestamp()) "
      "ON CONFLICT (worker) DO UPDATE SET "
      "  steps_executed = w.steps_executed OPERATOR(pg_catalog.+) excluded.steps_executed, "
      "  step_failures = w.step_failures OPERATOR(pg_catalog.+) excluded.step_failures, "
      "  retries = w.retries OPERATOR(pg_catalog.+) excluded.retries, "
      "  compensations = w.compensations OPERATOR(pg_catalog.+) excluded.compensations, "
      "  compensation_failures = w.compensation_failures OPERATOR(pg_catalog.+) "
      "excluded.compensation_failures, "
      "  timeouts = w.timeouts OPERATOR(pg_catalog.+) excluded.timeouts, "
      "  conflicts = w.conflicts OPERATOR(pg_catalog.+) excluded.conflicts, "
      "  updated_at = excluded.updated_at",
      {INT4OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID});
  pg_call([&] {
    Datum v[8] = {Int32GetDatum(worker_id),        Int64GetDatum(st.steps),
                  Int64GetDatum(st.step_failures), Int64GetDatum(st.retries),
                  Int64GetDatum(st.compensations), Int64GetDatum(st.compensation_failures),
                  Int64GetDatum(st.timeouts),      Int64GetDatum(st.conflicts)};
    stats_plan.execute(v, nullptr, false, 0);
  });
}

// Claims up to `limit` due sagas and advances each, in the current transaction (SPI
// connected). Sets result->processed, and next_due_ms when none was due. `isolate`:
// each saga apart in subtransactions (process_isolated), for _advance_sagas, which cannot
// roll back its caller's transaction; a saga worker advances the batch directly and
// isolates only a saga that made a batch fail (advance_one).
void advance_due(int worker_id, int limit, bool isolate, BatchResult* result) {
  static SavedPlan next_plan(
      "SELECT pg_catalog.min(next_run_at) FROM consistency.saga_instances "
      " WHERE status OPERATOR(pg_catalog.=) ANY ('{running,compensating}'::pg_catalog.text[]) "
      "   AND next_run_at OPERATOR(pg_catalog.>) $1",
      {TIMESTAMPTZOID});

  g_current.set = false;
  TimestampTz now = GetCurrentTimestamp();
  std::vector<Claimed> claimed;
  std::vector<State> state_of;
  claimed.reserve(static_cast<size_t>(limit));
  pg_call([&] {
    Datum args[2] = {TimestampTzGetDatum(now), Int32GetDatum(limit)};
    claim_plan().execute(args, nullptr, false, 0);
  });
  read_claimed(claimed, state_of);
  BatchStats st;
  for (size_t i = 0; i < claimed.size(); i++) {
    g_current.id = claimed[i].id;
    g_current.set = !isolate;
    SagaRow row = row_of(claimed[i], state_of[i]);
    row.def = definition_by_version(row.name, row.version,
                                    claimed[i].definition_xmin ? claimed[i].definition_xmin : "");
    if (isolate)
      process_isolated(row, st);
    else
      process(row, st, g_chain_steps);
    g_current.set = false;
  }
  result->processed = static_cast<int>(claimed.size());
  if (result->processed > 0) {
    save_stats(worker_id, st);
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

// Advances saga `id` alone (process_isolated), if it is active and free.
void advance_one(int worker_id, const pg_uuid_t& id, BatchResult* result) {
  std::vector<Claimed> claimed;
  std::vector<State> state_of;
  pg_call([&] {
    Datum arg = UUIDPGetDatum(&id);
    claim_one_plan().execute(&arg, nullptr, false, 1);
  });
  read_claimed(claimed, state_of);
  result->processed = 1;  // the batch that failed advances again at once
  if (claimed.empty()) return;
  BatchStats st;
  SagaRow row = row_of(claimed[0], state_of[0]);
  row.def = definition_by_version(row.name, row.version,
                                  claimed[0].definition_xmin ? claimed[0].definition_xmin : "");
  process_isolated(row, st);
  save_stats(worker_id, st);
}

// ---------------------------------------------------------------------------------
// Hard stops: a step function that would not stop when cancelled ended its process.

struct HardStopRef {
  pg_uuid_t id;
  bool compensating;
  int step;
};

bool parse_hard_stop(const char* label, HardStopRef* out) {
  const char* p = label + strlen(kHardStopPrefix);
  char uuid[40];
  char dir = 0;
  int step = -1;
  if (strlen(p) < 36) return false;
  memcpy(uuid, p, 36);
  uuid[36] = '\0';
  if (sscanf(p + 36, ":%c:%d", &dir, &step) != 2 || (dir != 'r' && dir != 'c') || step < 0) return false;
  pg_uuid_t* id = pg_call([&] { return DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(uuid))); });
  out->id = *id;
  out->compensating = dir == 'c';
  out->step = step;
  return true;
}

bool at_step(const State& s, const HardStopRef& ref) {
  return is_active(s.status) && s.phase == Phase::kReady && s.step == ref.step &&
         (s.status == Status::kCompensating) == ref.compensating;
}

// The step `ref` names of saga `row` gets a failed attempt with the reason (retried with
// its backoff, then compensated, like any failure).
void charge_step(SagaRow& row, BatchStats& st) {
  const Definition& def = *row.def;
  const Action& a = current_action(row.state, def);
  const Step& step = def.steps[static_cast<size_t>(row.state.step)];
  bool compensating = row.state.status == Status::kCompensating;
  int64_t limit = step_limit_ms(step);
  std::string reason = "step function " + a.function + " ran past its time limit" +
                       (limit > 0 ? " of " + format_ms(limit) : std::string()) +
                       " and did not stop when cancelled; the saga worker was stopped";
  State attempt = begin_attempt(row.state);
  Transition t = failed(attempt, def, GetCurrentTimestamp(), reason, unit_random());
  store_state(row, t.state, t.events, true, t.error, 0);
  (compensating ? st.compensation_failures : st.step_failures)++;
  pg_call([&] {
    ereport(LOG, (errmsg("pg_consistency: saga %s, step \"%s\": %s; attempt %d charged", row.id_text.c_str(),
                         step.name.c_str(), reason.c_str(), attempt.attempts)));
  });
}

// Charges one hard stop. The lost transaction may have run earlier steps of the saga's
// chain before the one that was stopped: those run again first, one at a time, so that
// the charge lands on the step that would not stop.
void charge_hard_stop(const worker::HardStopEntry& e, BatchStats& st) {
  HardStopRef ref;
  if (!parse_hard_stop(e.label, &ref)) return;
  std::vector<Claimed> claimed;
  std::vector<State> state_of;
  pg_call([&] {
    Datum arg = UUIDPGetDatum(&ref.id);
    claim_one_plan().execute(&arg, nullptr, false, 1);
  });
  read_claimed(claimed, state_of);
  if (claimed.empty()) {
    // Ended since, or another worker holds it now: keep the charge for later then.
    static SavedPlan active_plan(
        "SELECT 1 FROM consistency.saga_instances WHERE id OPERATOR(pg_catalog.=) $1 "
        "   AND status OPERATOR(pg_catalog.=) ANY ('{running,compensating}'::pg_catalog.text[])",
        {UUIDOID});
    bool active = pg_call([&] {
      Datum arg = UUIDPGetDatum(&ref.id);
      active_plan.execute(&arg, nullptr, true, 1);
      return SPI_processed > 0;
    });
    if (active) pgc::worker::put_back_hard_stop(e);
    return;
  }
  SagaRow row = row_of(claimed[0], state_of[0]);
  row.def = definition_by_version(row.name, row.version,
                                  claimed[0].definition_xmin ? claimed[0].definition_xmin : "");
  for (int n = 0;; n++) {
    if (at_step(row.state, ref)) {
      charge_step(row, st);
      return;
    }
    if (n >= g_chain_steps) break;
    SagaRow before = row;
    BatchStats st_before = st;
    bool stepped = false;
    SubResult r = in_subtransaction([&] { stepped = process(row, st, 1); });
    if (!r.ok()) {
      row = before;
      st = st_before;
      if (!r.conflict()) record_outside_failure(row, r.error, st);
      return;
    }
    if (!stepped || !is_active(row.state.status) || row.state.phase == Phase::kWaiting) break;
  }
  pg_call([&] {
    ereport(LOG, (errmsg("pg_consistency: saga %s was stopped in step %d but is elsewhere now; "
                         "the hard stop is not charged",
                         row.id_text.c_str(), ref.step)));
  });
}

bool begin_batch(const char* activity);
void commit_batch();

// Charges the hard stops of this database's sagas that earlier processes left, in a
// transaction of its own, before the next batch.
void charge_hard_stops(int worker_id) {
  worker::HardStopEntry entries[worker::kMaxHardStops];
  int n = worker::take_hard_stops(kHardStopPrefix, entries, worker::kMaxHardStops);
  if (n == 0) return;
  if (!begin_batch("pg_consistency: charging stopped saga steps")) return;
  BatchStats st;
  for (int i = 0; i < n; i++) {
    SubResult r = in_subtransaction([&] { charge_hard_stop(entries[i], st); });
    if (!r.ok())
      pg_call([&] {
        ereport(LOG, (errmsg("pg_consistency: could not charge the hard stop of %s: %s", entries[i].label,
                             r.error.c_str())));
      });
  }
  save_stats(worker_id, st);
  commit_batch();
}

// Starts a transaction with SPI connected; false (and nothing open) when the extension
// is not installed in this database.
bool begin_batch(const char* activity) {
  bool installed = pg_call([&] {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    PushActiveSnapshot(GetTransactionSnapshot());
    if (!OidIsValid(get_extension_oid("pg_consistency", true))) return false;
    pgstat_report_activity(STATE_RUNNING, activity);
    pgc::pg::spi_connect();
    return true;
  });
  if (!installed) {
    pg_call([] {
      PopActiveSnapshot();
      CommitTransactionCommand();
    });
  }
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
    advance_due(worker_id, g_batch_size, false, &result);
  } catch (const PgError& e) {
    if (!g_current.set) throw;
    poisoned = true;
    why = error_text(e);
  } catch (const std::exception& e) {
    if (!g_current.set) throw;
    poisoned = true;
    why = clip_text(e.what());
  }
  if (!poisoned) {
    commit_batch();
    return result;
  }
  poison = g_current.id;
  g_current.set = false;
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
  snprintf(w.bgw_name, BGW_MAXLEN, "pg_consistency saga worker %d for database %u", index, MyDatabaseId);
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

// One batch; an ERROR is caught (its transaction aborted, a step's time limit
// disarmed), logged and answered with a growing pause (*failed set: the caller waits it
// out whatever wakes it).
long guarded_batch(int index, bool* again, bool* failed) {
  struct Call {
    int index;
    long wait_ms;
    bool again;
  } call{index, 0, false};
  *again = false;
  *failed = false;
  ErrorData* edata = pgc::pg::run_aborting_on_error(
      [](void* p) {
        auto* c = static_cast<Call*>(p);
        BatchResult r = call_batch(c->index);
        g_failures = 0;
        if (r.processed > 0)
          c->again = true;
        else
          c->wait_ms = r.ready ? wait_for(r) : pgc::gucs::poll_interval_ms;
      },
      &call, g_loop_cxt);
  if (edata == nullptr) {
    *again = call.again;
    return call.wait_ms;
  }
  g_failures++;
  *failed = true;
  // 1 s doubling to 60 s, without jitter: one worker's retries need no spreading.
  long wait_ms =
      static_cast<long>(pgc::backoff_delay_ms(pgc::BackoffPolicy{1000, 60000, 2.0, 0.0}, g_failures, 0.0));
  ereport(LOG, (errmsg("pg_consistency saga worker %d: %s", index,
                       edata->message ? edata->message : "unknown error"),
                edata->detail ? errdetail("%s", edata->detail) : 0, errhint("Retrying in %ld ms.", wait_ms)));
  FreeErrorData(edata);
  return wait_ms;
}

}  // namespace

void wake_workers_at_commit() {
  // The per-database worker runs sagas itself only without saga workers.
  if (g_saga_workers == 0 || g_shared == nullptr) pgc::worker::wake_at_commit(&kComponent);
  if (g_shared != nullptr) pg_call([] { pgc::worker::call_at_commit(wake_my_executors); });
}

}  // namespace pgc::saga::backend

// consistency._advance_sagas(max_sagas int) RETURNS int: advances up to max_sagas due
// sagas by one step in the caller's transaction, as a saga worker would. For tests and
// for databases without the worker; superuser only.
PGC_FUNCTION(pgc_advance_sagas) {
  using namespace pgc::saga::backend;
  int32 limit = PG_ARGISNULL(0) ? 100 : PG_GETARG_INT32(0);
  if (limit < 1) throw pgc::invalid_argument("max_sagas must be at least 1");
  pg_call([] { pgc::pg::spi_connect(); });
  BatchResult r;
  advance_due(-1, limit, true, &r);
  pg_call([] { SPI_finish(); });
  PG_RETURN_INT32(r.processed);
}

extern "C" PGDLLEXPORT void pgc_saga_worker_main(Datum arg) {
  using namespace pgc::saga::backend;
  int index = DatumGetInt32(arg);
  ExecutorArgs args;
  memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, die);
  BackgroundWorkerUnblockSignals();
  BackgroundWorkerInitializeConnectionByOid(args.dboid, InvalidOid, 0);
  // Our own statements resolve names in pg_catalog only, whatever the database's or
  // role's default search_path says; step functions get the same path from RunAs.
  pgc::pg::pin_process_search_path();
  claim_slot();
  // Batches hold their row locks until they commit: settle a deadlock between two saga
  // workers in 100 ms rather than the default second (the step that loses is deferred).
  SetConfigOption("deadlock_timeout", "100ms", PGC_SUSET, PGC_S_OVERRIDE);
  g_loop_cxt =
      AllocSetContextCreate(TopMemoryContext, "pg_consistency saga worker loop", ALLOCSET_DEFAULT_SIZES);
  MemoryContextSwitchTo(g_loop_cxt);
  pgstat_report_appname("pg_consistency saga worker");
  ereport(LOG, (errmsg("pg_consistency saga worker %d started", index)));
  TimestampTz last_wake = 0;
  auto housekeeping = [&] {
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
    // Gone when the per-database worker that started us is, or when no longer wanted.
    if (kill(args.parent, 0) != 0 && errno == ESRCH) proc_exit(0);
    if (index > g_saga_workers) proc_exit(0);
  };

  for (;;) {
    housekeeping();
    bool again = false, failed = false;
    long wait_ms = guarded_batch(index, &again, &failed);
    MemoryContextReset(g_loop_cxt);
    if (again) continue;
    if (!failed) {
      pgc::worker::wait_paced(wait_ms, &last_wake);
      continue;
    }
    // The error backoff is waited out: wake-ups (the supervisor's every second, commits
    // of start_saga) end a paced wait early, and would turn the backoff into a retry
    // loop.
    TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);
    for (;;) {
      long left = static_cast<long>((until - GetCurrentTimestamp() + 999) / 1000);
      if (left <= 0) break;
      pgc::worker::wait_paced(left, &last_wake);
      housekeeping();
    }
  }
}
