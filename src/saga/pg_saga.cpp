#include "saga/pg_saga.hpp"

#include <unordered_map>

#include "correlation/ids.hpp"
#include "eventstore/es.hpp"
#include "pg/guard.hpp"
#include "pg/spi.hpp"
#include "pg/text.hpp"
#include "saga/observe.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
}

namespace pgc::saga::backend {

using pgc::pg::pg_call;
using pgc::pg::SavedPlan;

namespace {

// The compiled definition (jsonb) in column `col` of SPI row `row`, copied out of SPI's
// memory; 0 for NULL. Call it inside pg_call.
Datum compiled_copy(uint64 row, int col) {
  bool isnull = false;
  Datum d = pgc::pg::spi_value(row, col, &isnull);
  return isnull ? 0 : SPI_datumTransfer(d, false, -1);
}

// A jsonb scalar as a json::Value: strings keep their bytes, numbers go through
// numeric's text.
json::Value scalar_of(const JsonbValue& v) {
  switch (v.type) {
    case jbvString:
      return std::string(v.val.string.val, v.val.string.len);
    case jbvNumeric: {
      char* text = pg_call(
          [&] { return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v.val.numeric))); });
      json::Value n = json::number(text);
      pfree(text);
      return n;
    }
    case jbvBool:
      return v.val.boolean;
    default:
      return nullptr;
  }
}

// Appends `v` as JSON text (json_text).
void append_json(std::string& out, const json::Value& v) {
  if (v.is_object()) {
    out += '{';
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (it != v.begin()) out += ", ";
      out += json_quoted(it.key()) + ": ";
      append_json(out, *it);
    }
    out += '}';
  } else if (v.is_array()) {
    out += '[';
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (it != v.begin()) out += ", ";
      append_json(out, *it);
    }
    out += ']';
  } else if (v.is_string()) {
    out += json_quoted(v.get_ref<const std::string&>());
  } else {
    out += v.dump();  // a number, a boolean or null: ASCII
  }
}

// The JSON array of audit records consistency.append_events takes.
std::string events_json(const std::vector<Event>& events) {
  std::string out = "[";
  for (const Event& e : events) {
    if (&e != &events.front()) out += ", ";
    std::string data = json_text(e.data);
    if (!e.raw_json.empty()) {
      // data is an object: splice the raw JSON in before its closing brace.
      data.pop_back();
      if (data.size() > 1) data += ", ";
      data += json_quoted(e.raw_key) + ": " + e.raw_json + "}";
    }
    out += "{\"type\": " + json_quoted(e.type) + ", \"data\": " + data + "}";
  }
  return out + "]";
}

}  // namespace

json::Value value_of_jsonb(Datum jsonb) {
  if (jsonb == 0) return json::Value();
  JsonbIterator* it = pg_call([&] { return JsonbIteratorInit(&DatumGetJsonbP(jsonb)->root); });
  json::Value root;
  std::vector<json::Value> open;  // the arrays and objects being filled, innermost last
  std::vector<std::string> keys;  // the key of the next member of each open object
  for (;;) {
    JsonbValue v;
    JsonbIteratorToken token = pg_call([&] { return JsonbIteratorNext(&it, &v, false); });
    json::Value done;
    switch (token) {
      case WJB_DONE:
        return root;
      case WJB_BEGIN_ARRAY:
        // A scalar document is a one-element pseudo-array.
        if (!v.val.array.rawScalar) open.push_back(json::Value::array());
        continue;
      case WJB_BEGIN_OBJECT:
        open.push_back(json::Value::object());
        continue;
      case WJB_KEY:
        keys.emplace_back(v.val.string.val, v.val.string.len);
        continue;
      case WJB_END_ARRAY:
      case WJB_END_OBJECT:
        if (open.empty()) continue;  // the end of a scalar document's pseudo-array
        done = std::move(open.back());
        open.pop_back();
        break;
      default:  // WJB_VALUE, WJB_ELEM
        done = scalar_of(v);
        break;
    }
    if (open.empty()) {
      root = std::move(done);
    } else if (open.back().is_object()) {
      open.back()[keys.back()] = std::move(done);
      keys.pop_back();
    } else {
      open.back().push_back(std::move(done));
    }
  }
}

std::string json_quoted(const std::string& s) {
  return pg_call([&] {
    StringInfoData buf;
    initStringInfo(&buf);
    escape_json(&buf, s.c_str());
    std::string out(buf.data, buf.len);
    pfree(buf.data);
    return out;
  });
}

std::string json_text(const json::Value& v) {
  std::string out;
  append_json(out, v);
  return out;
}

