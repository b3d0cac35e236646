#include "inbox/kafka_consumer.hpp"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>

namespace pgc::inbox {

namespace {
// How long a consumer process waits for librdkafka to close a consumer.
constexpr int kCloseWaitMs = 5000;

struct ListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    if (l) rd_kafka_topic_partition_list_destroy(l);
  }
};
using ListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, ListDeleter>;

ListPtr one_partition(const std::string& topic, int32_t partition) {
  ListPtr l(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(l.get(), topic.c_str(), partition);
  return l;
}
// The partition counts of `topics` (the broker is asked now).
bool lookup_metadata(rd_kafka_t* rk, const std::vector<std::string>& topics, int timeout_ms,
                     std::vector<TopicInfo>* out, std::string* error) {
  out->clear();
  for (const auto& t : topics) {
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, t.c_str(), nullptr);
    const struct rd_kafka_metadata* md = nullptr;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    TopicInfo info;
    info.topic = t;
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (md) rd_kafka_metadata_destroy(md);
      if (rkt) rd_kafka_topic_destroy(rkt);
      *error = std::string("the broker did not answer: ") + rd_kafka_err2str(err);
      return false;
    }
    if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
      info.partitions = md->topics[0].partition_cnt;
    else
      info.error = md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err) : "no metadata";
    rd_kafka_metadata_destroy(md);
    if (rkt) rd_kafka_topic_destroy(rkt);
    out->push_back(std::move(info));
  }
  return true;
}

}  // namespace

std::unique_ptr<Consumer> Consumer::create(const relay::KafkaConfig& cfg, const std::string& client_id,
                                           std::string* error) {
  rd_kafka_conf_t* conf = relay::new_consumer_conf(cfg, client_id.c_str(), error);
  if (conf == nullptr) return nullptr;
  // A group id is required by rd_kafka_assign's fetcher bookkeeping only; it is never
  // joined (no subscribe) and nothing is committed to it.
  if (!relay::set_property(conf, "group.id", "pg_consistency-" + client_id, error) ||
      !relay::set_property(conf, "enable.partition.eof", "false", error) ||
      !relay::set_property(conf, "reconnect.backoff.max.ms", "1000", error)) {
    rd_kafka_conf_destroy(conf);
    return nullptr;
  }
  rd_kafka_conf_set_log_cb(conf, [](const rd_kafka_t*, int, const char*, const char*) {});
  std::string why;
  rd_kafka_t* rk = relay::new_kafka_handle(RD_KAFKA_CONSUMER, conf, &why);
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    *error = "cannot create the Kafka consumer: " + why;
    return nullptr;
  }
  std::unique_ptr<Consumer> c(new Consumer());
  c->rk_ = rk;
  c->queue_ = rd_kafka_queue_get_consumer(rk);
  return c;
}

