// consistency._metrics_twopc() and consistency._integrity_twopc(), aggregated by the
// operations functions consistency.metrics() and consistency.check_integrity().
#include <string>

#include "pg/guard.hpp"
#include "pg/run_as.hpp"
#include "pg/spi.hpp"
#include "twopc/coordinator.hpp"
#include "twopc/state.hpp"

extern "C" {
#include "utils/timestamp.h"
}

using namespace pgc;
using namespace pgc::twopc;

namespace {

struct Catalog {
  int64 participants = 0;
  int64 pending = 0;            // decision rows: commits not yet confirmed on a participant
  double oldest_pending_s = 0;  // age of the oldest one
  int64 orphaned = 0;           // decision rows of dropped participants
  int64 stale = 0;              // pending for longer than the stale limit
  int64 dropped_grantees = 0;   // participant grants whose role was dropped
};

// How long a decision row may wait for its COMMIT PREPARED before integrity calls it
// stale: ten recovery intervals, at least a minute.
double stale_limit_s() {
  double ten = 10.0 * settings::recovery_interval_ms / 1000.0;
  return ten > 60.0 ? ten : 60.0;
}

// The catalog's figures for metrics and integrity, in one statement as the catalog owner.
Catalog read_catalog() {
  Catalog c;
  pg::SpiScope spi;
  pg::OwnerScope owner(catalog_owner());
  pg::pg_call([&] {
    static pg::SavedPlan plan(
        "SELECT (SELECT pg_catalog.count(*) FROM consistency.twopc_participants), "
        "       pg_catalog.count(*), "
        "       coalesce(pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() "
        "                OPERATOR(pg_catalog.-) pg_catalog.min(d.decided_at)), 0)"
        "         ::pg_catalog.float8, "
        "       pg_catalog.count(*) FILTER (WHERE p.id IS NULL), "
        "       pg_catalog.count(*) FILTER (WHERE d.decided_at OPERATOR(pg_catalog.<) "
        "         (pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) "
        "          pg_catalog.make_interval(secs => $1))), "
        "       (SELECT pg_catalog.count(*) FROM consistency.twopc_participant_grants g "
        "         WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r "
        "                           WHERE r.oid OPERATOR(pg_catalog.=) g.role::pg_catalog.oid)) "
        "FROM consistency.twopc_decisions d "
        "LEFT JOIN consistency.twopc_participants p "
        "  ON p.id OPERATOR(pg_catalog.=) d.participant_id",
        {FLOAT8OID});
    Datum arg = Float8GetDatum(stale_limit_s());
    plan.execute(&arg, nullptr, true, 1);
    bool isnull = false;
    c.participants = DatumGetInt64(pg::spi_value(0, 1, &isnull));
    c.pending = DatumGetInt64(pg::spi_value(0, 2, &isnull));
    c.oldest_pending_s = DatumGetFloat8(pg::spi_value(0, 3, &isnull));
    c.orphaned = DatumGetInt64(pg::spi_value(0, 4, &isnull));
    c.stale = DatumGetInt64(pg::spi_value(0, 5, &isnull));
    c.dropped_grantees = DatumGetInt64(pg::spi_value(0, 6, &isnull));
  });
  return c;
}

// Adds rows (without labels) to the result of _metrics_twopc().
struct MetricOut {
  ReturnSetInfo* rsinfo;
  Datum empty_labels;
  void add(const char* metric, const char* kind, const char* help, double value) {
    pg::pg_call([&] {
      Datum v[5] = {CStringGetTextDatum(metric), CStringGetTextDatum(kind), CStringGetTextDatum(help),
                    empty_labels, Float8GetDatum(value)};
      bool n[5] = {false, false, false, false, false};
      tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
    });
  }
};

// The shared-memory counters _metrics_twopc reports, in its order.
struct Counter {
  const char* metric;
  const char* help;
  pg_atomic_uint64 Stats::*field;
};
const Counter kCounters[] = {
    {"pg_consistency_twopc_prepared_total", "PREPARE TRANSACTION that succeeded on a participant.",
     &Stats::prepared},
    {"pg_consistency_twopc_committed_total", "Prepared transactions committed by the committing backend.",
     &Stats::committed},
    {"pg_consistency_twopc_rolled_back_total", "Prepared transactions rolled back by the aborting backend.",
     &Stats::rolled_back},
    {"pg_consistency_twopc_deferred_total",
     "COMMIT/ROLLBACK PREPARED a backend could not finish, left to recovery.", &Stats::commit_deferred},
    {"pg_consistency_twopc_recovery_commits_total", "Prepared transactions committed by recovery.",
     &Stats::recovery_commits},
    {"pg_consistency_twopc_recovery_rollbacks_total",
     "Prepared transactions rolled back by recovery (presumed abort).", &Stats::recovery_rollbacks},
    {"pg_consistency_twopc_recovery_runs_total", "Recovery passes.", &Stats::recovery_runs},
    {"pg_consistency_twopc_recovery_failures_total", "Participants that recovery could not reach or resolve.",
     &Stats::recovery_failures},
};

// One row of _integrity_twopc().
void put_check(ReturnSetInfo* rsinfo, const char* name, bool ok, const std::string& detail) {
  pg::pg_call([&] {
    Datum v[3] = {CStringGetTextDatum(name), BoolGetDatum(ok), CStringGetTextDatum(detail.c_str())};
    bool n[3] = {false, false, false};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
  });
}

}  // namespace

