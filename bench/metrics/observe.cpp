// Cost of one latency observation (metrics/histogram.hpp, metrics/series.hpp) against a
// baseline measured in the same run: one relaxed atomic increment of a plain counter.
// Single thread and two threads on one histogram (the contended case of a relay and a
// saga worker observing at once). Build and run with bench/metrics/run.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "metrics/area.hpp"
#include "metrics/pending.hpp"

using namespace pgc::metrics;
using Clock = std::chrono::steady_clock;

namespace {

template <typename F>
double ns_per_op(int threads, long per_thread, F&& body) {
  std::vector<std::thread> ts;
  auto t0 = Clock::now();
  for (int t = 0; t < threads; t++)
    ts.emplace_back([&, t] {
      for (long i = 0; i < per_thread; i++) body(t, i);
    });
  for (auto& t : ts) t.join();
  double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
  return ns / static_cast<double>(per_thread);  // per operation of one thread
}

}  // namespace

int main() {
  auto area = std::make_unique<Area>();
  std::memset(static_cast<void*>(area.get()), 0, sizeof(Area));
  std::atomic<uint64_t> plain{0};
  constexpr long kN = 20'000'000;
  for (int threads : {1, 2}) {
    double base = ns_per_op(threads, kN, [&](int, long) { plain.fetch_add(1, std::memory_order_relaxed); });
    double obs = ns_per_op(
        threads, kN, [&](int, long i) { area->relay_ack.observe(1e-4 * static_cast<double>(i & 1023)); });
    // A saga step: find its series among 40 known ones, then queue the observation;
    // the commit applies it (one histogram observation).
    for (int k = 0; k < 40; k++)
      step_series(area->steps, "saga" + std::to_string(k % 8), "step" + std::to_string(k),
                  StepOutcome::kSucceeded);
    Pending pending;
    double saga = ns_per_op(threads, kN / 10, [&](int t, long i) {
      StepSeries& s = step_series(area->steps, "saga7", "step39", StepOutcome::kSucceeded);
      if (t == 0) {  // the list is one backend's: only thread 0 queues and commits
        pending.add({nullptr, &s.seconds, 0.002 * static_cast<double>(i & 255), 1});
        if (pending.size() == 16) pending.commit();
      } else {
        s.seconds.observe(0.001);
      }
    });
    std::printf(
        "threads %d: plain counter %.1f ns; relay observation %.1f ns (ratio %.2f); saga step "
        "lookup+queue+commit %.1f ns (ratio %.2f)\n",
        threads, base, obs, obs / base, saga, saga / base);
  }
  uint64_t observed = area->relay_ack.snapshot().count();
  std::printf("observed: relay %llu, steps %zu series\n", static_cast<unsigned long long>(observed),
              area->steps.size());
  // Every observation of the two runs (1 thread, then 2) must be counted: a lost one would
  // make the figure above the cost of doing less.
  const uint64_t expected = 3 * static_cast<uint64_t>(kN);
  if (observed != expected) {
    std::fprintf(stderr, "FAILED: %llu relay observations counted, %llu made\n",
                 static_cast<unsigned long long>(observed), static_cast<unsigned long long>(expected));
    return 1;
  }
  return 0;
}
