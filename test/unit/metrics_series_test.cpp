#include "metrics/series.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "metrics/area.hpp"
#include "metrics/collect.hpp"
#include "metrics/pending.hpp"
#include "metrics/saga_events.hpp"

using namespace pgc::metrics;

namespace {

std::unique_ptr<Area> zeroed_area() {
  auto a = std::make_unique<Area>();
  std::memset(static_cast<void*>(a.get()), 0, sizeof(Area));
  return a;
}

TEST(MetricsSeries, SameNameSameSeries) {
  auto a = zeroed_area();
  SagaSeries& x = saga_series(a->sagas, "order");
  SagaSeries& y = saga_series(a->sagas, "order");
  SagaSeries& z = saga_series(a->sagas, "refund");
  EXPECT_EQ(&x, &y);
  EXPECT_NE(&x, &z);
  EXPECT_EQ(a->sagas.size(), 2u);
  EXPECT_STREQ(z.name, "refund");
  // A prefix is another name.
  EXPECT_NE(&saga_series(a->sagas, "orde"), &x);
}

TEST(MetricsSeries, StepSeriesKeyedBySagaStepAndOutcome) {
  auto a = zeroed_area();
  StepSeries& ok = step_series(a->steps, "order", "pay", StepOutcome::kSucceeded);
  EXPECT_EQ(&ok, &step_series(a->steps, "order", "pay", StepOutcome::kSucceeded));
  EXPECT_NE(&ok, &step_series(a->steps, "order", "pay", StepOutcome::kFailed));
  EXPECT_NE(&ok, &step_series(a->steps, "order", "ship", StepOutcome::kSucceeded));
  EXPECT_NE(&ok, &step_series(a->steps, "refund", "pay", StepOutcome::kSucceeded));
  EXPECT_EQ(a->steps.size(), 4u);
}

TEST(MetricsSeries, FullTableAndLongNamesGoToTheOverflowSeries) {
  auto a = zeroed_area();
  for (std::size_t i = 0; i < SagaTable::capacity(); i++) saga_series(a->sagas, "saga" + std::to_string(i));
  EXPECT_EQ(a->sagas.size(), SagaTable::capacity());
  SagaSeries& more = saga_series(a->sagas, "one-too-many");
  EXPECT_TRUE(is_overflow(a->sagas, more));
  EXPECT_EQ(a->sagas.size(), SagaTable::capacity());                    // nothing added
  EXPECT_FALSE(is_overflow(a->sagas, saga_series(a->sagas, "saga0")));  // known names still found
  EXPECT_TRUE(is_overflow(a->sagas, saga_series(a->sagas, std::string(kNameBytes, 'x'))));
  EXPECT_EQ(a->sagas.overflow.load(), 2u);
  EXPECT_TRUE(is_overflow(a->steps, step_series(a->steps, "s", std::string(100, 'y'), StepOutcome::kFailed)));
}

TEST(MetricsSeries, ConcurrentAddsMakeOneSeriesPerName) {
  auto a = zeroed_area();
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; t++)
    ts.emplace_back([&] {
      for (int round = 0; round < 200; round++)
        for (int i = 0; i < 20; i++)
          saga_series(a->sagas, "s" + std::to_string(i)).reached[0].fetch_add(1, std::memory_order_relaxed);
    });
  for (auto& t : ts) t.join();
  ASSERT_EQ(a->sagas.size(), 20u);
  std::set<std::string> names;
  for (std::size_t i = 0; i < a->sagas.size(); i++) {
    names.insert(a->sagas.entries[i].name);
    EXPECT_EQ(a->sagas.entries[i].reached[0].load(), 800u);
  }
  EXPECT_EQ(names.size(), 20u);
}

TEST(MetricsPending, CommitAppliesAbortDrops) {
  auto a = zeroed_area();
  Pending p;
  SagaSeries& s = saga_series(a->sagas, "order");
  p.add({&s.reached[0], nullptr, 0, 1});
  p.add({&s.reached[2], &s.duration[0], 1.5, 1});
  p.abort();
  p.commit();
  EXPECT_EQ(s.reached[0].load(), 0u);
  p.add({&s.reached[0], nullptr, 0, 1});
  p.add({&s.reached[2], &s.duration[0], 1.5, 1});
  p.commit();
  EXPECT_EQ(s.reached[0].load(), 1u);
  EXPECT_EQ(s.reached[2].load(), 1u);
  EXPECT_EQ(s.duration[0].snapshot().count(), 1u);
  EXPECT_EQ(p.size(), 0u);
}

TEST(MetricsPending, SubtransactionsKeepOrDropTheirOwn) {
  auto a = zeroed_area();
  Pending p;
  std::atomic<uint64_t>& c = saga_series(a->sagas, "order").reached[0];
  p.add({&c, nullptr, 0, 1});  // top level
  p.add({&c, nullptr, 0, 2});  // subtransaction 2 ...
  p.add({&c, nullptr, 0, 3});  // ... and its child, which commits into 2
  p.commit_sub(3);
  p.abort_sub(2);              // 2 rolls back: both go
  p.add({&c, nullptr, 0, 2});  // another subtransaction at level 2 commits
  p.commit_sub(2);
  EXPECT_EQ(p.size(), 2u);
  p.abort_sub(2);  // a later sibling's abort keeps what was committed to level 1
  EXPECT_EQ(p.size(), 2u);
  p.commit();
  EXPECT_EQ(c.load(), 2u);
}

