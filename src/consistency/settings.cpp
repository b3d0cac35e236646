#include "consistency/settings.hpp"

#include "pg/postgres.hpp"

extern "C" {
#include "utils/guc.h"
}

namespace pgc::consistency::settings {

int horizon_publish_interval_ms = 100;
int replay_poll_interval_ms = 1;

void define_settings() {
  DefineCustomIntVariable("pg_consistency.horizon_publish_interval",
                          "How often the worker publishes the read horizon for standbys.",
                          "read_all on a standby returns events up to the horizon last published and "
                          "replayed: this interval is the delay it adds to replication.",
                          &horizon_publish_interval_ms, 100, 10, 60 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
                          nullptr, nullptr);
  // The startup process sets no latch for other waiters when it replays a record, so a
  // wait on a standby looks at the replay position this often (wait_for_token's wake-up
  // latency after replay, against one wake-up per interval per waiting backend).
  DefineCustomIntVariable("pg_consistency.replay_poll_interval",
                          "How often a token wait on a standby checks the replay position.", nullptr,
                          &replay_poll_interval_ms, 1, 1, 1000, PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr,
                          nullptr);
}

}  // namespace pgc::consistency::settings
