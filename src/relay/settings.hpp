// The relay's settings (pg_consistency.kafka_*, relay_*, batch_size, topic_partitions):
// defined once at load, read by the worker on every tick.
#pragma once

namespace pgc::relay {

enum RelayMode { kAtLeastOnce = 0, kExactlyOnce = 1 };

namespace settings {
extern char* kafka_brokers;     // pg_consistency.kafka_brokers ("" = relay off)
extern char* kafka_properties;  // pg_consistency.kafka_properties
extern int mode;                // pg_consistency.relay_mode (a RelayMode)
extern int batch_size;          // pg_consistency.batch_size
extern int topic_partitions;    // pg_consistency.topic_partitions
extern int max_attempts;        // pg_consistency.relay_max_attempts
extern char* progress_topic;    // pg_consistency.relay_progress_topic
extern char* transactional_id;  // pg_consistency.relay_transactional_id

// At _PG_init (the relay Component's define_gucs hook): defines the GUCs above.
void define_settings();
}  // namespace settings

// True when pg_consistency.kafka_brokers is set (the relay is on).
inline bool relay_enabled() {
  return settings::kafka_brokers != nullptr && settings::kafka_brokers[0] != '\0';
}

}  // namespace pgc::relay
