// append_events / append_event / stream_version.
//
// Concurrency: every append locks its stream row in `consistency.streams` (an upsert or
// an UPDATE guarded by the expected version), so appends to one stream serialise and the
// loser of a race sees the winner's version after the lock wait (READ COMMITTED re-checks
// the row) and gets CS001 -- never a unique violation. Versions are assigned from the
// locked row, positions from the gap-safe position source.
#include "eventstore/core.hpp"
#include "eventstore/es.hpp"
#include "pg/guard.hpp"

extern "C" {
#include "utils/array.h"
#include "utils/lsyscache.h"
}

namespace pgc::eventstore {

namespace {

// ---- validation helpers (no PostgreSQL calls while C++ strings are alive) -----------

// The stream of the call being validated, for messages.
const char* g_stream_for_messages = "";

std::string event_label(int index) {
  return "event " + std::to_string(index + 1) + " for stream \"" + shown_name(g_stream_for_messages) + "\"";
}

[[noreturn]] void throw_bad_event(int index, const char* problem) {
  throw invalid_argument(event_label(index) + ": " + problem);
}

void check_type(int index, const char* type, int len) {
  auto p = event_type_problem(std::string_view(type, len), database_is_utf8());
  if (p) throw_bad_event(index, p->c_str());
}

void check_expected(bool any, int64 v) {
  auto p = expected_version_problem(Expected{any, v});
  if (p) throw invalid_argument(*p);
}

[[noreturn]] void throw_wrong_version(const char* stream, bool any, int64 expected, int64 actual) {
  std::string exp = describe_expected(Expected{any, expected});
  std::string act = actual == 0 ? std::string("the stream does not exist (version 0)")
                                : "the stream is at version " + std::to_string(actual);
  throw Error(
      sqlstate::kWrongExpectedVersion,
      "wrong expected version for stream \"" + shown_name(stream) + "\": expected " + exp + ", but " + act,
      "", "Re-read the stream and retry the command.");
}

[[noreturn]] void throw_too_large(int index, int64 bytes) {
  throw invalid_argument(event_label(index) + " is " + std::to_string(bytes) + " bytes; the limit is " +
                             std::to_string(settings::max_event_bytes) + " bytes",
                         "The size counts the event's data and metadata in jsonb format.",
                         "Raise pg_consistency.max_event_bytes or store large payloads elsewhere.");
}

void parse_id(int index, const char* s, int len, pg_uuid_t* out) {
  if (!parse_uuid(std::string_view(s, len), out->data))
    throw_bad_event(index, "\"id\" must be a UUID string");
}

// ---- JSON input -----------------------------------------------------------------

Datum jsonb_from_binary(const JsonbValue* v) {
  JsonbValue copy = *v;
  return JsonbPGetDatum(JsonbValueToJsonb(&copy));
}

bool is_object_container(const JsonbValue* v) {
  return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

Datum empty_object() {
  static Datum cached = 0;
  if (cached == 0) {
    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    cached = DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));
    MemoryContextSwitchTo(old);
  }
  return cached;
}

// The bytes of data and metadata in jsonb format, varlena headers not counted (so the
// count does not depend on how a value happened to be stored or passed).
void check_size(int index, Datum data, Datum metadata) {
  int64 bytes = static_cast<int64>(VARSIZE_ANY_EXHDR(DatumGetPointer(data))) +
                static_cast<int64>(VARSIZE_ANY_EXHDR(DatumGetPointer(metadata)));
  if (bytes > settings::max_event_bytes) throw_too_large(index, bytes);
}

struct IdAt {
  pg_uuid_t id;
  int index;
};

int compare_id_at(const void* a, const void* b) {
  const IdAt* x = static_cast<const IdAt*>(a);
  const IdAt* y = static_cast<const IdAt*>(b);
  int c = memcmp(x->id.data, y->id.data, UUID_LEN);
  if (c != 0) return c;
  return x->index - y->index;
}

// The same id twice in one call is refused (naming the later event); sorting keeps large
// batches cheap.
void check_duplicate_ids(const EventInput* ev, int n) {
  IdAt* ids = static_cast<IdAt*>(palloc(sizeof(IdAt) * (n + 1)));
  int k = 0;
  for (int i = 0; i < n; i++)
    if (ev[i].has_id) ids[k++] = IdAt{ev[i].id, i};
  if (k < 2) return;
  qsort(ids, k, sizeof(IdAt), compare_id_at);
  int dup = -1;
  for (int i = 1; i < k; i++)
    if (memcmp(ids[i - 1].id.data, ids[i].id.data, UUID_LEN) == 0 && (dup < 0 || ids[i].index < dup))
      dup = ids[i].index;
  pfree(ids);
  if (dup >= 0) throw_bad_event(dup, "its \"id\" appears twice in the call");
}

// Parses the `events` argument of append_events into a palloc'd array.
EventInput* parse_events(Jsonb* events, int* count) {
  if (!JB_ROOT_IS_ARRAY(events) || JB_ROOT_IS_SCALAR(events))
    throw invalid_argument(
        "events must be a JSON array of event objects",
        "Each event is {\"type\": text, \"data\": object, \"metadata\"?: object, \"id\"?: uuid}.");
  int n = static_cast<int>(JsonContainerSize(&events->root));
  if (n == 0) throw invalid_argument("events must not be an empty array");
  EventInput* out = static_cast<EventInput*>(palloc0(sizeof(EventInput) * n));
  for (int i = 0; i < n; i++) {
    JsonbValue* elem = getIthJsonbValueFromContainer(&events->root, i);
    if (elem == nullptr || !is_object_container(elem)) throw_bad_event(i, "not a JSON object");
    JsonbContainer* obj = elem->val.binary.data;
    JsonbValue v;
    if (getKeyJsonValueFromContainer(obj, "type", 4, &v) == nullptr || v.type != jbvString)
      throw_bad_event(i, "\"type\" must be a string");
    check_type(i, v.val.string.val, v.val.string.len);
    out[i].type = cstring_to_text_with_len(v.val.string.val, v.val.string.len);
    if (getKeyJsonValueFromContainer(obj, "data", 4, &v) == nullptr || !is_object_container(&v))
      throw_bad_event(i, "\"data\" must be a JSON object");
    out[i].data = jsonb_from_binary(&v);
    if (getKeyJsonValueFromContainer(obj, "metadata", 8, &v) == nullptr || v.type == jbvNull) {
      out[i].metadata = empty_object();
    } else if (is_object_container(&v)) {
      out[i].metadata = jsonb_from_binary(&v);
    } else {
      throw_bad_event(i, "\"metadata\" must be a JSON object");
    }
    if (getKeyJsonValueFromContainer(obj, "id", 2, &v) != nullptr && v.type != jbvNull) {
      if (v.type != jbvString) throw_bad_event(i, "\"id\" must be a UUID string");
      parse_id(i, v.val.string.val, v.val.string.len, &out[i].id);
      out[i].has_id = true;
    }
    check_size(i, out[i].data, out[i].metadata);
  }
  check_duplicate_ids(out, n);
  *count = n;
  return out;
}

void random_uuid(pg_uuid_t* u) {
  if (!pg_strong_random(u->data, UUID_LEN))
    ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not generate random values")));
  u->data[6] = (u->data[6] & 0x0f) | 0x40;  // version 4
  u->data[8] = (u->data[8] & 0x3f) | 0x80;  // RFC 4122 variant
}

Datum uuid_datum(const pg_uuid_t* u) {
  pg_uuid_t* copy = static_cast<pg_uuid_t*>(palloc(sizeof(pg_uuid_t)));
  *copy = *u;
  return UUIDPGetDatum(copy);
}

ArrayType* make_array(Datum* elems, int n, Oid type, bool* nulls = nullptr) {
  int16 typlen;
  bool typbyval;
  char typalign;
  get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
  int dims[1] = {n};
  int lbs[1] = {1};
  return construct_md_array(elems, nulls, 1, dims, lbs, type, typlen, typbyval, typalign);
}

// ---- statements ---------------------------------------------------------------------

// One statement per append: a CTE that locks and advances the stream row, and the INSERT
// of the events, whose versions come from the row and whose positions come from the
// column default consistency._next_position() (the gap-safe position source), taken
// after the stream lock. No row from the CTE means no event is written.
//   $1 stream, $2 number of events, $3 expected version (when used),
//   one event: $4 id, $5 type, $6 schema version, $7 data, $8 metadata;
//   n events:  the same as arrays, inserted in array order.
#define STREAM_BUMP                                                                         \
  "WITH s AS (UPDATE consistency.streams SET version = version OPERATOR(pg_catalog.+) $2, " \
  "updated_at = pg_catalog.now() WHERE stream OPERATOR(pg_catalog.=) $1 RETURNING version) "
#define STREAM_EXPECT                                                                       \
  "WITH s AS (UPDATE consistency.streams SET version = version OPERATOR(pg_catalog.+) $2, " \
  "updated_at = pg_catalog.now() WHERE stream OPERATOR(pg_catalog.=) $1 "                   \
  "AND version OPERATOR(pg_catalog.=) $3 RETURNING version) "
#define STREAM_CREATE                                                             \
  "WITH s AS (INSERT INTO consistency.streams (stream, version) VALUES ($1, $2) " \
  "ON CONFLICT (stream) DO NOTHING RETURNING version) "
#define STREAM_UPSERT                                                                   \
  "WITH s AS (INSERT INTO consistency.streams AS st (stream, version) VALUES ($1, $2) " \
  "ON CONFLICT (stream) DO UPDATE SET version = st.version OPERATOR(pg_catalog.+) "     \
  "EXCLUDED.version, updated_at = pg_catalog.now() RETURNING version) "
#define EVENTS_ONE                                                                                    \
  "INSERT INTO consistency.events (stream, version, event_id, type, schema_version, data, metadata) " \
  "SELECT $1, s.version, $4, $5, $6, $7, $8 FROM s RETURNING version"
#define EVENTS_MANY                                                                                      \
  "INSERT INTO consistency.events (stream, version, event_id, type, schema_version, data, metadata) "    \
  "SELECT $1, s.version OPERATOR(pg_catalog.-) $2 OPERATOR(pg_catalog.+) u.o, u.i, u.t, u.sv, u.d, u.m " \
  "FROM s, ROWS FROM (pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), "             \
  "pg_catalog.unnest($7), pg_catalog.unnest($8)) WITH ORDINALITY AS u(i, t, sv, d, m, o) "               \
  "ORDER BY u.o RETURNING version"
#define ONE_TYPES \
  { TEXTOID, INT8OID, INT8OID, UUIDOID, TEXTOID, INT4OID, JSONBOID, JSONBOID }
#define MANY_TYPES \
  { TEXTOID, INT8OID, INT8OID, UUIDARRAYOID, TEXTARRAYOID, INT4ARRAYOID, JSONBARRAYOID, JSONBARRAYOID }

enum class StreamStep { kBump, kExpect, kCreate, kUpsert };

pg::SavedPlan& append_plan(StreamStep step, bool many) {
  static pg::SavedPlan bump1(STREAM_BUMP EVENTS_ONE, ONE_TYPES);
  static pg::SavedPlan bumpn(STREAM_BUMP EVENTS_MANY, MANY_TYPES);
  static pg::SavedPlan expect1(STREAM_EXPECT EVENTS_ONE, ONE_TYPES);
  static pg::SavedPlan expectn(STREAM_EXPECT EVENTS_MANY, MANY_TYPES);
  static pg::SavedPlan create1(STREAM_CREATE EVENTS_ONE, ONE_TYPES);
  static pg::SavedPlan createn(STREAM_CREATE EVENTS_MANY, MANY_TYPES);
  static pg::SavedPlan upsert1(STREAM_UPSERT EVENTS_ONE, ONE_TYPES);
  static pg::SavedPlan upsertn(STREAM_UPSERT EVENTS_MANY, MANY_TYPES);
  switch (step) {
    case StreamStep::kBump:
      return many ? bumpn : bump1;
    case StreamStep::kExpect:
      return many ? expectn : expect1;
    case StreamStep::kCreate:
      return many ? createn : create1;
    case StreamStep::kUpsert:
      return many ? upsertn : upsert1;
  }
  return bump1;
}

pg::SavedPlan& plan_version() {
  static pg::SavedPlan p("SELECT version FROM consistency.streams WHERE stream OPERATOR(pg_catalog.=) $1",
                         {TEXTOID});
  return p;
}
pg::SavedPlan& plan_lock() {
  static pg::SavedPlan p(
      "SELECT version FROM consistency.streams WHERE stream OPERATOR(pg_catalog.=) $1 FOR UPDATE", {TEXTOID});
  return p;
}
pg::SavedPlan& plan_create() {
  static pg::SavedPlan p(
      "INSERT INTO consistency.streams (stream, version) VALUES ($1, $2) "
      "ON CONFLICT (stream) DO NOTHING RETURNING version",
      {TEXTOID, INT8OID});
  return p;
}
pg::SavedPlan& plan_find_ids() {
  static pg::SavedPlan p(
      "SELECT u.ord, e.version, (e.type OPERATOR(pg_catalog.=) u.type AND e.data OPERATOR(pg_catalog.=) "
      "u.data "
      "AND e.metadata OPERATOR(pg_catalog.=) u.metadata) "
      "FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4), "
      "pg_catalog.unnest($5)) WITH ORDINALITY AS u(id, type, data, metadata, ord) "
      "JOIN consistency.events e ON e.event_id OPERATOR(pg_catalog.=) u.id AND e.stream "
      "OPERATOR(pg_catalog.=) $1",
      {TEXTOID, UUIDARRAYOID, TEXTARRAYOID, JSONBARRAYOID, JSONBARRAYOID});
  return p;
}
int64 current_version(Datum stream) {
  Datum v[1] = {stream};
  spi_run(plan_version(), v, nullptr, false, 1);
  if (SPI_processed == 0) return 0;
  return pg::spi_int64(0, 1);
}

// Locks the stream row for the idempotency path, creating it (version 0) if needed.
// Returns the version under the lock.
int64 lock_stream(Datum stream) {
  for (int attempt = 0; attempt < 100; attempt++) {
    Datum v1[1] = {stream};
    spi_run(plan_lock(), v1, nullptr, false, 1);
    if (SPI_processed > 0) return pg::spi_int64(0, 1);
    Datum v2[2] = {stream, Int64GetDatum(0)};
    spi_run(plan_create(), v2, nullptr, false);
    if (SPI_processed > 0) return 0;  // our new row: locked until we commit
    // Created concurrently and committed between our two statements: lock it now.
  }
  throw Error(sqlstate::kInternal, "could not lock the stream row after 100 attempts");
}

// The idempotency check of a call whose events carry ids. Returns 1 and sets *version
// when the same events were appended before, 0 when none of them was, and -1 with
// *clash set (palloc'd) when the call clashes with the stream.
int already_appended(Datum stream, EventInput* ev, int n, int64* version, char** clash) {
  Datum* ids = static_cast<Datum*>(palloc(sizeof(Datum) * n));
  bool* id_nulls = static_cast<bool*>(palloc(sizeof(bool) * n));
  Datum* types = static_cast<Datum*>(palloc(sizeof(Datum) * n));
  Datum* datas = static_cast<Datum*>(palloc(sizeof(Datum) * n));
  Datum* metas = static_cast<Datum*>(palloc(sizeof(Datum) * n));
  bool* has_id = static_cast<bool*>(palloc(sizeof(bool) * n));
  for (int i = 0; i < n; i++) {
    // An event without id is a NULL element, which matches no stored id. (Any UUID,
    // the nil UUID included, is a valid event id: no value may stand in for "none".)
    ids[i] = ev[i].has_id ? uuid_datum(&ev[i].id) : (Datum)0;
    id_nulls[i] = !ev[i].has_id;
    types[i] = PointerGetDatum(ev[i].type);
    datas[i] = ev[i].data;
    metas[i] = ev[i].metadata;
    has_id[i] = ev[i].has_id;
  }
  Datum args[5] = {stream, PointerGetDatum(make_array(ids, n, UUIDOID, id_nulls)),
                   PointerGetDatum(make_array(types, n, TEXTOID)),
                   PointerGetDatum(make_array(datas, n, JSONBOID)),
                   PointerGetDatum(make_array(metas, n, JSONBOID))};
  spi_run(plan_find_ids(), args, nullptr, false);
  uint64 found_n = SPI_processed;
  if (found_n == 0) return 0;
  size_t* idx = static_cast<size_t*>(palloc(sizeof(size_t) * found_n));
  int64* vers = static_cast<int64*>(palloc(sizeof(int64) * found_n));
  bool* same = static_cast<bool*>(palloc(sizeof(bool) * found_n));
  for (uint64 r = 0; r < found_n; r++) {
    bool isnull;
    idx[r] = static_cast<size_t>(pg::spi_int64(r, 1) - 1);
    vers[r] = pg::spi_int64(r, 2);
    Datum s = pg::spi_value(r, 3, &isnull);
    same[r] = !isnull && DatumGetBool(s);
  }
  int outcome = 0;
  int64 decided_version = 0;
  char reason[256];
  reason[0] = '\0';
  {
    // Pure decision; its strings die before any PostgreSQL call.
    std::vector<bool> has(has_id, has_id + n);
    std::vector<FoundEvent> found;
    for (uint64 r = 0; r < found_n; r++) found.push_back(FoundEvent{idx[r], vers[r], same[r]});
    IdempotencyDecision d = decide_idempotency(has, std::move(found));
    if (d.outcome == Idempotency::kAlreadyAppended) {
      outcome = 1;
      decided_version = d.version;
    } else if (d.outcome == Idempotency::kClash) {
      outcome = -1;
      snprintf(reason, sizeof(reason), "%s", d.reason.c_str());
    }
  }
  if (outcome == 1) *version = decided_version;
  if (outcome == -1) *clash = pstrdup(reason);
  return outcome;
}

[[noreturn]] void throw_clash(const char* stream_name, const char* reason) {
  throw Error(sqlstate::kWrongExpectedVersion,
              "event ids clash with events already in stream \"" + shown_name(stream_name) + "\": " + reason,
              "", "Resend exactly the same events (same ids, same order, same content) or use new ids.");
}

// Runs the append statement; returns the stream's new version, or 0 when the CTE
// produced no row (nothing written).
int64 run_append(StreamStep step, bool many, const Datum* args) {
  spi_run(append_plan(step, many), args, nullptr, false);
  if (SPI_processed == 0) return 0;
  return pg::spi_int64(SPI_processed - 1, 1);
}

int64 do_append(const char* stream_name, int stream_len, bool any, int64 expected, EventInput* ev, int n) {
  Datum stream = PointerGetDatum(cstring_to_text_with_len(stream_name, stream_len));
  bool any_id = false;
  for (int i = 0; i < n; i++) any_id |= ev[i].has_id;

  // Statement arguments (see EVENTS_ONE / EVENTS_MANY).
  Datum args[8];
  args[0] = stream;
  args[1] = Int64GetDatum(n);
  args[2] = Int64GetDatum(expected);
  bool many = n > 1;
  if (!many) {
    pg_uuid_t* id = static_cast<pg_uuid_t*>(palloc(sizeof(pg_uuid_t)));
    *id = ev[0].id;
    if (!ev[0].has_id) random_uuid(id);
    text* type = ev[0].type;
    args[3] = UUIDPGetDatum(id);
    args[4] = PointerGetDatum(type);
    args[6] = ev[0].data;
    args[7] = ev[0].metadata;
  } else {
    Datum* ids = static_cast<Datum*>(palloc(sizeof(Datum) * n));
    Datum* types = static_cast<Datum*>(palloc(sizeof(Datum) * n));
    Datum* datas = static_cast<Datum*>(palloc(sizeof(Datum) * n));
    Datum* metas = static_cast<Datum*>(palloc(sizeof(Datum) * n));
    pg_uuid_t* uuids = static_cast<pg_uuid_t*>(palloc(sizeof(pg_uuid_t) * n));
    for (int i = 0; i < n; i++) {
      uuids[i] = ev[i].id;
      if (!ev[i].has_id) random_uuid(&uuids[i]);
      ids[i] = UUIDPGetDatum(&uuids[i]);
      types[i] = PointerGetDatum(ev[i].type);
      datas[i] = ev[i].data;
      metas[i] = ev[i].metadata;
    }
    args[3] = PointerGetDatum(make_array(ids, n, UUIDOID));
    args[4] = PointerGetDatum(make_array(types, n, TEXTOID));
    args[6] = PointerGetDatum(make_array(datas, n, JSONBOID));
    args[7] = PointerGetDatum(make_array(metas, n, JSONBOID));
  }

  // Our statements run as the owner with the pinned path; our own errors are raised only
  // after leaving it (the C entry points are called from other C++ code).
  SavedUser su;
  pg::spi_connect();
  enter_owner(&su);

  // Appends are stamped with the latest schema version of their type.
  if (!many) {
    args[5] = Int32GetDatum(latest_schema_version(VARDATA_ANY(ev[0].type), VARSIZE_ANY_EXHDR(ev[0].type)));
  } else {
    Datum* svs = static_cast<Datum*>(palloc(sizeof(Datum) * n));
    for (int i = 0; i < n; i++)
      svs[i] = Int32GetDatum(latest_schema_version(VARDATA_ANY(ev[i].type), VARSIZE_ANY_EXHDR(ev[i].type)));
    args[5] = PointerGetDatum(make_array(svs, n, INT4OID));
  }

  int64 version = 0;
  int64 wrong_actual = -1;  // >= 0: the expected version did not match this one
  char* clash = nullptr;
  if (!any_id) {
    if (any) {
      // Most appends go to an existing stream: a plain UPDATE is the cheapest lock; a
      // new stream (or one created concurrently) goes through the upsert.
      version = run_append(StreamStep::kBump, many, args);
      if (version == 0) version = run_append(StreamStep::kUpsert, many, args);
      if (version == 0)
        elog(ERROR, "pg_consistency: upsert of stream \"%s\" returned no row",
             clipped_name(stream_name, stream_len));
    } else {
      version = run_append(expected == 0 ? StreamStep::kCreate : StreamStep::kExpect, many, args);
      if (version == 0) wrong_actual = current_version(stream);
    }
  } else {
    int64 current = lock_stream(stream);
    int64 prior = 0;
    int seen = current > 0 ? already_appended(stream, ev, n, &prior, &clash) : 0;
    if (seen == 1) {
      version = prior;
    } else if (seen == 0 && !any && expected != current) {
      wrong_actual = current;
    } else if (seen == 0) {
      args[2] = Int64GetDatum(current);
      version = run_append(StreamStep::kExpect, many, args);
      if (version == 0)
        elog(ERROR, "pg_consistency: locked stream \"%s\" changed under the lock",
             clipped_name(stream_name, stream_len));
      wake_subscriptions_at_commit();
    }
  }
  leave_owner(&su);
  SPI_finish();
  if (clash != nullptr) throw_clash(stream_name, clash);
  if (wrong_actual >= 0) throw_wrong_version(stream_name, false, expected, wrong_actual);
  if (!any_id) wake_subscriptions_at_commit();
  return version;
}

}  // namespace

