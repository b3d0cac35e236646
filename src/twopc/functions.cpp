// The SQL-callable functions of two-phase commit: participants, remote statements, the
// in_doubt view, and the operations hooks (_metrics_twopc, _integrity_twopc).
#include <set>

#include "common/error.hpp"
#include "pg/guard.hpp"
#include "pg/spi.hpp"
#include "twopc/coordinator.hpp"
#include "twopc/gid.hpp"
#include "twopc/recovery.hpp"
#include "twopc/row_json.hpp"
#include "twopc/state.hpp"
#include "twopc/statement.hpp"

extern "C" {
#include "access/xlog.h"
#include "utils/timestamp.h"
}

using namespace pgc;
using namespace pgc::twopc;

namespace {

std::string text_arg(FunctionCallInfo fcinfo, int i) {
  return text_to_cstring(PG_GETARG_TEXT_PP(i));
}

std::string participant_arg(FunctionCallInfo fcinfo, int i) {
  if (PG_ARGISNULL(i)) throw invalid_argument("participant name must not be null");
  return text_arg(fcinfo, i);
}

std::string sql_arg(FunctionCallInfo fcinfo, int i, const std::string& participant) {
  if (PG_ARGISNULL(i))
    throw invalid_argument("statement for participant \"" + participant + "\" must not be null");
  return text_arg(fcinfo, i);
}

void put_row(ReturnSetInfo* rsinfo, Datum* values, bool* nulls) {
  pg::pg_call([&] { tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls); });
}

Datum text_datum(const std::string& s) {
  return pg::pg_call([&] { return PointerGetDatum(cstring_to_text_with_len(s.data(), s.size())); });
}

}  // namespace

// consistency.add_participant(name text, conninfo text)
PGC_FUNCTION(pgc_twopc_add_participant) {
  std::string name = participant_arg(fcinfo, 0);
  if (auto problem = participant_name_problem(name))
    throw invalid_argument("invalid participant name \"" + name + "\": " + *problem);
  if (PG_ARGISNULL(1))
    throw invalid_argument("conninfo of participant \"" + name + "\" must not be null");
  std::string conninfo = text_arg(fcinfo, 1);
  if (conninfo.find_first_not_of(" \t\r\n") == std::string::npos)
    throw invalid_argument("conninfo of participant \"" + name + "\" is empty");
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (err != nullptr) PQfreemem(err);  // may quote parts of the conninfo: never shown
  if (opts == nullptr)
    throw invalid_argument("conninfo of participant \"" + name +
                               "\" is not a valid libpq connection string",
                           "", "Use keyword=value pairs or a postgresql:// URI.");
  bool has_password = false;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; o++)
    if (strcmp(o->keyword, "password") == 0 && o->val != nullptr && o->val[0] != '\0')
      has_password = true;
  PQconninfoFree(opts);
  bool trusted = superuser();
  if (!trusted && !has_password)
    throw invalid_argument("participant \"" + name + "\" needs a password in its conninfo",
                           "Only superusers may add participants that connect without a "
                           "password.");
  Spi spi;
  AsCatalogOwner owner;
  uint64 added = pg::pg_call([&] {
    static pg::SavedPlan plan(
        "INSERT INTO consistency.twopc_participants (name, conninfo, trusted, created_by) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
        {TEXTOID, TEXTOID, BOOLOID, NAMEOID});
    Datum args[4] = {CStringGetTextDatum(name.c_str()), CStringGetTextDatum(conninfo.c_str()),
                     BoolGetDatum(trusted),
                     DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(
                                                     GetSessionUserId(), false)))};
    plan.execute(args, nullptr, false);
    return SPI_processed;
  });
  if (added == 0)
    throw invalid_argument("participant \"" + name + "\" already exists", "",
                           "Drop it first with consistency.drop_participant(name).");
  PG_RETURN_VOID();
}

// consistency.drop_participant(name text, force boolean DEFAULT false)
PGC_FUNCTION(pgc_twopc_drop_participant) {
  std::string name = participant_arg(fcinfo, 0);
  bool force = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
  Spi spi;
  {
    AsCatalogOwner owner;
    // Waits for every transaction that looked the participant up (they hold ACCESS SHARE
    // until they end), and keeps new ones out until this one ends.
    pg::pg_call([] {
      if (SPI_execute("LOCK TABLE consistency.twopc_participants IN ACCESS EXCLUSIVE MODE",
                      false, 0) < 0)
        elog(ERROR, "pg_consistency: could not lock consistency.twopc_participants");
    });
  }
  ParticipantRow row;
  if (!lookup_participant(name, &row))
    throw Error(sqlstate::kUnknownObject, "participant \"" + name + "\" does not exist");
  if (participant_in_use(row.id))
    throw Error(sqlstate::kObjectInUse,
                "cannot drop participant \"" + name + "\": this transaction uses it");
  if (!force) {
    PGconn* conn = nullptr;
    std::vector<PreparedXact> left;
    std::string failure, detail;
    try {
      conn = connect_participant(row.name, row.conninfo, row.trusted, gucs::timeout_ms,
                                 WaitMode::kInterruptible, false);
      left = list_prepared(conn, row.name, row.id, WaitMode::kInterruptible);
    } catch (const Error& e) {
      failure = e.what();
      detail = e.detail();
    }
    close_connection(conn);
    if (!failure.empty())
      throw Error(sqlstate::kRemoteFailure,
                  "cannot drop participant \"" + name + "\": " + failure, detail,
                  "It must be reachable to check that no prepared transaction of ours is left "
                  "there; drop_participant(name, force => true) drops it without checking.");
    if (!left.empty())
      throw Error(sqlstate::kObjectInUse,
                  "cannot drop participant \"" + name + "\": " + std::to_string(left.size()) +
                      " prepared transaction(s) of this database are in doubt there",
                  "", "The pg_consistency worker resolves them; see consistency.in_doubt.");
  }
  AsCatalogOwner owner;
  uint64 unconfirmed = pg::pg_call([&] {
    static pg::SavedPlan del_decisions(
        "DELETE FROM consistency.twopc_decisions WHERE participant_id = $1", {INT4OID});
    static pg::SavedPlan del_participant(
        "DELETE FROM consistency.twopc_participants WHERE id = $1", {INT4OID});
    Datum arg = Int32GetDatum(row.id);
    del_decisions.execute(&arg, nullptr, false);
    uint64 n = SPI_processed;
    del_participant.execute(&arg, nullptr, false);
    return n;
  });
  if (force && unconfirmed > 0)
    ereport(WARNING,
            (errmsg("participant \"%s\" dropped with %lu committed transaction(s) not confirmed "
                    "there",
                    name.c_str(), static_cast<unsigned long>(unconfirmed)),
             errhint("Commit its prepared transactions named \"%s...\" by hand if any are left.",
                     gid_prefix(GetSystemIdentifier(), MyDatabaseId).c_str())));
  PG_RETURN_VOID();
}

