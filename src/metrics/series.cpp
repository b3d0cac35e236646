#include "metrics/series.hpp"

#include <cstring>
#include <thread>

namespace pgc::metrics {

namespace {

// FNV-1a over the label values (and the outcome), a separator between them.
uint32_t fnv(std::string_view a, std::string_view b = {}, uint8_t c = 0) {
  uint32_t h = 2166136261u;
  auto mix = [&h](unsigned char ch) { h = (h ^ ch) * 16777619u; };
  for (char ch : a) mix(static_cast<unsigned char>(ch));
  mix(0);
  for (char ch : b) mix(static_cast<unsigned char>(ch));
  mix(c);
  return h;
}

bool same(const char* stored, std::string_view name) {
  return std::strncmp(stored, name.data(), name.size()) == 0 && stored[name.size()] == '\0';
}

void copy_name(char* dst, std::string_view name) {
  std::memcpy(dst, name.data(), name.size());
  dst[name.size()] = '\0';
}

// Holds a table's spin flag; adding a label set takes a few stores, so spinning is short.
template <typename T>
class Adding {
 public:
  explicit Adding(T& t) : t_(t) {
    uint32_t expected = 0;
    while (!t_.adding.compare_exchange_weak(expected, 1, std::memory_order_acquire)) {
      expected = 0;
      std::this_thread::yield();
    }
  }
  ~Adding() { t_.adding.store(0, std::memory_order_release); }
  Adding(const Adding&) = delete;
  Adding& operator=(const Adding&) = delete;

 private:
  T& t_;
};

// The entry matching `match` among the published ones, else a new one written by `fill`,
// else the overflow entry.
template <typename T, typename Match, typename Fill>
auto& find_or_add(T& t, bool fits, Match match, Fill fill) {
  auto& overflow = t.entries[T::capacity()];
  if (!fits) {
    t.overflow.fetch_add(1, std::memory_order_relaxed);
    return overflow;
  }
  std::size_t n = t.size();
  for (std::size_t i = 0; i < n; i++)
    if (match(t.entries[i])) return t.entries[i];
  Adding<T> hold(t);
  std::size_t now = t.count.load(std::memory_order_relaxed);
  for (std::size_t i = n; i < now; i++)
    if (match(t.entries[i])) return t.entries[i];
  if (now >= T::capacity()) {
    t.overflow.fetch_add(1, std::memory_order_relaxed);
    return overflow;
  }
  fill(t.entries[now]);
  t.count.store(static_cast<uint32_t>(now + 1), std::memory_order_release);
  return t.entries[now];
}

}  // namespace

const char* saga_status_name(SagaStatus s) {
  static const char* const kNames[] = {"running",     "compensating", "completed",
                                       "compensated", "failed",       "aborted"};
  return kNames[static_cast<std::size_t>(s)];
}

int outcome_slot(SagaStatus s) {
  int i = static_cast<int>(s) - static_cast<int>(SagaStatus::kCompleted);
  return i >= 0 ? i : -1;
}

const char* step_outcome_name(StepOutcome o) {
  static const char* const kNames[] = {"succeeded", "failed", "timed_out", "compensated",
                                       "compensation_failed"};
  return kNames[static_cast<std::size_t>(o)];
}

SagaSeries& saga_series(SagaTable& t, std::string_view name) noexcept {
  uint32_t h = fnv(name);
  return find_or_add(
      t, name.size() < kNameBytes, [&](const SagaSeries& e) { return e.hash == h && same(e.name, name); },
      [&](SagaSeries& e) {
        e.hash = h;
        copy_name(e.name, name);
      });
}

StepSeries& step_series(StepTable& t, std::string_view saga, std::string_view step, StepOutcome o) noexcept {
  auto outcome = static_cast<uint8_t>(o);
  uint32_t h = fnv(saga, step, outcome);
  return find_or_add(
      t, saga.size() < kNameBytes && step.size() < kNameBytes,
      [&](const StepSeries& e) {
        return e.hash == h && e.outcome == outcome && same(e.saga, saga) && same(e.step, step);
      },
      [&](StepSeries& e) {
        e.hash = h;
        copy_name(e.saga, saga);
        copy_name(e.step, step);
        e.outcome = outcome;
      });
}

bool is_overflow(const SagaTable& t, const SagaSeries& e) { return &e == &t.entries[SagaTable::capacity()]; }
bool is_overflow(const StepTable& t, const StepSeries& e) { return &e == &t.entries[StepTable::capacity()]; }

}  // namespace pgc::metrics
