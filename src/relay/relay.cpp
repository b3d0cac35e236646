// The Kafka relay, run as a component of the per-database worker.
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

#include "outbox/names.hpp"
#include "pg/gucs.hpp"
#include "pg/guard.hpp"
#include "pg/spi.hpp"
#include "relay/batch.hpp"
#include "relay/circuit_breaker.hpp"
#include "relay/kafka.hpp"
#include "relay/properties.hpp"
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

// ---------------------------------------------------------------- GUCs

enum RelayMode { kAtLeastOnce = 0, kExactlyOnce = 1 };
const struct config_enum_entry kModeOptions[] = {
    {"at_least_once", kAtLeastOnce, false},
    {"exactly_once", kExactlyOnce, false},
    {nullptr, 0, false},
};

char* g_brokers = nullptr;
char* g_properties = nullptr;
int g_mode = kAtLeastOnce;
int g_batch_size = 1000;
int g_topic_partitions = 3;
int g_max_attempts = 5;
char* g_progress_topic = nullptr;
char* g_transactional_id = nullptr;

bool check_properties(char** newval, void**, GucSource) {
  try {
    Properties props;
    std::string error;
    if (!parse_properties(*newval ? *newval : "", &props, &error)) {
      GUC_check_errdetail("%s", error.c_str());
      return false;
    }
    return true;
  } catch (...) {
    GUC_check_errdetail("out of memory");
    return false;
  }
}

bool check_progress_topic(char** newval, void**, GucSource) {
  try {
    if (auto problem = outbox::topic_name_problem(*newval ? *newval : "")) {
      GUC_check_errdetail("%s", problem->c_str());
      return false;
    }
    return true;
  } catch (...) {
    return false;
  }
}

