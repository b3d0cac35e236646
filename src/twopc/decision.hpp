// What recovery does with one prepared transaction it finds on a participant.
//
// The coordinator's local commit is the decision point. A participant's prepared
// transaction is committed when the coordinator's local transaction committed with a
// decision row for that participant (written inside that transaction, so it exists
// exactly when it committed), rolled back when that transaction is over without one
// (presumed abort), and left alone while it still runs: it may be between its PREPAREs
// and its commit.
//
// "Over" includes an xid the coordinator has not even assigned (yet): a transaction
// that crashed before any of its WAL reached disk leaves no trace, and after crash
// recovery its xid will be handed out again. Such a gid must be rolled back, and a
// later transaction that reuses the xid decides only for the participants it wrote
// decision rows for: "committed without a decision row for this participant" is
// therefore a rollback too.
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
  kUnassigned,  // at or past the next xid: lost in a crash, or from another incarnation
};

enum class Action { kCommit, kRollback, kLeave };

// pg_xact_status() text (nullptr for SQL NULL) → LocalStatus.
LocalStatus parse_local_status(const char* pg_xact_status_text, bool unassigned);

// The decision table.
//   decision recorded                          → commit
//   no decision, local transaction running     → leave
//   no decision, local transaction over        → roll back (presumed abort): aborted,
//     crashed, too old, not assigned, or committed without touching this participant
Action decide(bool decision_recorded, LocalStatus status);

const char* action_name(Action a);     // "commit" / "rollback" / "leave"
const char* decision_label(Action a);  // in_doubt.decision: "commit" / "rollback" / "pending"

}  // namespace pgc::twopc