// consistency.remote_exec(participant text, sql text) RETURNS bigint
PGC_FUNCTION(pgc_twopc_remote_exec) {
  std::string name = participant_arg(fcinfo, 0);
  std::string sql = sql_arg(fcinfo, 1, name);
  pgc::twopc::Result r = execute_remote(name, sql);
  const char* tuples = r ? PQcmdTuples(r.get()) : "";
  int64 n = (tuples != nullptr && *tuples != '\0') ? strtoll(tuples, nullptr, 10) : 0;
  PG_RETURN_INT64(n);
}

// consistency.remote_query(participant text, sql text) RETURNS SETOF jsonb
PGC_FUNCTION(pgc_twopc_remote_query) {
  std::string name = participant_arg(fcinfo, 0);
  std::string sql = sql_arg(fcinfo, 1, name);
  pg::pg_call([&] { InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC); });
  ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  pgc::twopc::Result r = execute_remote(name, sql);
  if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK) return (Datum)0;
  PGresult* res = r.get();
  int nf = PQnfields(res);
  JsonRow row;
  for (int t = 0; t < PQntuples(res); t++) {
    for (int f = 0; f < nf; f++)
      row.add(PQfname(res, f), PQftype(res, f),
              std::string_view(PQgetvalue(res, t, f), PQgetlength(res, t, f)),
              PQgetisnull(res, t, f));
    std::string json = row.finish();
    Datum value = pg::pg_call([&] { return DirectFunctionCall1(jsonb_in, CStringGetDatum(json.c_str())); });
    bool isnull = false;
    put_row(rsinfo, &value, &isnull);
  }
  return (Datum)0;
}

// consistency._twopc_in_doubt(): what the in_doubt view shows. Asks every participant.
PGC_FUNCTION(pgc_twopc_in_doubt) {
  pg::pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
  ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  std::vector<ParticipantRow> parts;
  Spi spi;
  parts = list_participants();
  uint64 sysid = GetSystemIdentifier();
  for (const auto& p : parts) {
    PGconn* conn = nullptr;
    std::vector<PreparedXact> list;
    std::string failure;
    try {
      conn = connect_participant(p.name, p.conninfo, p.trusted, gucs::timeout_ms,
                                 WaitMode::kInterruptible, false);
      list = list_prepared(conn, p.name, p.id, WaitMode::kInterruptible);
    } catch (const Error& e) {
      failure = std::string(e.what()) + (e.detail().empty() ? "" : ": " + e.detail());
    }
    close_connection(conn);
    if (!failure.empty()) {
      ereport(WARNING, (errmsg("participant \"%s\" is unreachable; showing the commits it has "
                               "not confirmed",
                               p.name.c_str()),
                        errdetail("%s", failure.c_str())));
      // Committed locally, COMMIT PREPARED not confirmed: rows without prepared_at.
      std::set<uint64> decided;
      uint64 n = pg::pg_call([&] {
        static pg::SavedPlan plan(
            "SELECT xid FROM consistency.twopc_decisions WHERE participant_id = $1 ORDER BY xid",
            {INT4OID});
        AsCatalogOwner owner;
        Datum arg = Int32GetDatum(p.id);
        plan.execute(&arg, nullptr, true);
        return SPI_processed;
      });
      for (uint64 i = 0; i < n; i++) {
        bool isnull = false;
        decided.insert(DatumGetUInt64(pg::spi_value(i, 1, &isnull)));
      }
      for (uint64 x : decided) {
        Gid g{sysid, MyDatabaseId, x, p.id};
        Datum v[4] = {text_datum(p.name), text_datum(format_gid(g)), 0, text_datum("commit")};
        bool nulls[4] = {false, false, true, false};
        put_row(rsinfo, v, nulls);
      }
      continue;
    }
    std::vector<uint64> xids;
    for (const auto& x : list) xids.push_back(x.xid);
    std::vector<LocalStatus> status = local_statuses(xids);
    std::vector<bool> recorded = decisions_recorded(p.id, xids);
    for (size_t i = 0; i < list.size(); i++) {
      Action a = decide(recorded[i], status[i]);
      Datum v[4] = {text_datum(p.name), text_datum(list[i].gid),
                    TimestampTzGetDatum(list[i].prepared_at), text_datum(decision_label(a))};
      bool nulls[4] = {false, false, false, false};
      put_row(rsinfo, v, nulls);
    }
  }
  return (Datum)0;
}
