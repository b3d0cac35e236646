// The saga pillar's PostgreSQL layer shared by the SQL functions (api.cpp) and the
// worker (advance.cpp, steps.cpp, hard_stops.cpp, workers.cpp): loading and storing saga rows, the audit and
// publish call sites, the definition cache, who may answer or operate a saga.
//
// Every function here that touches PostgreSQL does so through pg_call, so a PostgreSQL
// error arrives as pgc::pg::PgError and C++ destructors run.
//
// The statements here name every function, operator and cast with its schema. They run
// either in a saga worker (whose session search_path is pinned to pg_catalog, pg_temp),
// in _advance_sagas (SET search_path = pg_catalog, pg_temp) or, from the SQL functions,
// inside pgc::pg::OwnerScope (a catalog-only override path): never with a path a tenant
// controls, and never with a name a tenant could shadow.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "pg/postgres.hpp"
#include "saga/definition.hpp"
#include "saga/machine.hpp"

extern "C" {
#include "utils/uuid.h"
}

namespace pgc::saga::backend {

// Parsed definitions, keyed by their compiled form (jsonb; versions never change).
std::shared_ptr<const Definition> definition_from_compiled(Datum compiled);
// The same, keyed by name, version and the xmin of the definition's row (which tells a
// re-created definition from a cached one); reads the compiled form on a miss.
std::shared_ptr<const Definition> definition_by_version(const std::string& name, int version,
                                                        const std::string& row_xmin);

// One saga row, as the state machine sees it.
struct SagaRow {
  pg_uuid_t id;
  std::string id_text;
  std::string name;
  int version = 0;
  Oid owner = InvalidOid;       // the role that defined the saga: its steps run as this role
  Oid started_by = InvalidOid;  // the role that started it (InvalidOid: not loaded)
  State state;
  std::shared_ptr<const Definition> def;
  Datum data = 0;              // jsonb, copied into the memory context current at load time
  std::string correlation_id;  // in effect when it started, or ""
  int64 updated_at = 0;        // TimestampTz of the row's last change (load_for_update only)
};

// Loads a saga with its definition; false if it does not exist.
bool load_for_update(const pg_uuid_t& id, SagaRow* out);

// Raises 42501 unless role `caller` may answer or operate saga `row`: the role that
// started it, a role with the privileges of the role that defined it or of the starter
// (has_privs_of_role: members that inherit), a member of consistency_admin, a superuser.
// `verb` names the refused action ("answer", "retry", "abort").
void require_saga_rights(const SagaRow& row, Oid caller, const char* verb);

// `text` cut to at most max_bytes on a character boundary of the database encoding, with
// "..." appended when cut (error texts of user code stored in audit events and messages).
std::string clip_text(const std::string& text, int max_bytes = 1000);

// Fills the state part of `out` from the columns of an SPI row laid out as
// status, step_index, failed_step, phase, attempts, next_run_at, deadline (starting at
// column `first`).
void read_state(uint64 row, int first, State* out);

// Writes a saga's new state, last_error if set, `data` (jsonb or 0) merged into its
// data, and appends the audit events. The one place a saga's state changes after start.
void store_state(const SagaRow& row, const State& s, const std::vector<Event>& events, bool set_error,
                 const std::string& error, Datum data);
// store_state for one transition whose step returned `output` (jsonb or 0).
void store_transition(const SagaRow& row, const Transition& t, Datum output);

// The audit call site: appends `events` to stream saga-<uuid> in the event store.
// new_stream: the saga's first events (its stream cannot exist yet), appended in one
// statement instead of trying an update of the stream row first.
void append_audit(const std::string& id_text, const std::vector<Event>& events, bool new_stream = false);

// The publish call site: sends a step's command through the outbox. Returns the
// outbox id.
int64 publish_command(const SagaRow& row, const Action& action, int attempt, bool compensation);

// JSON between jsonb and the pure core's json::Value, byte for byte in any database
// encoding (nlohmann/json's own parser and dump() accept only UTF-8).
// jsonb as a Value, read token by token (no text in between, no recursion: any depth);
// numbers as json::number reads numeric's text. Null for 0.
json::Value value_of_jsonb(Datum jsonb);
// `s` as a JSON string literal, escaped by PostgreSQL's escape_json.
std::string json_quoted(const std::string& s);
// `v` as JSON text for jsonb_in: strings and keys as json_quoted writes them,
// numbers, booleans and null as nlohmann prints them. For the pillar's own values
// (compiled definitions, audit data): it recurses, one level per nesting level.
std::string json_text(const json::Value& v);

// Helpers.
std::string uuid_text(const pg_uuid_t& id);
// jsonb <-> its text form, through PostgreSQL's own functions.
std::string jsonb_text(Datum jsonb);  // "" for 0
Datum jsonb_from_text(const std::string& text);
// Asks the worker(s) of this database to look at sagas when this transaction commits.
void wake_workers_at_commit();

}  // namespace pgc::saga::backend