std::shared_ptr<const Definition> definition_from_compiled(Datum compiled) {
  static std::unordered_map<std::string, std::shared_ptr<const Definition>> cache;
  if (compiled == 0) throw Error(sqlstate::kInternal, "malformed compiled saga definition: NULL");
  Jsonb* jb = nullptr;
  std::string key = pg_call([&] {
    jb = DatumGetJsonbP(compiled);
    return std::string(reinterpret_cast<const char*>(jb), VARSIZE(jb));
  });
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  auto def = std::make_shared<const Definition>(from_compiled_json(value_of_jsonb(JsonbPGetDatum(jb))));
  if (cache.size() >= 1000) cache.clear();
  cache.emplace(std::move(key), def);
  return def;
}

std::shared_ptr<const Definition> definition_by_version(const std::string& name, int version,
                                                        const std::string& row_xmin) {
  static std::unordered_map<std::string, std::shared_ptr<const Definition>> cache;
  std::string key = name + '\n' + std::to_string(version) + '\n' + row_xmin;
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  static SavedPlan plan(
      "SELECT consistency._saga_bound_steps(compiled, bound_cluster) FROM consistency.saga_definitions "
      " WHERE name OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2",
      {TEXTOID, INT4OID});
  Datum compiled = pg_call([&] {
    Datum args[2] = {CStringGetTextDatum(name.c_str()), Int32GetDatum(version)};
    plan.execute(args, nullptr, false, 1);
    if (SPI_processed != 1)
      elog(ERROR, "pg_consistency: saga definition \"%s\" version %d is missing", name.c_str(), version);
    return compiled_copy(0, 1);
  });
  auto def = definition_from_compiled(compiled);
  if (cache.size() >= 1000) cache.clear();
  cache.emplace(std::move(key), def);
  return def;
}

std::string uuid_text(const pg_uuid_t& id) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < UUID_LEN; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(hex[id.data[i] >> 4]);
    out.push_back(hex[id.data[i] & 0x0f]);
  }
  return out;
}

std::string jsonb_text(Datum jsonb) {
  if (jsonb == 0) return "";
  return pg_call([&] {
    Jsonb* jb = DatumGetJsonbP(jsonb);
    char* s = JsonbToCString(nullptr, &jb->root, VARSIZE(jb));
    std::string out(s);
    pfree(s);
    return out;
  });
}

Datum jsonb_from_text(const std::string& text) {
  return pg_call([&] { return DirectFunctionCall1(jsonb_in, CStringGetDatum(text.c_str())); });
}

namespace {

// A timestamptz column of an SPI row as the state machine's time (kNever for NULL).
int64_t time_of(uint64 row, int col) {
  bool isnull = false;
  Datum d = pgc::pg::spi_value(row, col, &isnull);
  return isnull ? kNever : static_cast<int64_t>(DatumGetTimestampTz(d));
}

// The state machine's time as a timestamptz argument, with its SPI null flag.
Datum time_datum(int64_t t, char* null_flag) {
  *null_flag = t == kNever ? 'n' : ' ';
  return t == kNever ? 0 : TimestampTzGetDatum(static_cast<TimestampTz>(t));
}

}  // namespace

namespace {

// The raw columns of a state, read under pg_call with plain locals only.
struct RawState {
  char* status;
  char* phase;
  int32 step;
  int32 failed_step;
  int32 attempts;
  int64_t next_run_at;
  int64_t deadline;
};

// Reads the seven state columns starting at column c.
void read_raw_state(uint64 row, int c, RawState* raw) {
  bool isnull = false;
  raw->status = pgc::pg::spi_text_copy(row, c);
  raw->step = DatumGetInt32(pgc::pg::spi_value(row, c + 1, &isnull));
  Datum f = pgc::pg::spi_value(row, c + 2, &isnull);
  raw->failed_step = isnull ? -1 : DatumGetInt32(f);
  raw->phase = pgc::pg::spi_text_copy(row, c + 3);
  raw->attempts = DatumGetInt32(pgc::pg::spi_value(row, c + 4, &isnull));
  raw->next_run_at = time_of(row, c + 5);
  raw->deadline = time_of(row, c + 6);
}

// Turns the raw columns into a State; an unknown status or phase is an internal error.
void state_from_raw(const RawState& raw, State* out) {
  std::string status = raw.status ? raw.status : "";
  std::string phase = raw.phase ? raw.phase : "";
  if (!parse_status(status, &out->status))
    throw Error(sqlstate::kInternal, "saga has an unknown status \"" + status + "\"");
  if (!parse_phase(phase, &out->phase))
    throw Error(sqlstate::kInternal, "saga has an unknown phase \"" + phase + "\"");
  out->step = raw.step;
  out->failed_step = raw.failed_step;
  out->attempts = raw.attempts;
  out->next_run_at = raw.next_run_at;
  out->deadline = raw.deadline;
}

}  // namespace

