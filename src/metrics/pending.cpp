#include "metrics/pending.hpp"

namespace pgc::metrics {

bool Pending::add(const Observation& o) noexcept {
  if (n_ == kCapacity) {
    dropped_++;
    return false;
  }
  items_[n_++] = o;
  return true;
}

void Pending::commit() noexcept {
  for (std::size_t i = 0; i < n_; i++) {
    const Observation& o = items_[i];
    if (o.counter != nullptr) o.counter->fetch_add(1, std::memory_order_relaxed);
    if (o.histogram != nullptr) o.histogram->observe(o.seconds);
  }
  n_ = 0;
}

void Pending::commit_sub(int level) noexcept {
  for (std::size_t i = 0; i < n_; i++)
    if (items_[i].level >= level) items_[i].level = level - 1;
}

void Pending::abort_sub(int level) noexcept {
  // Children that committed were renumbered to their parent's level, so everything the
  // rolled-back subtransaction made is at `level` or deeper.
  std::size_t kept = 0;
  for (std::size_t i = 0; i < n_; i++)
    if (items_[i].level < level) items_[kept++] = items_[i];
  n_ = kept;
}

}  // namespace pgc::metrics