int64 append_any(const char* stream, Jsonb* events) {
  g_stream_for_messages = stream;
  int n = 0;
  EventInput* ev = parse_events(events, &n);
  return do_append(stream, static_cast<int>(strlen(stream)), true, 0, ev, n);
}

int64 append_new(const char* stream, Jsonb* events) {
  g_stream_for_messages = stream;
  int n = 0;
  EventInput* ev = parse_events(events, &n);
  return do_append(stream, static_cast<int>(strlen(stream)), false, 0, ev, n);
}

}  // namespace pgc::eventstore

using namespace pgc::eventstore;
namespace pg = pgc::pg;

PGC_FUNCTION(pgc_es_append_events) {
  int stream_len = 0;
  char* stream = checked_stream_arg(fcinfo, 0, "stream", &stream_len);
  refuse_reserved_stream(stream, stream_len, "append to");
  bool any = PG_ARGISNULL(1);
  int64 expected = any ? 0 : PG_GETARG_INT64(1);
  check_expected(any, expected);
  g_stream_for_messages = stream;
  if (PG_ARGISNULL(2)) throw pgc::invalid_argument("events must not be NULL");
  Jsonb* events = PG_GETARG_JSONB_P(2);
  int n = 0;
  EventInput* ev = parse_events(events, &n);
  PG_RETURN_INT64(do_append(stream, stream_len, any, expected, ev, n));
}

