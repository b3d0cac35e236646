// The inbox's SQL functions: create_consumer, drop_consumer, pause_consumer,
// resume_consumer, reset_consumer, retry_consumer_dead_letters. They run as their caller
// (checked here: who may create with which handler, who may act on a consumer) and write
// the catalog with the extension owner's rights inside pgc::pg::OwnerScope.
#include <set>
#include <string>
#include <vector>

#include "eventstore/core.hpp"
#include "inbox/apply.hpp"
#include "inbox/component.hpp"
#include "outbox/names.hpp"
#include "pg/guard.hpp"
#include "pg/run_as.hpp"
#include "pg/spi.hpp"
#include "pg/text.hpp"
#include "worker/wake.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
}

namespace {

using pgc::Error;
using pgc::pg::pg_call;
using pgc::pg::SavedPlan;
namespace inbox = pgc::inbox;
namespace sqlstate = pgc::sqlstate;

constexpr std::size_t kMaxNameBytes = 200;

std::string text_arg(FunctionCallInfo fcinfo, int i, const char* what) {
  if (PG_ARGISNULL(i)) throw pgc::invalid_argument(std::string(what) + " must not be NULL");
  return pg_call([&] {
    text* t = PG_GETARG_TEXT_PP(i);
    return std::string(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
  });
}

std::string shown(const std::string& s) { return pgc::pg::clipped(s.data(), static_cast<int>(s.size())); }

std::string name_arg(FunctionCallInfo fcinfo, int i) {
  std::string name = text_arg(fcinfo, i, "consumer name");
  auto p = pgc::eventstore::object_name_problem("consumer name", name, kMaxNameBytes, true);
  if (p) throw pgc::invalid_argument(*p);
  return name;
}

void check_topic(const std::string& topic) {
  auto p = pgc::outbox::topic_name_problem(topic);
  if (p) throw pgc::invalid_argument("invalid topic name \"" + shown(topic) + "\": " + *p);
}

std::vector<std::string> topics_arg(FunctionCallInfo fcinfo, int i) {
  if (PG_ARGISNULL(i)) throw pgc::invalid_argument("topics must not be NULL");
  std::vector<std::string> topics;
  bool has_null = false;
  pg_call([&] {
    Datum* elems;
    bool* nulls;
    int n;
    deconstruct_array(PG_GETARG_ARRAYTYPE_P(i), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
    for (int k = 0; k < n; k++) {
      if (nulls[k]) {
        has_null = true;
        continue;
      }
      text* t = DatumGetTextPP(elems[k]);
      topics.emplace_back(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
    }
  });
  if (has_null) throw pgc::invalid_argument("topics must not contain NULL");
  if (topics.empty()) throw pgc::invalid_argument("topics must name at least one topic");
  std::set<std::string> seen;
  for (const auto& t : topics) {
    check_topic(t);
    if (!seen.insert(t).second) throw pgc::invalid_argument("topic \"" + t + "\" is listed twice");
  }
  return topics;
}

// The handler's value type: false for jsonb, true for bytea; CS002 for any other shape.
bool check_handler(Oid fn) {
  bool found = false, ok = false, raw = false;
  std::string shown_fn;
  pg_call([&] {
    HeapTuple tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
    if (!HeapTupleIsValid(tup)) return;
    found = true;
    Form_pg_proc p = reinterpret_cast<Form_pg_proc>(GETSTRUCT(tup));
    static const Oid expected[6] = {TEXTOID, INT4OID, INT8OID, TEXTOID, JSONBOID, JSONBOID};
    ok = p->pronargs == 6 && p->prorettype == VOIDOID && !p->proretset && p->prokind == PROKIND_FUNCTION;
    for (int k = 0; ok && k < 6; k++)
      ok = p->proargtypes.values[k] == expected[k] || (k == 4 && p->proargtypes.values[k] == BYTEAOID);
    raw = ok && p->proargtypes.values[4] == BYTEAOID;
    ReleaseSysCache(tup);
    shown_fn = format_procedure(fn);
  });
  if (!found) throw pgc::invalid_argument("handler function " + std::to_string(fn) + " does not exist");
  if (!ok)
    throw pgc::invalid_argument("handler function " + shown_fn + " has the wrong signature",
                                "It must be handler(topic text, partition int, \"offset\" bigint, key text, "
                                "value jsonb or bytea, headers jsonb) RETURNS void.");
  return raw;
}

[[noreturn]] void throw_unknown(const std::string& name) {
  throw Error(sqlstate::kUnknownObject, "consumer \"" + shown(name) + "\" does not exist", "",
              "See consistency.consumers for the existing ones.");
}

// Runs plan with args as the extension owner; returns SPI_processed.
uint64 run_as_owner(SavedPlan& plan, Datum* args, const char* nulls) {
  pgc::pg::OwnerScope as_owner(inbox::catalog_owner());
  return pg_call([&] {
    plan.execute(args, nulls, false);
    return SPI_processed;
  });
}

Datum text_datum(const std::string& s) {
  return pg_call([&] { return PointerGetDatum(cstring_to_text_with_len(s.data(), s.size())); });
}

// Locks consumer `name` and checks that the caller may act on it (its owner, a member of
// the owner's role, or a consistency_admin). Returns the row's owner, handler and kind.
inbox::ConsumerDef lock_for_caller(const std::string& name, const char* action) {
  static SavedPlan plan(
      "SELECT owner, consistency._bound_function(handler, handler_oid, bound_cluster), raw_value "
      "FROM consistency.consumer_state "
      "WHERE name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
      {TEXTOID});
  Datum v[1] = {text_datum(name)};
  if (run_as_owner(plan, v, nullptr) == 0) throw_unknown(name);
  inbox::ConsumerDef c;
  c.name = name;
  bool allowed = false;
  pg_call([&] {
    bool isnull;
    c.owner = DatumGetObjectId(pgc::pg::spi_value(0, 1, &isnull));
    c.handler = DatumGetObjectId(pgc::pg::spi_value(0, 2, &isnull));
    c.raw_value = DatumGetBool(pgc::pg::spi_value(0, 3, &isnull));
    Oid caller = GetUserId();
    Oid admin = get_role_oid("consistency_admin", true);
    allowed = has_privs_of_role(caller, c.owner) || (OidIsValid(admin) && has_privs_of_role(caller, admin));
  });
  if (!allowed)
    throw Error(sqlstate::kInsufficientPrivilege,
                std::string("permission denied to ") + action + " consumer \"" + shown(name) + "\"", "",
                "Only the role that created the consumer (or a member of it) and consistency_admin may.");
  return c;
}

void spi_connect() {
  pg_call([] { pgc::pg::spi_connect(); });
}
void spi_finish() {
  pg_call([] { SPI_finish(); });
}

// Sets the status of a consumer (pause/resume) and wakes its process.
void set_status(FunctionCallInfo fcinfo, const char* status, const char* action) {
  std::string name = name_arg(fcinfo, 0);
  static SavedPlan plan(
      "UPDATE consistency.consumer_state SET status = $2 WHERE name OPERATOR(pg_catalog.=) $1",
      {TEXTOID, TEXTOID});
  spi_connect();
  lock_for_caller(name, action);
  Datum v[2] = {text_datum(name), text_datum(status)};
  run_as_owner(plan, v, nullptr);
  spi_finish();
  inbox::wake_consumers_at_commit();
}

}  // namespace

// consistency.create_consumer(name text, topics text[], handler regprocedure, start_from text)
PGC_FUNCTION(pgc_create_consumer) {
  std::string name = name_arg(fcinfo, 0);
  std::vector<std::string> topics = topics_arg(fcinfo, 1);
  if (PG_ARGISNULL(2)) throw pgc::invalid_argument("handler must not be NULL");
  Oid handler = PG_GETARG_OID(2);
  bool raw = check_handler(handler);
  std::string start_from = PG_ARGISNULL(3) ? "earliest" : text_arg(fcinfo, 3, "start_from");
  if (start_from != "earliest" && start_from != "latest")
    throw pgc::invalid_argument("start_from must be 'earliest' or 'latest', not \"" + shown(start_from) +
                                "\"");
  Oid caller = GetUserId();
  // Handlers run as the role that creates the consumer: it must be allowed to call the
  // handler (checked again before every message).
  pg_call([&] { pgc::pg::require_execute(handler, caller, "The consumer's owner"); });
  static SavedPlan insert(
      "INSERT INTO consistency.consumer_state (name, topics, handler_oid, raw_value, owner, start_from) "
      "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
      {TEXTOID, TEXTARRAYOID, REGPROCEDUREOID, BOOLOID, OIDOID, TEXTOID});
  spi_connect();
  Datum topics_array = pg_call([&] {
    std::vector<Datum> elems;
    for (const auto& t : topics)
      elems.push_back(PointerGetDatum(cstring_to_text_with_len(t.data(), t.size())));
    return PointerGetDatum(
        construct_array(elems.data(), static_cast<int>(elems.size()), TEXTOID, -1, false, TYPALIGN_INT));
  });
  Datum v[6] = {text_datum(name),         topics_array,          ObjectIdGetDatum(handler), BoolGetDatum(raw),
                ObjectIdGetDatum(caller), text_datum(start_from)};
  uint64 inserted = run_as_owner(insert, v, nullptr);
  spi_finish();
  if (inserted == 0)
    throw Error("42710", "consumer \"" + shown(name) + "\" already exists", "",
                "Drop it first, or replay it with consistency.reset_consumer.");
  inbox::wake_consumers_at_commit();
  PG_RETURN_VOID();
}

// consistency.drop_consumer(name text): its offsets, dead letters and dedupe rows go too.
PGC_FUNCTION(pgc_drop_consumer) {
  std::string name = name_arg(fcinfo, 0);
  static SavedPlan plan("DELETE FROM consistency.consumer_state WHERE name OPERATOR(pg_catalog.=) $1",
                        {TEXTOID});
  spi_connect();
  lock_for_caller(name, "drop");
  Datum v[1] = {text_datum(name)};
  run_as_owner(plan, v, nullptr);
  spi_finish();
  inbox::wake_consumers_at_commit();
  PG_RETURN_VOID();
}

// consistency.pause_consumer(name text)
PGC_FUNCTION(pgc_pause_consumer) {
  set_status(fcinfo, "paused", "pause");
  PG_RETURN_VOID();
}

// consistency.resume_consumer(name text)
PGC_FUNCTION(pgc_resume_consumer) {
  set_status(fcinfo, "running", "resume");
  PG_RETURN_VOID();
}

// consistency.reset_consumer(name text, topic text, partition int, "offset" bigint): the
// partition is read again from `offset`; the consumer's process re-reads its offsets.
PGC_FUNCTION(pgc_reset_consumer) {
  std::string name = name_arg(fcinfo, 0);
  std::string topic = text_arg(fcinfo, 1, "topic");
  check_topic(topic);
  if (PG_ARGISNULL(2) || PG_GETARG_INT32(2) < 0)
    throw pgc::invalid_argument("partition must be a partition number (0 or more)");
  if (PG_ARGISNULL(3) || PG_GETARG_INT64(3) < 0)
    throw pgc::invalid_argument("offset must be an offset (0 or more)");
  int32 partition = PG_GETARG_INT32(2);
  int64 offset = PG_GETARG_INT64(3);
  static SavedPlan reads(
      "SELECT 1 FROM consistency.consumer_state WHERE name OPERATOR(pg_catalog.=) $1 "
      "AND $2 OPERATOR(pg_catalog.=) ANY (topics)",
      {TEXTOID, TEXTOID});
  static SavedPlan upsert(
      "INSERT INTO consistency.consumer_offsets AS o (consumer, topic, partition, next_offset) "
      "VALUES ($1, $2, $3, $4) ON CONFLICT (consumer, topic, partition) DO UPDATE "
      "SET next_offset = excluded.next_offset, attempts = 0, last_error = NULL, updated_at = "
      "pg_catalog.now()",
      {TEXTOID, TEXTOID, INT4OID, INT8OID});
  static SavedPlan bump(
      "UPDATE consistency.consumer_state SET generation = generation OPERATOR(pg_catalog.+) 1 "
      "WHERE name OPERATOR(pg_catalog.=) $1",
      {TEXTOID});
  spi_connect();
  lock_for_caller(name, "reset");
  Datum v[4] = {text_datum(name), text_datum(topic), Int32GetDatum(partition), Int64GetDatum(offset)};
  if (run_as_owner(reads, v, nullptr) == 0)
    throw pgc::invalid_argument("consumer \"" + shown(name) + "\" does not read topic \"" + topic + "\"");
  run_as_owner(upsert, v, nullptr);
  run_as_owner(bump, v, nullptr);
  spi_finish();
  inbox::wake_consumers_at_commit();
  PG_RETURN_VOID();
}

// consistency.retry_consumer_dead_letters(consumer text) RETURNS int: runs the handler
// again, now, on each of the consumer's dead letters (in partition order, each in its
// own subtransaction, as the consumer's owner); the ones that succeed leave the table,
// the others keep their row with the new reason. Returns how many succeeded.
PGC_FUNCTION(pgc_retry_consumer_dead_letters) {
  std::string name = name_arg(fcinfo, 0);
  static SavedPlan select(
      "SELECT id, topic, partition, \"offset\", key, value, headers::pg_catalog.text "
      "FROM consistency.consumer_dead_letters WHERE consumer OPERATOR(pg_catalog.=) $1 "
      "ORDER BY topic, partition, \"offset\"",
      {TEXTOID});
  static SavedPlan remove("DELETE FROM consistency.consumer_dead_letters WHERE id OPERATOR(pg_catalog.=) $1",
                          {INT8OID});
  static SavedPlan update(
      "UPDATE consistency.consumer_dead_letters SET reason = $2, failed_at = pg_catalog.now() "
      "WHERE id OPERATOR(pg_catalog.=) $1",
      {INT8OID, TEXTOID});
  spi_connect();
  inbox::ConsumerDef c = lock_for_caller(name, "retry the dead letters of");
  Datum v[1] = {text_datum(name)};
  uint64 n = run_as_owner(select, v, nullptr);
  struct Row {
    int64 id;
    inbox::Message m;
  };
  std::vector<Row> rows;
  pg_call([&] {
    for (uint64 r = 0; r < n; r++) {
      Row row;
      bool isnull;
      row.id = DatumGetInt64(pgc::pg::spi_value(r, 1, &isnull));
      row.m.topic = TextDatumGetCString(pgc::pg::spi_value(r, 2, &isnull));
      row.m.partition = DatumGetInt32(pgc::pg::spi_value(r, 3, &isnull));
      row.m.offset = DatumGetInt64(pgc::pg::spi_value(r, 4, &isnull));
      Datum key = pgc::pg::spi_value(r, 5, &row.m.key_null);
      if (!row.m.key_null) row.m.key = TextDatumGetCString(key);
      Datum value = pgc::pg::spi_value(r, 6, &row.m.value_null);
      if (!row.m.value_null) {
        bytea* b = DatumGetByteaPP(value);
        row.m.value.assign(VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
      }
      rows.push_back(std::move(row));
    }
  });
  // Headers are read back as text from jsonb: {"name": "value"|null}.
  static SavedPlan headers_plan(
      "SELECT key, value FROM pg_catalog.jsonb_each_text((SELECT headers FROM "
      "consistency.consumer_dead_letters "
      "WHERE id OPERATOR(pg_catalog.=) $1))",
      {INT8OID});
  int32 done = 0;
  for (auto& row : rows) {
    Datum idv[2] = {Int64GetDatum(row.id), 0};
    uint64 hn = run_as_owner(headers_plan, idv, nullptr);
    pg_call([&] {
      for (uint64 r = 0; r < hn; r++) {
        pgc::relay::Header h;
        bool isnull;
        h.name = TextDatumGetCString(pgc::pg::spi_value(r, 1, &isnull));
        Datum hv = pgc::pg::spi_value(r, 2, &h.null);
        if (!h.null) h.value = TextDatumGetCString(hv);
        row.m.headers.push_back(std::move(h));
      }
    });
    std::string error;
    inbox::Outcome o = inbox::apply_message(c, row.m, &error);
    if (o == inbox::Outcome::kApplied || o == inbox::Outcome::kDeduplicated) {
      run_as_owner(remove, idv, nullptr);
      done++;
    } else {
      idv[1] = text_datum(error);
      run_as_owner(update, idv, nullptr);
    }
  }
  spi_finish();
  PG_RETURN_INT32(done);
}
