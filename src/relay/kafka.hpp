// A thin RAII layer over librdkafka for the relay: producer (idempotent, optionally
// transactional), topic creation, a broker probe and the read_committed read of the
// exactly-once progress topic. No PostgreSQL headers: delivery reports, errors and logs
// are served only inside poll() on the calling thread, and handed to the caller as plain
// data.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <string>
#include <string_view>
#include <vector>

#include "relay/properties.hpp"

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_topic_s rd_kafka_topic_t;
typedef struct rd_kafka_conf_s rd_kafka_conf_t;
typedef struct rd_kafka_queue_s rd_kafka_queue_t;

namespace pgc::relay {

struct KafkaConfig {
  std::string brokers;
  Properties properties;  // pg_consistency.kafka_properties (applied last, win over defaults)
  bool transactional = false;
  std::string transactional_id;
};

struct Header {
  std::string name;
  std::string value;
  bool null = false;
};

// A header as views: what produce() copies into the message.
struct HeaderView {
  const char* name;
  std::size_t name_len;
  const char* value;
  std::size_t value_len;
  bool null;
};

// Outcome of a transactional call, following librdkafka's error classes.
struct TxnResult {
  bool ok = true;
  bool retriable = false;  // call it again
  bool abortable = false;  // abort the transaction, then resend
  bool fatal = false;      // the producer is unusable (fenced...): recreate it
  int code = 0;
  std::string message;
};

// Sets one librdkafka property; the error names the property but never its value.
bool set_property(rd_kafka_conf_t* conf, const std::string& name, const std::string& value,
                  std::string* error);
// rd_kafka_new (type: RD_KAFKA_PRODUCER or RD_KAFKA_CONSUMER) with every signal blocked, so
// librdkafka's threads never run PostgreSQL's handlers. Takes conf on success.
rd_kafka_t* new_kafka_handle(int type, rd_kafka_conf_t* conf, std::string* error);
// A consumer's configuration: kafka_properties, then what offsets kept outside Kafka need
// (isolation.level=read_committed, no automatic offset commit or store). nullptr on error.
rd_kafka_conf_t* new_consumer_conf(const KafkaConfig& cfg, const char* client_id, std::string* error);
// rd_kafka_destroy without a consumer close (no group), with every signal blocked.
void destroy_kafka_handle(rd_kafka_t* rk);

class Producer {
 public:
  // Called from poll() for every delivery report: tag is what produce() was given,
  // partition where the message went (or -1).
  using DeliveryFn = void (*)(void* ctx, uint64_t tag, int32_t partition, int err, const char* errstr);

  static std::unique_ptr<Producer> create(const KafkaConfig& cfg, std::string* error);
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  void set_delivery_handler(DeliveryFn fn, void* ctx) {
    dr_fn_ = fn;
    dr_ctx_ = ctx;
  }

  // Queues one message (payload copied). partition < 0: the murmur2 partitioner chooses.
  // Returns 0 or the librdkafka error code, with its text in *errstr. A full local queue
  // is waited out by polling for at most queue_wait_ms.
  int produce(std::string_view topic, int32_t partition, const char* key, std::size_t key_len, bool key_null,
              const char* value, std::size_t value_len, bool value_null, const HeaderView* headers,
              std::size_t header_count, uint64_t tag, std::string* errstr, int queue_wait_ms = 5000);
  // The same with owned headers.
  int produce(std::string_view topic, int32_t partition, const char* key, std::size_t key_len, bool key_null,
              const char* value, std::size_t value_len, bool value_null, const std::vector<Header>& headers,
              uint64_t tag, std::string* errstr, int queue_wait_ms = 5000);

  // Serves delivery reports, errors and logs; waits at most timeout_ms for the first event.
  int poll(int timeout_ms);
  // Messages not yet acknowledged (queued or in flight).
  int outq_len() const;
  // Waits (polling) until every queued message got its report or timeout_ms passed.
  bool flush(int timeout_ms);

  // Broker trouble reported through the error callback since the last take.
  bool all_brokers_down() const { return all_brokers_down_; }
  void clear_all_brokers_down() { all_brokers_down_ = false; }
  bool fatal() const { return fatal_; }
  // The errors (and librdkafka warnings or worse) collected since the last take, at most
  // 100 of each.
  std::vector<std::string> take_errors();
  std::vector<std::string> take_logs();

  // librdkafka's transactional calls, their errors classified (see TxnResult).
  TxnResult init_transactions(int timeout_ms);
  TxnResult begin_transaction();
  TxnResult commit_transaction(int timeout_ms);
  TxnResult abort_transaction(int timeout_ms);

  // Creates the topics that do not exist yet. Per-topic problems ("" = created or already
  // there) go to *topic_errors; false with *error when the request itself failed.
  bool create_topics(const std::vector<std::string>& topics, int partitions, const Properties& topic_config,
                     int timeout_ms, std::vector<std::string>* topic_errors, std::string* error);
  // A metadata round trip: true when a broker answered within timeout_ms.
  bool probe(int timeout_ms, std::string* error);
  // Partitions of a topic per the broker's metadata (-1 if unknown).
  int partition_count(const std::string& topic, int timeout_ms);

  rd_kafka_t* handle() const { return rk_; }

 private:
  Producer() = default;
  // librdkafka's callbacks, run inside poll() on the caller's thread: they pass delivery
  // reports to the handler and queue errors and logs for the take_* calls.
  static void on_delivery(rd_kafka_t*, const void* msg, void* opaque);
  static void on_error(rd_kafka_t*, int err, const char* reason, void* opaque);
  static void on_log(const rd_kafka_t*, int level, const char* fac, const char* buf);

  // The handle of `topic`, created on first use and kept; nullptr when librdkafka refuses it.
  rd_kafka_topic_t* topic_handle(std::string_view topic);

  rd_kafka_t* rk_ = nullptr;
  std::unordered_map<std::string, rd_kafka_topic_t*> topics_;  // handles kept for the producer's life
  std::string last_topic_;  // the previous produce()'s topic and handle: rows mostly share one
  rd_kafka_topic_t* last_rkt_ = nullptr;
  DeliveryFn dr_fn_ = nullptr;
  void* dr_ctx_ = nullptr;
  bool all_brokers_down_ = false;
  bool fatal_ = false;
  std::vector<std::string> errors_;
  std::vector<std::string> logs_;
};

// The exactly-once progress topic, read with isolation.level=read_committed.
enum class ProgressRead { kOk, kNoTopic, kNotReady, kError };
// Reads partition 0 of `topic` up to the high watermark seen at the start (waiting until
// the last stable offset has reached it, so no decided transaction is missed) and returns
// the highest batch number recorded under `key` (0 if none).
ProgressRead read_progress(const KafkaConfig& cfg, const std::string& topic, const std::string& key,
                           int timeout_ms, int64_t* committed, std::string* error);

}  // namespace pgc::relay
