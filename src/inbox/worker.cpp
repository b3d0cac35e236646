// The consumer processes: pg_consistency.consumer_workers processes per database (0: the
// database's worker itself) serve the consumers, each consumer by exactly one process
// (owner_process, a stable hash of its name). Per consumer one librdkafka consumer,
// isolation.level=read_committed, partitions assigned with rd_kafka_assign from the
// offsets stored in consistency.consumer_offsets (no group membership, no commits to
// Kafka). librdkafka's threads never call PostgreSQL: messages are copied out on this
// process's main thread, which sleeps on its latch and on a pipe librdkafka writes to when
// a consumer's queue becomes non-empty (wake_pipe.hpp), so a message is applied as soon
// as it is fetched. A handler ended by the hard stop is charged by the next process
// (hard_stops.hpp).
//
// A batch is one transaction: it locks the consumer's row (so two processes can never
// apply the same partition: a process that took over re-reads the offsets under the lock
// and drops what was applied), then applies each message in a subtransaction (apply.cpp)
// and advances the offsets in the same transaction. A failing message is retried in place
// with backoff while the other partitions go on; after consumer_max_attempts it goes to
// the dead letters. Anything that interrupts a batch (an ERROR outside a handler) drops
// every consumer's state in this process: the next tick rebuilds it from the stored
// offsets, so what did not commit is read again and what did is never applied twice.
#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "inbox/apply.hpp"
#include "inbox/batch.hpp"
#include "inbox/component.hpp"
#include "inbox/hard_stops.hpp"
#include "inbox/kafka_consumer.hpp"
#include "inbox/settings.hpp"
#include "inbox/wake_pipe.hpp"
#include "pg/component.hpp"
#include "pg/guard.hpp"
#include "pg/run_as.hpp"
#include "pg/spi.hpp"
#include "relay/properties.hpp"
#include "relay/settings.hpp"
#include "worker/settings.hpp"
#include "worker/wake.hpp"

