#include "relay/batch.hpp"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cstdio>

namespace pgc::relay {

ErrorClass classify_error(int code) {
  switch (static_cast<rd_kafka_resp_err_t>(code)) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
      return ErrorClass::kNone;
    // The message itself is unacceptable: retrying cannot help.
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS:
    case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    // librdkafka gave up finding the topic in the cluster's metadata (after
    // topic.metadata.propagation.max.ms): a topic that cannot be created must not block
    // the relay forever. The broker's UNKNOWN_TOPIC_OR_PART stays transient.
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__BAD_MSG:
      return ErrorClass::kPermanent;
    default:
      return ErrorClass::kTransient;
  }
}

std::size_t Batch::add(int64_t id, std::string key, bool key_null) {
  BatchEntry e;
  e.id = id;
  e.key = std::move(key);
  e.key_null = key_null;
  entries_.push_back(std::move(e));
  return entries_.size() - 1;
}

bool Batch::may_send(std::size_t i) {
  BatchEntry& e = entries_[i];
  if (!e.key_null && blocked_keys_.count(e.key) != 0) {
    e.outcome = Outcome::kSkipped;
    return false;
  }
  return true;
}

void Batch::sent(std::size_t i) {
  entries_[i].outcome = Outcome::kPending;
  outstanding_++;
}

void Batch::fail(std::size_t i, int err, std::string message) {
  BatchEntry& e = entries_[i];
  e.error_code = err;
  e.error = std::move(message);
  e.outcome = classify_error(err) == ErrorClass::kPermanent ? Outcome::kPermanent : Outcome::kTransient;
  failures_++;
  if (!e.key_null) blocked_keys_.insert(e.key);
}

void Batch::refused(std::size_t i, int err, std::string message) { fail(i, err, std::move(message)); }

void Batch::reported(std::size_t i, int err, std::string message) {
  BatchEntry& e = entries_[i];
  if (e.outcome != Outcome::kPending) return;  // a duplicate report changes nothing
  if (outstanding_ > 0) outstanding_--;
  if (classify_error(err) == ErrorClass::kNone) {
    e.outcome = Outcome::kDelivered;
  } else {
    fail(i, err, std::move(message));
  }
}

std::vector<int64_t> Batch::ids() const {
  std::vector<int64_t> out;
  out.reserve(entries_.size());
  for (const auto& e : entries_) out.push_back(e.id);
  return out;
}

std::vector<int64_t> Batch::delivered_ids() const {
  std::vector<int64_t> out;
  for (const auto& e : entries_)
    if (e.outcome == Outcome::kDelivered) out.push_back(e.id);
  return out;
}

std::size_t Batch::count(Outcome o) const {
  return static_cast<std::size_t>(
      std::count_if(entries_.begin(), entries_.end(), [o](const BatchEntry& e) { return e.outcome == o; }));
}

std::vector<std::pair<int64_t, std::string>> Batch::permanent_failures() const {
  std::vector<std::pair<int64_t, std::string>> out;
  for (const auto& e : entries_)
    if (e.outcome == Outcome::kPermanent) out.emplace_back(e.id, e.error);
  return out;
}

std::string Batch::first_error() const {
  for (const auto& e : entries_)
    if (e.outcome == Outcome::kPermanent || e.outcome == Outcome::kTransient)
      return "outbox id " + std::to_string(e.id) + ": " + e.error;
  return {};
}

void Batch::abort_all(Outcome as, std::string reason) {
  for (auto& e : entries_) {
    if (e.outcome == Outcome::kDelivered || e.outcome == Outcome::kPending) {
      e.outcome = as;
      if (as == Outcome::kPermanent || as == Outcome::kTransient) failures_++;
      e.error = reason;
    }
  }
  outstanding_ = 0;
}

std::string encode_progress(int64_t batch, std::size_t messages) {
  return "{\"batch\":" + std::to_string(batch) + ",\"messages\":" + std::to_string(messages) + "}";
}

std::optional<int64_t> decode_progress(std::string_view value) {
  const std::string_view tag = "\"batch\":";
  auto p = value.find(tag);
  if (p == std::string_view::npos) return std::nullopt;
  p += tag.size();
  while (p < value.size() && value[p] == ' ') p++;
  int64_t n = 0;
  std::size_t digits = 0;
  while (p < value.size() && value[p] >= '0' && value[p] <= '9' && digits < 18) {
    n = n * 10 + (value[p] - '0');
    p++;
    digits++;
  }
  if (digits == 0) return std::nullopt;
  if (p < value.size() && value[p] >= '0' && value[p] <= '9') return std::nullopt;  // too long
  return n;
}

RecoveryPlan plan_recovery(std::optional<int64_t> open_batch, int64_t committed, int64_t last_known) {
  RecoveryPlan plan;
  int64_t high = std::max<int64_t>(committed, last_known);
  if (open_batch) {
    // The progress record of batch n is committed in the same Kafka transaction as its
    // messages: if the topic holds n (or later), the messages are committed too.
    plan.action = committed >= *open_batch ? RecoveryPlan::Action::kFinalize : RecoveryPlan::Action::kDiscard;
    high = std::max(high, *open_batch);
  }
  plan.next_batch = high + 1;
  return plan;
}

std::string format_rfc3339_utc(int64_t pg_micros) {
  // Split into days and microseconds of the day, flooring for times before 2000.
  const int64_t kDay = 86400LL * 1000000LL;
  int64_t days = pg_micros / kDay;
  int64_t rem = pg_micros % kDay;
  if (rem < 0) {
    rem += kDay;
    days--;
  }
  // Days since 2000-01-01 -> civil date (Howard Hinnant's days_from_civil inverse).
  int64_t z = days + 10957 + 719468;  // 10957 days from 1970-01-01 to 2000-01-01
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = yoe + era * 400;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int64_t d = doy - (153 * mp + 2) / 5 + 1;
  int64_t m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) y++;
  int64_t secs = rem / 1000000;
  int64_t micros = rem % 1000000;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%06lldZ",
                static_cast<long long>(y), static_cast<long long>(m), static_cast<long long>(d),
                static_cast<long long>(secs / 3600), static_cast<long long>((secs / 60) % 60),
                static_cast<long long>(secs % 60), static_cast<long long>(micros));
  return buf;
}

}  // namespace pgc::relay