Consumer::~Consumer() {
  end_lookup();  // it uses the handle; bounded by its timeout
  if (queue_ != nullptr) {
    rd_kafka_queue_io_event_enable(queue_, -1, nullptr, 0);
    rd_kafka_queue_destroy(queue_);
  }
  if (rk_ == nullptr) return;
  // librdkafka 2.0.2 can wait forever in rd_kafka_destroy once a topic it was fetching
  // has been deleted (its broker thread keeps waiting for the deleted partition). The
  // process must not hang with it (a fast shutdown would never end): the handle is
  // destroyed on a thread of its own, with every signal blocked (PostgreSQL's handlers
  // run on the main thread only), and left to it after kCloseWaitMs.
  rd_kafka_t* rk = rk_;
  auto closed = std::make_shared<std::promise<void>>();
  std::future<void> done = closed->get_future();
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  bool started = true;
  try {
    std::thread([rk, closed] {
      relay::destroy_kafka_handle(rk);
      closed->set_value();
    }).detach();
  } catch (...) {
    started = false;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (!started)
    relay::destroy_kafka_handle(rk);
  else
    done.wait_for(std::chrono::milliseconds(kCloseWaitMs));
}

bool Consumer::metadata(const std::vector<std::string>& topics, int timeout_ms, std::vector<TopicInfo>* out,
                        std::string* error) {
  return lookup_metadata(rk_, topics, timeout_ms, out, error);
}

struct Consumer::Answer {
  std::atomic<bool> done{false};
  bool ok = false;
  std::vector<TopicInfo> infos;
  std::string error;
};

bool Consumer::start_metadata(const std::vector<std::string>& topics, int timeout_ms) {
  if (answer_) return false;
  auto answer = std::make_shared<Answer>();
  answer_ = answer;
  rd_kafka_t* rk = rk_;
  int fd = wake_fd_;
  auto run = [rk, fd, answer, topics, timeout_ms] {
    answer->ok = lookup_metadata(rk, topics, timeout_ms, &answer->infos, &answer->error);
    answer->done.store(true, std::memory_order_release);
    if (fd >= 0) {
      static const char kByte = 'd';
      (void)!write(fd, &kByte, 1);  // a full pipe wakes the reader anyway
    }
  };
  // Every signal blocked on the thread (PostgreSQL's handlers run on the main thread only).
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  try {
    lookup_ = std::thread(run);
  } catch (...) {
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    run();  // no thread: the caller waits, as before
    return true;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return true;
}

bool Consumer::metadata_answered() { return answer_ && answer_->done.load(std::memory_order_acquire); }

void Consumer::end_lookup() {
  if (lookup_.joinable()) lookup_.join();
  answer_.reset();
}

Consumer::Lookup Consumer::take_metadata(std::vector<TopicInfo>* out, std::string* error) {
  if (!answer_) return Lookup::kNone;
  if (!metadata_answered()) return Lookup::kRunning;
  std::shared_ptr<Answer> a = answer_;
  end_lookup();
  *out = std::move(a->infos);
  *error = std::move(a->error);
  return a->ok ? Lookup::kAnswered : Lookup::kFailed;
}

bool Consumer::query_watermarks(const std::string& topic, int32_t partition, int timeout_ms, int64_t* low,
                                int64_t* high, std::string* error) {
  rd_kafka_resp_err_t err =
      rd_kafka_query_watermark_offsets(rk_, topic.c_str(), partition, low, high, timeout_ms);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return true;
  *error = "cannot read the offsets of " + topic + " [" + std::to_string(partition) +
           "]: " + rd_kafka_err2str(err);
  return false;
}

int64_t Consumer::cached_high(const std::string& topic, int32_t partition) {
  int64_t low = -1, high = -1;
  if (rd_kafka_get_watermark_offsets(rk_, topic.c_str(), partition, &low, &high) !=
      RD_KAFKA_RESP_ERR_NO_ERROR)
    return -1;
  return high;
}

bool Consumer::assign(const std::vector<TopicPartition>& parts, std::string* error) {
  ListPtr l(rd_kafka_topic_partition_list_new(static_cast<int>(parts.size()) + 1));
  for (const auto& p : parts)
    rd_kafka_topic_partition_list_add(l.get(), p.topic.c_str(), p.partition)->offset = p.offset;
  rd_kafka_resp_err_t err = rd_kafka_assign(rk_, l.get());
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return true;
  *error = std::string("cannot assign partitions: ") + rd_kafka_err2str(err);
  return false;
}

std::size_t Consumer::poll(std::size_t max, int timeout_ms, std::vector<Message>* out,
                           std::vector<std::string>* errors) {
  std::vector<rd_kafka_message_t*> batch(max);
  ssize_t n = rd_kafka_consume_batch_queue(queue_, timeout_ms, batch.data(), max);
  std::size_t got = 0;
  for (ssize_t i = 0; i < n; i++) {
    rd_kafka_message_t* m = batch[i];
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::string where =
          m->rkt ? std::string(rd_kafka_topic_name(m->rkt)) + " [" + std::to_string(m->partition) + "]: "
                 : "";
      if (errors->size() < 16) errors->push_back(where + rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      continue;
    }
    Message msg;
    msg.topic = rd_kafka_topic_name(m->rkt);
    msg.partition = m->partition;
    msg.offset = m->offset;
    msg.key_null = m->key == nullptr;
    if (m->key) msg.key.assign(static_cast<const char*>(m->key), m->key_len);
    msg.value_null = m->payload == nullptr;
    if (m->payload) msg.value.assign(static_cast<const char*>(m->payload), m->len);
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs != nullptr) {
      const char* name;
      const void* value;
      size_t size;
      for (size_t k = 0; rd_kafka_header_get_all(hdrs, k, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
           k++) {
        relay::Header h;
        h.name = name;
        h.null = value == nullptr;
        if (value) h.value.assign(static_cast<const char*>(value), size);
        msg.headers.push_back(std::move(h));
      }
    }
    out->push_back(std::move(msg));
    rd_kafka_message_destroy(m);
    got++;
  }
  return got;
}

int64_t Consumer::position(const std::string& topic, int32_t partition) {
  ListPtr l = one_partition(topic, partition);
  if (rd_kafka_position(rk_, l.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) return -1;
  int64_t off = l->elems[0].offset;
  return off >= 0 ? off : -1;
}

void Consumer::pause(const std::string& topic, int32_t partition, bool paused) {
  ListPtr l = one_partition(topic, partition);
  if (paused)
    rd_kafka_pause_partitions(rk_, l.get());
  else
    rd_kafka_resume_partitions(rk_, l.get());
}

void Consumer::wake_through(int fd) {
  static const char kByte = 'm';
  wake_fd_ = fd;
  rd_kafka_queue_io_event_enable(queue_, fd, &kByte, 1);
}

std::size_t Consumer::queued() { return rd_kafka_queue_length(queue_); }

}  // namespace pgc::inbox
