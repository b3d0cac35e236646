// A librdkafka consumer for the inbox, without PostgreSQL headers: partitions assigned by
// the caller (offsets live in PostgreSQL: no group, no subscribe, no commits), messages
// copied out as plain data. librdkafka's threads never call back into the caller: errors
// and messages are handed over only inside poll() on the calling thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "inbox/message.hpp"
#include "relay/kafka.hpp"

namespace pgc::inbox {

struct TopicPartition {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;  // where to start reading
};

// A topic per the broker's metadata: its partition count, or -1 with the error.
struct TopicInfo {
  std::string topic;
  int partitions = -1;
  std::string error;
};

class Consumer {
 public:
  static std::unique_ptr<Consumer> create(const relay::KafkaConfig& cfg, const std::string& client_id,
                                          std::string* error);
  ~Consumer();
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  // Partition counts of `topics`; false with *error when the broker did not answer.
  bool metadata(const std::vector<std::string>& topics, int timeout_ms, std::vector<TopicInfo>* out,
                std::string* error);
  // The same lookup on a thread of its own, so that the caller never waits for it: the
  // broker answers a metadata request only after the fetch it holds on the same
  // connection (up to fetch.wait.max.ms), which stalled every message behind it. The
  // thread only calls librdkafka; it writes a byte to the wake_through descriptor when the
  // answer is there. False when a lookup runs already.
  bool start_metadata(const std::vector<std::string>& topics, int timeout_ms);
  enum class Lookup { kNone, kRunning, kAnswered, kFailed };
  // The state of the lookup; kAnswered / kFailed hand over its answer (*out / *error) and
  // end it.
  Lookup take_metadata(std::vector<TopicInfo>* out, std::string* error);
  // True when an answer waits to be taken.
  bool metadata_answered();
  // The low and high watermarks as the broker says now.
  bool query_watermarks(const std::string& topic, int32_t partition, int timeout_ms, int64_t* low,
                        int64_t* high, std::string* error);
  // The high watermark librdkafka last saw while fetching (no request), or -1.
  int64_t cached_high(const std::string& topic, int32_t partition);
  // Replaces the assignment: fetching starts at each partition's offset.
  bool assign(const std::vector<TopicPartition>& parts, std::string* error);
  // Up to `max` messages, waiting at most timeout_ms for the first; errors reported by
  // partitions (an unknown topic...) go to *errors.
  std::size_t poll(std::size_t max, int timeout_ms, std::vector<Message>* out,
                   std::vector<std::string>* errors);
  // The offset after the last message handed out for the partition (skipping transaction
  // markers and aborted messages), or -1 when unknown.
  int64_t position(const std::string& topic, int32_t partition);
  // Stops or restarts fetching a partition (while its messages wait for a retry).
  void pause(const std::string& topic, int32_t partition, bool paused);
  // From now on librdkafka writes a byte to `fd` (non-blocking) whenever the queue this
  // consumer polls becomes non-empty; -1 stops it.
  void wake_through(int fd);
  // Messages and events waiting in that queue (poll() would return them at once).
  std::size_t queued();

 private:
  struct Answer;
  Consumer() = default;
  void end_lookup();
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_queue_t* queue_ = nullptr;
  int wake_fd_ = -1;
  std::shared_ptr<Answer> answer_;
  std::thread lookup_;
};

}  // namespace pgc::inbox
