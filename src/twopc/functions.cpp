// The SQL-callable functions of two-phase commit: participants, remote statements, the
// in_doubt view, and the operations hooks (_metrics_twopc, _integrity_twopc).
#include <set>

#include "common/error.hpp"
#include "pg/guard.hpp"
#include "pg/memory.hpp"
#include "pg/run_as.hpp"
#include "pg/spi.hpp"
#include "twopc/coordinator.hpp"
#include "twopc/gid.hpp"
#include "twopc/recovery.hpp"
#include "twopc/row_json.hpp"
#include "twopc/state.hpp"
#include "twopc/statement.hpp"

extern "C" {
#include "access/xlog.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
}

using namespace pgc;
using namespace pgc::twopc;

namespace {

// Text argument i (not null) as a string.
std::string text_arg(FunctionCallInfo fcinfo, int i) { return text_to_cstring(PG_GETARG_TEXT_PP(i)); }

// The participant name argument i; refused when null.
std::string participant_arg(FunctionCallInfo fcinfo, int i) {
  if (PG_ARGISNULL(i)) throw invalid_argument("participant name must not be null");
  return text_arg(fcinfo, i);
}

// The statement argument i for `participant`; refused when null.
std::string sql_arg(FunctionCallInfo fcinfo, int i, const std::string& participant) {
  if (PG_ARGISNULL(i))
    throw invalid_argument("statement for participant \"" + shown_name(participant) + "\" must not be null");
  return text_arg(fcinfo, i);
}

// Adds a row to the result of a set-returning function.
void put_row(ReturnSetInfo* rsinfo, Datum* values, bool* nulls) {
  pg::pg_call([&] { tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls); });
}

// s as a text Datum.
Datum text_datum(const std::string& s) {
  return pg::pg_call([&] { return PointerGetDatum(cstring_to_text_with_len(s.data(), s.size())); });
}

// The error for a participant name that is not in the catalog.
[[noreturn]] void unknown_participant(const std::string& name) {
  throw Error(sqlstate::kUnknownObject, "participant \"" + shown_name(name) + "\" does not exist");
}

// The role argument of grant/revoke_participant: a role that exists.
Oid role_arg(FunctionCallInfo fcinfo, int i, std::string* rolname) {
  if (PG_ARGISNULL(i)) throw invalid_argument("role must not be null");
  Oid role = PG_GETARG_OID(i);
  const char* n = OidIsValid(role) ? pg::pg_call([&] { return GetUserNameFromId(role, true); }) : nullptr;
  if (n == nullptr)
    throw invalid_argument("role " + std::to_string(role) + " does not exist", "",
                           "Name an existing role, e.g. 'app_writer'::regrole.");
  *rolname = n;
  return role;
}

// Grants whose role was dropped (DROP ROLE does not know about them): removed whenever
// an admin changes grants, so that a later role reusing the OID cannot inherit one.
void forget_dropped_grantees() {
  pg::pg_call([] {
    static pg::SavedPlan plan(
        "DELETE FROM consistency.twopc_participant_grants g WHERE NOT EXISTS ("
        "SELECT 1 FROM pg_catalog.pg_roles r "
        "WHERE r.oid OPERATOR(pg_catalog.=) g.role::pg_catalog.oid)",
        {});
    plan.execute(nullptr, nullptr, false);
  });
}

// grant_participant / revoke_participant: checks the participant (it must exist) and the
// role, then runs change(participant, role, role name) as the catalog owner, after
// removing the grants of dropped roles.
template <typename F>
void change_grant(FunctionCallInfo fcinfo, F&& change) {
  std::string name = participant_arg(fcinfo, 0);
  std::string rolname;
  Oid role = role_arg(fcinfo, 1, &rolname);
  pg::SpiScope spi;
  ParticipantRow row;
  if (!lookup_participant(name, &row)) unknown_participant(name);
  pg::OwnerScope owner(catalog_owner());
  forget_dropped_grantees();
  change(row, role, rolname);
}

// remote_exec: the rows of a SELECT are read one at a time and dropped (only counted).
class DiscardRows : public RowSink {
 public:
  void rows(const PGresult*) override {}
};

// remote_query: each row becomes a jsonb value in the result tuplestore at once; the
// JSON bytes are counted against pg_consistency.twopc_max_result_bytes.
class JsonRows : public RowSink {
 public:
  JsonRows(ReturnSetInfo* rsinfo, const std::string& participant)
      : rsinfo_(rsinfo), participant_(participant) {
    cxt_ = pg::pg_call([] {
      return AllocSetContextCreate(CurrentMemoryContext, "pg_consistency remote_query row",
                                   ALLOCSET_SMALL_SIZES);
    });
  }
  ~JsonRows() override { MemoryContextDelete(cxt_); }
  JsonRows(const JsonRows&) = delete;
  JsonRows& operator=(const JsonRows&) = delete;

