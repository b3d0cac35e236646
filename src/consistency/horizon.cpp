// Publishing the read horizon into WAL. Why a table row is exact: the event store's
// horizon H is computed after every transaction holding a position below H has written
// its commit record (eventstore/state.cpp: a writer's lower bound is withdrawn only in
// its commit callback, after the commit record). The row's UPDATE commits after H was
// computed, so in WAL order its commit record follows all of theirs, and a standby that
// sees the row has replayed them: a snapshot taken afterwards sees every event below H.
#include "consistency/horizon.hpp"

#include <algorithm>

#include "consistency/settings.hpp"
#include "eventstore/es.hpp"
#include "pg/component.hpp"
#include "worker/settings.hpp"

extern "C" {
#include "pgstat.h"
#include "replication/walsender.h"
#include "replication/walsender_private.h"
}

namespace pgc::consistency {

namespace {

// The value this worker last published (-1: not yet since it started).
int64 g_published = -1;

// True while a WAL sender serves someone (a streaming standby, pg_basebackup, a logical
// client). Read without the senders' spinlocks: a hint that only picks the interval.
bool wal_sender_connected() {
  if (WalSndCtl == nullptr) return false;
  for (int i = 0; i < max_wal_senders; i++)
    if (WalSndCtl->walsnds[i].pid != 0) return true;
  return false;
}

// The worker tick: publishes the horizon when it moved since the last tick.
long publish_tick() {
  static pg::SavedPlan advance(
      "UPDATE consistency.published_horizon SET horizon = $1, published_at = pg_catalog.clock_timestamp() "
      "WHERE horizon OPERATOR(pg_catalog.<) $1",
      {INT8OID});
  pg::begin_worker_transaction(nullptr);
  int64 h = eventstore::read_horizon();
  if (h != g_published) {
    pgstat_report_activity(STATE_RUNNING, "pg_consistency: publishing the read horizon");
    Datum v[1] = {Int64GetDatum(h)};
    eventstore::spi_run_as_owner(advance, v, nullptr, false);
  }
  pg::commit_worker_transaction();
  if (h != g_published) pgstat_report_activity(STATE_IDLE, nullptr);
  g_published = h;
  // Streaming standbys read it soon after replay; with none connected (archive recovery
  // only, or no standby at all) once per poll interval is enough and keeps an idle worker
  // asleep.
  return wal_sender_connected()
             ? settings::horizon_publish_interval_ms
             : std::max(settings::horizon_publish_interval_ms, worker::settings::poll_interval_ms);
}

}  // namespace

const pg::Component kComponent = {"consistency", settings::define_settings, nullptr, nullptr, publish_tick,
                                  nullptr};
namespace {
pg::ComponentRegistrar registrar(&kComponent);
}

int64 replayed_read_horizon() {
  static pg::SavedPlan read("SELECT horizon FROM consistency.published_horizon", {});
  pg::spi_connect();
  eventstore::spi_run_latest_as_owner(read, nullptr, nullptr, 1);
  int64 h = SPI_processed > 0 ? pg::spi_int64(0, 1, 1) : 1;
  SPI_finish();
  return h;
}

}  // namespace pgc::consistency
