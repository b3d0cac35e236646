// Mirrors the coordinator's subtransactions (SAVEPOINT, PL/pgSQL exception blocks) onto
// one participant's transaction, lazily: a participant only hears of a local
// subtransaction when it runs a statement inside it.
//
// - The participant's transaction is opened (BEGIN) at the local nesting level of its
//   first statement; if that subtransaction rolls back, the whole remote transaction
//   is rolled back and the participant counts as untouched again.
// - A statement at a deeper level than the last mark first sets a remote savepoint
//   for that level; a rollback of that level is ROLLBACK TO that savepoint.
// - A subtransaction commit sends nothing: its marks now belong to its parent.
//
// Pure bookkeeping, no I/O and no PostgreSQL header: unit-tested on its own.
#pragma once

#include <string>
#include <vector>

namespace pgc::twopc {

class SavepointTracker {
 public:
  struct Prepare {
    bool begin = false;     // send BEGIN first
    std::string savepoint;  // non-empty: send SAVEPOINT <name> first
  };
  enum class UndoKind { kNothing, kRollbackAll, kRollbackTo };
  struct Undo {
    UndoKind kind = UndoKind::kNothing;
    std::string savepoint;  // for kRollbackTo
  };

  // Before a statement runs at local nesting level `level` (>= 1). The caller sends what
  // it says, then the statement.
  Prepare before_statement(int level);
  // The local subtransaction at `level` commits / rolls back.
  void on_subcommit(int level);
  Undo on_subabort(int level);

  bool open() const { return opened_level_ > 0; }
  int opened_level() const { return opened_level_; }
  std::size_t depth() const { return marks_.size(); }
  // Forgets everything: the remote transaction is over.
  void reset();

 private:
  struct Mark {
    int level;
    std::string name;
  };
  int opened_level_ = 0;  // 0 = no remote transaction
  unsigned counter_ = 0;
  std::vector<Mark> marks_;  // strictly increasing levels, all > opened_level_
};

}  // namespace pgc::twopc
