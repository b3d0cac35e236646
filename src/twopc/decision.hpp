// What recovery does with one prepared transaction it finds on a participant.
//
// The coordinator's local commit is the decision point. A participant's prepared
// transaction is committed when the coordinator's local transaction committed (its
// decision row, written inside that transaction, is visible), rolled back when that
// transaction is over without a decision (presumed abort), and left alone while it still
// runs: it may be between its PREPAREs and its commit.
//
// The caller must learn the local status BEFORE it reads the decision (a later snapshot):
// a transaction that commits between the two reads is then seen with its decision. No
// PostgreSQL header here: unit-tested on its own.
#pragma once

#include <string_view>

namespace pgc::twopc {

enum class LocalStatus {
  kInProgress,  // still running on the coordinator
  kCommitted,
  kAborted,     // aborted, or crashed before its commit
  kTooOld,      // older than the coordinator's commit log still knows (pg_xact_status NULL)
  kFuture,      // not yet assigned here: a gid from another incarnation of this cluster
};

enum class Action { kCommit, kRollback, kLeave };

// pg_xact_status() text (nullptr for SQL NULL) → LocalStatus.
LocalStatus parse_local_status(const char* pg_xact_status_text, bool is_future);

// The decision table.
//   decision recorded                      → commit
//   no decision, local xact committed      → commit (the local commit is the decision;
//                                            the row can only be missing if removed by hand)
//   no decision, local xact running        → leave
//   no decision, xid not yet assigned here → leave (never guess for another incarnation)
//   no decision, aborted or too old        → roll back (presumed abort)
Action decide(bool decision_recorded, LocalStatus status);

const char* action_name(Action a);          // "commit" / "rollback" / "leave"
const char* decision_label(Action a);       // in_doubt.decision: "commit" / "rollback" / "pending"

}  // namespace pgc::twopc
