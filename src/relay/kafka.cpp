#include "relay/kafka.hpp"

#include "relay/batch.hpp"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstring>

namespace pgc::relay {

namespace {

using Clock = std::chrono::steady_clock;

int64_t ms_left(Clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
}

// Threads librdkafka starts inherit the creating thread's signal mask: block everything
// while they are created, so PostgreSQL's handlers only ever run on the main thread.
class SignalBlock {
 public:
  SignalBlock() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old_);
  }
  ~SignalBlock() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

 private:
  sigset_t old_;
};

// A unique_ptr deleter calling librdkafka's destroy function `Destroy` on a non-null handle.
template <auto Destroy>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    if (p) Destroy(p);
  }
};
template <typename T, auto Destroy>
using Owned = std::unique_ptr<T, Deleter<Destroy>>;

using ConfPtr = Owned<rd_kafka_conf_t, rd_kafka_conf_destroy>;
using QueuePtr = Owned<rd_kafka_queue_t, rd_kafka_queue_destroy>;
using EventPtr = Owned<rd_kafka_event_t, rd_kafka_event_destroy>;
using HandlePtr = Owned<rd_kafka_t, rd_kafka_destroy>;
using TopicPtr = Owned<rd_kafka_topic_t, rd_kafka_topic_destroy>;

// Sets one property; errors name the property but never its value.
bool set(rd_kafka_conf_t* conf, const std::string& name, const std::string& value, std::string* error) {
  char errstr[512];
  if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
    *error = "invalid Kafka setting \"" + name + "\"";
    return false;
  }
  return true;
}

// A librdkafka transactional error (destroyed here; nullptr = success) as a TxnResult.
TxnResult to_result(rd_kafka_error_t* err) {
  TxnResult r;
  if (err == nullptr) return r;
  r.ok = false;
  r.code = rd_kafka_error_code(err);
  r.message = rd_kafka_error_string(err);
  r.retriable = rd_kafka_error_is_retriable(err) != 0;
  r.abortable = rd_kafka_error_txn_requires_abort(err) != 0;
  r.fatal = rd_kafka_error_is_fatal(err) != 0;
  rd_kafka_error_destroy(err);
  return r;
}

}  // namespace

bool set_property(rd_kafka_conf_t* conf, const std::string& name, const std::string& value,
                  std::string* error) {
  return set(conf, name, value, error);
}

rd_kafka_t* new_kafka_handle(int type, rd_kafka_conf_t* conf, std::string* error) {
  char errstr[512];
  rd_kafka_t* rk;
  {
    SignalBlock block;
    rk = rd_kafka_new(static_cast<rd_kafka_type_t>(type), conf, errstr, sizeof errstr);
  }
  if (rk == nullptr) *error = errstr;
  return rk;
}

