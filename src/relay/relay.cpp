// The Kafka relay, run as a component of the per-database worker: the producer's
// lifecycle and the tick. Its settings are in settings.cpp, its shared-memory status in
// status.cpp, its statements on the outbox in outbox_store.cpp, librdkafka in kafka.cpp.
//
// Each tick (main thread only; librdkafka's threads never touch PostgreSQL):
//   1. serve the producer (delivery reports, errors, logs arrive only inside poll());
//   2. finish the batch in flight, if any: wait a bounded time for its acknowledgements,
//      then (exactly_once) commit or abort its Kafka transaction, then remove the
//      acknowledged rows from the outbox in one transaction;
//   3. otherwise read the next batch_size rows in id order and produce them.
// at_least_once: idempotent producer, rows deleted after their acknowledgement.
// exactly_once: the batch's ids are recorded in consistency.relay_batches (durably) before
// the Kafka transaction commits; the transaction carries the batch number to the progress
// topic; after a crash, the progress topic (read_committed) says whether the recorded
// batch was committed. See docs/outbox.md for the protocol and its crash cases.
#include "relay/relay.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include "metrics/metrics.hpp"
#include "outbox/names.hpp"
#include "worker/settings.hpp"
#include "pg/guard.hpp"
#include "pg/spi.hpp"
#include "relay/batch.hpp"
#include "relay/circuit_breaker.hpp"
#include "relay/kafka.hpp"
#include "relay/outbox_store.hpp"
#include "relay/properties.hpp"
#include "relay/rows.hpp"
#include "relay/settings.hpp"
#include "relay/status.hpp"
#include "worker/shared_state.hpp"
#include "worker/wake.hpp"

extern "C" {
#include "access/xlog.h"
#include "commands/dbcommands.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
}

