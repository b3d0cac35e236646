// Calling a saga's function step: by the OID stored at definition, as the role that
// defined the saga (pgc::pg::RunAs: security-restricted, search_path pinned, settings
// restored, a time limit), with its shape, existence and EXECUTE checked first.
#include <algorithm>
#include <random>
#include <string>
#include <unordered_map>

#include "correlation/context.hpp"
#include "eventstore/es.hpp"
#include "pg/run_as.hpp"
#include "saga/advance.hpp"
#include "saga/settings.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "utils/acl.h"
#include "utils/jsonb.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
}

namespace pgc::saga::backend {

using pgc::pg::pg_call;
using pgc::pg::PgError;
using pgc::pg::SavedPlan;

namespace {
// Conflicts in a row per saga (this process only; bounded).
std::unordered_map<std::string, int> g_conflicts;
}  // namespace

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

// The step's time limit: its own timeout, else pg_consistency.saga_step_timeout; and
// never more than that setting while it is set, so a tenant's definition cannot hold a
// saga worker longer than the superuser allows (0 and kNoLimit: none).
int64_t step_limit_ms(const Step& step) {
  int64_t cap = settings::step_timeout_ms;
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
    // The step's publishes and appends carry the saga's correlation ids.
    correlation::Scope ids(correlation::of_saga(row.correlation_id, row.id_text));
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
  if (event_bytes > pgc::eventstore::settings::max_event_bytes)
    throw Error(sqlstate::kInvalidArgument, "step function " + a.function + " returned " +
                                                std::to_string(bytes) +
                                                " bytes of output; its audit event may hold at most " +
                                                std::to_string(pgc::eventstore::settings::max_event_bytes) +
                                                " bytes (pg_consistency.max_event_bytes)");
  return result;
}

Datum merge_data(Datum data, Datum output) {
  if (data == 0) return output;
  return pg_call([&] { return DirectFunctionCall2(jsonb_concat, data, output); });
}

}  // namespace pgc::saga::backend