TEST(MetricsPending, FullListDropsAndCounts) {
  auto a = zeroed_area();
  Pending p;
  std::atomic<uint64_t>& c = saga_series(a->sagas, "order").reached[0];
  for (std::size_t i = 0; i < Pending::kCapacity + 3; i++) p.add({&c, nullptr, 0, 1});
  EXPECT_EQ(p.dropped(), 3u);
  p.commit();
  EXPECT_EQ(c.load(), Pending::kCapacity);
}

TEST(MetricsSagaEvents, StatusesFromAuditEvents) {
  using pgc::saga::Event;
  using pgc::saga::json::Value;
  SagaStatus s;
  EXPECT_TRUE(status_reached(Event{"SagaCompleted", Value::object(), {}}, &s));
  EXPECT_EQ(s, SagaStatus::kCompleted);
  EXPECT_TRUE(status_reached(Event{"CompensationStarted", Value::object(), {}}, &s));
  EXPECT_EQ(s, SagaStatus::kCompensating);
  EXPECT_TRUE(status_reached(Event{"SagaCompensated", Value::object(), {}}, &s));
  EXPECT_EQ(s, SagaStatus::kCompensated);
  EXPECT_TRUE(status_reached(Event{"SagaFailed", Value::object(), {}}, &s));
  EXPECT_EQ(s, SagaStatus::kFailed);
  EXPECT_TRUE(status_reached(Event{"SagaAborted", Value::object(), {}}, &s));
  EXPECT_EQ(s, SagaStatus::kAborted);
  EXPECT_TRUE(status_reached(Event{"SagaRetried", Value::object({{"status", "failed"}}), {}}, &s));
  EXPECT_EQ(s, SagaStatus::kCompensating);
  EXPECT_FALSE(status_reached(Event{"SagaRetried", Value::object({{"status", "running"}}), {}}, &s));
  EXPECT_FALSE(status_reached(Event{"StepSucceeded", Value::object(), {}}, &s));
  EXPECT_FALSE(status_reached(Event{"CommandSent", Value::object(), {}}, &s));
}

TEST(MetricsCollect, SeriesAndLabels) {
  auto a = zeroed_area();
  a->relay_ack.observe(0.01);
  SagaSeries& s = saga_series(a->sagas, "order");
  s.reached[static_cast<int>(SagaStatus::kRunning)].fetch_add(2);
  s.reached[static_cast<int>(SagaStatus::kCompleted)].fetch_add(1);
  s.duration[outcome_slot(SagaStatus::kCompleted)].observe(3);
  step_series(a->steps, "order", "pay", StepOutcome::kTimedOut).seconds.observe(30);
  step_series(a->steps, "order", "ship", StepOutcome::kSucceeded);  // known, never observed

  std::vector<HistogramSeries> hs = histograms(*a);
  ASSERT_EQ(hs.size(), 3u);  // relay, one saga outcome, one observed step
  EXPECT_STREQ(hs[0].family, kRelayAckFamily);
  EXPECT_TRUE(hs[0].labels.empty());
  EXPECT_EQ(hs[0].snapshot.count(), 1u);
  EXPECT_STREQ(hs[1].family, kSagaDurationFamily);
  EXPECT_EQ(hs[1].labels, (Labels{{"outcome", "completed"}, {"saga", "order"}}));
  EXPECT_STREQ(hs[2].family, kSagaStepFamily);
  EXPECT_EQ(hs[2].labels, (Labels{{"outcome", "timed_out"}, {"saga", "order"}, {"step", "pay"}}));

  std::vector<CounterSeries> cs = counters(*a);
  int sagas_total = 0;
  for (const CounterSeries& c : cs) {
    if (std::string(c.metric) != kSagasTotal) continue;
    sagas_total++;
    std::string status = c.labels[1].second;
    EXPECT_EQ(c.value, status == "running" ? 2u : status == "completed" ? 1u : 0u) << status;
  }
  EXPECT_EQ(sagas_total, static_cast<int>(kSagaStatuses));
}

TEST(MetricsCollect, OverflowSeriesAreLabelledOther) {
  auto a = zeroed_area();
  step_series(a->steps, "s", std::string(80, 'z'), StepOutcome::kFailed).seconds.observe(1);
  std::vector<HistogramSeries> hs = histograms(*a);
  ASSERT_EQ(hs.size(), 2u);
  EXPECT_EQ(hs[1].labels, (Labels{{"outcome", "_other"}, {"saga", "_other"}, {"step", "_other"}}));
  bool counted = false;
  for (const CounterSeries& c : counters(*a))
    if (std::string(c.metric) == "pg_consistency_metrics_overflow_total" && c.labels[0].second == "steps")
      counted = c.value == 1;
  EXPECT_TRUE(counted);
}

}  // namespace
