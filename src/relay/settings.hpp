// The relay's settings (pg_consistency.kafka_*, relay_*, batch_size, topic_partitions):
// defined once at load, read by the worker on every tick.
#pragma once

namespace pgc::relay {

enum RelayMode { kAtLeastOnce = 0, kExactlyOnce = 1 };

extern char* g_brokers;
extern char* g_properties;
extern int g_mode;
extern int g_batch_size;
extern int g_topic_partitions;
extern int g_max_attempts;
extern char* g_progress_topic;
extern char* g_transactional_id;

void define_gucs();

// True when pg_consistency.kafka_brokers is set (the relay is on).
inline bool relay_enabled() { return g_brokers != nullptr && g_brokers[0] != '\0'; }

}  // namespace pgc::relay
