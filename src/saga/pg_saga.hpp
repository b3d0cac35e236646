// The saga pillar's PostgreSQL layer shared by the SQL functions (api.cpp) and the
// worker (executor.cpp): loading and storing saga rows, the audit and publish call
// sites, the definition cache, and scoped role / setting changes.
//
// Every function here that touches PostgreSQL does so through pg_call, so a PostgreSQL
// error arrives as pgc::pg::PgError and C++ destructors run.
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

namespace pgc::saga::pg {

// A configuration setting changed for a scope inside a transaction (a GUC nest level,
// as a function's SET clause does); restored by the destructor.
class SettingScope {
 public:
  SettingScope(const char* name, const char* value);
  ~SettingScope();
  SettingScope(const SettingScope&) = delete;
  SettingScope& operator=(const SettingScope&) = delete;

 private:
  int nest_level_;
};

inline constexpr const char* kSafeSearchPath = "pg_catalog, pg_temp";


// Parsed definitions, keyed by their compiled text (versions never change).
std::shared_ptr<const Definition> definition_from_compiled(const std::string& compiled);
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
  Oid owner = InvalidOid;
  State state;
  std::shared_ptr<const Definition> def;
  Datum data = 0;  // jsonb, copied into the memory context current at load time
};

// Loads a saga with its definition; false if it does not exist.
bool load_for_update(const pg_uuid_t& id, SagaRow* out);

// Fills the state part of `out` from the columns of an SPI row laid out as
// status, step_index, failed_step, phase, attempts, next_run_at, deadline (starting at
// column `first`).
void read_state(uint64 row, int first, State* out);

// Writes a saga's new state, last_error if set, `data` (jsonb or 0) merged into its
// data, and appends the audit events. The one place a saga's state changes after start.
void store_state(const SagaRow& row, const State& s, const std::vector<Event>& events,
                 bool set_error, const std::string& error, Datum data);
// store_state for one transition whose step returned `output` (jsonb or 0).
void store_transition(const SagaRow& row, const Transition& t, Datum output);

// The audit call site: appends `events` to stream saga-<uuid> in the event store.
// new_stream: the saga's first events (its stream cannot exist yet), appended in one
// statement instead of trying an update of the stream row first.
void append_audit(const std::string& id_text, const std::vector<Event>& events, bool new_stream = false);

// The publish call site: sends a step's command through the outbox. Returns the
// outbox id.
int64 publish_command(const SagaRow& row, const Action& action, int attempt, bool compensation);

// Helpers.
std::string uuid_text(const pg_uuid_t& id);
std::string jsonb_text(Datum jsonb);  // "" for 0
Datum jsonb_from_text(const std::string& text);
// Asks the worker(s) of this database to look at sagas when this transaction commits.
void wake_workers_at_commit();

}  // namespace pgc::saga::pg
