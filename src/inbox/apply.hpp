// Applying one Kafka message in the current transaction (backend code): dedupe by ce_id,
// the handler as the consumer's owner in a subtransaction, dead letters. Shared by the
// consumer processes and retry_consumer_dead_letters.
#pragma once

#include <string>

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
