// Recovery of prepared transactions left on participants, run by the per-database worker
// (at start and every pg_consistency.twopc_recovery_interval, and at once when a backend
// could not finish a COMMIT PREPARED).
//
// Per participant, in this order:
//   1. read the decision rows (snapshot R);
//   2. list our gids in the participant's pg_prepared_xacts (after R);
//   3. for gids without a decision in R: read the local status of their xid, then, in a
//      later transaction (a later snapshot), look for a decision again;
//   4. act by the decision table (decision.hpp): COMMIT PREPARED, ROLLBACK PREPARED, or leave;
//   5. delete the decision rows read in 1 whose gid is no longer prepared (they were
//      committed before R, so their PREPARE happened before 2: absent means resolved),
//      and those committed in 4.
#include "twopc/recovery.hpp"

#include <map>
#include <set>

#include "common/error.hpp"
#include "pg/guard.hpp"
#include "pg/run_as.hpp"
#include "pg/spi.hpp"
#include "twopc/coordinator.hpp"
#include "twopc/gid.hpp"

extern "C" {
#include "access/transam.h"
#include "access/xlog.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/timestamp.h"
}

namespace pgc::twopc {

namespace {

std::map<int32, PGconn*> g_worker_conns;  // the worker's connections, by participant id

// Last failure logged per participant, so an unreachable one is not logged every pass.
struct Logged {
  std::string message;
  TimestampTz at = 0;
};
std::map<int32, Logged> g_logged;

// A prepared transaction is acted on only once it has been seen by an earlier pass at
// least this long ago: the backend that prepared it normally finishes it within
// milliseconds, and recovery should not race it for the same gid.
constexpr long kGraceMs = 2000;
std::map<std::string, TimestampTz> g_first_seen;  // gid -> when a pass first listed it

// Retry delay while something is left: an unreachable participant, or a prepared
// transaction whose local transaction still runs.
constexpr long kRetryMs = 1000;

// xids as an xid8[] Datum.
Datum xid_array(const std::vector<uint64>& xids) {
  std::vector<Datum> d;
  d.reserve(xids.size());
  for (uint64 x : xids) d.push_back(UInt64GetDatum(x));
  return pg::pg_call([&] {
    return PointerGetDatum(
        construct_array(d.data(), static_cast<int>(d.size()), XID8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
  });
}

// One unit of work in its own transaction (the worker runs outside transactions).
template <typename F>
void in_transaction(F&& f) {
  pg::pg_call([] { pg::begin_worker_transaction(nullptr); });
  f();
  pg::pg_call([] { pg::commit_worker_transaction(); });
}

// Runs `plan` on participant `participant_id`'s decision rows for `xids` ($1 its id, $2
// the xids as xid8[]) as the catalog owner; column 1 of what it returns.
std::vector<Datum> on_decisions(pg::SavedPlan& plan, int32 participant_id, const std::vector<uint64>& xids,
                                bool read_only) {
  Datum args[2] = {Int32GetDatum(participant_id), xid_array(xids)};
  pg::OwnerScope owner(catalog_owner());
  return plan_column(plan, args, nullptr, read_only);
}

// Deletes the participant's decision rows for xids: their prepared transactions are gone.
void delete_decisions(int32 participant_id, const std::vector<uint64>& xids) {
  static pg::SavedPlan plan(
      "DELETE FROM consistency.twopc_decisions d "
      "WHERE d.participant_id OPERATOR(pg_catalog.=) $1 AND d.xid OPERATOR(pg_catalog.=) ANY($2)",
      {INT4OID, XID8ARRAYOID});
  on_decisions(plan, participant_id, xids, false);
}

struct Pass {
  uint32 in_doubt = 0;
  uint32 unreachable = 0;
};

// One pass over participant p (steps 2 to 5 above): commits, rolls back or leaves each of
// our prepared transactions there. Throws pgc::Error when the participant cannot be reached.
void recover_participant(const ParticipantRow& p, const std::set<uint64>& decided, Pass* pass,
                         std::set<std::string>* seen_now) {
  PGconn*& conn = g_worker_conns[p.id];
  if (conn != nullptr && PQstatus(conn) != CONNECTION_OK) close_connection(conn);
  bool reused = conn != nullptr;
  if (conn == nullptr)
    conn = connect_participant(p.name, p.conninfo, p.trusted, settings::timeout_ms, WaitMode::kInterruptible,
                               false);
  std::vector<PreparedXact> list;
  try {
    list = list_prepared(conn, p.name, p.id, WaitMode::kInterruptible);
  } catch (const Error&) {
    // A cached connection may have died with a participant restart: one fresh attempt.
    if (!reused) throw;
    close_connection(conn);
    conn = connect_participant(p.name, p.conninfo, p.trusted, settings::timeout_ms, WaitMode::kInterruptible,
                               false);
    list = list_prepared(conn, p.name, p.id, WaitMode::kInterruptible);
  }
  pass->in_doubt += static_cast<uint32>(list.size());

  std::vector<uint64> undecided;
  for (const auto& x : list)
    if (decided.count(x.xid) == 0) undecided.push_back(x.xid);
  std::vector<LocalStatus> status;
  std::vector<bool> recorded;
  if (!undecided.empty()) {
    in_transaction([&] { status = local_statuses(undecided); });
    in_transaction([&] { recorded = decisions_recorded(p.id, undecided); });
  }

  std::set<uint64> listed, committed;
  size_t u = 0;
  TimestampTz now = GetCurrentTimestamp();
  for (auto& x : list) {
    listed.insert(x.xid);
    Action a = Action::kCommit;
    if (decided.count(x.xid) == 0) {
      a = decide(recorded[u], status[u]);
      u++;
    }
    auto seen = g_first_seen.emplace(x.gid, now).first;
    seen_now->insert(x.gid);
    if (a == Action::kLeave || !TimestampDifferenceExceeds(seen->second, now, kGraceMs)) continue;
    bool commit = a == Action::kCommit;
    Outcome o = run(conn, {std::string(commit ? "COMMIT" : "ROLLBACK") + " PREPARED " + quote_literal(x.gid)},
                    settings::timeout_ms, WaitMode::kInterruptible);
    if (o.ok() || (o.kind == Outcome::kRemoteError && o.sqlstate == "42704")) {
      if (o.ok()) {
        count(commit ? &Stats::recovery_commits : &Stats::recovery_rollbacks);
        ereport(LOG, (errmsg("pg_consistency: %s prepared transaction \"%s\" on participant "
                             "\"%s\" (recovery)",
                             commit ? "committed" : "rolled back", x.gid.c_str(), p.name.c_str())));
      }
      if (commit) committed.insert(x.xid);
      if (pass->in_doubt > 0) pass->in_doubt--;
      continue;
    }
    if (o.kind == Outcome::kRemoteError && o.sqlstate == "55000" &&
        o.message.find("is busy") != std::string::npos)
      continue;  // its backend is finishing it right now
    if (o.kind != Outcome::kRemoteError)
      throw Error(sqlstate::kRemoteFailure, "participant \"" + p.name + "\" failed during recovery",
                  o.message);
    ereport(WARNING, (errmsg("pg_consistency: could not %s prepared transaction \"%s\" on "
                             "participant \"%s\"",
                             commit ? "commit" : "roll back", x.gid.c_str(), p.name.c_str()),
                      errdetail("%s (SQLSTATE %s)", o.message.c_str(), o.sqlstate.c_str())));
    count(&Stats::recovery_failures);
  }

  std::vector<uint64> done;
  for (uint64 x : decided)
    if (listed.count(x) == 0) done.push_back(x);
  for (uint64 x : committed) done.push_back(x);  // committed ⊆ listed: no duplicates
  if (!done.empty()) in_transaction([&] { delete_decisions(p.id, done); });
}

}  // namespace

std::vector<PreparedXact> list_prepared(PGconn*& conn, const std::string& name, int32 participant_id,
                                        WaitMode mode) {
  std::string prefix = gid_prefix(GetSystemIdentifier(), MyDatabaseId);
  std::string sql =
      "SELECT x.gid, (pg_catalog.date_part('epoch', x.prepared) OPERATOR(pg_catalog.*) "
      "1000000)::pg_catalog.int8 "
      "FROM pg_catalog.pg_prepared_xacts x "
      "WHERE x.database OPERATOR(pg_catalog.=) pg_catalog.current_database() "
      "AND pg_catalog.substr(x.gid, 1, " +
      std::to_string(prefix.size()) + ") OPERATOR(pg_catalog.=) " + quote_literal(prefix) +
      " ORDER BY x.prepared";
  Outcome o = run(conn, {sql}, settings::timeout_ms, mode);
  if (!o.ok())
    throw Error(sqlstate::kRemoteFailure,
                "could not list prepared transactions on participant \"" + name + "\"",
                o.kind == Outcome::kTimeout ? "No answer in time." : o.message);
  std::vector<PreparedXact> out;
  PGresult* r = o.result.get();
  for (int i = 0; i < PQntuples(r); i++) {
    std::optional<Gid> g = parse_gid(PQgetvalue(r, i, 0));
    if (!g || g->participant != participant_id) continue;
    PreparedXact x;
    x.gid = PQgetvalue(r, i, 0);
    x.xid = g->xid;
    x.prepared_at = unix_micros_to_timestamptz(strtoll(PQgetvalue(r, i, 1), nullptr, 10));
    out.push_back(std::move(x));
  }
  return out;
}

std::vector<LocalStatus> local_statuses(const std::vector<uint64>& xids) {
  std::vector<LocalStatus> out;
  if (xids.empty()) return out;
  Datum arr = xid_array(xids);
  // Xids at or past the next one are not assigned (pg_xact_status would raise an error).
  uint64 next = U64FromFullTransactionId(ReadNextFullTransactionId());
  pg::OwnerScope owner(catalog_owner());
  uint64 n = pg::pg_call([&] {
    static pg::SavedPlan plan(
        "SELECT CASE WHEN u.x OPERATOR(pg_catalog.>=) $2 THEN 'unassigned' "
        "ELSE pg_catalog.pg_xact_status(u.x) END "
        "FROM pg_catalog.unnest($1) WITH ORDINALITY AS u(x, n) ORDER BY u.n",
        {XID8ARRAYOID, XID8OID});
    Datum args[2] = {arr, UInt64GetDatum(next)};
    plan.execute(args, nullptr, true);
    return SPI_processed;
  });
  for (uint64 i = 0; i < n; i++) {
    char* s = pg::pg_call([&] { return pg::spi_text_copy(i, 1); });
    bool unassigned = s != nullptr && strcmp(s, "unassigned") == 0;
    out.push_back(parse_local_status(s, unassigned));
  }
  return out;
}

std::vector<bool> decisions_recorded(int32 participant_id, const std::vector<uint64>& xids) {
  std::vector<bool> out(xids.size(), false);
  if (xids.empty()) return out;
  static pg::SavedPlan plan(
      "SELECT d.xid FROM consistency.twopc_decisions d "
      "WHERE d.participant_id OPERATOR(pg_catalog.=) $1 AND d.xid OPERATOR(pg_catalog.=) ANY($2)",
      {INT4OID, XID8ARRAYOID});
  std::set<uint64> found;
  for (Datum d : on_decisions(plan, participant_id, xids, true)) found.insert(DatumGetUInt64(d));
  for (size_t i = 0; i < xids.size(); i++) out[i] = found.count(xids[i]) > 0;
  return out;
}

std::set<uint64> decided_xids(int32 participant_id, int64 limit) {
  static pg::SavedPlan plan(
      "SELECT d.xid FROM consistency.twopc_decisions d "
      "WHERE d.participant_id OPERATOR(pg_catalog.=) $1 ORDER BY d.xid LIMIT $2",
      {INT4OID, INT8OID});
  Datum args[2] = {Int32GetDatum(participant_id), Int64GetDatum(limit)};
  const char nulls[2] = {' ', limit < 0 ? 'n' : ' '};  // LIMIT NULL: all rows
  pg::OwnerScope owner(catalog_owner());
  std::set<uint64> out;
  for (Datum d : plan_column(plan, args, nulls)) out.insert(DatumGetUInt64(d));
  return out;
}

long recovery_tick() {
  struct Work {
    ParticipantRow row;
    std::set<uint64> decided;
  };
  std::vector<Work> work;
  pgstat_report_activity(STATE_RUNNING, "pg_consistency: two-phase commit recovery");
  in_transaction([&] {
    for (auto& row : list_participants()) {
      Work w;
      w.row = std::move(row);
      w.decided = decided_xids(w.row.id, 100000);
      work.push_back(std::move(w));
    }
  });
  Pass pass;
  std::set<int32> live;
  std::set<std::string> seen_now;
  for (auto& w : work) {
    live.insert(w.row.id);
    std::string failure, detail;
    try {
      recover_participant(w.row, w.decided, &pass, &seen_now);
    } catch (const Error& e) {
      failure = e.what();
      detail = e.detail();
    }
    Logged& logged = g_logged[w.row.id];
    if (!failure.empty()) {
      close_connection(g_worker_conns[w.row.id]);
      pass.unreachable++;
      count(&Stats::recovery_failures);
      TimestampTz now = GetCurrentTimestamp();
      if (logged.message != failure || TimestampDifferenceExceeds(logged.at, now, 60000)) {
        ereport(LOG, (errmsg("pg_consistency: two-phase commit recovery skipped participant "
                             "\"%s\": %s",
                             w.row.name.c_str(), failure.c_str()),
                      detail.empty() ? 0 : errdetail("%s", detail.c_str())));
        logged.message = failure;
        logged.at = now;
      }
    } else if (!logged.message.empty()) {
      ereport(LOG, (errmsg("pg_consistency: two-phase commit recovery reached participant "
                           "\"%s\" again",
                           w.row.name.c_str())));
      logged.message.clear();
    }
  }
  for (auto it = g_first_seen.begin(); it != g_first_seen.end();) {
    if (seen_now.count(it->first) == 0)
      it = g_first_seen.erase(it);
    else
      ++it;
  }
  for (auto it = g_worker_conns.begin(); it != g_worker_conns.end();) {
    if (live.count(it->first) == 0) {
      close_connection(it->second);
      it = g_worker_conns.erase(it);
    } else {
      ++it;
    }
  }
  if (Stats* s = my_stats()) {
    pg_atomic_write_u32(&s->in_doubt, pass.in_doubt);
    pg_atomic_write_u32(&s->unreachable, pass.unreachable);
    pg_atomic_fetch_add_u64(&s->recovery_runs, 1);
    pg_atomic_write_u64(&s->last_recovery_at, static_cast<uint64>(GetCurrentTimestamp()));
  }
  pgstat_report_activity(STATE_IDLE, nullptr);
  if ((pass.unreachable > 0 || pass.in_doubt > 0) && settings::recovery_interval_ms > kRetryMs)
    return kRetryMs;
  return settings::recovery_interval_ms;
}

void recovery_exit() {
  for (auto& kv : g_worker_conns) close_connection(kv.second);
  g_worker_conns.clear();
}

}  // namespace pgc::twopc