void destroy_kafka_handle(rd_kafka_t* rk) {
  SignalBlock block;
  rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

rd_kafka_conf_t* new_consumer_conf(const KafkaConfig& cfg, const char* client_id, std::string* error) {
  ConfPtr conf(rd_kafka_conf_new());
  // Producer-only settings are ignored by a consumer; anything else must apply.
  for (const auto& [n, v] : cfg.properties)
    if (!set(conf.get(), n, v, error)) return nullptr;
  if (!set(conf.get(), "bootstrap.servers", cfg.brokers, error) ||
      !set(conf.get(), "isolation.level", "read_committed", error) ||
      !set(conf.get(), "enable.auto.commit", "false", error) ||
      !set(conf.get(), "enable.auto.offset.store", "false", error) ||
      !set(conf.get(), "client.id", client_id, error))
    return nullptr;
  return conf.release();
}

std::unique_ptr<Producer> Producer::create(const KafkaConfig& cfg, std::string* error) {
  std::unique_ptr<Producer> p(new Producer());
  ConfPtr conf(rd_kafka_conf_new());
  // Defaults a user may override through kafka_properties.
  const std::pair<const char*, const char*> defaults[] = {
      {"linger.ms", "2"},
      {"reconnect.backoff.max.ms", "1000"},
      {"retry.backoff.ms", "100"},
      {"client.id", "pg_consistency-relay"},
  };
  for (const auto& [n, v] : defaults)
    if (!set(conf.get(), n, v, error)) return nullptr;
  if (!cfg.transactional && !set(conf.get(), "message.timeout.ms", "60000", error)) return nullptr;
  for (const auto& [n, v] : cfg.properties)
    if (!set(conf.get(), n, v, error)) return nullptr;
  // What the relay's guarantees rest on: never overridden.
  if (!set(conf.get(), "bootstrap.servers", cfg.brokers, error)) return nullptr;
  if (!set(conf.get(), "enable.idempotence", "true", error)) return nullptr;
  if (!set(conf.get(), "partitioner", "murmur2_random", error)) return nullptr;
  if (!set(conf.get(), "log.queue", "true", error)) return nullptr;
  if (cfg.transactional && !set(conf.get(), "transactional.id", cfg.transactional_id, error)) return nullptr;
  rd_kafka_conf_set_opaque(conf.get(), p.get());
  rd_kafka_conf_set_dr_msg_cb(conf.get(), [](rd_kafka_t* rk, const rd_kafka_message_t* m, void* opaque) {
    on_delivery(rk, m, opaque);
  });
  rd_kafka_conf_set_error_cb(conf.get(), [](rd_kafka_t* rk, int err, const char* reason, void* opaque) {
    on_error(rk, err, reason, opaque);
  });
  rd_kafka_conf_set_log_cb(conf.get(), on_log);

  std::string why;
  p->rk_ = new_kafka_handle(RD_KAFKA_PRODUCER, conf.get(), &why);
  if (p->rk_ == nullptr) {
    *error = "cannot create the Kafka producer: " + why;
    return nullptr;
  }
  conf.release();                           // owned by rk now
  rd_kafka_set_log_queue(p->rk_, nullptr);  // logs are served by poll() on this thread
  return p;
}

Producer::~Producer() {
  for (auto& [name, rkt] : topics_) rd_kafka_topic_destroy(rkt);
  topics_.clear();
  last_rkt_ = nullptr;
  if (rk_ != nullptr) {
    // Undelivered messages stay in the outbox; do not wait for them here.
    rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    dr_fn_ = nullptr;
    rd_kafka_poll(rk_, 0);
    destroy_kafka_handle(rk_);
  }
}

void Producer::on_delivery(rd_kafka_t*, const void* msg, void* opaque) {
  auto* self = static_cast<Producer*>(opaque);
  const auto* m = static_cast<const rd_kafka_message_t*>(msg);
  if (self == nullptr || self->dr_fn_ == nullptr) return;
  const char* text = m->err ? rd_kafka_err2str(m->err) : "";
  self->dr_fn_(self->dr_ctx_, reinterpret_cast<uint64_t>(m->_private), m->partition, m->err, text);
}

void Producer::on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
  auto* self = static_cast<Producer*>(opaque);
  if (self == nullptr) return;
  if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) self->all_brokers_down_ = true;
  std::string text = reason ? reason : rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(err));
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    self->fatal_ = true;
    char buf[512];
    rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof buf);
    text = std::string("fatal: ") + rd_kafka_err2name(orig) + ": " + buf;
  }
  if (self->errors_.size() < 100) self->errors_.push_back(std::move(text));
}

void Producer::on_log(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
  auto* self = static_cast<Producer*>(rd_kafka_opaque(rk));
  if (self == nullptr || level > 4) return;  // warnings and worse
  if (self->logs_.size() < 100) self->logs_.push_back(std::string(fac ? fac : "") + ": " + (buf ? buf : ""));
}

rd_kafka_topic_t* Producer::topic_handle(std::string_view topic) {
  if (last_rkt_ != nullptr && topic == last_topic_) return last_rkt_;
  std::string name(topic);
  rd_kafka_topic_t* rkt = nullptr;
  auto it = topics_.find(name);
  if (it != topics_.end()) {
    rkt = it->second;
  } else {
    rkt = rd_kafka_topic_new(rk_, name.c_str(), nullptr);
    if (rkt == nullptr) return nullptr;
    topics_.emplace(name, rkt);
  }
  last_topic_ = std::move(name);
  last_rkt_ = rkt;
  return rkt;
}

int Producer::produce(std::string_view topic, int32_t partition, const char* key, std::size_t key_len,
                      bool key_null, const char* value, std::size_t value_len, bool value_null,
                      const std::vector<Header>& headers, uint64_t tag, std::string* errstr,
                      int queue_wait_ms) {
  std::vector<HeaderView> views;
  views.reserve(headers.size());
  for (const auto& h : headers)
    views.push_back(HeaderView{h.name.data(), h.name.size(), h.value.data(), h.value.size(), h.null});
  return produce(topic, partition, key, key_len, key_null, value, value_len, value_null, views.data(),
                 views.size(), tag, errstr, queue_wait_ms);
}

