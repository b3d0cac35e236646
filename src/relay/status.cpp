#include "relay/status.hpp"

#include <algorithm>
#include <iterator>

#include "pg/guard.hpp"
#include "relay/settings.hpp"
#include "worker/shared_state.hpp"

extern "C" {
#include "funcapi.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
}

namespace pgc::relay {

namespace {

struct RelaySlot {
  Oid dboid;
  pid_t pid;
  State state;
  int mode;
  char last_error[512];
  TimestampTz last_error_at;
  uint64 batches;
  uint64 errors;
  int64 in_flight;
  double pg_seconds;     // time in PostgreSQL work (reading, recording, finishing batches)
  double kafka_seconds;  // time producing and waiting for Kafka (acks, commits)
};

struct RelayShared {
  slock_t mutex;
  RelaySlot slots[worker::kMaxDatabases];
};

RelayShared* g_shared = nullptr;
int g_slot = -1;

RelayShared* shared() {
  if (g_shared == nullptr && worker::shared() != nullptr) {
    // A backend attached after startup: look the struct up (it exists when preloaded).
    bool found = false;
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    g_shared =
        static_cast<RelayShared*>(ShmemInitStruct("pg_consistency relay", sizeof(RelayShared), &found));
    if (!found) {
      memset(g_shared, 0, sizeof(RelayShared));
      SpinLockInit(&g_shared->mutex);
    }
    LWLockRelease(AddinShmemInitLock);
  }
  return g_shared;
}

RelaySlot* my_slot() {
  RelayShared* s = shared();
  if (s == nullptr) return nullptr;
  if (g_slot < 0) {
    SpinLockAcquire(&s->mutex);
    for (int i = 0; i < worker::kMaxDatabases && g_slot < 0; i++)
      if (s->slots[i].dboid == MyDatabaseId) g_slot = i;
    for (int i = 0; i < worker::kMaxDatabases && g_slot < 0; i++)
      if (s->slots[i].dboid == InvalidOid) g_slot = i;
    if (g_slot >= 0) {
      RelaySlot& slot = s->slots[g_slot];
      slot.dboid = MyDatabaseId;
      slot.pid = MyProcPid;
    }
    SpinLockRelease(&s->mutex);
  }
  return g_slot >= 0 ? &s->slots[g_slot] : nullptr;
}

}  // namespace

const char* state_name(State s) {
  static const char* const kNames[] = {"stopped", "running", "broker_unavailable"};  // in State's order
  auto i = static_cast<std::size_t>(s);
  return i < std::size(kNames) ? kNames[i] : "stopped";
}

Size shmem_size() { return sizeof(RelayShared); }

void shmem_init() {
  bool found = false;
  g_shared = static_cast<RelayShared*>(ShmemInitStruct("pg_consistency relay", sizeof(RelayShared), &found));
  if (!found) {
    memset(g_shared, 0, sizeof(RelayShared));
    SpinLockInit(&g_shared->mutex);
  }
}

void set_state(State st, int64 in_flight) {
  RelaySlot* slot = my_slot();
  if (slot == nullptr) return;
  SpinLockAcquire(&g_shared->mutex);
  slot->state = st;
  slot->mode = settings::mode;
  slot->pid = MyProcPid;
  slot->in_flight = in_flight;
  SpinLockRelease(&g_shared->mutex);
}

// Adds elapsed time to one of the two sides (plain data, for the benchmark and operators).
void add_time(bool postgres_side, TimestampTz since) {
  RelaySlot* slot = my_slot();
  if (slot == nullptr) return;
  double secs = (GetCurrentTimestamp() - since) / 1e6;
  SpinLockAcquire(&g_shared->mutex);
  (postgres_side ? slot->pg_seconds : slot->kafka_seconds) += secs;
  SpinLockRelease(&g_shared->mutex);
}

void count_batch() {
  RelaySlot* slot = my_slot();
  if (slot == nullptr) return;
  SpinLockAcquire(&g_shared->mutex);
  slot->batches++;
  SpinLockRelease(&g_shared->mutex);
}

// Logs a relay message, without repeating the same text more than every 30 s.
bool log_limited(const std::string& message) {
  static std::string last_logged;
  static TimestampTz last_logged_at = 0;
  TimestampTz now = GetCurrentTimestamp();
  if (message != last_logged || TimestampDifferenceExceeds(last_logged_at, now, 30000)) {
    ereport(LOG, (errmsg("pg_consistency relay: %s", message.c_str())));
    last_logged = message;
    last_logged_at = now;
    return true;
  }
  return false;
}

// Records a relay error in shared memory (last_error) and logs it.
void record_error(const std::string& message) {
  log_limited(message);
  TimestampTz now = GetCurrentTimestamp();
  RelaySlot* slot = my_slot();
  if (slot == nullptr) return;
  SpinLockAcquire(&g_shared->mutex);
  strlcpy(slot->last_error, message.c_str(), sizeof slot->last_error);
  slot->last_error_at = now;
  slot->errors++;
  SpinLockRelease(&g_shared->mutex);
}

double postgres_seconds() {
  RelaySlot* slot = my_slot();
  if (slot == nullptr) return 0;
  SpinLockAcquire(&g_shared->mutex);
  double v = slot->pg_seconds;
  SpinLockRelease(&g_shared->mutex);
  return v;
}

void add_kafka_time(TimestampTz since, double postgres_before) {
  RelaySlot* slot = my_slot();
  if (slot == nullptr) return;
  double total = (GetCurrentTimestamp() - since) / 1e6;
  SpinLockAcquire(&g_shared->mutex);
  slot->kafka_seconds += std::max(0.0, total - (slot->pg_seconds - postgres_before));
  SpinLockRelease(&g_shared->mutex);
}

void release_status() {
  RelaySlot* slot = g_slot >= 0 && g_shared ? &g_shared->slots[g_slot] : nullptr;
  if (slot == nullptr) return;
  SpinLockAcquire(&g_shared->mutex);
  slot->state = State::kStopped;
  slot->pid = 0;
  slot->in_flight = 0;
  SpinLockRelease(&g_shared->mutex);
}

}  // namespace pgc::relay