PGC_FUNCTION(pgc_es_append_event) {
  int stream_len = 0;
  char* stream = checked_stream_arg(fcinfo, 0, "stream", &stream_len);
  refuse_reserved_stream(stream, stream_len, "append to");
  bool any = PG_ARGISNULL(1);
  int64 expected = any ? 0 : PG_GETARG_INT64(1);
  check_expected(any, expected);
  g_stream_for_messages = stream;
  if (PG_ARGISNULL(2)) throw pgc::invalid_argument("event type must not be NULL");
  EventInput ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = PG_GETARG_TEXT_P(2);
  check_type(0, VARDATA_ANY(ev.type), VARSIZE_ANY_EXHDR(ev.type));
  if (PG_ARGISNULL(3)) throw pgc::invalid_argument("event data must not be NULL");
  Jsonb* data = PG_GETARG_JSONB_P(3);
  if (!JB_ROOT_IS_OBJECT(data) || JB_ROOT_IS_SCALAR(data))
    throw pgc::invalid_argument(event_label(0) + ": data must be a JSON object");
  ev.data = JsonbPGetDatum(data);
  if (PG_ARGISNULL(4)) {
    ev.metadata = empty_object();
  } else {
    Jsonb* meta = PG_GETARG_JSONB_P(4);
    if (!JB_ROOT_IS_OBJECT(meta) || JB_ROOT_IS_SCALAR(meta))
      throw pgc::invalid_argument(event_label(0) + ": metadata must be a JSON object");
    ev.metadata = JsonbPGetDatum(meta);
  }
  check_size(0, ev.data, ev.metadata);
  PG_RETURN_INT64(do_append(stream, stream_len, any, expected, &ev, 1));
}

PGC_FUNCTION(pgc_es_stream_version) {
  int len = 0;
  char* stream = checked_stream_arg(fcinfo, 0, "stream", &len);
  pg::spi_connect();
  int64 v = current_version(PointerGetDatum(cstring_to_text_with_len(stream, len)));
  SPI_finish();
  PG_RETURN_INT64(v);
}