void read_state(uint64 row, int c, State* out) {
  RawState raw{};
  pg_call([&] { read_raw_state(row, c, &raw); });
  state_from_raw(raw, out);
}

bool load_for_update(const pg_uuid_t& id, SagaRow* out) {
  static SavedPlan plan(
      "SELECT s.name, s.definition_version, d.owner, d.compiled, s.data, "
      "       s.status, s.step_index, s.failed_step, s.phase, s.attempts, s.next_run_at, s.deadline, "
      "       s.started_by, s.correlation_id, s.updated_at "
      "  FROM consistency.saga_instances s "
      "  JOIN consistency.saga_definitions d "
      "    ON d.name OPERATOR(pg_catalog.=) s.name "
      "   AND d.version OPERATOR(pg_catalog.=) s.definition_version "
      " WHERE s.id OPERATOR(pg_catalog.=) $1 FOR UPDATE OF s",
      {UUIDOID});
  Datum arg = UUIDPGetDatum(&id);
  char* name = nullptr;
  char* correlation_id = nullptr;
  Datum compiled = 0;
  RawState raw{};
  bool found = pg_call([&] {
    plan.execute(&arg, nullptr, false, 1);
    if (SPI_processed == 0) return false;
    bool isnull = false;
    name = pgc::pg::spi_text_copy(0, 1);
    out->version = DatumGetInt32(pgc::pg::spi_value(0, 2, &isnull));
    out->owner = DatumGetObjectId(pgc::pg::spi_value(0, 3, &isnull));
    compiled = compiled_copy(0, 4);
    Datum data = pgc::pg::spi_value(0, 5, &isnull);
    out->data = isnull ? 0 : SPI_datumTransfer(data, false, -1);
    read_raw_state(0, 6, &raw);
    out->started_by = DatumGetObjectId(pgc::pg::spi_value(0, 13, &isnull));
    correlation_id = pgc::pg::spi_text_copy(0, 14);
    out->updated_at = DatumGetTimestampTz(pgc::pg::spi_value(0, 15, &isnull));
    return true;
  });
  if (!found) return false;
  out->id = id;
  out->id_text = uuid_text(id);
  out->name = name ? name : "";
  out->correlation_id = correlation_id ? correlation_id : "";
  state_from_raw(raw, &out->state);
  out->def = definition_from_compiled(compiled);
  return true;
}

std::string clip_text(const std::string& text, int max_bytes) {
  return pgc::pg::clipped(text.data(), static_cast<int>(text.size()), max_bytes, false);
}

void require_saga_rights(const SagaRow& row, Oid caller, const char* verb) {
  Oid me = caller;
  bool allowed = false;
  char* starter = nullptr;
  char* definer = nullptr;
  pg_call([&] {
    // has_privs_of_role is true for superusers and for a role and itself.
    if ((OidIsValid(row.started_by) && has_privs_of_role(me, row.started_by)) ||
        has_privs_of_role(me, row.owner)) {
      allowed = true;
      return;
    }
    Oid admin = get_role_oid("consistency_admin", true);
    if (OidIsValid(admin) && has_privs_of_role(me, admin)) {
      allowed = true;
      return;
    }
    starter = GetUserNameFromId(row.started_by, true);
    definer = GetUserNameFromId(row.owner, true);
  });
  if (allowed) return;
  auto role = [](const char* name, Oid oid) {
    return name != nullptr ? "\"" + std::string(name) + "\""
                           : "with OID " + std::to_string(oid) + " (dropped)";
  };
  throw Error(sqlstate::kInsufficientPrivilege,
              std::string("permission denied to ") + verb + " saga " + row.id_text,
              "Saga \"" + clip_text(row.name, 200) + "\" was started by role " +
                  role(starter, row.started_by) + " and defined by role " + role(definer, row.owner) + ".",
              "Only the role that started a saga, members of the role that defined it or started "
              "it, and members of consistency_admin may answer or change it.");
}

void append_audit(const std::string& id_text, const std::vector<Event>& events, bool new_stream) {
  if (events.empty()) return;
  std::string stream = "saga-" + id_text;
  std::string body = events_json(events);
  pg_call([&] {
    Jsonb* jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(body.c_str())));
    if (new_stream) {
      pgc::eventstore::append_new(stream.c_str(), jb);
    } else {
      pgc::eventstore::append_any(stream.c_str(), jb);
    }
  });
}

