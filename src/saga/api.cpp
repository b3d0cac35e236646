// The SQL functions of the saga pillar: define_saga, start_saga, complete_step,
// fail_step, retry_saga, abort_saga. saga_status, the view and the operations
// functions are plain SQL (src/sql/30_saga.sql).
//
// They run as their caller (no SECURITY DEFINER: the caller is who defines, starts or
// answers a saga) and take the extension owner's rights only for their own catalog
// statements, inside pgc::pg::OwnerScope: a catalog-only override search path (no
// pg_temp, nothing of the caller's), no user code inside. Privilege checks (who may
// redefine, answer, retry or abort a saga) are made for the caller before that.
#include <optional>
#include <random>
#include <string>

#include "correlation/context.hpp"
#include "metrics/metrics.hpp"
#include "pg/guard.hpp"
#include "pg/roles.hpp"
#include "pg/run_as.hpp"
#include "pg/spi.hpp"
#include "saga/definition.hpp"
#include "saga/duration.hpp"
#include "saga/machine.hpp"
#include "saga/observe.hpp"
#include "saga/pg_saga.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/datetime.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
}

namespace {

using pgc::Error;
using pgc::pg::pg_call;
using pgc::pg::PgError;
using pgc::pg::SavedPlan;
namespace sqlstate = pgc::sqlstate;
namespace saga = pgc::saga;
namespace sp = pgc::saga::backend;
namespace metrics = pgc::metrics;

double unit_random() {
  static std::minstd_rand rng(static_cast<unsigned>(MyProcPid) ^
                              static_cast<unsigned>(GetCurrentTimestamp()));
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

std::string pg_message(const PgError& e) {
  std::string m = e.what();
  FreeErrorData(e.edata());
  return m;
}

// Catalog questions of definition validation, answered as the calling role.
class PgResolver : public saga::Resolver {
 public:
  std::string quoted(const std::string& s) override { return sp::json_quoted(s); }
  std::optional<int64_t> duration_ms(const std::string& text) override {
    Interval iv{};
    try {
      pg_call([&] {
        Datum d = DirectFunctionCall3(interval_in, CStringGetDatum(text.c_str()),
                                      ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
        iv = *DatumGetIntervalP(d);
      });
    } catch (const PgError& e) {
      (void)pg_message(e);
      return std::nullopt;
    }
    return saga::interval_ms(iv.time, iv.day, iv.month);
  }

  bool resolve_function(const std::string& name, std::string& canonical, uint32_t& oid, std::string& code,
                        std::string& message) override {
    List* names = nullptr;
    Oid fn = InvalidOid;
    try {
      pg_call([&] {
        names = stringToQualifiedNameList(name.c_str());
        Oid argtypes[2] = {UUIDOID, JSONBOID};
        fn = LookupFuncName(names, 2, argtypes, true);
      });
    } catch (const PgError& e) {
      if (e.sqlerrcode() == ERRCODE_INSUFFICIENT_PRIVILEGE) {
        code = sqlstate::kInsufficientPrivilege;
        message = pg_message(e) + " (resolving function " + name + ")";
      } else {
        code = sqlstate::kInvalidArgument;
        message = "invalid function name \"" + name + "\": " + pg_message(e);
      }
      return false;
    }
    std::string sig = name + "(uuid, jsonb)";
    if (!OidIsValid(fn)) {
      code = sqlstate::kInvalidArgument;
      message = "function " + sig + " does not exist";
      return false;
    }
    char kind = 0;
    bool retset = false;
    Oid rettype = InvalidOid;
    char* rettype_name = nullptr;
    char* qualified = nullptr;
    bool may_execute = false, temporary = false;
    pg_call([&] {
      HeapTuple tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
      if (!HeapTupleIsValid(tup)) elog(ERROR, "cache lookup failed for function %u", fn);
      Form_pg_proc p = reinterpret_cast<Form_pg_proc>(GETSTRUCT(tup));
      kind = p->prokind;
      retset = p->proretset;
      rettype = p->prorettype;
      temporary = isAnyTempNamespace(p->pronamespace);
      qualified = quote_qualified_identifier(get_namespace_name(p->pronamespace), NameStr(p->proname));
      ReleaseSysCache(tup);
      rettype_name = format_type_be(rettype);
      may_execute = pg_proc_aclcheck(fn, GetUserId(), ACL_EXECUTE) == ACLCHECK_OK;
    });
    code = sqlstate::kInvalidArgument;
    if (kind == PROKIND_PROCEDURE) {
      message = sig + " is a procedure; a step needs a function returning jsonb";
      return false;
    }
    if (kind != PROKIND_FUNCTION) {
      message = sig + " is an aggregate or window function; a step needs a plain function";
      return false;
    }
    if (retset) {
      message = "function " + sig + " returns a set; a step function returns one jsonb";
      return false;
    }
    if (rettype != JSONBOID) {
      message = "function " + sig + " must return jsonb, not " + rettype_name;
      return false;
    }
    if (temporary) {
      message = "function " + sig + " is temporary; a step function must outlive the session";
      return false;
    }
    if (!may_execute) {
      code = sqlstate::kInsufficientPrivilege;
      message = "permission denied for function " + sig;
      return false;
    }
    canonical = qualified;
    oid = fn;
    return true;
  }
};

void spi_connect() {
  pg_call([] { pgc::pg::spi_connect(); });
}

void spi_finish() {
  pg_call([] { SPI_finish(); });
}

std::string text_arg(FunctionCallInfo fcinfo, int i, const char* what) {
  if (PG_ARGISNULL(i)) throw pgc::invalid_argument(std::string(what) + " must not be NULL");
  return pg_call([&] { return std::string(text_to_cstring(PG_GETARG_TEXT_PP(i))); });
}

const pg_uuid_t& uuid_arg(FunctionCallInfo fcinfo, int i) {
  if (PG_ARGISNULL(i)) throw pgc::invalid_argument("saga id must not be NULL");
  return *PG_GETARG_UUID_P(i);
}

// The jsonb argument i (NULL taken as {}), which must be an object.
Datum object_arg(FunctionCallInfo fcinfo, int i, const char* what) {
  if (PG_ARGISNULL(i)) return sp::jsonb_from_text("{}");
  bool is_object = false;
  const char* type = nullptr;
  Datum d = PG_GETARG_DATUM(i);
  pg_call([&] {
    Jsonb* jb = DatumGetJsonbP(d);
    is_object = JB_ROOT_IS_OBJECT(jb);
    type = JB_ROOT_IS_SCALAR(jb) ? "scalar" : (JB_ROOT_IS_ARRAY(jb) ? "array" : "object");
  });
  if (!is_object)
    throw pgc::invalid_argument(std::string(what) + " must be a JSON object, not a JSON " + type);
  return d;
}

sp::SagaRow load(const pg_uuid_t& id) {
  sp::SagaRow row;
  if (!sp::load_for_update(id, &row))
    throw Error(sqlstate::kUnknownObject, "saga " + sp::uuid_text(id) + " does not exist");
  return row;
}

// Runs a state-machine call, prefixing its CS003 message with the saga.
template <typename F>
saga::Transition transition_for(const sp::SagaRow& row, const char* verb, F&& f) {
  try {
    return f();
  } catch (const Error& e) {
    if (e.code() != sqlstate::kIllegalTransition) throw;
    throw Error(e.code(), std::string("cannot ") + verb + " saga " + row.id_text + ": " + e.what(),
                e.detail(), e.hint());
  }
}

TimestampTz now_ts() { return GetCurrentTimestamp(); }

}  // namespace

// consistency.define_saga(name text, definition jsonb) RETURNS int
PGC_FUNCTION(pgc_define_saga) {
  std::string name = text_arg(fcinfo, 0, "saga name");
  if (PG_ARGISNULL(1)) throw pgc::invalid_argument("saga definition must not be NULL");
  Datum definition = PG_GETARG_DATUM(1);
  PgResolver resolver;
  saga::Definition def = saga::compile(name, sp::value_of_jsonb(definition), resolver);
  std::string compiled = sp::json_text(saga::to_compiled_json(def));
  Oid caller = GetUserId();

  static SavedPlan lock_plan("SELECT pg_catalog.pg_advisory_xact_lock(8317, pg_catalog.hashtext($1))",
                             {TEXTOID});
  static SavedPlan latest_plan(
      "SELECT version, owner, compiled OPERATOR(pg_catalog.=) $2 FROM consistency.saga_definitions "
      " WHERE name OPERATOR(pg_catalog.=) $1 ORDER BY version DESC LIMIT 1",
      {TEXTOID, JSONBOID});
  static SavedPlan insert_plan(
      "INSERT INTO consistency.saga_definitions (name, version, definition, compiled, owner) "
      "VALUES ($1, $2, $3, $4, $5)",
      {TEXTOID, INT4OID, JSONBOID, JSONBOID, OIDOID});

  Oid owner_of_tables = pgc::pg::extension_table_owner("saga_instances");
  spi_connect();
  int32 version = 0;
  {
    // Write the catalog with the extension's rights and a search_path nobody can plant in.
    pgc::pg::OwnerScope as_owner(owner_of_tables);
    Datum compiled_jsonb = sp::jsonb_from_text(compiled);
    bool exists = false, same = false;
    Oid previous_owner = InvalidOid;
    int32 latest = 0;
    pg_call([&] {
      Datum name_d = CStringGetTextDatum(name.c_str());
      // Concurrent definitions of one name get consecutive versions.
      lock_plan.execute(&name_d, nullptr, false, 1);
      Datum args[2] = {name_d, compiled_jsonb};
      // Not read-only: a fresh snapshot also sees a version this statement defined in an
      // earlier call (SELECT define_saga(...) FROM generate_series(1, 3)).
      latest_plan.execute(args, nullptr, false, 1);
      if (SPI_processed == 1) {
        bool isnull = false;
        exists = true;
        latest = DatumGetInt32(pgc::pg::spi_value(0, 1, &isnull));
        previous_owner = DatumGetObjectId(pgc::pg::spi_value(0, 2, &isnull));
        same = DatumGetBool(pgc::pg::spi_value(0, 3, &isnull));
      }
    });
    if (exists && !has_privs_of_role(caller, previous_owner)) {
      char* who = pg_call([&] { return GetUserNameFromId(previous_owner, true); });
      throw Error(sqlstate::kInsufficientPrivilege,
                  "permission denied to redefine saga \"" + name + "\": it belongs to role " +
                      (who ? "\"" + std::string(who) + "\"" : "with OID " + std::to_string(previous_owner)),
                  {}, "Only members of the role that defined a saga may define new versions of it.");
    }
    if (exists && same && previous_owner == caller) {
      version = latest;  // the same definition again: no new version
    } else {
      version = latest + 1;
      pg_call([&] {
        Datum v[5] = {CStringGetTextDatum(name.c_str()), Int32GetDatum(version), definition, compiled_jsonb,
                      ObjectIdGetDatum(caller)};
        insert_plan.execute(v, nullptr, false, 0);
      });
    }
  }
  spi_finish();
  PG_RETURN_INT32(version);
}

// consistency.start_saga(name text, input jsonb, idempotency_key text DEFAULT NULL) RETURNS uuid
PGC_FUNCTION(pgc_start_saga) {
  std::string name = text_arg(fcinfo, 0, "saga name");
  Datum input = object_arg(fcinfo, 1, "saga input");
  bool has_key = !PG_ARGISNULL(2);
  std::string key = has_key ? text_arg(fcinfo, 2, "idempotency key") : "";
  if (has_key && key.empty()) throw pgc::invalid_argument("idempotency key must not be empty");

  static SavedPlan definition_plan(
      "SELECT version, xmin::pg_catalog.text FROM consistency.saga_definitions "
      " WHERE name OPERATOR(pg_catalog.=) $1 ORDER BY version DESC LIMIT 1",
      {TEXTOID});
  static SavedPlan insert_plan(
      "INSERT INTO consistency.saga_instances AS s "
      "  (id, name, definition_version, status, step_index, current_step, phase, attempts, "
      "   next_run_at, deadline, input, data, idempotency_key, started_by, created_at, updated_at, "
      "   correlation_id) "
      "VALUES (pg_catalog.gen_random_uuid(), $1, $2, 'running', 0, $3, 'ready', 0, $4, $5, $6, $6, $7, "
      "        $8, pg_catalog.clock_timestamp(), pg_catalog.clock_timestamp(), $9) "
      "ON CONFLICT (name, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING "
      "RETURNING id",
      {TEXTOID, INT4OID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, JSONBOID, TEXTOID, OIDOID, TEXTOID});
  static SavedPlan existing_plan(
      "SELECT id, input OPERATOR(pg_catalog.=) $3 FROM consistency.saga_instances "
      " WHERE name OPERATOR(pg_catalog.=) $1 AND idempotency_key OPERATOR(pg_catalog.=) $2",
      {TEXTOID, TEXTOID, JSONBOID});

  // Passed to every command and function step (CS002 for a malformed setting).
  std::string correlation_id = pgc::correlation::current_correlation();
  Oid caller = GetUserId();
  Oid owner_of_tables = pgc::pg::extension_table_owner("saga_instances");
  spi_connect();
  pgc::pg::OwnerScope as_owner(owner_of_tables);
  int32 version = 0;
  char* row_xmin = nullptr;
  bool found = pg_call([&] {
    Datum n = CStringGetTextDatum(name.c_str());
    definition_plan.execute(&n, nullptr, true, 1);
    if (SPI_processed == 0) return false;
    bool isnull = false;
    version = DatumGetInt32(pgc::pg::spi_value(0, 1, &isnull));
    row_xmin = pgc::pg::spi_text_copy(0, 2);
    return true;
  });
  if (!found)
    throw Error(sqlstate::kUnknownObject,
                "saga definition \"" + sp::clip_text(name, 200) + "\" does not exist", {},
                "Define it first with consistency.define_saga.");
  // Cached by (name, version, row version): the compiled text is read only on a miss.
  auto def = sp::definition_by_version(name, version, row_xmin ? row_xmin : "");
  TimestampTz now = now_ts();
  saga::State s = saga::initial_state(*def, now);
  std::string first_step = def->steps.front().name;

  pg_uuid_t id{};
  bool inserted = false, same_input = false;
  pg_call([&] {
    Datum v[9];
    char nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
    v[0] = CStringGetTextDatum(name.c_str());
    v[1] = Int32GetDatum(version);
    v[2] = CStringGetTextDatum(first_step.c_str());
    v[3] = TimestampTzGetDatum(s.next_run_at);
    v[4] = s.deadline == saga::kNever ? 0 : TimestampTzGetDatum(s.deadline);
    nulls[4] = s.deadline == saga::kNever ? 'n' : ' ';
    v[5] = input;
    v[6] = has_key ? CStringGetTextDatum(key.c_str()) : 0;
    nulls[6] = has_key ? ' ' : 'n';
    v[7] = ObjectIdGetDatum(caller);
    v[8] = correlation_id.empty() ? 0 : CStringGetTextDatum(correlation_id.c_str());
    nulls[8] = correlation_id.empty() ? 'n' : ' ';
    insert_plan.execute(v, nulls, false, 1);
    bool isnull = false;
    if (SPI_processed == 1) {
      inserted = true;
      id = *DatumGetUUIDP(pgc::pg::spi_value(0, 1, &isnull));
      return;
    }
    // The key was used before (or by a transaction that just committed).
    Datum e[3] = {v[0], v[6], input};
    existing_plan.execute(e, nullptr, false, 1);
    if (SPI_processed == 1) {
      id = *DatumGetUUIDP(pgc::pg::spi_value(0, 1, &isnull));
      same_input = DatumGetBool(pgc::pg::spi_value(0, 2, &isnull));
    }
  });
  std::string id_text = sp::uuid_text(id);
  if (!inserted) {
    if (!same_input)
      throw pgc::invalid_argument(
          "idempotency key \"" + sp::clip_text(key, 200) + "\" of saga \"" + sp::clip_text(name, 200) +
              "\" was already used for saga " + id_text + " with a different input",
          {}, "Reuse a key only to retry the same start; use a new key for a new saga.");
    spi_finish();
    pg_uuid_t* out = static_cast<pg_uuid_t*>(palloc(sizeof(pg_uuid_t)));
    *out = id;
    PG_RETURN_UUID_P(out);
  }

  saga::Event started{
      "SagaStarted",
      saga::json::Value::object({{"name", name},
                                 {"definition_version", version},
                                 {"idempotency_key", has_key ? saga::json::Value(key) : nullptr}}),
      sp::jsonb_text(input), "input"};
  sp::append_audit(id_text, {started}, true);
  spi_finish();
  sp::wake_workers_at_commit();
  metrics::saga_reached(name, metrics::SagaStatus::kRunning, 0);
  pg_uuid_t* out = static_cast<pg_uuid_t*>(palloc(sizeof(pg_uuid_t)));
  *out = id;
  PG_RETURN_UUID_P(out);
}

namespace {

Datum reply(FunctionCallInfo fcinfo, saga::ReplyKind kind) {
  const pg_uuid_t& id = uuid_arg(fcinfo, 0);
  std::string step = text_arg(fcinfo, 1, "step name");
  Datum output = 0;
  std::string reason;
  if (kind == saga::ReplyKind::kComplete)
    output = object_arg(fcinfo, 2, "step output");
  else
    reason = text_arg(fcinfo, 2, "failure reason");

  Oid caller = GetUserId();
  Oid owner_of_tables = pgc::pg::extension_table_owner("saga_instances");
  spi_connect();
  pgc::pg::OwnerScope as_owner(owner_of_tables);
  sp::SagaRow row = load(id);
  sp::require_saga_rights(row, caller, "answer");
  saga::ReplyVerdict verdict = saga::classify_reply(row.state, *row.def, step, kind);
  if (verdict.kind == saga::ReplyVerdict::Kind::kIllegal)
    throw Error(sqlstate::kIllegalTransition, "saga " + row.id_text + ": " + verdict.reason);
  if (verdict.kind == saga::ReplyVerdict::Kind::kApply) {
    TimestampTz now = now_ts();
    saga::Transition t = kind == saga::ReplyKind::kComplete
                             ? saga::succeeded(row.state, *row.def, now)
                             : saga::failed(row.state, *row.def, now, reason, unit_random());
    sp::store_transition(row, t, output);
    sp::wake_workers_at_commit();
    // A command step's attempt lasted from its sending (the row's last change) to now.
    sp::observe_step(row, step, row.state.status == saga::Status::kCompensating,
                     kind == saga::ReplyKind::kComplete, static_cast<double>(now - row.updated_at) / 1e6);
  }
  // kRepeat: this reply was applied before; nothing changes.
  spi_finish();
  PG_RETURN_VOID();
}

}  // namespace

// consistency.complete_step(saga_id uuid, step text, output jsonb DEFAULT '{}')
PGC_FUNCTION(pgc_complete_step) { return reply(fcinfo, saga::ReplyKind::kComplete); }

// consistency.fail_step(saga_id uuid, step text, reason text)
PGC_FUNCTION(pgc_fail_step) { return reply(fcinfo, saga::ReplyKind::kFail); }

namespace {

// An operator's action on saga `id` (retry, abort): as the extension owner, after checking
// that the caller may `verb` it; `make` computes the transition from the loaded row.
template <typename F>
void operate(const pg_uuid_t& id, const char* verb, F&& make) {
  Oid caller = GetUserId();
  Oid owner_of_tables = pgc::pg::extension_table_owner("saga_instances");
  spi_connect();
  pgc::pg::OwnerScope as_owner(owner_of_tables);
  sp::SagaRow row = load(id);
  sp::require_saga_rights(row, caller, verb);
  saga::Transition t = transition_for(row, verb, [&] { return make(row); });
  sp::store_transition(row, t, 0);
  spi_finish();
}

}  // namespace

// consistency.retry_saga(saga_id uuid)
PGC_FUNCTION(pgc_retry_saga) {
  operate(uuid_arg(fcinfo, 0), "retry",
          [](const sp::SagaRow& row) { return saga::retry(row.state, *row.def, now_ts()); });
  sp::wake_workers_at_commit();
  PG_RETURN_VOID();
}

// consistency.abort_saga(saga_id uuid, reason text)
PGC_FUNCTION(pgc_abort_saga) {
  const pg_uuid_t& id = uuid_arg(fcinfo, 0);
  std::string reason = text_arg(fcinfo, 1, "abort reason");
  operate(id, "abort",
          [&](const sp::SagaRow& row) { return saga::abort(row.state, *row.def, now_ts(), reason); });
  PG_RETURN_VOID();
}
