// Hard stops: a step function that would not stop when cancelled ended its process (see
// pgc::pg::run_as_enter). The step was labelled (worker/hard_stop.hpp) with its saga,
// step and direction; the next batch of any saga worker of the database first charges
// it a failed attempt, so the saga is retried with backoff, then compensated or failed.
#include <cstdio>
#include <cstring>
#include <string>

#include "pg/spi.hpp"
#include "saga/advance.hpp"
#include "saga/settings.hpp"
#include "worker/hard_stop.hpp"

extern "C" {
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

namespace pgc::saga::backend {

using pgc::pg::pg_call;
using pgc::pg::SavedPlan;

namespace {

struct HardStopRef {
  pg_uuid_t id;
  bool compensating;
  int step;
};

// Reads "saga:<uuid>:<r|c>:<step>"; false for anything else.
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

// True when the saga is ready to run the very step (and direction) that was stopped.
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
  SagaRow row;
  if (!claim_one(ref.id, &row)) {
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
  for (int n = 0;; n++) {
    if (at_step(row.state, ref)) {
      charge_step(row, st);
      return;
    }
    if (n >= settings::chain_steps) break;
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

}  // namespace

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

}  // namespace pgc::saga::backend
