// Advancing sagas: claiming the due ones (FOR UPDATE SKIP LOCKED) and running each by up
// to saga_chain_steps steps in the batch's transaction (process), isolating a saga that
// fails outside its steps (process_isolated, record_outside_failure), and
// consistency._advance_sagas for databases without the worker. See workers.cpp.
#include <string>
#include <vector>

#include "pg/spi.hpp"
#include "saga/advance.hpp"
#include "saga/observe.hpp"
#include "saga/settings.hpp"
#include "worker/hard_stop.hpp"

extern "C" {
#include "utils/jsonb.h"
#include "utils/timestamp.h"
}

namespace pgc::saga::backend {

using pgc::pg::pg_call;
using pgc::pg::SavedPlan;

namespace {

// A step that lost a deadlock or serialization conflict runs again after 20-40 ms (times
// the number of conflicts in a row), without counting an attempt, at most
// kMaxConflictsInARow times in a row: a step that raises these codes itself is not
// deferred forever.
constexpr int64_t kConflictDelayMs = 20;
constexpr int kMaxConflictsInARow = 10;

// A parked saga (see record_outside_failure) is looked at again after this pause.
constexpr int64_t kParkMs = 60000;

}  // namespace

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
        observe_step_timeout(
            row, current_step_name(row.state, def),
            static_cast<double>(def.steps[static_cast<size_t>(row.state.step)].timeout_ms) / 1e3);
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
        double call_seconds = -1;  // a function step's call (-1: a command was sent)
        if (a.is_function()) {
          const Step& step = def.steps[static_cast<size_t>(attempt.step)];
          char label[96];
          snprintf(label, sizeof(label), "%s%s:%c:%d", kHardStopPrefix, row.id_text.c_str(),
                   compensating ? 'c' : 'r', attempt.step);
          pgc::worker::set_hard_stop_label(label);
          TimestampTz called = GetCurrentTimestamp();
          r = in_subtransaction([&] { output = call_step_function(row, step, a); });
          call_seconds = static_cast<double>(GetCurrentTimestamp() - called) / 1e6;
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
            t.events.front().data["outbox_id"] = outbox_id;
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
        if (call_seconds >= 0)
          observe_step(row, current_step_name(attempt, def), compensating, r.ok(), call_seconds);
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
  SubResult r = in_subtransaction([&] { process(row, st, settings::chain_steps); });
  if (r.ok()) return;
  row = before;
  st = st_before;
  if (r.conflict()) return;  // lost to a concurrent transaction: due again, as it was
  for (int n = 0; n < settings::chain_steps; n++) {
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
  char* correlation_id;
};

// The saga being advanced in the batch's transaction, outside any subtransaction of
// its own: an error that escapes the batch while it is set is that saga's.
struct {
  bool set = false;
  pg_uuid_t id;
} g_current;

#define PGC_SAGA_CLAIM_COLUMNS                                                                     \
  "SELECT s.id, s.name, s.definition_version, d.owner, d.xmin::pg_catalog.text, s.data, "          \
  "       s.status, s.step_index, s.failed_step, s.phase, s.attempts, s.next_run_at, s.deadline, " \
  "       s.correlation_id "

// The due sagas first (an index scan in next_run_at order, locked, skipping rows other
// workers hold), then their definitions: a join inside the locking query could be
// planned as a scan and sort of every due row.
SavedPlan& claim_plan() {
  static SavedPlan plan(
      "WITH due AS MATERIALIZED ("
      "  SELECT id, name, definition_version, data, status, step_index, failed_step, phase, "
      "         attempts, next_run_at, deadline, correlation_id "
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
      c.correlation_id = pgc::pg::spi_text_copy(i, 14);
    });
    State s;
    read_state(i, 7, &s);
    claimed.push_back(c);
    state_of.push_back(s);
  }
}

// The saga row of a claimed row and its state (its definition is looked up by the caller).
SagaRow row_of(const Claimed& c, const State& s) {
  SagaRow row;
  row.id = c.id;
  row.id_text = uuid_text(row.id);
  row.name = c.name ? c.name : "";
  row.version = c.version;
  row.owner = c.owner;
  row.state = s;
  row.data = c.data;
  row.correlation_id = c.correlation_id ? c.correlation_id : "";
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
      process(row, st, settings::chain_steps);
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

bool claim_one(const pg_uuid_t& id, SagaRow* row) {
  std::vector<Claimed> claimed;
  std::vector<State> state_of;
  pg_call([&] {
    Datum arg = UUIDPGetDatum(&id);
    claim_one_plan().execute(&arg, nullptr, false, 1);
  });
  read_claimed(claimed, state_of);
  if (claimed.empty()) return false;
  *row = row_of(claimed[0], state_of[0]);
  row->def = definition_by_version(row->name, row->version,
                                   claimed[0].definition_xmin ? claimed[0].definition_xmin : "");
  return true;
}

bool current_saga(pg_uuid_t* id) {
  if (g_current.set) *id = g_current.id;
  return g_current.set;
}

void clear_current_saga() { g_current.set = false; }

// Advances saga `id` alone (process_isolated), if it is active and free.
void advance_one(int worker_id, const pg_uuid_t& id, BatchResult* result) {
  result->processed = 1;  // the batch that failed advances again at once
  SagaRow row;
  if (!claim_one(id, &row)) return;
  BatchStats st;
  process_isolated(row, st);
  save_stats(worker_id, st);
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
