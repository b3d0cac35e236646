#include "relay/status.hpp"

#include <algorithm>
#include <iterator>

#include "pg/guard.hpp"
#include "relay/settings.hpp"
#include "relay/relay.hpp"
#include "worker/databases.hpp"

extern "C" {
#include "funcapi.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
}

namespace pgc::relay {

namespace {

// This database's status, in its slot of the database registry (worker/databases.hpp),
// guarded by the registry's lock.
RelayStatus* my_slot() { return static_cast<RelayStatus*>(worker::my_area(&kRelayComponent)); }

}  // namespace

const char* state_name(State s) {
  static const char* const kNames[] = {"stopped", "running", "broker_unavailable"};  // in State's order
  auto i = static_cast<std::size_t>(s);
  return i < std::size(kNames) ? kNames[i] : "stopped";
}

void set_state(State st, int64 in_flight) {
  RelayStatus* slot = my_slot();
  if (slot == nullptr) return;
  SpinLockAcquire(worker::databases_lock());
  slot->state = st;
  slot->mode = settings::mode;
  slot->pid = MyProcPid;
  slot->in_flight = in_flight;
  SpinLockRelease(worker::databases_lock());
}

// Adds elapsed time to one of the two sides (plain data, for the benchmark and operators).
void add_time(bool postgres_side, TimestampTz since) {
  RelayStatus* slot = my_slot();
  if (slot == nullptr) return;
  double secs = (GetCurrentTimestamp() - since) / 1e6;
  SpinLockAcquire(worker::databases_lock());
  (postgres_side ? slot->pg_seconds : slot->kafka_seconds) += secs;
  SpinLockRelease(worker::databases_lock());
}

void count_batch() {
  RelayStatus* slot = my_slot();
  if (slot == nullptr) return;
  SpinLockAcquire(worker::databases_lock());
  slot->batches++;
  SpinLockRelease(worker::databases_lock());
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
  RelayStatus* slot = my_slot();
  if (slot == nullptr) return;
  SpinLockAcquire(worker::databases_lock());
  strlcpy(slot->last_error, message.c_str(), sizeof slot->last_error);
  slot->last_error_at = now;
  slot->errors++;
  SpinLockRelease(worker::databases_lock());
}

void clear_error() {
  RelayStatus* slot = my_slot();
  if (slot == nullptr) return;
  SpinLockAcquire(worker::databases_lock());
  slot->last_error[0] = '\0';
  slot->last_error_at = 0;
  SpinLockRelease(worker::databases_lock());
}

double postgres_seconds() {
  RelayStatus* slot = my_slot();
  if (slot == nullptr) return 0;
  SpinLockAcquire(worker::databases_lock());
  double v = slot->pg_seconds;
  SpinLockRelease(worker::databases_lock());
  return v;
}

void add_kafka_time(TimestampTz since, double postgres_before) {
  RelayStatus* slot = my_slot();
  if (slot == nullptr) return;
  double total = (GetCurrentTimestamp() - since) / 1e6;
  SpinLockAcquire(worker::databases_lock());
  slot->kafka_seconds += std::max(0.0, total - (slot->pg_seconds - postgres_before));
  SpinLockRelease(worker::databases_lock());
}

void release_status() {
  RelayStatus* slot = static_cast<RelayStatus*>(worker::my_area(&kRelayComponent));
  if (slot == nullptr) return;
  SpinLockAcquire(worker::databases_lock());
  slot->state = State::kStopped;
  slot->pid = 0;
  slot->in_flight = 0;
  SpinLockRelease(worker::databases_lock());
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
  RelayStatus snap;
  memset(&snap, 0, sizeof snap);
  bool found = false;
  pgc::worker::DatabaseSlot* d = pgc::worker::find_database(MyDatabaseId);
  if (d != nullptr) {
    SpinLockAcquire(pgc::worker::databases_lock());
    snap = *static_cast<RelayStatus*>(pgc::worker::area_of(d, &kRelayComponent));
    found = true;
    SpinLockRelease(pgc::worker::databases_lock());
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