int Producer::produce(std::string_view topic, int32_t partition, const char* key, std::size_t key_len,
                      bool key_null, const char* value, std::size_t value_len, bool value_null,
                      const HeaderView* headers, std::size_t header_count, uint64_t tag, std::string* errstr,
                      int queue_wait_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(queue_wait_ms);
  rd_kafka_topic_t* rkt = topic_handle(topic);
  if (rkt == nullptr) {
    *errstr = rd_kafka_err2str(rd_kafka_last_error());
    return rd_kafka_last_error();
  }
  for (;;) {
    rd_kafka_headers_t* hdrs = header_count > 0 ? rd_kafka_headers_new(header_count) : nullptr;
    for (std::size_t i = 0; i < header_count; i++) {
      const HeaderView& h = headers[i];
      rd_kafka_header_add(hdrs, h.name, static_cast<ssize_t>(h.name_len), h.null ? nullptr : h.value,
                          h.null ? 0 : static_cast<ssize_t>(h.value_len));
    }
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk_, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA : partition),
        RD_KAFKA_V_KEY(key_null ? nullptr : const_cast<char*>(key), key_null ? 0 : key_len),
        RD_KAFKA_V_VALUE(value_null ? nullptr : const_cast<char*>(value), value_null ? 0 : value_len),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(tag)), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return 0;  // headers now belong to the message
    if (hdrs != nullptr) rd_kafka_headers_destroy(hdrs);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && ms_left(deadline) > 0) {
      rd_kafka_poll(rk_, 10);  // back-pressure: let reports drain the queue
      continue;
    }
    *errstr = rd_kafka_err2str(err);
    return err;
  }
}

int Producer::poll(int timeout_ms) { return rd_kafka_poll(rk_, timeout_ms); }

int Producer::outq_len() const { return rd_kafka_outq_len(rk_); }

bool Producer::flush(int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (rd_kafka_outq_len(rk_) > 0) {
    int64_t left = ms_left(deadline);
    if (left <= 0) return false;
    rd_kafka_poll(rk_, static_cast<int>(left < 100 ? left : 100));
  }
  rd_kafka_poll(rk_, 0);
  return true;
}

std::vector<std::string> Producer::take_errors() {
  std::vector<std::string> out;
  out.swap(errors_);
  return out;
}

std::vector<std::string> Producer::take_logs() {
  std::vector<std::string> out;
  out.swap(logs_);
  return out;
}

TxnResult Producer::init_transactions(int timeout_ms) {
  return to_result(rd_kafka_init_transactions(rk_, timeout_ms));
}
TxnResult Producer::begin_transaction() { return to_result(rd_kafka_begin_transaction(rk_)); }
TxnResult Producer::commit_transaction(int timeout_ms) {
  return to_result(rd_kafka_commit_transaction(rk_, timeout_ms));
}
TxnResult Producer::abort_transaction(int timeout_ms) {
  return to_result(rd_kafka_abort_transaction(rk_, timeout_ms));
}

bool Producer::create_topics(const std::vector<std::string>& topics, int partitions,
                             const Properties& topic_config, int timeout_ms,
                             std::vector<std::string>* topic_errors, std::string* error) {
  topic_errors->assign(topics.size(), std::string());
  if (topics.empty()) return true;
  std::vector<rd_kafka_NewTopic_t*> nts;
  char errstr[512];
  for (const auto& t : topics) {
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(t.c_str(), partitions, -1, errstr, sizeof errstr);
    if (nt == nullptr) {
      for (auto* n : nts) rd_kafka_NewTopic_destroy(n);
      *error = std::string("cannot describe topic ") + t + ": " + errstr;
      return false;
    }
    for (const auto& [n, v] : topic_config) rd_kafka_NewTopic_set_config(nt, n.c_str(), v.c_str());
    nts.push_back(nt);
  }
  rd_kafka_AdminOptions_t* opts = rd_kafka_AdminOptions_new(rk_, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, errstr, sizeof errstr);
  rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, errstr, sizeof errstr);
  QueuePtr q(rd_kafka_queue_new(rk_));
  rd_kafka_CreateTopics(rk_, nts.data(), nts.size(), opts, q.get());
  rd_kafka_AdminOptions_destroy(opts);
  for (auto* n : nts) rd_kafka_NewTopic_destroy(n);

  // Serve the main queue meanwhile (delivery reports, errors) while waiting.
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms + 1000);
  EventPtr ev;
  while (!ev) {
    if (ms_left(deadline) <= 0) {
      *error = "timed out creating topics";
      return false;
    }
    ev.reset(rd_kafka_queue_poll(q.get(), 100));
    rd_kafka_poll(rk_, 0);
  }
  if (rd_kafka_event_error(ev.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    *error = std::string("creating topics failed: ") + rd_kafka_event_error_string(ev.get());
    return false;
  }
  const rd_kafka_CreateTopics_result_t* res = rd_kafka_event_CreateTopics_result(ev.get());
  size_t cnt = 0;
  const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(res, &cnt);
  for (size_t i = 0; i < cnt; i++) {
    rd_kafka_resp_err_t e = rd_kafka_topic_result_error(results[i]);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) continue;
    const char* name = rd_kafka_topic_result_name(results[i]);
    for (size_t j = 0; j < topics.size(); j++) {
      if (topics[j] == name) {
        const char* msg = rd_kafka_topic_result_error_string(results[i]);
        (*topic_errors)[j] = std::string(rd_kafka_err2name(e)) + (msg ? std::string(": ") + msg : "");
      }
    }
  }
  return true;
}