int64 publish_command(const SagaRow& row, const Action& action, int attempt, bool compensation) {
  // Key = the saga id, so one saga's commands stay in order on the topic. The saga's
  // correlation ids are given as headers: they win over any context in effect.
  static SavedPlan plan(
      "SELECT consistency.publish($1, $2, "
      "  pg_catalog.jsonb_build_object('command', $5, 'saga_id', $2, 'saga', $3, 'step', $4, "
      "                                'attempt', $6, 'phase', $7, 'data', $8), "
      "  pg_catalog.jsonb_build_object('saga_id', $2, 'saga', $3, 'step', $4, "
      "                                'attempt', $6::pg_catalog.text, 'phase', $7, 'command', $5, "
      "                                'correlation_id', $9, 'causation_id', $10))",
      {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID, TEXTOID, JSONBOID, TEXTOID, TEXTOID});
  const std::string& step = row.def->steps[static_cast<size_t>(row.state.step)].name;
  correlation::Ids ids = correlation::of_saga(row.correlation_id, row.id_text);
  return pg_call([&] {
    Datum values[10] = {CStringGetTextDatum(action.topic.c_str()),
                        CStringGetTextDatum(row.id_text.c_str()),
                        CStringGetTextDatum(row.name.c_str()),
                        CStringGetTextDatum(step.c_str()),
                        CStringGetTextDatum(action.command.c_str()),
                        Int32GetDatum(attempt),
                        CStringGetTextDatum(compensation ? "compensation" : "action"),
                        row.data,
                        CStringGetTextDatum(ids.correlation.c_str()),
                        CStringGetTextDatum(ids.causation.c_str())};
    char nulls[10] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', row.data == 0 ? 'n' : ' ', ' ', ' '};
    plan.execute(values, nulls, false, 1);
    if (SPI_processed != 1) elog(ERROR, "pg_consistency: consistency.publish returned no row");
    return static_cast<int64>(pgc::pg::spi_int64(0, 1, 0));
  });
}

void store_transition(const SagaRow& row, const Transition& t, Datum output) {
  if (output != 0 && !t.events.empty()) {
    // The step's output goes into the audit record of its success.
    std::vector<Event> events = t.events;
    events.front().raw_json = jsonb_text(output);
    store_state(row, t.state, events, t.set_error, t.error, output);
  } else {
    store_state(row, t.state, t.events, t.set_error, t.error, output);
  }
}

void store_state(const SagaRow& row, const State& s, const std::vector<Event>& events, bool set_error,
                 const std::string& error, Datum data) {
  static SavedPlan plan(
      "UPDATE consistency.saga_instances "
      "   SET status = $2, step_index = $3, current_step = $4, failed_step = $5, phase = $6, "
      "       attempts = $7, next_run_at = $8, deadline = $9, "
      "       last_error = CASE WHEN $10 THEN $11 ELSE last_error END, "
      "       data = CASE WHEN $12::pg_catalog.jsonb IS NULL THEN data "
      "                   ELSE data OPERATOR(pg_catalog.||) $12 END, "
      "       updated_at = pg_catalog.clock_timestamp() "
      " WHERE id OPERATOR(pg_catalog.=) $1 RETURNING created_at",
      {UUIDOID, TEXTOID, INT4OID, TEXTOID, INT4OID, TEXTOID, INT4OID, TIMESTAMPTZOID, TIMESTAMPTZOID, BOOLOID,
       TEXTOID, JSONBOID});
  std::string step = current_step_name(s, *row.def);
  TimestampTz created_at = 0;
  pg_call([&] {
    Datum v[12];
    char n[12];
    memset(n, ' ', sizeof n);
    v[0] = UUIDPGetDatum(&row.id);
    v[1] = CStringGetTextDatum(status_name(s.status));
    v[2] = Int32GetDatum(s.step);
    v[3] = step.empty() ? 0 : CStringGetTextDatum(step.c_str());
    n[3] = step.empty() ? 'n' : ' ';
    v[4] = Int32GetDatum(s.failed_step);
    n[4] = s.failed_step < 0 ? 'n' : ' ';
    v[5] = CStringGetTextDatum(phase_name(s.phase));
    v[6] = Int32GetDatum(s.attempts);
    v[7] = time_datum(
        s.status == Status::kRunning || s.status == Status::kCompensating ? s.next_run_at : kNever, &n[7]);
    v[8] = time_datum(s.deadline, &n[8]);
    v[9] = BoolGetDatum(set_error);
    v[10] = set_error ? CStringGetTextDatum(error.c_str()) : 0;
    n[10] = set_error ? ' ' : 'n';
    v[11] = data;
    n[11] = data == 0 ? 'n' : ' ';
    plan.execute(v, n, false, 0);
    if (SPI_processed != 1) elog(ERROR, "pg_consistency: saga %s vanished", row.id_text.c_str());
    bool isnull = false;
    created_at = DatumGetTimestampTz(pgc::pg::spi_value(0, 1, &isnull));
  });
  append_audit(row.id_text, events);
  observe_transition(row, events, created_at);
}

}  // namespace pgc::saga::backend
