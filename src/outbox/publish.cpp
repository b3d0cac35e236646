// consistency.publish() and the outbox's small SQL-callable helpers. publish() checks its
// arguments, stores the payload as the exact bytes Kafka will get, inserts one outbox row
// with a saved plan in the caller's transaction, and asks for the relay to be woken when
// (and only if) that transaction commits.
#include "correlation/context.hpp"
#include "outbox/names.hpp"
#include "pg/guard.hpp"
#include "pg/search_path.hpp"
#include "pg/spi.hpp"
#include "pg/text.hpp"
#include "relay/murmur2.hpp"
#include "relay/relay.hpp"

extern "C" {
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/fmgrprotos.h"
}

namespace {

using pgc::invalid_argument;

// Header names publish() refuses: the relay sets them from the row itself.
bool reserved_header(const char* name, int len) {
  return (len == 9 && memcmp(name, "outbox_id", 9) == 0) ||
         (len == 14 && memcmp(name, "ce_specversion", 14) == 0);
}

// Raises CS002 unless `data` is a valid Kafka topic name.
void check_topic(const char* data, int len) {
  if (auto problem = pgc::outbox::topic_name_problem(std::string_view(data, len)))
    throw invalid_argument("invalid topic \"" + pgc::pg::clipped(data, len, 300) + "\": " + *problem, {},
                           "Kafka topic names have 1 to 249 characters of [a-zA-Z0-9._-].");
}

// Checks that headers is an object of scalar values with acceptable names. Plain data
// while PostgreSQL's jsonb iterator runs; the C++ error is thrown afterwards.
void check_headers(Jsonb* headers) {
  char problem[400] = "";
  if (!JB_ROOT_IS_OBJECT(headers) || JB_ROOT_IS_SCALAR(headers)) {
    snprintf(problem, sizeof problem, "headers must be a JSON object of header names and scalar values");
  } else if (JB_ROOT_COUNT(headers) > 0) {
    JsonbIterator* it = JsonbIteratorInit(&headers->root);
    JsonbValue v;
    JsonbIteratorToken tok;
    char name[300] = "";
    while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE && problem[0] == '\0') {
      if (tok == WJB_KEY) {
        int len = v.val.string.len;
        // Cut on a character boundary: a client in another encoding must be able to
        // convert the message.
        snprintf(name, sizeof name, "%.*s", pg_mbcliplen(v.val.string.val, len, 200), v.val.string.val);
        auto bad = pgc::outbox::header_name_problem(std::string_view(v.val.string.val, len));
        if (bad) {
          snprintf(problem, sizeof problem, "header \"%s\": %s", name, bad->c_str());
        } else if (reserved_header(v.val.string.val, len)) {
          snprintf(problem, sizeof problem, "header \"%s\" is set by the relay and cannot be given", name);
        }
      } else if (tok == WJB_VALUE) {
        if (v.type != jbvString && v.type != jbvNumeric && v.type != jbvBool && v.type != jbvNull)
          snprintf(problem, sizeof problem,
                   "header \"%s\" has a nested value (header values are strings, numbers, booleans or null)",
                   name);
      }
    }
  }
  if (problem[0] != '\0') throw invalid_argument(std::string("invalid headers: ") + problem);
}

const char* kEmptyHeaders = "{}";

// Inserts the outbox row as the function's owner with the catalog-only search path;
// returns its id.
int64 insert_row(text* topic, text* key, bytea* payload, Jsonb* headers, const char* content_type) {
  return pgc::pg::with_catalog_search_path([&] {
    return pgc::pg::pg_call([&]() -> int64 {
      static pgc::pg::SavedPlan plan(
          "INSERT INTO consistency.outbox (topic, key, payload, headers, content_type) "
          "VALUES ($1, $2, $3, $4, $5) RETURNING id",
          {TEXTOID, TEXTOID, BYTEAOID, JSONBOID, TEXTOID});
      pgc::pg::spi_connect();
      Datum values[5] = {PointerGetDatum(topic), PointerGetDatum(key), PointerGetDatum(payload),
                         PointerGetDatum(headers), CStringGetTextDatum(content_type)};
      char nulls[5] = {' ', key ? ' ' : 'n', payload ? ' ' : 'n', ' ', ' '};
      plan.execute(values, nulls, false, 1);
      if (SPI_processed != 1) elog(ERROR, "pg_consistency: outbox insert returned no id");
      int64 id = pgc::pg::spi_int64(0, 1);
      SPI_finish();
      return id;
    });
  });
}

