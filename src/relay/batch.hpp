// The relay's batch bookkeeping: which outbox rows a batch holds, what Kafka answered for
// each, which rows may leave the outbox, which count a failed attempt, and the exactly-once
// protocol's progress records and recovery decision. Pure logic (librdkafka error codes
// only, no PostgreSQL).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace pgc::relay {

// How the relay treats a librdkafka error for one message.
enum class ErrorClass {
  kNone,       // delivered
  kPermanent,  // Kafka refuses this message for good: counts an attempt, dead letter at the limit
  kTransient,  // broker/network trouble: retried later, no attempt counted
};
// The class of a librdkafka error code reported for one message.
ErrorClass classify_error(int rd_kafka_resp_err);

enum class Outcome { kPending, kDelivered, kPermanent, kTransient, kSkipped };

struct BatchEntry {
  int64_t id = 0;
  std::string key;
  bool key_null = false;
  Outcome outcome = Outcome::kPending;
  int error_code = 0;
  std::string error;
};

// One batch of outbox rows in outbox id order.
class Batch {
 public:
  Batch() = default;
  explicit Batch(int64_t number) : number_(number) {}

  int64_t number() const { return number_; }
  // Appends a row (in outbox id order); returns its index.
  std::size_t add(int64_t id, std::string key, bool key_null);
  void reserve(std::size_t n) { entries_.reserve(n); }
  std::size_t size() const { return entries_.size(); }
  const BatchEntry& entry(std::size_t i) const { return entries_[i]; }

  // Before producing entry i: false when an earlier message of the same key failed in
  // this batch (the entry is then marked skipped, so it cannot overtake that message).
  bool may_send(std::size_t i);
  // Entry i was handed to the producer: a delivery report is due.
  void sent(std::size_t i);
  // produce() refused entry i at once.
  void refused(std::size_t i, int err, std::string message);
  // The delivery report of entry i.
  void reported(std::size_t i, int err, std::string message);

  std::size_t outstanding() const { return outstanding_; }
  bool complete() const { return outstanding_ == 0; }

  std::vector<int64_t> ids() const;
  // The rows Kafka acknowledged: they leave the outbox.
  std::vector<int64_t> delivered_ids() const;
  // How many entries have outcome `o`.
  std::size_t count(Outcome o) const;
  // O(1): called once per produced message.
  bool any_failed() const { return failures_ > 0; }
  // Rows whose attempt failed for good: (id, reason).
  std::vector<std::pair<int64_t, std::string>> permanent_failures() const;
  // The first error of the batch, for logs and last_error.
  std::string first_error() const;

  // Exactly-once: the Kafka transaction aborted, so nothing of the batch counts as
  // delivered: delivered and unanswered entries become `as` (kTransient when the broker
  // is to blame, kSkipped when a refused message made the relay abort); permanent
  // failures keep their outcome and still count their attempt.
  void abort_all(Outcome as, std::string reason);

 private:
  // Entry i failed: classifies the error and blocks its key for the rest of the batch.
  void fail(std::size_t i, int err, std::string message);
  int64_t number_ = 0;
  std::vector<BatchEntry> entries_;
  std::unordered_set<std::string> blocked_keys_;
  std::size_t outstanding_ = 0;
  std::size_t failures_ = 0;  // entries now kPermanent or kTransient
};

// Progress record of the exactly-once protocol, written to the progress topic inside the
// Kafka transaction of the batch it names: {"batch":N,"messages":M}.
std::string encode_progress(int64_t batch, std::size_t messages);
// The batch number of a progress record; nullopt when it holds none.
std::optional<int64_t> decode_progress(std::string_view value);

// What to do, at start-up, with the batch PostgreSQL recorded before producing it.
struct RecoveryPlan {
  enum class Action { kNothing, kFinalize, kDiscard };
  Action action = Action::kNothing;
  int64_t next_batch = 1;
};
// open_batch: the batch PostgreSQL recorded and did not finish (if any);
// committed: the highest batch number the progress topic holds as committed (0 if none);
// last_known: the highest batch number PostgreSQL ever recorded as finished.
RecoveryPlan plan_recovery(std::optional<int64_t> open_batch, int64_t committed, int64_t last_known);

// A PostgreSQL timestamptz (microseconds since 2000-01-01 00:00 UTC) as RFC 3339 in UTC,
// e.g. 2024-05-01T12:30:00.123456Z.
std::string format_rfc3339_utc(int64_t pg_micros);

}  // namespace pgc::relay
