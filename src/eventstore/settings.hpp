// The event store's settings (pg_consistency.max_event_bytes, subscription_*): defined
// once at load; appends read max_event_bytes, the worker and the subscription functions
// read the rest.
#pragma once

namespace pgc::eventstore::settings {

extern int max_event_bytes;                  // pg_consistency.max_event_bytes
extern int subscription_max_attempts;        // pg_consistency.subscription_max_attempts
extern int subscription_batch_size;          // pg_consistency.subscription_batch_size
extern int subscription_retry_delay_ms;      // pg_consistency.subscription_retry_delay
extern int subscription_max_retry_delay_ms;  // pg_consistency.subscription_max_retry_delay
extern int subscription_handler_timeout_ms;  // pg_consistency.subscription_handler_timeout

// DefineCustom*Variable for each of them (at _PG_init, through the component).
void define_settings();

}  // namespace pgc::eventstore::settings