// The common part of the publish overloads; payload is already bytes (or NULL). The
// correlation ids in effect become headers unless the caller gave those headers.
Datum publish_common(FunctionCallInfo fcinfo, bytea* payload, const char* content_type) {
  if (PG_ARGISNULL(0)) throw invalid_argument("invalid topic: topic must not be NULL");
  text* topic = PG_GETARG_TEXT_PP(0);
  check_topic(VARDATA_ANY(topic), VARSIZE_ANY_EXHDR(topic));
  text* key = PG_ARGISNULL(1) ? nullptr : PG_GETARG_TEXT_PP(1);
  Jsonb* headers = nullptr;
  if (PG_NARGS() > 3 && !PG_ARGISNULL(3)) {
    headers = PG_GETARG_JSONB_P(3);
    check_headers(headers);
  } else {
    headers = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(kEmptyHeaders)));
  }
  headers = pgc::correlation::add_missing(headers, pgc::correlation::current_ids());
  int64 id = insert_row(topic, key, payload, headers, content_type);
  pgc::relay::wake_at_commit();
  PG_RETURN_INT64(id);
}

// jsonb -> its text form as bytea, written straight into the varlena.
bytea* jsonb_bytes(Jsonb* jb) {
  StringInfoData buf;
  initStringInfo(&buf);
  appendStringInfoSpaces(&buf, VARHDRSZ);
  JsonbToCString(&buf, &jb->root, VARSIZE(jb));
  SET_VARSIZE(buf.data, buf.len);
  return reinterpret_cast<bytea*>(buf.data);
}

}  // namespace

// consistency.publish(topic, key, payload jsonb, headers): the payload as JSON text.
PGC_FUNCTION(pgc_publish_jsonb) {
  bytea* payload = PG_ARGISNULL(2) ? nullptr : jsonb_bytes(PG_GETARG_JSONB_P(2));
  return publish_common(fcinfo, payload, "application/json");
}

// consistency.publish(topic, key, payload bytea, headers): the payload's bytes as they are.
PGC_FUNCTION(pgc_publish_bytea) {
  bytea* payload = PG_ARGISNULL(2) ? nullptr : PG_GETARG_BYTEA_PP(2);
  return publish_common(fcinfo, payload, "application/octet-stream");
}

// consistency.publish(topic, key, payload text, headers): the text must be JSON (CS002
// otherwise); stored as jsonb's text form.
PGC_FUNCTION(pgc_publish_text) {
  bytea* payload = nullptr;
  if (!PG_ARGISNULL(2)) {
    char* json = text_to_cstring(PG_GETARG_TEXT_PP(2));
    Jsonb* jb = nullptr;
    try {
      jb = pgc::pg::pg_call(
          [&] { return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json))); });
    } catch (const pgc::pg::PgError& e) {
      const char* detail = e.edata() && e.edata()->detail ? e.edata()->detail : "";
      throw invalid_argument(std::string("invalid payload: not valid JSON: ") + e.what(), detail,
                             "Pass a jsonb value, or a bytea value for raw bytes.");
    }
    payload = jsonb_bytes(jb);
  }
  return publish_common(fcinfo, payload, "application/json");
}

// consistency._check_topic(topic): raises CS002 for a name Kafka would refuse.
PGC_FUNCTION(pgc_check_topic) {
  if (PG_ARGISNULL(0)) throw invalid_argument("invalid topic: topic must not be NULL");
  text* topic = PG_GETARG_TEXT_PP(0);
  check_topic(VARDATA_ANY(topic), VARSIZE_ANY_EXHDR(topic));
  PG_RETURN_VOID();
}

// consistency._check_category(category): raises CS002 for a category no stream can have.
PGC_FUNCTION(pgc_check_category) {
  if (PG_ARGISNULL(0)) throw invalid_argument("invalid category: category must not be NULL");
  text* cat = PG_GETARG_TEXT_PP(0);
  std::string_view name(VARDATA_ANY(cat), VARSIZE_ANY_EXHDR(cat));
  if (auto problem = pgc::outbox::category_problem(name))
    throw invalid_argument("invalid category \"" +
                           pgc::pg::clipped(name.data(), static_cast<int>(name.size())) + "\": " + *problem);
  PG_RETURN_VOID();
}

// consistency._outbox_wake(): wakes the relay once this transaction commits.
PGC_FUNCTION(pgc_outbox_wake) {
  pgc::relay::wake_at_commit();
  PG_RETURN_VOID();
}

// consistency.kafka_partition(key, partitions): the partition Kafka's Java client picks.
PGC_FUNCTION(pgc_kafka_partition) {
  text* key = PG_GETARG_TEXT_PP(0);
  int32 partitions = PG_GETARG_INT32(1);
  if (partitions <= 0)
    throw invalid_argument("invalid partition count " + std::to_string(partitions) + ": must be at least 1");
  PG_RETURN_INT32(
      pgc::relay::java_partition(std::string_view(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key)), partitions));
}