  // Each row as jsonb into the result; stops past pg_consistency.twopc_max_result_bytes.
  void rows(const PGresult* r) override {
    int nf = PQnfields(r);
    for (int t = 0; t < PQntuples(r); t++) {
      for (int f = 0; f < nf; f++)
        row_.add(PQfname(r, f), PQftype(r, f), std::string_view(PQgetvalue(r, t, f), PQgetlength(r, t, f)),
                 PQgetisnull(r, t, f));
      std::string json = row_.finish();
      bytes_ += json.size();
      if (bytes_ > static_cast<uint64>(settings::max_result_bytes))
        throw Error("54000",
                    "result of remote_query on participant \"" + participant_ +
                        "\" exceeds pg_consistency.twopc_max_result_bytes (" +
                        std::to_string(settings::max_result_bytes) + " bytes)",
                    "Reading stopped at row " + std::to_string(rows_ + 1) +
                        "; the participant's statement was cancelled.",
                    "Select fewer rows or columns (or page through the result), or ask an "
                    "administrator to raise pg_consistency.twopc_max_result_bytes.");
      {
        pg::ContextSwitch rows(cxt_);
        pg::pg_call([&] {
          Datum value = DirectFunctionCall1(jsonb_in, CStringGetDatum(json.c_str()));
          bool isnull = false;
          tuplestore_putvalues(rsinfo_->setResult, rsinfo_->setDesc, &value, &isnull);
        });
      }
      MemoryContextReset(cxt_);
      rows_++;
    }
  }

 private:
  ReturnSetInfo* rsinfo_;
  std::string participant_;
  MemoryContext cxt_ = nullptr;
  JsonRow row_;
  uint64 bytes_ = 0;
  uint64 rows_ = 0;
};

}  // namespace

// consistency.add_participant(name text, conninfo text)
PGC_FUNCTION(pgc_twopc_add_participant) {
  std::string name = participant_arg(fcinfo, 0);
  if (auto problem = participant_name_problem(name))
    throw invalid_argument("invalid participant name \"" + shown_name(name) + "\": " + *problem);
  if (PG_ARGISNULL(1)) throw invalid_argument("conninfo of participant \"" + name + "\" must not be null");
  std::string conninfo = text_arg(fcinfo, 1);
  if (conninfo.find_first_not_of(" \t\r\n") == std::string::npos)
    throw invalid_argument("conninfo of participant \"" + name + "\" is empty");
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (err != nullptr) PQfreemem(err);  // may quote parts of the conninfo: never shown
  if (opts == nullptr)
    throw invalid_argument("conninfo of participant \"" + name + "\" is not a valid libpq connection string",
                           "", "Use keyword=value pairs or a postgresql:// URI.");
  bool has_password = false;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; o++)
    if (strcmp(o->keyword, "password") == 0 && o->val != nullptr && o->val[0] != '\0') has_password = true;
  PQconninfoFree(opts);
  if (!conninfo_problem(conninfo).empty())
    throw invalid_argument(
        "conninfo of participant \"" + name + "\" names no remote role",
        "Without user=, libpq would pick the remote role from this server's own OS user, and "
        "every writer's statements would run on the participant as that role (often a "
        "superuser there).",
        "Add user=<role on the participant> (or user@host in a postgresql:// URI), a role "
        "with only the rights the writers need.");
  bool trusted = superuser();
  if (!trusted && !has_password)
    throw invalid_argument("participant \"" + name + "\" needs a password in its conninfo",
                           "Only superusers may add participants that connect without a "
                           "password.");
  pg::SpiScope spi;
  pg::OwnerScope owner(catalog_owner());
  uint64 added = pg::pg_call([&] {
    static pg::SavedPlan plan(
        "INSERT INTO consistency.twopc_participants (name, conninfo, trusted, created_by) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
        {TEXTOID, TEXTOID, BOOLOID, NAMEOID});
    Datum args[4] = {
        CStringGetTextDatum(name.c_str()), CStringGetTextDatum(conninfo.c_str()), BoolGetDatum(trusted),
        DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(GetSessionUserId(), false)))};
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
  pg::SpiScope spi;
  {
    pg::OwnerScope owner(catalog_owner());
    // Waits for every transaction that looked the participant up (they hold ACCESS SHARE
    // until they end), and keeps new ones out until this one ends.
    pg::pg_call([] {
      if (SPI_execute("LOCK TABLE consistency.twopc_participants IN ACCESS EXCLUSIVE MODE", false, 0) < 0)
        elog(ERROR, "pg_consistency: could not lock consistency.twopc_participants");
    });
  }
  ParticipantRow row;
  if (!lookup_participant(name, &row)) unknown_participant(name);
  if (participant_in_use(row.id))
    throw Error(sqlstate::kObjectInUse, "cannot drop participant \"" + name + "\": this transaction uses it");
  if (!force) {
    PGconn* conn = nullptr;
    std::vector<PreparedXact> left;
    std::string failure, detail;
    try {
      conn = connect_participant(row.name, row.conninfo, row.trusted, settings::timeout_ms,
                                 WaitMode::kInterruptible, false);
      left = list_prepared(conn, row.name, row.id, WaitMode::kInterruptible);
    } catch (const Error& e) {
      failure = e.what();
      detail = e.detail();
    }
    close_connection(conn);
    if (!failure.empty())
      throw Error(sqlstate::kRemoteFailure, "cannot drop participant \"" + name + "\": " + failure, detail,
                  "It must be reachable to check that no prepared transaction of ours is left "
                  "there; drop_participant(name, force => true) drops it without checking.");
    if (!left.empty())
      throw Error(sqlstate::kObjectInUse,
                  "cannot drop participant \"" + name + "\": " + std::to_string(left.size()) +
                      " prepared transaction(s) of this database are in doubt there",
                  "", "The pg_consistency worker resolves them; see consistency.in_doubt.");
  }
  pg::OwnerScope owner(catalog_owner());
  uint64 unconfirmed = pg::pg_call([&] {
    static pg::SavedPlan del_decisions(
        "DELETE FROM consistency.twopc_decisions d "
        "WHERE d.participant_id OPERATOR(pg_catalog.=) $1",
        {INT4OID});
    // Its grants go with it (ON DELETE CASCADE).
    static pg::SavedPlan del_participant(
        "DELETE FROM consistency.twopc_participants p WHERE p.id OPERATOR(pg_catalog.=) $1", {INT4OID});
    Datum arg = Int32GetDatum(row.id);
    del_decisions.execute(&arg, nullptr, false);
    uint64 n = SPI_processed;
    del_participant.execute(&arg, nullptr, false);
    return n;
  });
  if (force && unconfirmed > 0)
    ereport(WARNING, (errmsg("participant \"%s\" dropped with %lu committed transaction(s) not confirmed "
                             "there",
                             name.c_str(), static_cast<unsigned long>(unconfirmed)),
                      errhint("Commit its prepared transactions named \"%s...\" by hand if any are left.",
                              gid_prefix(GetSystemIdentifier(), MyDatabaseId).c_str())));
  PG_RETURN_VOID();
}

