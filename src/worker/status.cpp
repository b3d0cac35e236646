// consistency.worker_status(): what the launcher and the workers are doing, read from
// shared memory. Without preload there is no worker, and it says so.
#include "pg/guard.hpp"
#include "worker/shared_state.hpp"

extern "C" {
#include "commands/dbcommands.h"
#include "utils/timestamp.h"
}

namespace {

void put_row(ReturnSetInfo* rsinfo, const char* kind, const char* dbname, pid_t pid, const char* state,
             TimestampTz started, TimestampTz last_tick, int64 ticks, int64 errors, const char* last_error) {
  Datum values[9];
  bool nulls[9] = {};
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
  tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

}  // namespace

PGC_FUNCTION(pgc_worker_status) {
  InitMaterializedSRF(fcinfo, 0);
  ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  pgc::worker::SharedState* s = pgc::worker::shared();
  if (s == nullptr) {
    put_row(rsinfo, "worker", get_database_name(MyDatabaseId), 0, "not_preloaded", 0, 0, 0, 0,
            "shared_preload_libraries does not include pg_consistency");
    return (Datum)0;
  }
  // Copy under the spinlock, format outside it (formatting may allocate and error).
  pgc::worker::SharedState snap;
  SpinLockAcquire(&s->mutex);
  memcpy(&snap, s, sizeof(snap));
  SpinLockRelease(&s->mutex);
  put_row(rsinfo, "launcher", nullptr, snap.launcher_pid, snap.launcher_pid ? "running" : "stopped",
          snap.launcher_started_at, 0, 0, 0, nullptr);
  for (const auto& slot : snap.slots) {
    if (slot.dbname[0] == '\0') continue;
    put_row(rsinfo, "worker", slot.dbname, slot.pid,
            slot.pid ? pgc::worker::state_name(slot.state) : "stopped", slot.started_at, slot.last_tick_at,
            static_cast<int64>(slot.ticks), static_cast<int64>(slot.errors), slot.last_error);
  }
  return (Datum)0;
}

// Test hook: makes the next n ticks of this database's worker fail inside a transaction.
PGC_FUNCTION(pgc_debug_fail_worker_ticks) {
  int32 n = PG_GETARG_INT32(0);
  if (n < 0) throw pgc::invalid_argument("number of ticks to fail must be >= 0");
  pgc::worker::SharedState* s = pgc::worker::shared();
  if (s == nullptr)
    throw pgc::Error(pgc::sqlstate::kObjectInUse, "the pg_consistency worker is not preloaded");
  bool found = false;
  for (auto& slot : s->slots) {
    SpinLockAcquire(&s->mutex);
    bool mine = slot.dboid == MyDatabaseId;
    SpinLockRelease(&s->mutex);
    if (mine) {
      pg_atomic_write_u32(&slot.inject_errors, static_cast<uint32>(n));
      found = true;
    }
  }
  PG_RETURN_BOOL(found);
}
