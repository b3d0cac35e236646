// consistency.worker_status(): what the launcher and the workers are doing, read from
// shared memory. Without preload there is no worker, and it says so.
#include "pg/component.hpp"
#include "pg/guard.hpp"
#include "worker/databases.hpp"
#include "worker/shared_state.hpp"

extern "C" {
#include "commands/dbcommands.h"
#include "utils/timestamp.h"
}

namespace {

// One row of consistency.worker_status().
void put_row(ReturnSetInfo* rsinfo, const char* kind, const char* dbname, pid_t pid, const char* state,
             TimestampTz started, TimestampTz last_tick, int64 ticks, int64 errors, const char* last_error,
             TimestampTz settings_loaded) {
  Datum values[10];
  bool nulls[10] = {};
  values[0] = CStringGetTextDatum(kind);
  nulls[1] = dbname == nullptr;
  values[1] = dbname ? CStringGetTextDatum(dbname) : 0;
  nulls[2] = pid == 0;
  values[2] = Int32GetDatum(pid);
  values[3] = CStringGetTextDatum(state);
  nulls[4] = started == 0;
  values[4] = TimestampTzGetDatum(started);
  nulls[5] = last_tick == 0;
  values[5] = TimestampTzGetDatum(last_tick);
  values[6] = Int64GetDatum(ticks);
  values[7] = Int64GetDatum(errors);
  nulls[8] = last_error == nullptr || *last_error == '\0';
  values[8] = nulls[8] ? 0 : CStringGetTextDatum(last_error);
  nulls[9] = settings_loaded == 0;
  values[9] = TimestampTzGetDatum(settings_loaded);
  tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

// The kind of a component's process in consistency.workers: its bgw_type without the
// "pg_consistency " prefix ("saga worker").
const char* process_kind(int component) {
  const pgc::pg::Component* c = pgc::pg::component_at(component);
  if (c == nullptr || c->process_type == nullptr) return "process";
  const char* prefix = "pg_consistency ";
  size_t n = strlen(prefix);
  return strncmp(c->process_type, prefix, n) == 0 ? c->process_type + n : c->process_type;
}

// The row of one process of ours (the worker, or a component's process).
void put_process(ReturnSetInfo* rsinfo, const char* kind, const char* dbname,
                 const pgc::worker::ProcessSlot& p) {
  put_row(rsinfo, kind, dbname, p.pid, p.pid ? pgc::worker::state_name(p.state) : "stopped", p.started_at,
          p.last_tick_at, static_cast<int64>(p.ticks), static_cast<int64>(p.errors), p.last_error,
          p.pid ? p.settings_loaded_at : 0);
}

}  // namespace

PGC_FUNCTION(pgc_worker_status) {
  using namespace pgc::worker;
  InitMaterializedSRF(fcinfo, 0);
  ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  SharedState* s = shared();
  if (s == nullptr || !have_databases()) {
    put_row(rsinfo, "worker", get_database_name(MyDatabaseId), 0, "not_preloaded", 0, 0, 0, 0,
            "shared_preload_libraries does not include pg_consistency", 0);
    return (Datum)0;
  }
  SpinLockAcquire(&s->mutex);
  pid_t launcher_pid = s->launcher_pid;
  TimestampTz launcher_started_at = s->launcher_started_at;
  TimestampTz launcher_loaded_at = launcher_pid ? s->launcher_settings_loaded_at : 0;
  SpinLockRelease(&s->mutex);
  put_row(rsinfo, "launcher", nullptr, launcher_pid, launcher_pid ? "running" : "stopped",
          launcher_started_at, 0, 0, 0, nullptr, launcher_loaded_at);
  // Copy a slot's rows under the lock, format them outside it (formatting may allocate
  // and error).
  for (int i = 0; i < database_capacity(); i++) {
    DatabaseSlot* d = database_at(i);
    char dbname[NAMEDATALEN];
    ProcessSlot worker;
    ProcessSlot procs[kMaxProcessesPerDatabase];
    int n = 0;
    SpinLockAcquire(databases_lock());
    bool shown = d->in_use && d->dbname[0] != '\0';
    if (shown) {
      strlcpy(dbname, d->dbname, NAMEDATALEN);
      worker = d->worker;
      for (const auto& p : d->processes)
        if (p.in_use) procs[n++] = p;
    }
    SpinLockRelease(databases_lock());
    if (!shown) continue;
    put_process(rsinfo, "worker", dbname, worker);
    for (int j = 0; j < n; j++) put_process(rsinfo, process_kind(procs[j].component), dbname, procs[j]);
  }
  return (Datum)0;
}

// Test hook: makes the next n ticks of this database's worker fail inside a transaction.
PGC_FUNCTION(pgc_debug_fail_worker_ticks) {
  int32 n = PG_GETARG_INT32(0);
  if (n < 0) throw pgc::invalid_argument("number of ticks to fail must be >= 0");
  if (pgc::worker::shared() == nullptr)
    throw pgc::Error(pgc::sqlstate::kObjectInUse, "the pg_consistency worker is not preloaded");
  pgc::worker::DatabaseSlot* d = pgc::worker::find_database(MyDatabaseId);
  if (d == nullptr) PG_RETURN_BOOL(false);
  pg_atomic_write_u32(&d->worker.inject_errors, static_cast<uint32>(n));
  PG_RETURN_BOOL(true);
}
