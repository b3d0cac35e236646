#include "twopc/decision.hpp"

#include <cstring>
#include <iterator>

namespace pgc::twopc {

LocalStatus parse_local_status(const char* s, bool unassigned) {
  if (unassigned) return LocalStatus::kUnassigned;
  if (s == nullptr) return LocalStatus::kTooOld;
  if (std::strcmp(s, "in progress") == 0) return LocalStatus::kInProgress;
  if (std::strcmp(s, "committed") == 0) return LocalStatus::kCommitted;
  // "aborted", and anything unexpected: not running and not committed.
  return LocalStatus::kAborted;
}

Action decide(bool decision_recorded, LocalStatus status) {
  if (decision_recorded) return Action::kCommit;
  // Committed (without a decision for this participant), aborted, too old or unassigned:
  // the local transaction is over.
  return status == LocalStatus::kInProgress ? Action::kLeave : Action::kRollback;
}

const char* action_name(Action a) {
  static const char* const kNames[] = {"commit", "rollback", "leave"};  // in Action's order
  auto i = static_cast<std::size_t>(a);
  return i < std::size(kNames) ? kNames[i] : "leave";
}

const char* decision_label(Action a) { return a == Action::kLeave ? "pending" : action_name(a); }

}  // namespace pgc::twopc
