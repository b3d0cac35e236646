#include "relay/outbox_store.hpp"

#include <optional>

#include "pg/spi.hpp"
#include "relay/batch.hpp"
#include "relay/settings.hpp"

extern "C" {
#include "access/xact.h"
#include "commands/dbcommands.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
}

namespace pgc::relay {

namespace {

// `ids` as an int8[] Datum in the current memory context.
Datum int8_array(const std::vector<int64_t>& ids) {
  return pg::pg_call([&] {
    Datum* elems = static_cast<Datum*>(palloc(sizeof(Datum) * (ids.size() + 1)));
    for (size_t i = 0; i < ids.size(); i++) elems[i] = Int64GetDatum(ids[i]);
    return PointerGetDatum(
        construct_array(elems, static_cast<int>(ids.size()), INT8OID, 8, true, TYPALIGN_DOUBLE));
  });
}

// `texts` as a text[] Datum in the current memory context.
Datum text_array(const std::vector<std::string>& texts) {
  return pg::pg_call([&] {
    Datum* elems = static_cast<Datum*>(palloc(sizeof(Datum) * (texts.size() + 1)));
    for (size_t i = 0; i < texts.size(); i++)
      elems[i] =
          PointerGetDatum(cstring_to_text_with_len(texts[i].data(), static_cast<int>(texts[i].size())));
    return PointerGetDatum(
        construct_array(elems, static_cast<int>(texts.size()), TEXTOID, -1, false, TYPALIGN_INT));
  });
}

// Runs a read-write statement; returns how many rows it processed.
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

}  // namespace

// Reads the next batch of rows in id order. A row whose earlier attempt failed goes
// alone, so that a refusal is pinned on the message that caused it (a broker refuses a
// whole record batch, neighbours included). exactly_once: the batch's ids are recorded in
// relay_batches in the same transaction, committed synchronously, before anything of it
// can be committed to Kafka.
// after_id: rows with a greater id only. below: when >= 0, return rows only if exactly
// `below` rows with id <= after_id are visible in the same snapshot (the batch in flight),
// i.e. no transaction with a lower id has committed late: its rows must not be overtaken.
void load_batch(RowSet* set, int64_t record_as, int64_t after_id, int64_t below, std::string* ce_source) {
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
    if (ce_source->empty()) {
      char* db = pg::pg_call([] { return get_database_name(MyDatabaseId); });
      *ce_source = std::string("/pg_consistency/") + (db ? db : "");
    }
    static pg::SavedPlan guarded(
        "WITH below AS (SELECT pg_catalog.count(*) AS n FROM consistency.outbox WHERE id "
        "OPERATOR(pg_catalog.<=) $2) "
        "SELECT id, topic, key, payload, headers, content_type, created_at, attempts "
        "FROM consistency.outbox WHERE id OPERATOR(pg_catalog.>) $2 "
        "AND (SELECT n FROM below) OPERATOR(pg_catalog.=) $3 ORDER BY id LIMIT $1",
        {INT4OID, INT8OID, INT8OID});
    Datum args[3] = {Int32GetDatum(settings::batch_size), Int64GetDatum(after_id), Int64GetDatum(below)};
    pg::pg_call([&] { (below >= 0 ? guarded : plan).execute(args, nullptr, true, settings::batch_size); });
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
        "UPDATE consistency.outbox o SET attempts = o.attempts OPERATOR(pg_catalog.+) 1, last_error = "
        "f.reason "
        "FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[]), pg_catalog.unnest($2::pg_catalog.text[])) "
        "AS f(id, reason) "
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
      Datum b[2] = {a[0], Int32GetDatum(settings::max_attempts)};
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
        "WITH fin AS (DELETE FROM consistency.relay_batches WHERE batch OPERATOR(pg_catalog.<=) $1 RETURNING "
        "ids), "
        "gone AS (DELETE FROM consistency.outbox o USING fin WHERE o.id OPERATOR(pg_catalog.=) ANY(fin.ids) "
        "RETURNING 1) "
        "UPDATE consistency.relay_stats SET delivered_total = delivered_total OPERATOR(pg_catalog.+) "
        "(SELECT pg_catalog.count(*) FROM gone), "
        "batches_total = batches_total OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM fin), "
        "last_batch = greatest(last_batch, $1), last_delivery_at = CASE WHEN EXISTS (SELECT 1 FROM gone) "
        "THEN pg_catalog.clock_timestamp() ELSE last_delivery_at END",
        {INT8OID});
    static pg::SavedPlan discard(
        "DELETE FROM consistency.relay_batches WHERE batch OPERATOR(pg_catalog.>) $1", {INT8OID});
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
      ereport(LOG,
              (errmsg("pg_consistency relay: recovery: Kafka holds batches up to %lld committed; open batch "
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

void clear_batch_records() {
  in_transaction("pg_consistency relay: clearing batch records", false, [] {
    static pg::SavedPlan clear("DELETE FROM consistency.relay_batches", {});
    exec_count(clear, nullptr, nullptr);
  });
}

}  // namespace pgc::relay