extern "C" {
#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

namespace pgc::inbox {

namespace {

using pg::pg_call;
using pg::SavedPlan;

constexpr long kCatalogEveryMs = 250;    // pause/resume/drop/reset take effect within this
constexpr long kMetadataEveryMs = 5000;  // new partitions, deleted topics
constexpr long kHeartbeatEveryMs = 1000;
constexpr long kCleanupEveryMs = 60000;
constexpr int kBrokerTimeoutMs = 5000;
constexpr long kIdlePollMs = 100;  // without a wake-up pipe: the longest a tick waits in librdkafka

struct PartitionState {
  std::deque<Message> pending;
  int64_t stored = 0;  // next_offset in the catalog
  int attempts = 0;    // failed attempts of the message at `stored`
  TimestampTz retry_at = 0;
  bool paused = false;
};

using PartKey = std::pair<std::string, int32_t>;

struct Runtime {
  ConsumerDef def;
  std::vector<std::string> topics;
  std::string start_from;
  int64_t generation = 0;
  std::unique_ptr<Consumer> kafka;
  std::map<PartKey, PartitionState> parts;
  std::vector<int> counts;  // partitions per topic as assigned (-1: missing)
  bool assigned = false;
  std::string topic_error;  // shown as the consumer's failure
  std::string kafka_error;  // errors seen while fetching since the last heartbeat
  TimestampTz next_metadata = 0;
  TimestampTz next_heartbeat = 0;
};

// Written by librdkafka when a consumer's queue becomes non-empty; the loop waits on it.
// Declared before the consumers: destroyed after their librdkafka handles at exit.
WakePipe g_wake;
std::map<std::string, std::unique_ptr<Runtime>> g_consumers;
TimestampTz g_next_catalog = 0;
TimestampTz g_next_cleanup = 0;
bool g_dirty = false;  // a transaction was interrupted: rebuild from the catalog
int g_process = 1;     // this process's index (1 in the database's worker)

TimestampTz now() { return GetCurrentTimestamp(); }
TimestampTz after_ms(long ms) { return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms); }

void begin_txn(const char* activity) {
  pg_call([&] { pg::begin_worker_transaction(activity); });
}

void commit_txn() {
  pg_call([] {
    pg::commit_worker_transaction();
    pgstat_report_activity(STATE_IDLE, nullptr);
  });
}

Datum text_datum(const std::string& s) {
  return pg_call([&] { return PointerGetDatum(cstring_to_text_with_len(s.data(), s.size())); });
}

// Runs plan as the extension owner; returns SPI_processed.
uint64 exec(SavedPlan& plan, Datum* args, const char* nulls = nullptr) {
  pg::OwnerScope as_owner(catalog_owner());
  return pg_call([&] {
    plan.execute(args, nulls, false);
    return SPI_processed;
  });
}

std::string text_at(uint64 row, int col) {
  return pg_call([&] {
    bool isnull;
    Datum d = pg::spi_value(row, col, &isnull);
    return isnull ? std::string() : std::string(TextDatumGetCString(d));
  });
}

relay::KafkaConfig kafka_config(std::string* error) {
  relay::KafkaConfig cfg;
  cfg.brokers = relay::settings::kafka_brokers ? relay::settings::kafka_brokers : "";
  if (!relay::parse_properties(relay::settings::kafka_properties ? relay::settings::kafka_properties : "",
                               &cfg.properties, error))
    *error = "pg_consistency.kafka_properties: " + *error;
  // An offset Kafka no longer has (retention, a re-created topic) stops the partition with
  // an error instead of silently jumping to the end.
  cfg.properties.emplace_back("auto.offset.reset", "error");
  return cfg;
}

// ---------------------------------------------------------------- the catalog

// Reads consumer_state and keeps this process's running consumers in g_consumers.
void load_catalog(int index, int processes) {
  static SavedPlan plan(
      "SELECT name, topics::pg_catalog.text, consistency._bound_function(handler, handler_oid, "
      "bound_cluster), raw_value, owner, start_from, "
      "status OPERATOR(pg_catalog.=) 'running', generation, topics FROM consistency.consumer_state",
      {});
  begin_txn("pg_consistency: reading consumers");
  uint64 n = exec(plan, nullptr);
  std::map<std::string, bool> keep;
  for (uint64 r = 0; r < n; r++) {
    std::string name = text_at(r, 1);
    if (owner_process(name, processes) != index) continue;
    ConsumerDef def;
    bool running = false;
    int64_t generation = 0;
    std::vector<std::string> topics;
    pg_call([&] {
      bool isnull;
      def.handler = DatumGetObjectId(pg::spi_value(r, 3, &isnull));
      def.raw_value = DatumGetBool(pg::spi_value(r, 4, &isnull));
      def.owner = DatumGetObjectId(pg::spi_value(r, 5, &isnull));
      running = DatumGetBool(pg::spi_value(r, 7, &isnull));
      generation = DatumGetInt64(pg::spi_value(r, 8, &isnull));
      Datum* elems;
      bool* nulls;
      int ne;
      deconstruct_array(DatumGetArrayTypeP(pg::spi_value(r, 9, &isnull)), TEXTOID, -1, false, TYPALIGN_INT,
                        &elems, &nulls, &ne);
      for (int k = 0; k < ne; k++) topics.emplace_back(TextDatumGetCString(elems[k]));
    });
    if (!running) continue;
    def.name = name;
    keep[name] = true;
    auto it = g_consumers.find(name);
    if (it != g_consumers.end() && it->second->generation == generation && it->second->topics == topics &&
        it->second->def.handler == def.handler && it->second->def.owner == def.owner)
      continue;
    auto rt = std::make_unique<Runtime>();
    rt->def = def;
    rt->topics = topics;
    rt->start_from = text_at(r, 6);
    rt->generation = generation;
    g_consumers[name] = std::move(rt);
  }
  commit_txn();
  for (auto it = g_consumers.begin(); it != g_consumers.end();)
    it = keep.count(it->first) ? std::next(it) : g_consumers.erase(it);
}

// Locks the consumer's row; false when it is gone, paused or reset since rt was built
// (the caller then drops rt).
bool lock_consumer(const Runtime& rt) {
  static SavedPlan plan(
      "SELECT 1 FROM consistency.consumer_state WHERE name OPERATOR(pg_catalog.=) $1 "
      "AND status OPERATOR(pg_catalog.=) 'running' AND generation OPERATOR(pg_catalog.=) $2 FOR UPDATE",
      {TEXTOID, INT8OID});
  Datum v[2] = {text_datum(rt.def.name), Int64GetDatum(rt.generation)};
  return exec(plan, v) == 1;
}

// Reads the stored offsets into rt.parts (creating entries for new rows when `add`).
void read_offsets(Runtime& rt, bool add) {
  static SavedPlan plan(
      "SELECT topic, partition, next_offset, attempts FROM consistency.consumer_offsets "
      "WHERE consumer OPERATOR(pg_catalog.=) $1",
      {TEXTOID});
  Datum v[1] = {text_datum(rt.def.name)};
  uint64 n = exec(plan, v);
  for (uint64 r = 0; r < n; r++) {
    PartKey key{text_at(r, 1), 0};
    int64_t next = 0;
    int attempts = 0;
    pg_call([&] {
      bool isnull;
      key.second = DatumGetInt32(pg::spi_value(r, 2, &isnull));
      next = DatumGetInt64(pg::spi_value(r, 3, &isnull));
      attempts = DatumGetInt32(pg::spi_value(r, 4, &isnull));
    });
    auto it = rt.parts.find(key);
    if (it == rt.parts.end()) {
      if (!add) continue;
      it = rt.parts.emplace(key, PartitionState{}).first;
    }
    PartitionState& ps = it->second;
    ps.stored = next;
    ps.attempts = attempts;
    while (!ps.pending.empty() && ps.pending.front().offset < next) ps.pending.pop_front();
  }
}

// ---------------------------------------------------------------- Kafka side

// Creates the Kafka consumer if needed, looks at the topics, and (re)assigns the
// partitions when they changed: new partitions get a stored offset first (start_from).
// Returns false when rt must be dropped (paused, reset or gone meanwhile).
bool refresh_assignment(Runtime& rt) {
  if (!rt.kafka || !rt.kafka->metadata_answered()) rt.next_metadata = after_ms(kMetadataEveryMs);
  std::string error;
  if (!relay::relay_enabled()) {
    rt.topic_error = "pg_consistency.kafka_brokers is not set: the inbox has no broker to read from";
    return true;
  }
  relay::KafkaConfig cfg = kafka_config(&error);
  if (!error.empty()) {
    rt.topic_error = error;
    return true;
  }
  if (!rt.kafka) {
    std::string client = "pg_consistency-inbox-" + std::to_string(MyDatabaseId) + "-" + rt.def.name;
    rt.kafka = Consumer::create(cfg, client, &error);
    if (!rt.kafka) {
      rt.topic_error = error;
      return true;
    }
    if (g_wake.open()) rt.kafka->wake_through(g_wake.write_end());
  }
  // The broker is asked on a thread (Consumer::start_metadata); its answer wakes the
  // process and is taken here.
  std::vector<TopicInfo> infos;
  Consumer::Lookup got = rt.kafka->take_metadata(&infos, &error);
  if (got == Consumer::Lookup::kNone) {
    rt.kafka->start_metadata(rt.topics, kBrokerTimeoutMs);
    got = rt.kafka->take_metadata(&infos, &error);  // answered already when no thread could start
  }
  if (got == Consumer::Lookup::kRunning) return true;
  if (got == Consumer::Lookup::kFailed) {
    rt.kafka_error = error;  // the broker is away: keep the assignment, look again later
    return true;
  }
  std::vector<int> counts;
  rt.topic_error.clear();
  for (const auto& t : infos) {
    counts.push_back(t.partitions);
    if (t.partitions < 0) {
      if (!rt.topic_error.empty()) rt.topic_error += "; ";
      rt.topic_error += "topic \"" + t.topic + "\" does not exist (" + t.error + ")";
    }
  }
  if (rt.assigned && counts == rt.counts) return true;

  static SavedPlan insert(
      "INSERT INTO consistency.consumer_offsets (consumer, topic, partition, next_offset) "
      "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
      {TEXTOID, TEXTOID, INT4OID, INT8OID});
  begin_txn("pg_consistency: assigning consumer partitions");
  g_dirty = true;
  if (!lock_consumer(rt)) {
    commit_txn();
    g_dirty = false;
    return false;
  }
  rt.parts.clear();
  read_offsets(rt, true);
  std::vector<TopicPartition> assignment;
  for (std::size_t t = 0; t < infos.size(); t++) {
    for (int32_t p = 0; p < infos[t].partitions; p++) {
      PartKey key{infos[t].topic, p};
      if (!rt.parts.count(key)) {
        int64_t low = 0, high = 0;
        if (!rt.kafka->query_watermarks(key.first, p, kBrokerTimeoutMs, &low, &high, &error)) {
          rt.kafka_error = error;
          commit_txn();
          g_dirty = false;
          return true;  // tried again at the next metadata round
        }
        int64_t start = rt.start_from == "latest" ? high : low;
        Datum v[4] = {text_datum(rt.def.name), text_datum(key.first), Int32GetDatum(p), Int64GetDatum(start)};
        exec(insert, v);
        rt.parts[key].stored = start;
      }
      assignment.push_back(TopicPartition{key.first, p, rt.parts[key].stored});
    }
  }
  commit_txn();
  g_dirty = false;
  // Partitions of topics no longer there are not fetched (their offsets stay stored).
  for (auto it = rt.parts.begin(); it != rt.parts.end();) {
    bool listed = false;
    for (const auto& a : assignment) listed |= a.topic == it->first.first && a.partition == it->first.second;
    it = listed ? std::next(it) : rt.parts.erase(it);
  }
  if (!rt.kafka->assign(assignment, &error)) {
    rt.kafka_error = error;
    return true;
  }
  rt.counts = counts;
  rt.assigned = true;
  return true;
}

// Moves fetched messages into their partitions' queues.
std::size_t fetch(Runtime& rt, int timeout_ms) {
  std::vector<Message> got;
  std::vector<std::string> errors;
  std::size_t max = static_cast<std::size_t>(settings::batch_size);
  rt.kafka->poll(max, timeout_ms, &got, &errors);
  if (!errors.empty()) rt.kafka_error = errors.back();
  for (auto& m : got) {
    auto it = rt.parts.find(PartKey{m.topic, m.partition});
    if (it == rt.parts.end() || m.offset < it->second.stored) continue;
    PartitionState& ps = it->second;
    if (!ps.pending.empty() && m.offset <= ps.pending.back().offset) continue;
    ps.pending.push_back(std::move(m));
    // Enough waiting for the next batches: stop fetching the partition meanwhile.
    if (!ps.paused && ps.pending.size() >= max * 4) {
      rt.kafka->pause(it->first.first, it->first.second, true);
      ps.paused = true;
    }
  }
  return got.size();
}

// ---------------------------------------------------------------- applying a batch

// One transaction of up to consumer_batch_size messages, their offsets stored with them
// (one row per partition). Returns the messages handled, or -1 when rt must be dropped.
long apply_batch(Runtime& rt) {
  static SavedPlan store(
      "UPDATE consistency.consumer_offsets SET next_offset = $4, attempts = $5, last_error = $6, "
      "updated_at = pg_catalog.now() WHERE consumer OPERATOR(pg_catalog.=) $1 "
      "AND topic OPERATOR(pg_catalog.=) $2 AND partition OPERATOR(pg_catalog.=) $3",
      {TEXTOID, TEXTOID, INT4OID, INT8OID, INT4OID, TEXTOID});
  static SavedPlan count(
      "UPDATE consistency.consumer_state SET consumed = consumed OPERATOR(pg_catalog.+) $2, "
      "failed = failed OPERATOR(pg_catalog.+) $3, dead_lettered = dead_lettered OPERATOR(pg_catalog.+) $4, "
      "deduplicated = deduplicated OPERATOR(pg_catalog.+) $5, seen_at = pg_catalog.now(), "
      "last_error = CASE WHEN $6 IS NOT NULL THEN $6 WHEN $7 THEN last_error END, "
      "last_error_at = CASE WHEN $6 IS NOT NULL THEN pg_catalog.now() WHEN $7 THEN last_error_at END "
      "WHERE name OPERATOR(pg_catalog.=) $1",
      {TEXTOID, INT8OID, INT8OID, INT8OID, INT8OID, TEXTOID, BOOLOID});
  begin_txn("pg_consistency: applying consumer messages");
  g_dirty = true;
  if (!lock_consumer(rt)) {
    commit_txn();
    g_dirty = false;
    return -1;
  }
  read_offsets(rt, false);
  int budget = settings::batch_size;
  Counters c;
  bool waiting = false;
  TimestampTz t = now();
  // The due messages, partition after partition, each partition's in offset order.
  std::map<PartKey, Progress> progress;
  std::vector<const Message*> msgs;
  std::vector<Progress*> owner;
  for (auto& [key, ps] : rt.parts) {
    if (ps.pending.empty() || ps.retry_at > t || budget <= 0) {
      waiting |= ps.attempts > 0;
      continue;
    }
    Progress& p = progress[key];
    p.topic = &key.first;
    p.partition = key.second;
    p.stored = ps.stored;
    p.stored_attempts = ps.attempts;
    p.next = ps.stored;
    p.attempts = ps.attempts;
    for (const Message& m : ps.pending) {
      if (budget-- <= 0) break;
      msgs.push_back(&m);
      owner.push_back(&p);
    }
  }
  long handled = msgs.empty() ? 0 : apply_messages(rt.def, msgs, owner, &c, g_process);
  for (auto it = progress.begin(); it != progress.end();) {
    Progress& p = it->second;
    waiting |= p.attempts > 0;
    if (p.retry_at != 0) rt.parts[it->first].retry_at = p.retry_at;
    if (p.next == p.stored && p.attempts == p.stored_attempts) {
      it = progress.erase(it);
      continue;
    }
    const PartKey& key = it->first;
    Datum v[6] = {text_datum(rt.def.name),   text_datum(key.first),
                  Int32GetDatum(key.second), Int64GetDatum(p.next),
                  Int32GetDatum(p.attempts), p.error.empty() ? 0 : text_datum(p.error)};
    char nulls[7] = {' ', ' ', ' ', ' ', ' ', p.error.empty() ? 'n' : ' ', '\0'};
    exec(store, v, nulls);
    ++it;
  }
  if (handled > 0) {
    Datum v[7] = {text_datum(rt.def.name),       Int64GetDatum(c.consumed),
                  Int64GetDatum(c.failed),       Int64GetDatum(c.dead_lettered),
                  Int64GetDatum(c.deduplicated), c.last_error.empty() ? 0 : text_datum(c.last_error),
                  BoolGetDatum(waiting)};
    char nulls[8] = {' ', ' ', ' ', ' ', ' ', c.last_error.empty() ? 'n' : ' ', ' ', '\0'};
    exec(count, v, nulls);
  }
  commit_txn();
  g_dirty = false;
  charges_committed();
  // Committed: what was handled leaves the queues.
  for (auto& [key, p] : progress) {
    PartitionState& ps = rt.parts[key];
    for (std::size_t k = 0; k < p.n; k++) ps.pending.pop_front();
    ps.stored = p.next;
    ps.attempts = p.attempts;
  }
  return handled;
}

// ---------------------------------------------------------------- heartbeat

// Once a second per consumer: the position of idle partitions (so lag reaches 0 past
// transaction markers), the high watermarks, the topic problems and seen_at.
bool heartbeat(Runtime& rt) {
  rt.next_heartbeat = after_ms(kHeartbeatEveryMs);
  static SavedPlan offsets(
      "UPDATE consistency.consumer_offsets o SET next_offset = GREATEST(o.next_offset, u.pos), "
      "high_watermark = u.high FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.text[]), "
      "pg_catalog.unnest($3::pg_catalog.int4[]), pg_catalog.unnest($4::pg_catalog.int8[]), "
      "pg_catalog.unnest($5::pg_catalog.int8[])) AS u(topic, partition, pos, high) "
      "WHERE o.consumer OPERATOR(pg_catalog.=) $1 AND o.topic OPERATOR(pg_catalog.=) u.topic "
      "AND o.partition OPERATOR(pg_catalog.=) u.partition "
      "AND (o.next_offset OPERATOR(pg_catalog.<) u.pos OR o.high_watermark IS DISTINCT FROM u.high)",
      {TEXTOID, TEXTARRAYOID, INT4ARRAYOID, INT8ARRAYOID, INT8ARRAYOID});
  static SavedPlan state(
      "UPDATE consistency.consumer_state SET seen_at = pg_catalog.now(), topic_error = $2, "
      "last_error = COALESCE($3, last_error), last_error_at = CASE WHEN $3 IS NULL THEN last_error_at "
      "ELSE pg_catalog.now() END WHERE name OPERATOR(pg_catalog.=) $1",
      {TEXTOID, TEXTOID, TEXTOID});
  begin_txn("pg_consistency: consumer heartbeat");
  g_dirty = true;
  if (!lock_consumer(rt)) {
    commit_txn();
    g_dirty = false;
    return false;
  }
  read_offsets(rt, false);
  std::vector<Datum> topics, partitions, positions, highs;
  for (auto& [key, ps] : rt.parts) {
    int64_t pos = -1;
    if (rt.kafka && ps.pending.empty() && ps.attempts == 0) pos = rt.kafka->position(key.first, key.second);
    int64_t high = rt.kafka ? rt.kafka->cached_high(key.first, key.second) : -1;
    topics.push_back(text_datum(key.first));
    partitions.push_back(Int32GetDatum(key.second));
    positions.push_back(Int64GetDatum(pos));
    highs.push_back(Int64GetDatum(high < 0 ? ps.stored : high));
    if (pos > ps.stored) ps.stored = pos;
  }
  if (!topics.empty()) {
    Datum v[5];
    pg_call([&] {
      int n = static_cast<int>(topics.size());
      v[0] = PointerGetDatum(cstring_to_text_with_len(rt.def.name.data(), rt.def.name.size()));
      v[1] = PointerGetDatum(construct_array(topics.data(), n, TEXTOID, -1, false, TYPALIGN_INT));
      v[2] = PointerGetDatum(construct_array(partitions.data(), n, INT4OID, 4, true, TYPALIGN_INT));
      v[3] =
          PointerGetDatum(construct_array(positions.data(), n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
      v[4] = PointerGetDatum(construct_array(highs.data(), n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
    });
    exec(offsets, v);
  }
  std::string kafka_error = std::move(rt.kafka_error);
  rt.kafka_error.clear();
  Datum v[3] = {text_datum(rt.def.name), rt.topic_error.empty() ? 0 : text_datum(clip_reason(rt.topic_error)),
                kafka_error.empty() ? 0 : text_datum(clip_reason("Kafka: " + kafka_error))};
  char nulls[4] = {' ', rt.topic_error.empty() ? 'n' : ' ', kafka_error.empty() ? 'n' : ' ', '\0'};
  exec(state, v, nulls);
  commit_txn();
  g_dirty = false;
  return true;
}

// Deletes dedupe rows older than the window (process 1 only).
void clean_dedupe() {
  g_next_cleanup = after_ms(kCleanupEveryMs);
  static SavedPlan plan(
      "DELETE FROM consistency.consumer_dedupe WHERE seen_at OPERATOR(pg_catalog.<) (pg_catalog.now() "
      "OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $1))",
      {INT4OID});
  begin_txn("pg_consistency: cleaning consumer dedupe");
  Datum v[1] = {Int32GetDatum(settings::dedupe_window_s)};
  exec(plan, v);
  commit_txn();
}

// True when a partition has messages to apply now (not only ones waiting for a retry).
bool due(const Runtime& rt) {
  TimestampTz t = now();
  for (const auto& [key, ps] : rt.parts)
    if (!ps.pending.empty() && ps.retry_at <= t) return true;
  return false;
}

// Resumes the partitions whose queue has room again.
void resume_drained(Runtime& rt) {
  for (auto& [key, ps] : rt.parts) {
    if (ps.paused && ps.pending.size() < static_cast<std::size_t>(settings::batch_size) * 2) {
      rt.kafka->pause(key.first, key.second, false);
      ps.paused = false;
    }
  }
}

// Nothing was handled: how long the process may sleep on its latch and the wake-up pipe
// before something of ours is due (a retry, a heartbeat, a look at the catalog or the
// topics). 0 when messages already wait in a queue (librdkafka writes to the pipe only
// when a queue becomes non-empty).
long idle_wait_ms() {
  TimestampTz t = now(), due = g_next_catalog;
  for (auto& [name, rt] : g_consumers) {
    if (rt->kafka && rt->assigned && rt->kafka->queued() > 0) return 0;
    if (rt->kafka && rt->kafka->metadata_answered()) return 0;
    due = std::min({due, rt->next_metadata, rt->next_heartbeat});
    for (auto& [key, ps] : rt->parts)
      if (!ps.pending.empty() && ps.retry_at > t) due = std::min(due, ps.retry_at);
  }
  return due <= t ? 0 : static_cast<long>((due - t + 999) / 1000);
}

// Serves this process's consumers once: catalog, assignment, fetch, batches, heartbeat.
long tick(int index, int processes) {
  // What librdkafka writes from here on wakes the next wait; the queues are read below.
  g_wake.drain();
  g_process = index;
  clear_running_message();  // left set when an ERROR cut a handler call short
  if (g_dirty) {
    g_consumers.clear();
    g_dirty = false;
    charges_lost();
  }
  collect_hard_stops(index);
  if (now() >= g_next_catalog) {
    load_catalog(index, processes);
    g_next_catalog = after_ms(kCatalogEveryMs);
  }
  if (index == 1 && settings::dedupe_window_s > 0 && now() >= g_next_cleanup) clean_dedupe();
  if (g_consumers.empty()) return kCatalogEveryMs;
  long handled = 0;
  int share = static_cast<int>(kIdlePollMs / static_cast<long>(g_consumers.size()));
  for (auto it = g_consumers.begin(); it != g_consumers.end();) {
    Runtime& rt = *it->second;
    bool keep = true;
    if (now() >= rt.next_metadata || (rt.kafka && rt.kafka->metadata_answered()))
      keep = refresh_assignment(rt);
    if (keep && rt.kafka && rt.assigned) {
      fetch(rt, 0);
      // Nothing due: no transaction (its row lock would cost a WAL flush per tick, which
      // every message of the process's other consumers would wait for).
      long n = due(rt) ? apply_batch(rt) : 0;
      if (n < 0) keep = false;
      if (n > 0) handled += n;
      if (keep) resume_drained(rt);
    }
    if (keep && now() >= rt.next_heartbeat) keep = heartbeat(rt);
    it = keep ? std::next(it) : g_consumers.erase(it);
  }
  if (handled > 0) return 0;
  if (g_wake.read_end() < 0) {
    // No pipe (the system refused one): wait in librdkafka, at most kIdlePollMs over all.
    for (auto& [name, rt] : g_consumers)
      if (rt->kafka && rt->assigned) fetch(*rt, share);
    return 0;
  }
  return idle_wait_ms();
}

long process_tick(int index) { return tick(index, std::max(1, settings::workers)); }
int wait_socket() { return g_consumers.empty() ? -1 : g_wake.read_end(); }
long worker_tick() { return tick(1, 1); }
int processes() { return settings::workers; }
void on_exit() { g_consumers.clear(); }

const pg::Component kComponent = {"inbox",     settings::define_settings,
                                  nullptr,     nullptr,
                                  worker_tick, on_exit,
                                  0,           nullptr,
                                  processes,   process_tick,
                                  nullptr,     "pg_consistency consumer",
                                  wait_socket};
pg::ComponentRegistrar registrar(&kComponent);

}  // namespace

void wake_consumers_at_commit() {
  pg_call([] { worker::wake_at_commit(&kComponent); });
}

}  // namespace pgc::inbox