void define_gucs() {
  DefineCustomStringVariable("pg_consistency.kafka_brokers",
                             "Kafka bootstrap servers (host:port,...) for the outbox relay; empty = relay off.",
                             nullptr, &g_brokers, "", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomStringVariable(
      "pg_consistency.kafka_properties",
      "Extra librdkafka settings for the relay, as name=value entries separated by ';'.",
      "Superuser only; may hold credentials, so it is never shown to other users.", &g_properties, "",
      PGC_SIGHUP, GUC_SUPERUSER_ONLY, check_properties, nullptr, nullptr);
  DefineCustomEnumVariable("pg_consistency.relay_mode",
                           "Delivery guarantee of the relay: at_least_once or exactly_once.", nullptr,
                           &g_mode, kAtLeastOnce, kModeOptions, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("pg_consistency.batch_size", "Outbox rows the relay sends per batch.", nullptr,
                          &g_batch_size, 1000, 1, 100000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("pg_consistency.topic_partitions",
                          "Partitions of the topics the relay creates; 0 = rely on the broker's auto-creation.",
                          nullptr, &g_topic_partitions, 3, 0, 100000, PGC_SIGHUP, 0, nullptr, nullptr,
                          nullptr);
  DefineCustomIntVariable("pg_consistency.relay_max_attempts",
                          "Attempts before a message Kafka refuses for good goes to dead_letters.", nullptr,
                          &g_max_attempts, 5, 1, 1000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomStringVariable("pg_consistency.relay_progress_topic",
                             "Compacted topic where exactly_once mode commits its progress.", nullptr,
                             &g_progress_topic, "pg_consistency.relay_progress", PGC_SIGHUP, 0,
                             check_progress_topic, nullptr, nullptr);
  DefineCustomStringVariable("pg_consistency.relay_transactional_id",
                             "Kafka transactional.id of the exactly_once relay; empty = derived from the "
                             "cluster's system identifier and the database OID.",
                             nullptr, &g_transactional_id, "", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
}

// ---------------------------------------------------------------- shared memory

enum class State : int { kStopped = 0, kRunning = 1, kBrokerUnavailable = 2 };

const char* state_name(State s) {
  switch (s) {
    case State::kRunning:
      return "running";
    case State::kBrokerUnavailable:
      return "broker_unavailable";
    default:
      return "stopped";
  }
}

struct RelaySlot {
  Oid dboid;
  pid_t pid;
  State state;
  int mode;
  char last_error[512];
  TimestampTz last_error_at;
  uint64 batches;
  uint64 errors;
  int64 in_flight;
  double pg_seconds;     // time in PostgreSQL work (reading, recording, finishing batches)
  double kafka_seconds;  // time producing and waiting for Kafka (acks, commits)
};

struct RelayShared {
  slock_t mutex;
  RelaySlot slots[worker::kMaxDatabases];
};

RelayShared* g_shared = nullptr;
int g_slot = -1;

Size shmem_size() { return sizeof(RelayShared); }

void shmem_init() {
  bool found = false;
  g_shared = static_cast<RelayShared*>(ShmemInitStruct("pg_consistency relay", sizeof(RelayShared), &found));
  if (!found) {
    memset(g_shared, 0, sizeof(RelayShared));
    SpinLockInit(&g_shared->mutex);
  }
}

RelayShared* shared() {
  if (g_shared == nullptr && worker::shared() != nullptr) {
    // A backend attached after startup: look the struct up (it exists when preloaded).
    bool found = false;
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    g_shared = static_cast<RelayShared*>(ShmemInitStruct("pg_consistency relay", sizeof(RelayShared), &found));
    if (!found) {
      memset(g_shared, 0, sizeof(RelayShared));
      SpinLockInit(&g_shared->mutex);
    }
    LWLockRelease(AddinShmemInitLock);
  }
  return g_shared;
}

RelaySlot* my_slot() {
  RelayShared* s = shared();
  if (s == nullptr) return nullptr;
  if (g_slot < 0) {
    SpinLockAcquire(&s->mutex);
    for (int i = 0; i < worker::kMaxDatabases && g_slot < 0; i++)
      if (s->slots[i].dboid == MyDatabaseId) g_slot = i;
    for (int i = 0; i < worker::kMaxDatabases && g_slot < 0; i++)
      if (s->slots[i].dboid == InvalidOid) g_slot = i;
    if (g_slot >= 0) {
      RelaySlot& slot = s->slots[g_slot];
      slot.dboid = MyDatabaseId;
      slot.pid = MyProcPid;
    }
    SpinLockRelease(&s->mutex);
  }
  return g_slot >= 0 ? &s->slots[g_slot] : nullptr;
}

void set_state(State st, int64 in_flight) {
  RelaySlot* slot = my_slot();
  if (slot == nullptr) return;
  SpinLockAcquire(&g_shared->mutex);
  slot->state = st;
  slot->mode = g_mode;
  slot->pid = MyProcPid;
  slot->in_flight = in_flight;
  SpinLockRelease(&g_shared->mutex);
}

// Adds elapsed time to one of the two sides (plain data, for the benchmark and operators).
void add_time(bool postgres_side, TimestampTz since) {
  RelaySlot* slot = my_slot();
  if (slot == nullptr) return;
  double secs = (GetCurrentTimestamp() - since) / 1e6;
  SpinLockAcquire(&g_shared->mutex);
  (postgres_side ? slot->pg_seconds : slot->kafka_seconds) += secs;
  SpinLockRelease(&g_shared->mutex);
}

void count_batch() {
  RelaySlot* slot = my_slot();
  if (slot == nullptr) return;
  SpinLockAcquire(&g_shared->mutex);
  slot->batches++;
  SpinLockRelease(&g_shared->mutex);
}

// Logs a relay message, without repeating the same text more than every 30 s.
bool log_limited(const std::string& message) {
  static std::string last_logged;
  static TimestampTz last_logged_at = 0;
  TimestampTz now = GetCurrentTimestamp();
  if (message != last_logged || TimestampDifferenceExceeds(last_logged_at, now, 30000)) {
    ereport(LOG, (errmsg("pg_consistency relay: %s", message.c_str())));
    last_logged = message;
    last_logged_at = now;
    return true;
  }
  return false;
}

// Records a relay error in shared memory (last_error) and logs it.
void record_error(const std::string& message) {
  log_limited(message);
  TimestampTz now = GetCurrentTimestamp();
  RelaySlot* slot = my_slot();
  if (slot == nullptr) return;
  SpinLockAcquire(&g_shared->mutex);
  strlcpy(slot->last_error, message.c_str(), sizeof slot->last_error);
  slot->last_error_at = now;
  slot->errors++;
  SpinLockRelease(&g_shared->mutex);
}

// ---------------------------------------------------------------- worker-local state

int64_t now_ms() { return static_cast<int64_t>(GetCurrentTimestamp() / 1000); }

double unit_random() {
  static std::minstd_rand rng(static_cast<unsigned>(MyProcPid));
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

// A batch's rows: every string lives in one byte arena (few allocations per batch, not
// a dozen per row); rows and headers refer to it by offset.
struct Span {
  uint32_t off = 0;
  uint32_t len = 0;
};

struct OwnHeader {
  Span name;
  Span value;
  bool null = false;
};

struct Row {
  int64_t id = 0;
  Span topic, key, payload, content_type;
  bool key_null = false;
  bool payload_null = false;
  int64_t created_at = 0;
  int attempts = 0;
  uint32_t hdr_begin = 0;
  uint32_t hdr_count = 0;
};

// A batch stops growing past this many bytes of row data (offsets are 32-bit; and a huge
// batch only delays its acknowledgement).
constexpr size_t kMaxBatchBytes = 256u << 20;

struct RowSet {
  std::string blob;
  std::vector<Row> rows;
  std::vector<OwnHeader> headers;

  Span add(const char* p, size_t n) {
    Span sp{static_cast<uint32_t>(blob.size()), static_cast<uint32_t>(n)};
    blob.append(p, n);
    return sp;
  }
  std::string_view view(Span sp) const { return std::string_view(blob.data() + sp.off, sp.len); }
};

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
  RowSet rows;                             // the current batch's rows, reused
  RowSet next_rows;                        // the next batch, read while the current one is at Kafka
  bool has_next = false;
  int64_t next_number = 0;                 // exactly_once: its recorded batch number
  bool prefetch_tried = false;             // for the batch in flight
  int pipelined = 0;                       // batches started from a prefetch in a row
  std::vector<HeaderView> header_scratch;  // reused for every message
  int64_t time_cache_key = 0;
  std::string time_cache;
};

Runtime* g_rt = nullptr;

Runtime& runtime() {
  if (g_rt == nullptr) g_rt = new Runtime();
  return *g_rt;
}

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
}

std::string transactional_id() {
  if (g_transactional_id != nullptr && g_transactional_id[0] != '\0') return g_transactional_id;
  return "pg_consistency-" + std::to_string(GetSystemIdentifier()) + "-" + std::to_string(MyDatabaseId);
}

std::string current_fingerprint() {
  std::string fp = g_brokers ? g_brokers : "";
  fp += '\x1f';
  fp += g_properties ? g_properties : "";
  fp += '\x1f';
  fp += std::to_string(g_mode);
  fp += '\x1f';
  fp += g_mode == kExactlyOnce ? transactional_id() + "\x1f" + (g_progress_topic ? g_progress_topic : "") : "";
  return fp;
}

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

// ---------------------------------------------------------------- PostgreSQL side

// One short transaction around f(); f runs SPI through pg_call.
template <typename F>
auto in_transaction(const char* activity, bool synchronous, F&& f) -> decltype(f()) {
  pg::pg_call([&] {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "pg_consistency: SPI_connect failed");
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, activity);
    // The exactly-once batch record must be durable before Kafka commits; other relay
    // transactions can be lost in a crash without harm (see docs/outbox.md).
    (void)set_config_option("synchronous_commit", synchronous ? "on" : "off", PGC_USERSET,
                            PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
  });
  if constexpr (std::is_void_v<decltype(f())>) {
    f();
    pg::pg_call([&] {
      SPI_finish();
      PopActiveSnapshot();
      CommitTransactionCommand();
      pgstat_report_activity(STATE_IDLE, nullptr);
    });
  } else {
    auto result = f();
    pg::pg_call([&] {
      SPI_finish();
      PopActiveSnapshot();
      CommitTransactionCommand();
      pgstat_report_activity(STATE_IDLE, nullptr);
    });
    return result;
  }
}

Datum int8_array(const std::vector<int64_t>& ids) {
  return pg::pg_call([&] {
    Datum* elems = static_cast<Datum*>(palloc(sizeof(Datum) * (ids.size() + 1)));
    for (size_t i = 0; i < ids.size(); i++) elems[i] = Int64GetDatum(ids[i]);
    return PointerGetDatum(construct_array(elems, static_cast<int>(ids.size()), INT8OID, 8, true, TYPALIGN_DOUBLE));
  });
}

Datum text_array(const std::vector<std::string>& texts) {
  return pg::pg_call([&] {
    Datum* elems = static_cast<Datum*>(palloc(sizeof(Datum) * (texts.size() + 1)));
    for (size_t i = 0; i < texts.size(); i++)
      elems[i] = PointerGetDatum(cstring_to_text_with_len(texts[i].data(), static_cast<int>(texts[i].size())));
    return PointerGetDatum(construct_array(elems, static_cast<int>(texts.size()), TEXTOID, -1, false, TYPALIGN_INT));
  });
}

int64 exec_count(pg::SavedPlan& plan, const Datum* values, const char* nulls) {
  return pg::pg_call([&]() -> int64 {
    plan.execute(values, nulls, false);
    return static_cast<int64>(SPI_processed);
  });
}

// Appends the jsonb object's entries to the row set as headers (values as text, JSON
// null as a null header). Runs under pg_call: plain locals around PostgreSQL calls.
void jsonb_headers(Jsonb* jb, RowSet* set, Row* row) {
  row->hdr_begin = static_cast<uint32_t>(set->headers.size());
  row->hdr_count = 0;
  if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_COUNT(jb) == 0) return;
  JsonbIterator* it = JsonbIteratorInit(&jb->root);
  JsonbValue v;
  JsonbIteratorToken tok;
  while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE) {
    if (tok == WJB_KEY) {
      OwnHeader h;
      h.name = set->add(v.val.string.val, v.val.string.len);
      set->headers.push_back(h);
      row->hdr_count++;
    } else if (tok == WJB_VALUE && row->hdr_count > 0) {
      OwnHeader& h = set->headers.back();
      switch (v.type) {
        case jbvString:
          h.value = set->add(v.val.string.val, v.val.string.len);
          break;
        case jbvNumeric: {
          char* txt = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v.val.numeric)));
          h.value = set->add(txt, strlen(txt));
          pfree(txt);
          break;
        }
        case jbvBool:
          h.value = v.val.boolean ? set->add("true", 4) : set->add("false", 5);
          break;
        case jbvNull:
          h.null = true;
          break;
        default:
          break;  // publish() refuses nested values; a direct insert gets an empty header
      }
    }
  }
}

