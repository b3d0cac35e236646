// A consumer batch's messages through their handler (backend code): in runs of one
// subtransaction each rather than one per message, with the outcome of one per message
// (see apply_messages). The caller holds the batch's transaction and stores the
// partitions' Progress in it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "inbox/apply.hpp"
#include "inbox/message.hpp"
#include "pg/postgres.hpp"

namespace pgc::inbox {

struct Counters {
  int64 consumed = 0, failed = 0, dead_lettered = 0, deduplicated = 0;
  std::string last_error;
};

// One partition's way through a batch: what to store with it, and what leaves the queue
// once it commits.
struct Progress {
  const std::string* topic = nullptr;
  int32_t partition = 0;
  int64_t stored = 0;  // next_offset and attempts as stored before the batch
  int stored_attempts = 0;
  std::size_t n = 0;  // messages that leave the queue (applied, skipped or dead-lettered)
  int64_t next = 0;
  int attempts = 0;
  std::string error;         // the failed attempt stored as the partition's last_error, or ""
  bool stopped = false;      // a message waits for its retry: the rest of the partition waits too
  TimestampTz retry_at = 0;  // when it is tried again (0: no retry due)
};

// Applies msgs in order (owner[i]: the partition of msgs[i]; a partition's messages in
// offset order). Each partition stops at a failed attempt with attempts left (retried in
// place later, with backoff); dead letters go in with the batch. `process` names the
// running message for the hard stop. Returns the messages settled.
long apply_messages(const ConsumerDef& def, const std::vector<const Message*>& msgs,
                    const std::vector<Progress*>& owner, Counters* c, int process);

}  // namespace pgc::inbox
