#include "twopc/decision.hpp"

#include <cstring>

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
  switch (status) {
    case LocalStatus::kInProgress:
      return Action::kLeave;
    case LocalStatus::kCommitted:
    case LocalStatus::kAborted:
    case LocalStatus::kTooOld:
    case LocalStatus::kUnassigned:
      return Action::kRollback;
  }
  return Action::kLeave;
}

const char* action_name(Action a) {
  switch (a) {
    case Action::kCommit:
      return "commit";
    case Action::kRollback:
      return "rollback";
    case Action::kLeave:
      return "leave";
  }
  return "leave";
}

const char* decision_label(Action a) { return a == Action::kLeave ? "pending" : action_name(a); }

}  // namespace pgc::twopc