// Reads the next batch of rows in id order. A row whose earlier attempt failed goes
// alone, so that a refusal is pinned on the message that caused it (a broker refuses a
// whole record batch, neighbours included). exactly_once: the batch's ids are recorded in
// relay_batches in the same transaction, committed synchronously, before anything of it
// can be committed to Kafka.
// after_id: rows with a greater id only. below: when >= 0, return rows only if exactly
// `below` rows with id <= after_id are visible in the same snapshot (the batch in flight),
// i.e. no transaction with a lower id has committed late: its rows must not be overtaken.
void load_batch(Runtime& rt, RowSet* set, int64_t record_as, int64_t after_id, int64_t below = -1) {
  set->blob.clear();
  set->rows.clear();
  set->headers.clear();
  in_transaction("pg_consistency relay: reading outbox", record_as > 0, [&] {
    static pg::SavedPlan plan(
        "SELECT id, topic, key, payload, headers, content_type, created_at, attempts "
        "FROM consistency.outbox WHERE id OPERATOR(pg_catalog.>) $2 ORDER BY id LIMIT $1",
        {INT4OID, INT8OID});
    static pg::SavedPlan record("INSERT INTO consistency.relay_batches (batch, ids) VALUES ($1, $2)",
                                {INT8OID, INT8ARRAYOID});
    if (rt.ce_source.empty()) {
      char* db = pg::pg_call([] { return get_database_name(MyDatabaseId); });
      rt.ce_source = std::string("/pg_consistency/") + (db ? db : "");
    }
    static pg::SavedPlan guarded(
        "WITH below AS (SELECT pg_catalog.count(*) AS n FROM consistency.outbox WHERE id OPERATOR(pg_catalog.<=) $2) "
        "SELECT id, topic, key, payload, headers, content_type, created_at, attempts "
        "FROM consistency.outbox WHERE id OPERATOR(pg_catalog.>) $2 "
        "AND (SELECT n FROM below) OPERATOR(pg_catalog.=) $3 ORDER BY id LIMIT $1",
        {INT4OID, INT8OID, INT8OID});
    Datum args[3] = {Int32GetDatum(g_batch_size), Int64GetDatum(after_id), Int64GetDatum(below)};
    pg::pg_call([&] { (below >= 0 ? guarded : plan).execute(args, nullptr, true, g_batch_size); });
    uint64 n = SPI_processed;
    set->rows.resize(n);
    set->blob.reserve(n * 256);
    for (uint64 i = 0; i < n; i++) {
      Row& r = set->rows[i];
      pg::pg_call([&] {
        bool isnull = false, null_key = false, null_payload = false, null_headers = false;
        r.id = DatumGetInt64(pg::spi_value(i, 1, &isnull));
        text* topic = DatumGetTextPP(pg::spi_value(i, 2, &isnull));
        r.topic = set->add(VARDATA_ANY(topic), VARSIZE_ANY_EXHDR(topic));
        Datum d = pg::spi_value(i, 3, &null_key);
        r.key_null = null_key;
        if (!null_key) {
          text* key = DatumGetTextPP(d);
          r.key = set->add(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
        }
        d = pg::spi_value(i, 4, &null_payload);
        r.payload_null = null_payload;
        if (!null_payload) {
          bytea* payload = DatumGetByteaPP(d);
          r.payload = set->add(VARDATA_ANY(payload), VARSIZE_ANY_EXHDR(payload));
        }
        d = pg::spi_value(i, 5, &null_headers);
        if (!null_headers) jsonb_headers(DatumGetJsonbP(d), set, &r);
        text* ctype = DatumGetTextPP(pg::spi_value(i, 6, &isnull));
        r.content_type = set->add(VARDATA_ANY(ctype), VARSIZE_ANY_EXHDR(ctype));
        r.created_at = DatumGetTimestampTz(pg::spi_value(i, 7, &isnull));
        r.attempts = DatumGetInt32(pg::spi_value(i, 8, &isnull));
      });
      if (r.attempts > 0) {
        set->rows.resize(i == 0 ? 1 : i);  // alone, or stop before it
        break;
      }
      if (set->blob.size() >= kMaxBatchBytes) {  // large rows: fewer of them per batch
        set->rows.resize(i + 1);
        break;
      }
    }
    if (record_as > 0 && !set->rows.empty()) {
      std::vector<int64_t> ids;
      ids.reserve(set->rows.size());
      for (const auto& r : set->rows) ids.push_back(r.id);
      Datum a[2] = {Int64GetDatum(record_as), int8_array(ids)};
      exec_count(record, a, nullptr);
    }
  });
}

// Removes acknowledged rows, counts failed attempts, moves exhausted rows to dead_letters
// and updates the counters, in one transaction. Returns rows dead-lettered.
int64 finalize_batch(const Batch& batch, bool exactly_once) {
  std::vector<int64_t> delivered = batch.delivered_ids();
  auto failures = batch.permanent_failures();
  return in_transaction("pg_consistency relay: finishing batch", false, [&]() -> int64 {
    static pg::SavedPlan del("DELETE FROM consistency.outbox WHERE id OPERATOR(pg_catalog.=) ANY($1)",
                             {INT8ARRAYOID});
    static pg::SavedPlan attempt(
        "UPDATE consistency.outbox o SET attempts = o.attempts OPERATOR(pg_catalog.+) 1, last_error = f.reason "
        "FROM pg_catalog.unnest($1::pg_catalog.int8[], $2::pg_catalog.text[]) AS f(id, reason) "
        "WHERE o.id OPERATOR(pg_catalog.=) f.id",
        {INT8ARRAYOID, TEXTARRAYOID});
    static pg::SavedPlan dead(
        "WITH moved AS (DELETE FROM consistency.outbox WHERE id OPERATOR(pg_catalog.=) ANY($1) "
        "AND attempts OPERATOR(pg_catalog.>=) $2 RETURNING *) "
        "INSERT INTO consistency.dead_letters (id, topic, key, payload, headers, content_type, created_at, "
        "attempts, reason) SELECT id, topic, key, payload, headers, content_type, created_at, attempts, "
        "coalesce(last_error, 'unknown'::pg_catalog.text) FROM moved RETURNING id, topic, attempts, reason",
        {INT8ARRAYOID, INT4OID});
    static pg::SavedPlan drop_record(
        "DELETE FROM consistency.relay_batches WHERE batch OPERATOR(pg_catalog.=) $1", {INT8OID});
    static pg::SavedPlan stats(
        "UPDATE consistency.relay_stats SET delivered_total = delivered_total OPERATOR(pg_catalog.+) $1, "
        "dead_lettered_total = dead_lettered_total OPERATOR(pg_catalog.+) $2, "
        "batches_total = batches_total OPERATOR(pg_catalog.+) 1, last_batch = greatest(last_batch, $3), "
        "last_delivery_at = CASE WHEN $1 OPERATOR(pg_catalog.>) 0 THEN pg_catalog.clock_timestamp() "
        "ELSE last_delivery_at END",
        {INT8OID, INT8OID, INT8OID});
    if (!delivered.empty()) {
      // Common case, the whole batch acknowledged: its rows are the only visible rows of its
      // id range unless a transaction with a lower id committed late inside that range. One
      // statement (one snapshot) counts the range and deletes it only if the count matches,
      // which walks the index once instead of descending it once per id.
      int64 gone = 0;
      if (delivered.size() == batch.size()) {
        static pg::SavedPlan range(
            "WITH c AS (SELECT pg_catalog.count(*) AS n FROM consistency.outbox "
            "          WHERE id OPERATOR(pg_catalog.>=) $1 AND id OPERATOR(pg_catalog.<=) $2) "
            "DELETE FROM consistency.outbox WHERE id OPERATOR(pg_catalog.>=) $1 "
            "AND id OPERATOR(pg_catalog.<=) $2 AND (SELECT n FROM c) OPERATOR(pg_catalog.=) $3",
            {INT8OID, INT8OID, INT8OID});
        Datum a[3] = {Int64GetDatum(delivered.front()), Int64GetDatum(delivered.back()),
                      Int64GetDatum(static_cast<int64>(delivered.size()))};
        gone = exec_count(range, a, nullptr);
      }
      if (gone == 0) {
        Datum a[1] = {int8_array(delivered)};
        exec_count(del, a, nullptr);
      }
    }
    int64 dead_count = 0;
    if (!failures.empty()) {
      std::vector<int64_t> ids;
      std::vector<std::string> reasons;
      for (auto& [id, reason] : failures) {
        ids.push_back(id);
        reasons.push_back(reason);
      }
      Datum a[2] = {int8_array(ids), text_array(reasons)};
      exec_count(attempt, a, nullptr);
      Datum b[2] = {a[0], Int32GetDatum(g_max_attempts)};
      dead_count = exec_count(dead, b, nullptr);
      for (int64 i = 0; i < dead_count; i++) {
        int64 id = pg::spi_int64(i, 1);
        char* topic = pg::pg_call([&] { return pg::spi_text_copy(i, 2); });
        int64 attempts = pg::spi_int64(i, 3);
        char* reason = pg::pg_call([&] { return pg::spi_text_copy(i, 4); });
        ereport(WARNING, (errmsg("pg_consistency relay: outbox message %lld (topic \"%s\") moved to "
                                 "consistency.dead_letters after %lld attempts: %s",
                                 static_cast<long long>(id), topic ? topic : "?",
                                 static_cast<long long>(attempts), reason ? reason : "?")));
      }
    }
    if (exactly_once) {
      Datum a[1] = {Int64GetDatum(batch.number())};
      exec_count(drop_record, a, nullptr);
    }
    Datum s[3] = {Int64GetDatum(static_cast<int64>(delivered.size())), Int64GetDatum(dead_count),
                  Int64GetDatum(batch.number())};
    exec_count(stats, s, nullptr);
    return dead_count;
  });
}

// exactly_once: settles what a previous run left in relay_batches, given the highest
// batch the progress topic holds as committed. Returns the next batch number.
int64_t settle_open_batches(int64_t committed) {
  return in_transaction("pg_consistency relay: recovering", false, [&]() -> int64_t {
    static pg::SavedPlan open_q(
        "SELECT pg_catalog.max(b.batch), (SELECT last_batch FROM consistency.relay_stats) "
        "FROM consistency.relay_batches b",
        {});
    static pg::SavedPlan finish(
        "WITH fin AS (DELETE FROM consistency.relay_batches WHERE batch OPERATOR(pg_catalog.<=) $1 RETURNING ids), "
        "gone AS (DELETE FROM consistency.outbox o USING fin WHERE o.id OPERATOR(pg_catalog.=) ANY(fin.ids) "
        "RETURNING 1) "
        "UPDATE consistency.relay_stats SET delivered_total = delivered_total OPERATOR(pg_catalog.+) "
        "(SELECT pg_catalog.count(*) FROM gone), "
        "batches_total = batches_total OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM fin), "
        "last_batch = greatest(last_batch, $1), last_delivery_at = CASE WHEN EXISTS (SELECT 1 FROM gone) "
        "THEN pg_catalog.clock_timestamp() ELSE last_delivery_at END",
        {INT8OID});
    static pg::SavedPlan discard("DELETE FROM consistency.relay_batches WHERE batch OPERATOR(pg_catalog.>) $1",
                                 {INT8OID});
    pg::pg_call([&] { open_q.execute(nullptr, nullptr, true); });
    bool isnull = false;
    std::optional<int64_t> open;
    Datum d = pg::spi_value(0, 1, &isnull);
    if (!isnull) open = DatumGetInt64(d);
    int64_t last_known = pg::spi_int64(0, 2, 0);
    RecoveryPlan plan = plan_recovery(open, committed, last_known);
    if (open) {
      Datum a[1] = {Int64GetDatum(committed)};
      exec_count(finish, a, nullptr);
      int64 dropped = exec_count(discard, a, nullptr);
      ereport(LOG, (errmsg("pg_consistency relay: recovery: Kafka holds batches up to %lld committed; open batch "
                           "%lld %s",
                           static_cast<long long>(committed), static_cast<long long>(*open),
                           plan.action == RecoveryPlan::Action::kFinalize
                               ? "was committed and is now removed from the outbox"
                               : (dropped > 0 ? "was not committed and will be sent again" : "settled"))));
    }
    return plan.next_batch;
  });
}

// exactly_once, after an aborted Kafka transaction: forget the batch record and count
// the permanent failures' attempts.
void abandon_batch(const Batch& batch) {
  in_transaction("pg_consistency relay: abandoning batch", false, [&] {
    static pg::SavedPlan drop_record(
        "DELETE FROM consistency.relay_batches WHERE batch OPERATOR(pg_catalog.=) $1", {INT8OID});
    Datum a[1] = {Int64GetDatum(batch.number())};
    exec_count(drop_record, a, nullptr);
  });
  if (!batch.permanent_failures().empty()) {
    // Nothing of an aborted batch is delivered: this only counts the permanent failures'
    // attempts and dead-letters the exhausted rows.
    finalize_batch(batch, false);
  }
}

// ---------------------------------------------------------------- Kafka side

std::string kafka_error_text(const TxnResult& r) { return r.message.empty() ? "unknown error" : r.message; }

void drain_producer_messages(Runtime& rt) {
  if (!rt.producer) return;
  for (auto& e : rt.producer->take_errors()) record_error("Kafka: " + e);
  for (auto& l : rt.producer->take_logs()) log_limited("librdkafka: " + l);
  if (rt.producer->all_brokers_down()) {
    rt.broker_down = true;
    rt.producer->clear_all_brokers_down();
  }
}

void note_transient_failure(Runtime& rt, const std::string& why) {
  rt.breaker.record_failure(now_ms(), unit_random());
  record_error(why);
}

bool create_producer(Runtime& rt) {
  KafkaConfig cfg;
  cfg.brokers = g_brokers;
  std::string error;
  if (!parse_properties(g_properties ? g_properties : "", &cfg.properties, &error)) {
    record_error("pg_consistency.kafka_properties: " + error);
    return false;
  }
  cfg.transactional = g_mode == kExactlyOnce;
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
  if (g_topic_partitions == 0) return true;  // the broker auto-creates topics
  std::vector<std::string> missing;
  std::string_view last;
  for (const auto& r : set.rows) {
    std::string_view t = set.view(r.topic);
    if (t == last) continue;
    last = t;
    std::string topic(t);
    if (rt.known_topics.count(topic) == 0 && std::find(missing.begin(), missing.end(), topic) == missing.end())
      missing.push_back(std::move(topic));
  }
  if (missing.empty()) return true;
  std::vector<std::string> errors;
  std::string error;
  if (!rt.producer->create_topics(missing, g_topic_partitions, {}, 5000, &errors, &error)) {
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
  std::string progress = g_progress_topic;
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
    note_transient_failure(rt, "reading the progress topic: " + error);
    return false;
  }
  rt.next_batch = settle_open_batches(committed);
  rt.ready = true;
  return true;
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
  auto view = [](std::string_view v) { return std::pair<const char*, size_t>(v.data(), v.size()); };
  std::pair<const char*, size_t> ce_id{idbuf, idlen}, ce_type = view(set.view(r.topic)),
                                 ce_source = view(rt.ce_source), ce_time = view(rt.time_cache),
                                 ctype = view(set.view(r.content_type));
  std::vector<HeaderView>& hv = rt.header_scratch;
  hv.clear();
  hv.push_back(HeaderView{"outbox_id", 9, idbuf, idlen, false});
  size_t fixed = hv.size();
  hv.resize(fixed + 6);
  for (uint32_t h = r.hdr_begin; h < r.hdr_begin + r.hdr_count; h++) {
    const OwnHeader& oh = set.headers[h];
    std::string_view name = set.view(oh.name);
    std::string_view value = set.view(oh.value);
    if (!oh.null) {
      if (name == "ce_id") { ce_id = view(value); continue; }
      if (name == "ce_type") { ce_type = view(value); continue; }
      if (name == "ce_source") { ce_source = view(value); continue; }
      if (name == "ce_time") { ce_time = view(value); continue; }
      if (name == "content-type") { ctype = view(value); continue; }
    }
    hv.push_back(HeaderView{name.data(), name.size(), value.data(), value.size(), oh.null});
  }
  hv[fixed + 0] = HeaderView{"ce_id", 5, ce_id.first, ce_id.second, false};
  hv[fixed + 1] = HeaderView{"ce_type", 7, ce_type.first, ce_type.second, false};
  hv[fixed + 2] = HeaderView{"ce_source", 9, ce_source.first, ce_source.second, false};
  hv[fixed + 3] = HeaderView{"ce_specversion", 14, "1.0", 3, false};
  hv[fixed + 4] = HeaderView{"ce_time", 7, ce_time.first, ce_time.second, false};
  hv[fixed + 5] = HeaderView{"content-type", 12, ctype.first, ctype.second, false};

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

// Waits (bounded) for the batch in flight; finishes it when everything is answered.
// Returns the delay before the next tick.
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
    int rc = rt.producer->produce(g_progress_topic, 0, key.data(), key.size(), false, value.data(),
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

// While a batch is at Kafka, read the next one (the rows after it; exactly_once records
// it), so that it can be produced as soon as the current one is settled. At most one
// batch is ever at Kafka. The read returns nothing when a row below the batch in flight
// has become visible meanwhile (a transaction that took a lower id committed late): the
// next batch then comes from a full scan, so per-key order is the same as without the
// pipeline. (For writers that serialise on a key, a late row whose successor of the same
// key is visible is itself visible in that snapshot.) A full scan also happens at least
// every kMaxPipelined batches.
constexpr int kMaxPipelined = 8;

void maybe_prefetch(Runtime& rt) {
  Inflight& f = *rt.inflight;
  if (rt.has_next || rt.prefetch_tried || f.batch.any_failed() || rt.broker_down ||
      rt.pipelined >= kMaxPipelined || f.batch.size() == 0)
    return;
  rt.prefetch_tried = true;
  const int64_t number = rt.exactly_once ? rt.next_batch : 0;
  TimestampTz t = GetCurrentTimestamp();
  load_batch(rt, &rt.next_rows, number, f.batch.entry(f.batch.size() - 1).id,
             static_cast<int64_t>(f.batch.size()));
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

long continue_inflight_body(Runtime& rt);

long continue_inflight(Runtime& rt) {
  // Everything but the PostgreSQL transactions (timed inside) counts as Kafka time.
  TimestampTz start = GetCurrentTimestamp();
  RelaySlot* slot = my_slot();
  double pg_before = 0;
  if (slot != nullptr) {
    SpinLockAcquire(&g_shared->mutex);
    pg_before = slot->pg_seconds;
    SpinLockRelease(&g_shared->mutex);
  }
  long next = continue_inflight_body(rt);
  if (slot != nullptr) {
    double total = (GetCurrentTimestamp() - start) / 1e6;
    SpinLockAcquire(&g_shared->mutex);
    slot->kafka_seconds += std::max(0.0, total - (slot->pg_seconds - pg_before));
    SpinLockRelease(&g_shared->mutex);
  }
  return next;
}

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
  set_state(rt.breaker.state() == CircuitBreaker::State::kClosed && !rt.broker_down ? State::kRunning
                                                                                    : State::kBrokerUnavailable,
            0);
  if (rt.inflight) return 0;  // the next batch is already at Kafka
  if (transient) return rt.breaker.wait_ms(now_ms()) + 1;
  return done->batch.size() >= static_cast<size_t>(g_batch_size) ? 0 : 1;
}

long relay_tick() {
  Runtime& rt = runtime();
  if (g_brokers == nullptr || g_brokers[0] == '\0') {
    if (rt.producer) teardown(rt);
    set_state(State::kStopped, 0);
    return gucs::poll_interval_ms;
  }
  std::string fp = current_fingerprint();
  if (fp != rt.fingerprint) {
    if (rt.producer) ereport(LOG, (errmsg("pg_consistency relay: configuration changed, reconnecting")));
    teardown(rt);
    rt.fingerprint = fp;
    rt.breaker = CircuitBreaker();
  }
  if (!rt.producer) {
    if (!create_producer(rt)) {
      set_state(State::kStopped, 0);
      return gucs::poll_interval_ms;
    }
    ereport(LOG, (errmsg("pg_consistency relay: producing to %s in %s mode", g_brokers,
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
    return std::max<int64_t>(1, std::min<int64_t>(rt.breaker.wait_ms(now), gucs::poll_interval_ms));
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
      in_transaction("pg_consistency relay: clearing batch records", false, [] {
        static pg::SavedPlan clear("DELETE FROM consistency.relay_batches", {});
        exec_count(clear, nullptr, nullptr);
      });
      rt.ready = true;
    }
  }
  set_state(State::kRunning, 0);

  TimestampTz t_load = GetCurrentTimestamp();
  const int64_t number = rt.exactly_once ? rt.next_batch : 0;
  load_batch(rt, &rt.rows, number, std::numeric_limits<int64_t>::min());
  add_time(true, t_load);
  if (rt.rows.rows.empty()) return gucs::poll_interval_ms;
  if (rt.exactly_once) rt.next_batch++;
  rt.pipelined = 0;
  long next = start_batch(rt, rt.rows, number);
  return rt.inflight ? continue_inflight(rt) : next;
}

void relay_exit() {
  if (g_rt != nullptr) {
    try {
      teardown(*g_rt);
    } catch (...) {
    }
  }
  RelaySlot* slot = g_slot >= 0 && g_shared ? &g_shared->slots[g_slot] : nullptr;
  if (slot != nullptr) {
    SpinLockAcquire(&g_shared->mutex);
    slot->state = State::kStopped;
    slot->pid = 0;
    slot->in_flight = 0;
    SpinLockRelease(&g_shared->mutex);
  }
}

}  // namespace

const pg::Component kRelayComponent = {"relay", define_gucs, shmem_size, shmem_init, relay_tick, relay_exit};

void wake_at_commit() {
  if (g_brokers != nullptr && g_brokers[0] != '\0') worker::wake_at_commit(&kRelayComponent);
}

namespace {
pg::ComponentRegistrar registrar(&kRelayComponent);
}  // namespace

}  // namespace pgc::relay

// consistency._relay_runtime(): the relay's state in this database, from shared memory.
PGC_FUNCTION(pgc_relay_runtime) {
  using namespace pgc::relay;
  TupleDesc tupdesc;
  if (get_call_result_type(fcinfo, nullptr, &tupdesc) != TYPEFUNC_COMPOSITE)
    elog(ERROR, "pg_consistency: _relay_runtime must return a record");
  tupdesc = BlessTupleDesc(tupdesc);
  Datum values[9];
  bool nulls[9] = {};
  RelaySlot snap;
  memset(&snap, 0, sizeof snap);
  bool found = false;
  RelayShared* s = shared();
  if (s != nullptr) {
    SpinLockAcquire(&s->mutex);
    for (const auto& slot : s->slots) {
      if (slot.dboid == MyDatabaseId) {
        snap = slot;
        found = true;
        break;
      }
    }
    SpinLockRelease(&s->mutex);
  }
  State st = found && snap.pid != 0 ? snap.state : State::kStopped;
  values[0] = CStringGetTextDatum(state_name(st));
  values[1] = CStringGetTextDatum(g_mode == kExactlyOnce ? "exactly_once" : "at_least_once");
  nulls[2] = snap.last_error[0] == '\0';
  values[2] = nulls[2] ? 0 : CStringGetTextDatum(snap.last_error);
  nulls[3] = snap.last_error_at == 0;
  values[3] = TimestampTzGetDatum(snap.last_error_at);
  values[4] = Int64GetDatum(static_cast<int64>(snap.batches));
  values[5] = Int64GetDatum(static_cast<int64>(snap.errors));
  values[6] = Int64GetDatum(snap.in_flight);
  values[7] = Float8GetDatum(snap.pg_seconds);
  values[8] = Float8GetDatum(snap.kafka_seconds);
  PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
