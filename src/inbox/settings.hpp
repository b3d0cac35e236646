// The inbox's settings (pg_consistency.consumer_*): defined once at load, read by the
// consumer processes and the SQL functions.
#pragma once

namespace pgc::inbox::settings {

extern int workers;             // pg_consistency.consumer_workers
extern int max_attempts;        // pg_consistency.consumer_max_attempts
extern int dedupe_window_s;     // pg_consistency.consumer_dedupe_window
extern int batch_size;          // pg_consistency.consumer_batch_size
extern int handler_timeout_ms;  // pg_consistency.consumer_handler_timeout
extern int retry_ms;            // pg_consistency.consumer_retry_backoff
extern int max_retry_ms;        // pg_consistency.consumer_max_retry_backoff

void define_settings();

}  // namespace pgc::inbox::settings
