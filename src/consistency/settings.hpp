// Settings of the consistency levels (docs/consistency.md): how often the primary
// publishes its read horizon into WAL, and how often a wait on a standby looks at replay.
#pragma once

namespace pgc::consistency::settings {

extern int horizon_publish_interval_ms;  // pg_consistency.horizon_publish_interval
extern int replay_poll_interval_ms;      // pg_consistency.replay_poll_interval

// DefineCustom*Variable for each of them (at _PG_init, through the component).
void define_settings();

}  // namespace pgc::consistency::settings
