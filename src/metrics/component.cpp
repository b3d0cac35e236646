// Latency metrics: the component that gives each database its area of histograms and
// labelled counters, the setting that turns recording off, and the transaction callbacks
// that apply a transaction's observations only when it commits.
#include "metrics/component.hpp"

#include "metrics/metrics.hpp"
#include "metrics/pending.hpp"
#include "pg/postgres.hpp"
#include "worker/databases.hpp"

extern "C" {
#include "access/xact.h"
#include "utils/guc.h"
}

namespace pgc::metrics {

bool g_enabled = true;

namespace {

Pending g_pending;
uint64_t g_dropped_reported = 0;

void on_xact(XactEvent event, void*) {
  switch (event) {
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
      g_pending.commit();
      if (g_pending.dropped() != g_dropped_reported) {
        if (Area* a = my_area())
          a->dropped.fetch_add(g_pending.dropped() - g_dropped_reported, std::memory_order_relaxed);
        g_dropped_reported = g_pending.dropped();
      }
      break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
    case XACT_EVENT_PREPARE:
      g_pending.abort();
      break;
    default:
      break;
  }
}

void on_subxact(SubXactEvent event, SubTransactionId, SubTransactionId, void*) {
  if (g_pending.size() == 0) return;
  // Called while the ending subtransaction is still the current one.
  if (event == SUBXACT_EVENT_COMMIT_SUB)
    g_pending.commit_sub(GetCurrentTransactionNestLevel());
  else if (event == SUBXACT_EVENT_ABORT_SUB)
    g_pending.abort_sub(GetCurrentTransactionNestLevel());
}

void at_load() {
  DefineCustomBoolVariable("pg_consistency.latency_metrics",
                           "Records the latency histograms and saga counters of consistency.metrics().",
                           "Off: nothing is recorded (for measuring what recording costs).", &g_enabled, true,
                           PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  RegisterXactCallback(on_xact, nullptr);
  RegisterSubXactCallback(on_subxact, nullptr);
}

void add_pending(std::atomic<uint64_t>* counter, Histogram* histogram, double seconds) {
  Observation o;
  o.counter = counter;
  o.histogram = histogram;
  o.seconds = seconds;
  o.level = GetCurrentTransactionNestLevel();
  g_pending.add(o);
}

}  // namespace

const pg::Component kComponent = {"metrics", at_load, nullptr,      nullptr,
                                  nullptr,   nullptr, sizeof(Area), nullptr};
pg::ComponentRegistrar registrar(&kComponent);

Area* my_area() { return static_cast<Area*>(worker::my_area(&kComponent)); }

void relay_acknowledged(int64_t created_at, int64_t now) noexcept {
  if (!g_enabled) return;
  if (Area* a = my_area()) a->relay_ack.observe(static_cast<double>(now - created_at) / 1e6);
}

void saga_reached(std::string_view saga, SagaStatus s, double seconds) noexcept {
  if (!g_enabled || !IsTransactionState()) return;
  Area* a = my_area();
  if (a == nullptr) return;
  SagaSeries& e = saga_series(a->sagas, saga);
  int slot = outcome_slot(s);
  add_pending(&e.reached[static_cast<size_t>(s)], slot >= 0 ? &e.duration[slot] : nullptr, seconds);
}

void step_ended(std::string_view saga, std::string_view step, StepOutcome o, double seconds) noexcept {
  if (!g_enabled || !IsTransactionState()) return;
  Area* a = my_area();
  if (a == nullptr) return;
  add_pending(nullptr, &step_series(a->steps, saga, step, o).seconds, seconds);
}

}  // namespace pgc::metrics
