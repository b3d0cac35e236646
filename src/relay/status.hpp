// What the relay is doing, in shared memory: its area of each database's slot, read by
// consistency._relay_runtime() (and so consistency.outbox_status and metrics()).
#pragma once

#include <string>

#include "pg/postgres.hpp"

namespace pgc::relay {

enum class State : int { kStopped = 0, kRunning = 1, kBrokerUnavailable = 2 };
// The state as consistency.outbox_status shows it ("running", ...).
const char* state_name(State s);

// The relay's area in each database's slot (worker/databases.hpp).
struct RelayStatus {
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

// This database's status (claimed on first use by the worker).
void set_state(State st, int64 in_flight);
// Adds the time since `since` to the PostgreSQL side or the Kafka side.
void add_time(bool postgres_side, TimestampTz since);
// One more batch finished.
void count_batch();
// The PostgreSQL-side seconds so far; add_kafka_time adds the time since `since` less the
// PostgreSQL time spent meanwhile to the Kafka side.
double postgres_seconds();
void add_kafka_time(TimestampTz since, double postgres_before);
// Logs a relay message, without repeating the same text more than every 30 s.
bool log_limited(const std::string& message);
// Records a relay error in shared memory (last_error) and logs it.
void record_error(const std::string& message);
// Forgets the last error: it belonged to a configuration that is no longer in effect (the
// relay turned off, or pointed at other brokers), and would otherwise read as current.
void clear_error();
// The worker is leaving: the slot says stopped.
void release_status();

}  // namespace pgc::relay
