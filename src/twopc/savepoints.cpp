#include "twopc/savepoints.hpp"

namespace pgc::twopc {

SavepointTracker::Prepare SavepointTracker::before_statement(int level) {
  Prepare p;
  if (level < 1) level = 1;
  if (opened_level_ == 0) {
    opened_level_ = level;
    p.begin = true;
    return p;
  }
  int top = marks_.empty() ? opened_level_ : marks_.back().level;
  if (level > top) {
    Mark m{level, "pgc_sp_" + std::to_string(++counter_)};
    p.savepoint = m.name;
    marks_.push_back(std::move(m));
  }
  return p;
}

void SavepointTracker::on_subcommit(int level) {
  if (opened_level_ == 0) return;
  if (opened_level_ == level) {
    // The remote transaction now belongs to the parent. Deeper marks are gone already.
    opened_level_ = level - 1 < 1 ? 1 : level - 1;
    marks_.clear();
    return;
  }
  if (!marks_.empty() && marks_.back().level == level) {
    int below = marks_.size() > 1 ? marks_[marks_.size() - 2].level : opened_level_;
    if (below == level - 1) {
      marks_.pop_back();  // the parent's own mark already covers this work
    } else {
      marks_.back().level = level - 1;
    }
  }
}

SavepointTracker::Undo SavepointTracker::on_subabort(int level) {
  Undo u;
  if (opened_level_ == 0) return u;
  if (opened_level_ == level) {
    reset();
    u.kind = UndoKind::kRollbackAll;
    return u;
  }
  if (!marks_.empty() && marks_.back().level == level) {
    u.kind = UndoKind::kRollbackTo;
    u.savepoint = marks_.back().name;
    marks_.pop_back();
  }
  return u;
}

void SavepointTracker::reset() {
  opened_level_ = 0;
  counter_ = 0;
  marks_.clear();
}

}  // namespace pgc::twopc
