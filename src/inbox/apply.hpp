// Applying one Kafka message in the current transaction (backend code): dedupe by ce_id,
// the handler as the consumer's owner in a subtransaction, dead letters. Shared by the
// consumer processes and retry_consumer_dead_letters.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "inbox/message.hpp"
#include "pg/postgres.hpp"

namespace pgc::inbox {

struct ConsumerDef {
  std::string name;
  Oid handler = InvalidOid;
  Oid owner = InvalidOid;
  bool raw_value = false;  // the handler takes bytea
};

enum class Outcome {
  kApplied,       // the handler ran; its effects are in the transaction
  kDeduplicated,  // a ce_id already handled within the window: skipped
  kFailed,        // the handler raised (rolled back): retry, then dead-letter
  kUnusable,      // cannot be given to the handler (not JSON, bad key): dead-letter at once
};

// Runs m through c's handler in a subtransaction; *error holds the reason unless applied
// or deduplicated. Raises only for errors outside the handler's subtransaction.
Outcome apply_message(const ConsumerDef& c, const Message& m, std::string* error);

// The handler looked up once per batch (in memory of the batch's transaction): fmgr_info
// and the owner/EXECUTE checks once, and a SQL-language handler parsed and planned once
// per subtransaction instead of once per message.
struct BatchHandler;
BatchHandler* prepare_handler(const ConsumerDef& c);

// What apply_run did with the messages [from, to).
struct RunResult {
  std::size_t end = 0;                  // the run stopped before this index
  bool failed = false;                  // message `end` failed and the whole run was rolled back
  Outcome outcome = Outcome::kApplied;  // of the failed message (kFailed or kUnusable)
  std::string error;                    // its reason
  // From `from` to `end` (when not failed): kApplied or kDeduplicated; kUnusable marks a
  // message that was skipped.
  std::vector<Outcome> outcomes;
};

// How apply_run treats message i: run it, skip it (its partition waits for a retry), or
// stop before it (it needs the one-message path: a hard-stop charge, an unusable value).
enum class RunStep { kRun, kSkip, kStop };

// Runs msgs[from..to) through the handler in ONE subtransaction (each message still with
// its own dedupe record, RunAs scope, time limit and correlation ids), stopping before
// the first message `step` says to stop at. A message that fails rolls the whole run
// back: the caller runs the messages before it again, then treats the failure as the
// message's attempt, so each message's effects are kept exactly when per-message
// subtransactions would have kept them. `process` names the running message for the
// hard stop.
RunResult apply_run(const ConsumerDef& c, BatchHandler* h, const std::vector<const Message*>& msgs,
                    std::size_t from, std::size_t to, const std::function<RunStep(std::size_t)>& step,
                    int process);

// Inserts m into consistency.consumer_dead_letters (replacing an earlier row of the same
// offset) with the extension owner's rights.
void dead_letter(const ConsumerDef& c, const Message& m, const std::string& reason);

// The handler's problems that fail every message (owner or function gone, EXECUTE
// revoked), or "".
std::string handler_problem(const ConsumerDef& c);

// The owner of the extension's tables (the role the catalog statements run as).
Oid catalog_owner();

// The clipped error text kept in last_error and reasons.
std::string clip_reason(const std::string& s);

}  // namespace pgc::inbox