// consistency.grant_participant(participant text, role regrole)
PGC_FUNCTION(pgc_twopc_grant_participant) {
  change_grant(fcinfo, [](const ParticipantRow& row, Oid role, const std::string&) {
    pg::pg_call([&] {
      static pg::SavedPlan plan(
          "INSERT INTO consistency.twopc_participant_grants (participant_id, role, granted_by) "
          "VALUES ($1, $2::pg_catalog.oid::pg_catalog.regrole, $3) "
          "ON CONFLICT (participant_id, role) DO NOTHING",
          {INT4OID, OIDOID, NAMEOID});
      Datum args[3] = {
          Int32GetDatum(row.id), ObjectIdGetDatum(role),
          DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(GetSessionUserId(), false)))};
      plan.execute(args, nullptr, false);
    });
  });
  PG_RETURN_VOID();
}

// consistency.revoke_participant(participant text, role regrole)
PGC_FUNCTION(pgc_twopc_revoke_participant) {
  change_grant(fcinfo, [](const ParticipantRow& row, Oid role, const std::string& rolname) {
    uint64 n = pg::pg_call([&] {
      static pg::SavedPlan plan(
          "DELETE FROM consistency.twopc_participant_grants g "
          "WHERE g.participant_id OPERATOR(pg_catalog.=) $1 "
          "AND g.role::pg_catalog.oid OPERATOR(pg_catalog.=) $2",
          {INT4OID, OIDOID});
      Datum args[2] = {Int32GetDatum(row.id), ObjectIdGetDatum(role)};
      plan.execute(args, nullptr, false);
      return SPI_processed;
    });
    if (n == 0)
      ereport(NOTICE,
              (errmsg("role \"%s\" had no grant on participant \"%s\"", rolname.c_str(), row.name.c_str())));
  });
  PG_RETURN_VOID();
}

// consistency.remote_exec(participant text, sql text) RETURNS bigint
PGC_FUNCTION(pgc_twopc_remote_exec) {
  std::string name = participant_arg(fcinfo, 0);
  std::string sql = sql_arg(fcinfo, 1, name);
  DiscardRows sink;
  pgc::twopc::Result r = execute_remote(name, sql, &sink);
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
  JsonRows sink(rsinfo, name);
  (void)execute_remote(name, sql, &sink);
  return (Datum)0;
}

// consistency._twopc_in_doubt(): what the in_doubt view shows. Asks every participant.
PGC_FUNCTION(pgc_twopc_in_doubt) {
  pg::pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
  ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  std::vector<ParticipantRow> parts;
  pg::SpiScope spi;
  parts = list_participants();
  uint64 sysid = GetSystemIdentifier();
  for (const auto& p : parts) {
    PGconn* conn = nullptr;
    std::vector<PreparedXact> list;
    std::string failure;
    try {
      conn = connect_participant(p.name, p.conninfo, p.trusted, settings::timeout_ms,
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
      std::set<uint64> decided = decided_xids(p.id, -1);
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
      Datum v[4] = {text_datum(p.name), text_datum(list[i].gid), TimestampTzGetDatum(list[i].prepared_at),
                    text_datum(decision_label(a))};
      bool nulls[4] = {false, false, false, false};
      put_row(rsinfo, v, nulls);
    }
  }
  return (Datum)0;
}