// consistency._relay_runtime(): the relay's state in this database, from shared memory.
PGC_FUNCTION(pgc_relay_runtime) {
  using namespace pgc::relay;
  TupleDesc tupdesc;
  if (get_call_result_type(fcinfo, nullptr, &tupdesc) != TYPEFUNC_COMPOSITE)
    elog(ERROR, "pg_consistency: _relay_runtime must return a record");
  tupdesc = BlessTupleDesc(tupdesc);
  Datum values[9];
  bool nulls[9] = {};
  RelaySlot snap;
  memset(&snap, 0, sizeof snap);
  bool found = false;
  RelayShared* s = shared();
  if (s != nullptr) {
    SpinLockAcquire(&s->mutex);
    for (const auto& slot : s->slots) {
      if (slot.dboid == MyDatabaseId) {
        snap = slot;
        found = true;
        break;
      }
    }
    SpinLockRelease(&s->mutex);
  }
  State st = found && snap.pid != 0 ? snap.state : State::kStopped;
  values[0] = CStringGetTextDatum(state_name(st));
  values[1] = CStringGetTextDatum(settings::mode == kExactlyOnce ? "exactly_once" : "at_least_once");
  nulls[2] = snap.last_error[0] == '\0';
  values[2] = nulls[2] ? 0 : CStringGetTextDatum(snap.last_error);
  nulls[3] = snap.last_error_at == 0;
  values[3] = TimestampTzGetDatum(snap.last_error_at);
  values[4] = Int64GetDatum(static_cast<int64>(snap.batches));
  values[5] = Int64GetDatum(static_cast<int64>(snap.errors));
  values[6] = Int64GetDatum(snap.in_flight);
  values[7] = Float8GetDatum(snap.pg_seconds);
  values[8] = Float8GetDatum(snap.kafka_seconds);
  PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