namespace pgc::relay {

namespace {

// ---------------------------------------------------------------- worker-local state

int64_t now_ms() { return static_cast<int64_t>(GetCurrentTimestamp() / 1000); }

// Jitter for the circuit breaker: uniform in [0, 1), seeded per process.
double unit_random() {
  static std::minstd_rand rng(static_cast<unsigned>(MyProcPid));
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

// The delivery tag index of a batch's progress record (its messages use 0..n-1).
constexpr uint32_t kProgressIndex = 0xffffffffu;

struct Inflight {
  Batch batch;
  uint32_t generation = 0;
  bool transactional = false;
  bool progress_sent = false;
  bool progress_reported = false;
  int progress_err = 0;
  std::string progress_error;
  bool committing = false;
  int64_t started_ms = 0;
};

struct Runtime {
  std::unique_ptr<Producer> producer;
  std::string fingerprint;
  KafkaConfig config;
  bool exactly_once = false;
  bool ready = false;  // producer usable for batches (exactly_once: initialised and recovered)
  int64_t next_batch = 1;
  CircuitBreaker breaker;
  std::unique_ptr<Inflight> inflight;
  uint32_t generation = 0;
  std::unordered_set<std::string> known_topics;
  std::string ce_source;
  bool broker_down = false;
  RowSet rows;       // the current batch's rows, reused
  RowSet next_rows;  // the next batch, read while the current one is at Kafka
  bool has_next = false;
  int64_t next_number = 0;                 // exactly_once: its recorded batch number
  bool prefetch_tried = false;             // for the batch in flight
  int pipelined = 0;                       // batches started from a prefetch in a row
  std::vector<HeaderView> header_scratch;  // reused for every message
  int64_t time_cache_key = 0;
  std::string time_cache;
};

Runtime* g_rt = nullptr;

// The worker's relay state, created on first use and kept until the process exits.
Runtime& runtime() {
  if (g_rt == nullptr) g_rt = new Runtime();
  return *g_rt;
}

// The producer's delivery handler (inside poll()): records Kafka's answer for a message
// (or the progress record) of the batch in flight; reports of abandoned batches are dropped.
void on_delivery(void* ctx, uint64_t tag, int32_t, int err, const char* errstr) {
  auto* rt = static_cast<Runtime*>(ctx);
  Inflight* f = rt->inflight.get();
  uint32_t gen = static_cast<uint32_t>(tag >> 32);
  uint32_t idx = static_cast<uint32_t>(tag & 0xffffffffu);
  if (err == 0) rt->broker_down = false;
  if (f == nullptr || gen != f->generation) return;  // a late report of an abandoned batch
  if (idx == kProgressIndex) {
    f->progress_reported = true;
    f->progress_err = err;
    f->progress_error = errstr ? errstr : "";
    return;
  }
  if (idx < f->batch.size()) f->batch.reported(idx, err, errstr ? errstr : "");
  // The batch in flight is always produced from rt->rows (start_batch).
  if (err == 0 && idx < rt->rows.rows.size())
    metrics::relay_acknowledged(rt->rows.rows[idx].created_at, GetCurrentTimestamp());
}

// exactly_once's transactional.id: the setting, or one derived from the cluster and database.
std::string transactional_id() {
  if (settings::transactional_id != nullptr && settings::transactional_id[0] != '\0')
    return settings::transactional_id;
  return "pg_consistency-" + std::to_string(GetSystemIdentifier()) + "-" + std::to_string(MyDatabaseId);
}

// The settings the producer is built from: a change recreates it.
std::string current_fingerprint() {
  std::string fp = settings::kafka_brokers ? settings::kafka_brokers : "";
  fp += '\x1f';
  fp += settings::kafka_properties ? settings::kafka_properties : "";
  fp += '\x1f';
  fp += std::to_string(settings::mode);
  fp += '\x1f';
  fp += settings::mode == kExactlyOnce
            ? transactional_id() + "\x1f" + (settings::progress_topic ? settings::progress_topic : "")
            : "";
  return fp;
}

// Drops the producer and what is bound to it: the batch in flight (its Kafka transaction
// aborted, best effort), the prefetched batch and the topics known to exist.
void teardown(Runtime& rt) {
  if (rt.producer && rt.inflight && rt.inflight->transactional) {
    // Best effort; a transaction left open is aborted when the next producer fences it.
    rt.producer->abort_transaction(2000);
  }
  rt.inflight.reset();
  rt.producer.reset();
  rt.ready = false;
  rt.known_topics.clear();
  // An exactly_once record of a prefetched batch stays: recovery discards it.
  rt.has_next = false;
  rt.pipelined = 0;
}

// ---------------------------------------------------------------- Kafka side

std::string kafka_error_text(const TxnResult& r) { return r.message.empty() ? "unknown error" : r.message; }

// Moves the producer's errors and logs into the relay's status and the server log, and
// notes when every broker was reported down.
void drain_producer_messages(Runtime& rt) {
  if (!rt.producer) return;
  for (auto& e : rt.producer->take_errors()) record_error("Kafka: " + e);
  for (auto& l : rt.producer->take_logs()) log_limited("librdkafka: " + l);
  if (rt.producer->all_brokers_down()) {
    rt.broker_down = true;
    rt.producer->clear_all_brokers_down();
  }
}

// Broker trouble: counts a failure on the circuit breaker and records the error.
void note_transient_failure(Runtime& rt, const std::string& why) {
  rt.breaker.record_failure(now_ms(), unit_random());
  record_error(why);
}

// Builds the producer from the settings; false (error recorded) when it cannot.
bool create_producer(Runtime& rt) {
  KafkaConfig cfg;
  cfg.brokers = settings::kafka_brokers;
  std::string error;
  if (!parse_properties(settings::kafka_properties ? settings::kafka_properties : "", &cfg.properties,
                        &error)) {
    record_error("pg_consistency.kafka_properties: " + error);
    return false;
  }
  cfg.transactional = settings::mode == kExactlyOnce;
  if (cfg.transactional) cfg.transactional_id = transactional_id();
  rt.producer = Producer::create(cfg, &error);
  if (!rt.producer) {
    record_error(error);
    return false;
  }
  rt.producer->set_delivery_handler(on_delivery, &rt);
  rt.config = std::move(cfg);
  rt.exactly_once = rt.config.transactional;
  rt.ready = false;
  return true;
}

// Creates the batch's topics that the relay has not seen yet. False = broker trouble.
bool ensure_topics(Runtime& rt, const RowSet& set) {
  if (settings::topic_partitions == 0) return true;  // the broker auto-creates topics
  std::vector<std::string> missing;
  std::string_view last;
  for (const auto& r : set.rows) {
    std::string_view t = set.view(r.topic);
    if (t == last) continue;
    last = t;
    std::string topic(t);
    if (rt.known_topics.count(topic) == 0 &&
        std::find(missing.begin(), missing.end(), topic) == missing.end())
      missing.push_back(std::move(topic));
  }
  if (missing.empty()) return true;
  std::vector<std::string> errors;
  std::string error;
  if (!rt.producer->create_topics(missing, settings::topic_partitions, {}, 5000, &errors, &error)) {
    note_transient_failure(rt, "cannot create topics: " + error);
    return false;
  }
  for (size_t i = 0; i < missing.size(); i++) {
    if (!errors[i].empty()) record_error("creating topic \"" + missing[i] + "\": " + errors[i]);
    rt.known_topics.insert(missing[i]);
  }
  return true;
}

// exactly_once start-up: progress topic, init_transactions (fences a predecessor and
// completes or aborts its transaction), then the read_committed recovery read.
bool prepare_exactly_once(Runtime& rt) {
  std::string progress = settings::progress_topic;
  if (rt.known_topics.count(progress) == 0) {
    std::vector<std::string> errors;
    std::string error;
    Properties cfg = {{"cleanup.policy", "compact"}, {"segment.ms", "3600000"}};
    if (!rt.producer->create_topics({progress}, 1, cfg, 5000, &errors, &error)) {
      note_transient_failure(rt, "cannot create the progress topic: " + error);
      return false;
    }
    if (!errors[0].empty()) record_error("creating the progress topic \"" + progress + "\": " + errors[0]);
    rt.known_topics.insert(progress);
  }
  TxnResult r = rt.producer->init_transactions(10000);
  if (!r.ok) {
    if (r.fatal) {
      record_error("init_transactions failed (fatal): " + kafka_error_text(r));
      teardown(rt);
    }
    note_transient_failure(rt, "init_transactions: " + kafka_error_text(r));
    return false;
  }
  int64_t committed = 0;
  std::string error;
  ProgressRead pr = read_progress(rt.config, progress, rt.config.transactional_id, 10000, &committed, &error);
  if (pr == ProgressRead::kNoTopic) {
    committed = 0;
  } else if (pr != ProgressRead::kOk) {
    // The producer is initialised now, and init_transactions may not be called twice on
    // it ("Operation not valid in state Ready", forever): the next attempt starts from a
    // new producer, whose init_transactions fences this one.
    teardown(rt);
    note_transient_failure(rt, "reading the progress topic: " + error);
    return false;
  }
  rt.next_batch = settle_open_batches(committed);
  rt.ready = true;
  return true;
}

// The CloudEvents attributes every message carries, in this order after outbox_id. A
// row's own non-null header of one of these names replaces the default value, except
// ce_specversion (a row's own one goes out as an ordinary header).
constexpr std::string_view kCeHeaders[] = {"ce_id",          "ce_type", "ce_source",
                                           "ce_specversion", "ce_time", "content-type"};
constexpr size_t kCeCount = std::size(kCeHeaders);
constexpr size_t kCeSpecVersion = 3;

// Index in kCeHeaders of a header a row may override, or kCeCount.
size_t overridden_ce_header(std::string_view name) {
  for (size_t k = 0; k < kCeCount; k++)
    if (k != kCeSpecVersion && name == kCeHeaders[k]) return k;
  return kCeCount;
}

// Produces row i of the set: outbox_id and the CloudEvents attributes first (the row's
// own ce_* / content-type values replace the defaults), then the row's other headers.
// Headers are views into the row set and stack buffers: nothing is allocated per row.
void produce_row(Runtime& rt, Inflight& f, size_t i, const RowSet& set) {
  if (!f.batch.may_send(i)) return;
  const Row& r = set.rows[i];
  char idbuf[24];
  size_t idlen = static_cast<size_t>(std::to_chars(idbuf, idbuf + sizeof idbuf, r.id).ptr - idbuf);
  if (r.created_at != rt.time_cache_key || rt.time_cache.empty()) {
    rt.time_cache = format_rfc3339_utc(r.created_at);
    rt.time_cache_key = r.created_at;
  }
  std::string_view ce[kCeCount] = {
      std::string_view(idbuf, idlen), set.view(r.topic), rt.ce_source, "1.0", rt.time_cache,
      set.view(r.content_type)};
  std::vector<HeaderView>& hv = rt.header_scratch;
  hv.clear();
  hv.push_back(HeaderView{"outbox_id", 9, idbuf, idlen, false});
  size_t fixed = hv.size();
  hv.resize(fixed + kCeCount);
  for (uint32_t h = r.hdr_begin; h < r.hdr_begin + r.hdr_count; h++) {
    const OwnHeader& oh = set.headers[h];
    std::string_view name = set.view(oh.name);
    std::string_view value = set.view(oh.value);
    size_t k = oh.null ? kCeCount : overridden_ce_header(name);
    if (k < kCeCount) {
      ce[k] = value;
      continue;
    }
    hv.push_back(HeaderView{name.data(), name.size(), value.data(), value.size(), oh.null});
  }
  for (size_t k = 0; k < kCeCount; k++)
    hv[fixed + k] = HeaderView{kCeHeaders[k].data(), kCeHeaders[k].size(), ce[k].data(), ce[k].size(), false};

  std::string err;
  uint64_t tag = (static_cast<uint64_t>(f.generation) << 32) | static_cast<uint64_t>(i);
  std::string_view key = set.view(r.key), payload = set.view(r.payload);
  int rc = rt.producer->produce(set.view(r.topic), -1, key.data(), key.size(), r.key_null, payload.data(),
                                payload.size(), r.payload_null, hv.data(), hv.size(), tag, &err);
  if (rc == 0) {
    f.batch.sent(i);
  } else {
    f.batch.refused(i, rc, err);
  }
}

// Produces a loaded batch (exactly_once: `number` is already recorded) and leaves it in
// flight. Returns the delay before the next tick when it could not start.
long start_batch(Runtime& rt, RowSet& set, int64_t number) {
  auto f = std::make_unique<Inflight>();
  f->generation = ++rt.generation;
  f->transactional = rt.exactly_once;
  f->started_ms = now_ms();
  f->batch = Batch(number);
  f->batch.reserve(set.rows.size());
  for (const auto& r : set.rows) f->batch.add(r.id, std::string(set.view(r.key)), r.key_null);

  if (!ensure_topics(rt, set)) {
    if (rt.exactly_once) abandon_batch(f->batch);  // nothing was produced: forget the record
    set_state(State::kBrokerUnavailable, 0);
    return std::max<int64_t>(1, rt.breaker.wait_ms(now_ms()));
  }
  if (rt.exactly_once) {
    TxnResult b = rt.producer->begin_transaction();
    if (!b.ok) {
      abandon_batch(f->batch);
      record_error("begin_transaction: " + kafka_error_text(b) + "; recovering");
      teardown(rt);
      return 100;
    }
  }
  rt.inflight = std::move(f);
  rt.prefetch_tried = false;
  Inflight& fl = *rt.inflight;
  TimestampTz t_produce = GetCurrentTimestamp();
  for (size_t i = 0; i < set.rows.size(); i++) {
    produce_row(rt, fl, i, set);
    if (fl.transactional && fl.batch.any_failed()) break;  // the whole transaction aborts anyway
  }
  if (fl.transactional && !fl.batch.any_failed()) {
    std::string value = encode_progress(fl.batch.number(), set.rows.size());
    std::string err;
    const std::string& key = rt.config.transactional_id;
    uint64_t tag = (static_cast<uint64_t>(fl.generation) << 32) | kProgressIndex;
    int rc = rt.producer->produce(settings::progress_topic, 0, key.data(), key.size(), false, value.data(),
                                  value.size(), false, nullptr, 0, tag, &err);
    fl.progress_sent = rc == 0;
    if (rc != 0) {
      fl.progress_reported = true;
      fl.progress_err = rc;
      fl.progress_error = err;
    }
  }
  if (fl.transactional && fl.batch.any_failed()) {
    // Do not wait for the rest: mark what is still out as abandoned with the transaction.
    rt.producer->flush(2000);
    fl.batch.abort_all(Outcome::kSkipped, "transaction aborted after a refused message");
    fl.progress_sent = false;
  }
  add_time(false, t_produce);
  return 0;
}

// Batches started from a prefetch in a row, at most (see maybe_prefetch).
constexpr int kMaxPipelined = 8;

// While a batch is at Kafka, read the next one (the rows after it; exactly_once records
// it), so that it can be produced as soon as the current one is settled. At most one
// batch is ever at Kafka. The read returns nothing when a row below the batch in flight
// has become visible meanwhile (a transaction that took a lower id committed late): the
// next batch then comes from a full scan, so per-key order is the same as without the
// pipeline. (For writers that serialise on a key, a late row whose successor of the same
// key is visible is itself visible in that snapshot.) A full scan also happens at least
// every kMaxPipelined batches.
void maybe_prefetch(Runtime& rt) {
  Inflight& f = *rt.inflight;
  if (rt.has_next || rt.prefetch_tried || f.batch.any_failed() || rt.broker_down ||
      rt.pipelined >= kMaxPipelined || f.batch.size() == 0)
    return;
  rt.prefetch_tried = true;
  const int64_t number = rt.exactly_once ? rt.next_batch : 0;
  TimestampTz t = GetCurrentTimestamp();
  load_batch(&rt.next_rows, number, f.batch.entry(f.batch.size() - 1).id,
             static_cast<int64_t>(f.batch.size()), &rt.ce_source);
  add_time(true, t);
  if (rt.next_rows.rows.empty()) return;
  if (rt.exactly_once) rt.next_batch++;
  rt.next_number = number;
  rt.has_next = true;
}

// Forgets the prefetched batch (its rows are simply read again later).
void drop_prefetch(Runtime& rt) {
  if (!rt.has_next) return;
  rt.has_next = false;
  if (rt.exactly_once) abandon_batch(Batch(rt.next_number));
}

// Waits (bounded) for the answers of the batch in flight; once everything is answered,
// commits or aborts its Kafka transaction (exactly_once) and finishes it in PostgreSQL.
// Returns the delay before the next tick.
long continue_inflight_body(Runtime& rt) {
  maybe_prefetch(rt);
  Inflight& f = *rt.inflight;
  const int64_t budget_end = now_ms() + 250;
  while (!(f.batch.complete() && (!f.progress_sent || f.progress_reported))) {
    int64_t left = budget_end - now_ms();
    if (left <= 0) break;
    // No CHECK_FOR_INTERRUPTS here: a FATAL would longjmp through C++ frames. The
    // budget is short and the worker's loop checks for interrupts between ticks.
    rt.producer->poll(static_cast<int>(std::min<int64_t>(left, 50)));
  }
  drain_producer_messages(rt);
  bool answered = f.batch.complete() && (!f.progress_sent || f.progress_reported);
  if (!answered) {
    set_state(rt.broker_down ? State::kBrokerUnavailable : State::kRunning,
              static_cast<int64>(f.batch.outstanding()));
    return 1;
  }

  if (f.transactional) {
    bool failed = f.batch.any_failed() || (f.progress_sent && f.progress_err != 0);
    if (!failed) {
      TxnResult r = rt.producer->commit_transaction(5000);
      if (!r.ok) {
        if (r.retriable && !r.abortable && !r.fatal) {
          note_transient_failure(rt, "commit of batch " + std::to_string(f.batch.number()) +
                                         " not confirmed yet: " + kafka_error_text(r));
          return 100;  // commit_transaction is called again
        }
        if (r.fatal || !r.abortable) {
          // Outcome unknown: the restarted producer's recovery read decides.
          note_transient_failure(rt, "commit of batch " + std::to_string(f.batch.number()) +
                                         " failed: " + kafka_error_text(r) + "; recovering");
          teardown(rt);
          return 100;
        }
        f.batch.abort_all(Outcome::kTransient, "transaction aborted: " + kafka_error_text(r));
        failed = true;
      }
    }
    if (failed) {
      TxnResult a = rt.producer->abort_transaction(5000);
      if (!a.ok) {
        note_transient_failure(rt, "abort of batch " + std::to_string(f.batch.number()) +
                                       " failed: " + kafka_error_text(a) + "; recovering");
        teardown(rt);
        return 100;
      }
      std::unique_ptr<Inflight> done = std::move(rt.inflight);
      drop_prefetch(rt);
      // Nothing of an aborted transaction was delivered, whatever the reports said.
      done->batch.abort_all(Outcome::kSkipped, "transaction aborted");
      std::string why = done->batch.first_error();
      if (why.empty()) why = "progress record: " + done->progress_error;
      bool permanent = done->batch.count(Outcome::kPermanent) > 0;
      abandon_batch(done->batch);
      if (permanent && done->batch.count(Outcome::kTransient) == 0) {
        record_error("batch " + std::to_string(done->batch.number()) + " aborted: " + why);
        return 0;
      }
      note_transient_failure(rt, "batch " + std::to_string(done->batch.number()) + " aborted: " + why);
      set_state(State::kBrokerUnavailable, 0);
      return rt.breaker.wait_ms(now_ms()) + 1;
    }
  }

  std::unique_ptr<Inflight> done = std::move(rt.inflight);
  bool transient = done->batch.count(Outcome::kTransient) > 0;
  bool any_delivered = done->batch.count(Outcome::kDelivered) > 0;
  // The next batch goes to Kafka while this one is finished in PostgreSQL; after a
  // failure it is dropped instead, so that nothing overtakes the failed rows.
  // at_least_once starts it first. exactly_once starts it after: a transaction begun
  // right after the previous commit finds the coordinator still writing that commit's
  // markers, and librdkafka then retries registering its partitions only 20 ms later.
  bool start_next = false;
  if (done->batch.any_failed() || done->batch.count(Outcome::kSkipped) > 0) {
    drop_prefetch(rt);
  } else {
    start_next = rt.has_next;
  }
  auto start_next_batch = [&rt] {
    rt.has_next = false;
    std::swap(rt.rows, rt.next_rows);
    rt.pipelined++;
    start_batch(rt, rt.rows, rt.next_number);
  };
  if (start_next && !done->transactional) start_next_batch();
  TimestampTz t_fin = GetCurrentTimestamp();
  try {
    finalize_batch(done->batch, done->transactional);
  } catch (...) {
    // exactly_once: the batch is committed in Kafka but still recorded here; a fresh
    // producer's recovery settles it. (at_least_once: its rows are simply sent again.)
    if (done->transactional) teardown(rt);
    throw;
  }
  add_time(true, t_fin);
  if (start_next && done->transactional) start_next_batch();
  count_batch();
  if (transient) {
    note_transient_failure(rt, "batch partly undelivered: " + done->batch.first_error());
  } else {
    if (done->batch.count(Outcome::kPermanent) > 0) record_error(done->batch.first_error());
    rt.breaker.record_success();
    rt.broker_down = false;
  }
  if (any_delivered) rt.broker_down = false;
  set_state(rt.breaker.state() == CircuitBreaker::State::kClosed && !rt.broker_down
                ? State::kRunning
                : State::kBrokerUnavailable,
            0);
  if (rt.inflight) return 0;  // the next batch is already at Kafka
  if (transient) return rt.breaker.wait_ms(now_ms()) + 1;
  return done->batch.size() >= static_cast<size_t>(settings::batch_size) ? 0 : 1;
}

// continue_inflight_body, its time counted on the Kafka side.
long continue_inflight(Runtime& rt) {
  // Everything but the PostgreSQL transactions (timed inside) counts as Kafka time.
  TimestampTz start = GetCurrentTimestamp();
  double pg_before = postgres_seconds();
  long next = continue_inflight_body(rt);
  add_kafka_time(start, pg_before);
  return next;
}

// The worker tick: follows the settings (relay off, producer rebuilt on change), respects
// the circuit breaker, then serves the batch in flight or reads and starts the next one.
// Returns the milliseconds until it wants to run again.
long relay_tick() {
  Runtime& rt = runtime();
  if (!relay_enabled()) {
    if (rt.producer) teardown(rt);
    // An error of the relay that was on would otherwise outlive it in outbox_status.
    clear_error();
    rt.fingerprint.clear();
    set_state(State::kStopped, 0);
    return worker::settings::poll_interval_ms;
  }
  std::string fp = current_fingerprint();
  if (fp != rt.fingerprint) {
    if (rt.producer) ereport(LOG, (errmsg("pg_consistency relay: configuration changed, reconnecting")));
    teardown(rt);
    // The old brokers' error says nothing about the new ones.
    if (!rt.fingerprint.empty()) clear_error();
    rt.fingerprint = fp;
    rt.breaker = CircuitBreaker();
  }
  if (!rt.producer) {
    if (!create_producer(rt)) {
      set_state(State::kStopped, 0);
      return worker::settings::poll_interval_ms;
    }
    ereport(LOG, (errmsg("pg_consistency relay: producing to %s in %s mode", settings::kafka_brokers,
                         rt.exactly_once ? "exactly_once" : "at_least_once")));
  }
  rt.producer->poll(0);
  drain_producer_messages(rt);
  if (rt.producer->fatal()) {
    record_error("the Kafka producer hit a fatal error; recreating it");
    teardown(rt);
    return 100;
  }
  if (rt.inflight) return continue_inflight(rt);

  int64_t now = now_ms();
  if (!rt.breaker.allow(now)) {
    set_state(State::kBrokerUnavailable, 0);
    return std::max<int64_t>(1,
                             std::min<int64_t>(rt.breaker.wait_ms(now), worker::settings::poll_interval_ms));
  }
  // Half-open, or the broker was reported down: probe before sending a batch.
  if (rt.broker_down || rt.breaker.state() == CircuitBreaker::State::kHalfOpen) {
    std::string error;
    if (!rt.producer->probe(1000, &error)) {
      note_transient_failure(rt, error);
      set_state(State::kBrokerUnavailable, 0);
      return std::max<int64_t>(1, rt.breaker.wait_ms(now_ms()));
    }
    rt.broker_down = false;
    rt.breaker.record_success();
  }
  if (!rt.ready) {
    if (rt.exactly_once) {
      if (!prepare_exactly_once(rt)) {
        set_state(State::kBrokerUnavailable, 0);
        return std::max<int64_t>(1, rt.breaker.wait_ms(now_ms()));
      }
    } else {
      // Records an earlier exactly_once run left: the rows are simply sent again.
      clear_batch_records();
      rt.ready = true;
    }
  }
  set_state(State::kRunning, 0);

  TimestampTz t_load = GetCurrentTimestamp();
  const int64_t number = rt.exactly_once ? rt.next_batch : 0;
  load_batch(&rt.rows, number, std::numeric_limits<int64_t>::min(), -1, &rt.ce_source);
  add_time(true, t_load);
  if (rt.rows.rows.empty()) return worker::settings::poll_interval_ms;
  if (rt.exactly_once) rt.next_batch++;
  rt.pipelined = 0;
  long next = start_batch(rt, rt.rows, number);
  return rt.inflight ? continue_inflight(rt) : next;
}

// The worker is exiting: drops the producer (undelivered rows stay in the outbox).
void relay_exit() {
  if (g_rt != nullptr) {
    try {
      teardown(*g_rt);
    } catch (...) {
    }
  }
  release_status();
}

}  // namespace

const pg::Component kRelayComponent = {"relay",    settings::define_settings, nullptr, nullptr, relay_tick,
                                       relay_exit, sizeof(RelayStatus)};

void wake_at_commit() {
  if (relay_enabled()) worker::wake_at_commit(&kRelayComponent);
}

namespace {
pg::ComponentRegistrar registrar(&kRelayComponent);
}  // namespace

}  // namespace pgc::relay