// consistency._metrics_twopc(): the catalog's figures and the shared-memory counters.
PGC_FUNCTION(pgc_twopc_metrics) {
  pg::pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
  Catalog c = read_catalog();
  MetricOut out{reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo),
                pg::pg_call([] { return DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")); })};
  out.add("pg_consistency_twopc_participants", "gauge", "Participants known to this database.",
          static_cast<double>(c.participants));
  out.add("pg_consistency_twopc_unconfirmed_commits", "gauge",
          "Locally committed distributed transactions whose COMMIT PREPARED is not yet "
          "confirmed on a participant (decision rows).",
          static_cast<double>(c.pending));
  out.add("pg_consistency_twopc_oldest_unconfirmed_commit_seconds", "gauge",
          "Age of the oldest unconfirmed commit.", c.oldest_pending_s);
  Stats* s = my_stats();
  if (s == nullptr) return (Datum)0;  // counters live in shared memory (preload only)
  for (const Counter& counter : kCounters)
    out.add(counter.metric, "counter", counter.help,
            static_cast<double>(pg_atomic_read_u64(&(s->*counter.field))));
  out.add("pg_consistency_twopc_in_doubt", "gauge",
          "Prepared transactions of this database left on participants at the last recovery "
          "pass.",
          static_cast<double>(pg_atomic_read_u32(&s->in_doubt)));
  out.add("pg_consistency_twopc_unreachable_participants", "gauge",
          "Participants recovery could not reach at its last pass.",
          static_cast<double>(pg_atomic_read_u32(&s->unreachable)));
  return (Datum)0;
}

// consistency._integrity_twopc(): participants' conninfo and grants, decision rows left
// behind or waiting too long, and whether recovery runs and reaches every participant.
PGC_FUNCTION(pgc_twopc_integrity) {
  pg::pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
  ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  Catalog c = read_catalog();

  std::vector<ParticipantRow> parts;
  {
    pg::SpiScope spi;
    parts = list_participants();
  }
  std::string bad;
  for (const auto& p : parts) {
    std::string problem = conninfo_problem(p.conninfo);
    if (!problem.empty()) bad += (bad.empty() ? "" : "; ") + ("\"" + p.name + "\": " + problem);
  }
  put_check(rsinfo, "twopc_participant_conninfo", bad.empty(),
            bad.empty() ? std::to_string(parts.size()) +
                              " participant(s), every conninfo parses and names its remote role"
                        : "unusable conninfo: " + bad);
  put_check(rsinfo, "twopc_participant_grants", c.dropped_grantees == 0,
            std::to_string(c.dropped_grantees) +
                " participant grant(s) to dropped roles (removed at the next "
                "grant_participant or revoke_participant)");
  put_check(rsinfo, "twopc_decisions_orphaned", c.orphaned == 0,
            std::to_string(c.orphaned) + " decision row(s) of dropped participants");
  char buf[256];
  snprintf(buf, sizeof(buf),
           "%lld commit(s) not confirmed on their participant for more than %.0f s "
           "(%lld pending in all)",
           static_cast<long long>(c.stale), stale_limit_s(), static_cast<long long>(c.pending));
  put_check(rsinfo, "twopc_unconfirmed_commits", c.stale == 0, buf);

  Stats* s = my_stats();
  if (parts.empty()) {
    put_check(rsinfo, "twopc_recovery", true, "no participants");
  } else if (s == nullptr) {
    put_check(rsinfo, "twopc_recovery", false,
              "pg_consistency is not in shared_preload_libraries: no worker resolves prepared "
              "transactions left on participants");
  } else {
    TimestampTz last = static_cast<TimestampTz>(pg_atomic_read_u64(&s->last_recovery_at));
    uint32 unreachable = pg_atomic_read_u32(&s->unreachable);
    long limit_ms = 3L * settings::recovery_interval_ms + 60000L;
    bool recent = last != 0 && TimestampDifferenceMilliseconds(last, GetCurrentTimestamp()) <= limit_ms;
    std::string detail;
    if (last == 0)
      detail = "the worker has not run recovery in this database";
    else if (!recent)
      detail = "the last recovery pass is older than " + std::to_string(limit_ms / 1000) + " s";
    else
      detail = std::to_string(unreachable) + " participant(s) unreachable at the last pass, " +
               std::to_string(pg_atomic_read_u32(&s->in_doubt)) + " prepared transaction(s) left";
    put_check(rsinfo, "twopc_recovery", recent && unreachable == 0, detail);
  }
  return (Datum)0;
}
