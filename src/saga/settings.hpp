// The saga pillar's settings (pg_consistency.saga_*): defined once at load, read by the
// saga workers and _advance_sagas.
#pragma once

namespace pgc::saga::settings {

extern int workers;          // pg_consistency.saga_workers
extern int batch_size;       // pg_consistency.saga_batch_size
extern int chain_steps;      // pg_consistency.saga_chain_steps
extern int step_timeout_ms;  // pg_consistency.saga_step_timeout

void define_settings();

}  // namespace pgc::saga::settings