bool Producer::probe(int timeout_ms, std::string* error) {
  const struct rd_kafka_metadata* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk_, 0, nullptr, &md, timeout_ms);
  if (md) rd_kafka_metadata_destroy(md);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    *error = std::string("broker did not answer: ") + rd_kafka_err2str(err);
    return false;
  }
  return true;
}

int Producer::partition_count(const std::string& topic, int timeout_ms) {
  TopicPtr rkt(rd_kafka_topic_new(rk_, topic.c_str(), nullptr));
  const struct rd_kafka_metadata* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk_, 0, rkt.get(), &md, timeout_ms);
  int n = -1;
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md && md->topic_cnt == 1 && md->topics[0].err == 0)
    n = md->topics[0].partition_cnt;
  if (md) rd_kafka_metadata_destroy(md);
  return n;
}

ProgressRead read_progress(const KafkaConfig& cfg, const std::string& topic, const std::string& key,
                           int timeout_ms, int64_t* committed, std::string* error) {
  *committed = 0;
  ConfPtr conf(new_consumer_conf(cfg, "pg_consistency-relay-recovery", error));
  if (!conf || !set(conf.get(), "enable.partition.eof", "true", error)) return ProgressRead::kError;
  rd_kafka_conf_set_log_cb(conf.get(), [](const rd_kafka_t*, int, const char*, const char*) {});
  char errstr[512];
  HandlePtr rk;
  {
    SignalBlock block;
    rk.reset(rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), errstr, sizeof errstr));
  }
  if (!rk) {
    *error = std::string("cannot create the progress reader: ") + errstr;
    return ProgressRead::kError;
  }
  conf.release();

  int64_t low = 0, high = 0;
  rd_kafka_resp_err_t err =
      rd_kafka_query_watermark_offsets(rk.get(), topic.c_str(), 0, &low, &high, timeout_ms);
  if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) return ProgressRead::kNoTopic;
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    *error = std::string("cannot read the progress topic's offsets: ") + rd_kafka_err2str(err);
    return ProgressRead::kNotReady;
  }
  if (high <= low) return ProgressRead::kOk;

  TopicPtr rkt(rd_kafka_topic_new(rk.get(), topic.c_str(), nullptr));
  if (rd_kafka_consume_start(rkt.get(), 0, RD_KAFKA_OFFSET_BEGINNING) == -1) {
    *error = std::string("cannot read the progress topic: ") + rd_kafka_err2str(rd_kafka_last_error());
    return ProgressRead::kError;
  }
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  int64_t best = 0;
  ProgressRead result = ProgressRead::kNotReady;
  *error = "the progress topic's last stable offset did not reach its high watermark in time";
  while (ms_left(deadline) > 0) {
    rd_kafka_message_t* m = rd_kafka_consume(rkt.get(), 0, 100);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      bool done = m->offset >= high;
      rd_kafka_message_destroy(m);
      if (done) {
        result = ProgressRead::kOk;
        break;
      }
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      *error = std::string("reading the progress topic: ") + rd_kafka_err2str(m->err);
      rd_kafka_message_destroy(m);
      result = ProgressRead::kNotReady;
      break;
    }
    if (m->key != nullptr && m->key_len == key.size() && std::memcmp(m->key, key.data(), key.size()) == 0 &&
        m->payload != nullptr) {
      auto b = decode_progress(std::string_view(static_cast<const char*>(m->payload), m->len));
      if (b && *b > best) best = *b;
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consume_stop(rkt.get(), 0);
  if (result == ProgressRead::kOk) {
    *committed = best;
    error->clear();
  }
  return result;
}

}  // namespace pgc::relay
