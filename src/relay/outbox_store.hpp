// The relay's PostgreSQL side: every statement it runs on the outbox, each in a short
// transaction of its own on the worker's main thread.
#pragma once

#include <string>
#include <type_traits>
#include <vector>

#include "pg/guard.hpp"
#include "pg/spi.hpp"
#include "relay/batch.hpp"
#include "relay/rows.hpp"

extern "C" {
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
}

namespace pgc::relay {

// One short transaction around f(); f runs SPI through pg_call.
template <typename F>
auto in_transaction(const char* activity, bool synchronous, F&& f) -> decltype(f()) {
  pg::pg_call([&] {
    pg::begin_worker_transaction(activity);
    // The exactly-once batch record must be durable before Kafka commits; other relay
    // transactions can be lost in a crash without harm (see docs/outbox.md).
    (void)set_config_option("synchronous_commit", synchronous ? "on" : "off", PGC_USERSET, PGC_S_SESSION,
                            GUC_ACTION_LOCAL, true, 0, false);
  });
  auto commit = [] {
    pg::pg_call([] {
      pg::commit_worker_transaction();
      pgstat_report_activity(STATE_IDLE, nullptr);
    });
  };
  if constexpr (std::is_void_v<decltype(f())>) {
    f();
    commit();
  } else {
    auto result = f();
    commit();
    return result;
  }
}

// Reads the next batch of rows in id order into `set` (see outbox_store.cpp).
// record_as > 0: exactly_once, the ids are recorded as that batch number. after_id: rows
// with a greater id only. below >= 0: only if exactly that many rows with id <= after_id
// are visible. ce_source is filled with the CloudEvents source on first use.
void load_batch(RowSet* set, int64_t record_as, int64_t after_id, int64_t below, std::string* ce_source);
// Removes acknowledged rows, counts failed attempts, dead-letters exhausted rows; returns
// how many were dead-lettered.
int64 finalize_batch(const Batch& batch, bool exactly_once);
// exactly_once: settles what a previous run left in relay_batches; returns the next
// batch number.
int64_t settle_open_batches(int64_t committed);
// exactly_once, after an aborted Kafka transaction.
void abandon_batch(const Batch& batch);
// Forgets every exactly_once batch record (at_least_once sends those rows again).
void clear_batch_records();

}  // namespace pgc::relay
