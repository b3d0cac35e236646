// append_events / append_event / stream_version.
//
// Concurrency: every append locks its stream row in `consistency.streams` (an upsert or
// an UPDATE guarded by the expected version), so appends to one stream serialise and the
// loser of a race sees the winner's version after the lock wait (READ COMMITTED re-checks
// the row) and gets CS001 -- never a unique violation. Versions are assigned from the
// locked row, positions from the gap-safe position source.
#include "correlation/context.hpp"
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

// "event 2 for stream \"orders-1\"": event `index` (0-based) of the call, for messages.
std::string event_label(int index) {
  return "event " + std::to_string(index + 1) + " for stream \"" + shown_name(g_stream_for_messages) + "\"";
}

// Raises CS002: event `index` of the call has `problem`.
[[noreturn]] void throw_bad_event(int index, const char* problem) {
  throw invalid_argument(event_label(index) + ": " + problem);
}

// Raises CS002 when event `index` has a type that cannot be one.
void check_type(int index, const char* type, int len) {
  auto p = event_type_problem(std::string_view(type, len), database_is_utf8());
  if (p) throw_bad_event(index, p->c_str());
}

// Raises CS002 for an expected version that is neither NULL (`any`), 0 nor positive.
void check_expected(bool any, int64 v) {
  auto p = expected_version_problem(Expected{any, v});
  if (p) throw invalid_argument(*p);
}

// Raises CS001: the stream is at version `actual`, not at the one expected.
[[noreturn]] void throw_wrong_version(const char* stream, bool any, int64 expected, int64 actual) {
  std::string exp = describe_expected(Expected{any, expected});
  std::string act = actual == 0 ? std::string("the stream does not exist (version 0)")
                                : "the stream is at version " + std::to_string(actual);
  throw Error(
      sqlstate::kWrongExpectedVersion,
      "wrong expected version for stream \"" + shown_name(stream) + "\": expected " + exp + ", but " + act,
      "", "Re-read the stream and retry the command.");
}

// Raises CS002: event `index` is larger than pg_consistency.max_event_bytes.
[[noreturn]] void throw_too_large(int index, int64 bytes) {
  throw invalid_argument(event_label(index) + " is " + std::to_string(bytes) + " bytes; the limit is " +
                             std::to_string(settings::max_event_bytes) + " bytes",
                         "The size counts the event's data and metadata in jsonb format.",
                         "Raise pg_consistency.max_event_bytes or store large payloads elsewhere.");
}

// Parses the "id" of event `index` into *out; raises CS002 unless it is a UUID.
void parse_id(int index, const char* s, int len, pg_uuid_t* out) {
  if (!parse_uuid(std::string_view(s, len), out->data))
    throw_bad_event(index, "\"id\" must be a UUID string");
}

// ---- JSON input -----------------------------------------------------------------

// A jsonb datum of the container `v` points into.
Datum jsonb_from_binary(const JsonbValue* v) {
  JsonbValue copy = *v;
  return JsonbPGetDatum(JsonbValueToJsonb(&copy));
}

bool is_object_container(const JsonbValue* v) {
  return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

// '{}'::jsonb, made once per backend (the default metadata).
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

// qsort order of IdAt: by id, then by position in the call.
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

// The event's metadata with the correlation ids in effect (`ids`, or nullptr for none)
// added where the caller gave no such key.
Datum with_ids(Datum metadata, Jsonb* ids) {
  if (ids == nullptr) return metadata;
  return JsonbPGetDatum(correlation::add_missing(DatumGetJsonbP(metadata), ids));
}

// Parses the `events` argument of append_events into a palloc'd array.
EventInput* parse_events(Jsonb* events, int* count) {
  Jsonb* ids = correlation::current_ids();
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
    out[i].metadata = with_ids(out[i].metadata, ids);
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

// A version 4 (random) UUID for an event given without id.
void random_uuid(pg_uuid_t* u) {
  if (!pg_strong_random(u->data, UUID_LEN))
    ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not generate random values")));
  u->data[6] = (u->data[6] & 0x0f) | 0x40;  // version 4
  u->data[8] = (u->data[8] & 0x3f) | 0x80;  // RFC 4122 variant
}

// The events' columns as datums, for the statements. An event without id gets a random
// one, or with `random_ids` false a NULL element, which matches no stored id. (Any UUID,
// the nil UUID included, is a valid event id: no value may stand in for "none".)
struct EventColumns {
  Datum* ids;
  bool* id_nulls;
  Datum* types;
  Datum* datas;
  Datum* metas;
};
EventColumns event_columns(const EventInput* ev, int n, bool random_ids) {
  EventColumns c;
  c.ids = static_cast<Datum*>(palloc(sizeof(Datum) * n));
  c.id_nulls = static_cast<bool*>(palloc(sizeof(bool) * n));
  c.types = static_cast<Datum*>(palloc(sizeof(Datum) * n));
  c.datas = static_cast<Datum*>(palloc(sizeof(Datum) * n));
  c.metas = static_cast<Datum*>(palloc(sizeof(Datum) * n));
  pg_uuid_t* uuids = static_cast<pg_uuid_t*>(palloc(sizeof(pg_uuid_t) * n));
  for (int i = 0; i < n; i++) {
    uuids[i] = ev[i].id;
    if (!ev[i].has_id && random_ids) random_uuid(&uuids[i]);
    c.ids[i] = UUIDPGetDatum(&uuids[i]);
    c.id_nulls[i] = !ev[i].has_id && !random_ids;
    c.types[i] = PointerGetDatum(ev[i].type);
    c.datas[i] = ev[i].data;
    c.metas[i] = ev[i].metadata;
  }
  return c;
}

// A one-dimensional array of `n` elements of `type` (none NULL unless `nulls` says so).
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

// The append statement of `step` for one event or for several (`many`).
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

// The version of `stream` (a text datum); 0 when it does not exist.
int64 current_version(Datum stream) {
  static pg::SavedPlan version(
      "SELECT version FROM consistency.streams WHERE stream OPERATOR(pg_catalog.=) $1", {TEXTOID});
  Datum v[1] = {stream};
  spi_run(version, v, nullptr, false, 1);
  if (SPI_processed == 0) return 0;
  return pg::spi_int64(0, 1);
}

// Locks the stream row for the idempotency path, creating it (version 0) if needed.
// Returns the version under the lock.
int64 lock_stream(Datum stream) {
  static pg::SavedPlan lock(
      "SELECT version FROM consistency.streams WHERE stream OPERATOR(pg_catalog.=) $1 FOR UPDATE", {TEXTOID});
  static pg::SavedPlan create(
      "INSERT INTO consistency.streams (stream, version) VALUES ($1, $2) "
      "ON CONFLICT (stream) DO NOTHING RETURNING version",
      {TEXTOID, INT8OID});
  for (int attempt = 0; attempt < 100; attempt++) {
    Datum v1[1] = {stream};
    spi_run(lock, v1, nullptr, false, 1);
    if (SPI_processed > 0) return pg::spi_int64(0, 1);
    Datum v2[2] = {stream, Int64GetDatum(0)};
    spi_run(create, v2, nullptr, false);
    if (SPI_processed > 0) return 0;  // our new row: locked until we commit
    // Created concurrently and committed between our two statements: lock it now.
  }
  throw Error(sqlstate::kInternal, "could not lock the stream row after 100 attempts");
}

// The idempotency check of a call whose events carry ids. Returns 1 and sets *version
// when the same events were appended before, 0 when none of them was, and -1 with
// *clash set (palloc'd) when the call clashes with the stream.
int already_appended(Datum stream, EventInput* ev, int n, int64* version, char** clash) {
  static pg::SavedPlan find_ids(
      "SELECT u.ord, e.version, (e.type OPERATOR(pg_catalog.=) u.type AND e.data OPERATOR(pg_catalog.=) "
      "u.data "
      "AND e.metadata OPERATOR(pg_catalog.=) u.metadata) "
      "FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4), "
      "pg_catalog.unnest($5)) WITH ORDINALITY AS u(id, type, data, metadata, ord) "
      "JOIN consistency.events e ON e.event_id OPERATOR(pg_catalog.=) u.id AND e.stream "
      "OPERATOR(pg_catalog.=) $1",
      {TEXTOID, UUIDARRAYOID, TEXTARRAYOID, JSONBARRAYOID, JSONBARRAYOID});
  EventColumns c = event_columns(ev, n, false);
  Datum args[5] = {stream, PointerGetDatum(make_array(c.ids, n, UUIDOID, c.id_nulls)),
                   PointerGetDatum(make_array(c.types, n, TEXTOID)),
                   PointerGetDatum(make_array(c.datas, n, JSONBOID)),
                   PointerGetDatum(make_array(c.metas, n, JSONBOID))};
  spi_run(find_ids, args, nullptr, false);
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
    std::vector<bool> has(n);
    for (int i = 0; i < n; i++) has[i] = ev[i].has_id;
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

// Raises CS001: the call's event ids clash with the stream (`reason`).
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

// Appends the `n` events to the stream, which must be at version `expected` unless `any`;
// a call whose events all carry ids and were appended before returns that version again.
// Returns the stream's new version; raises CS001 on a version mismatch or an id clash.
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
  EventColumns c = event_columns(ev, n, true);
  if (!many) {
    args[3] = c.ids[0];
    args[4] = c.types[0];
    args[6] = c.datas[0];
    args[7] = c.metas[0];
  } else {
    args[3] = PointerGetDatum(make_array(c.ids, n, UUIDOID));
    args[4] = PointerGetDatum(make_array(c.types, n, TEXTOID));
    args[6] = PointerGetDatum(make_array(c.datas, n, JSONBOID));
    args[7] = PointerGetDatum(make_array(c.metas, n, JSONBOID));
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

// The `events` array appended to `stream` at any version, or (not `any`) to a new stream.
int64 append_json(const char* stream, bool any, Jsonb* events) {
  g_stream_for_messages = stream;
  int n = 0;
  EventInput* ev = parse_events(events, &n);
  return do_append(stream, static_cast<int>(strlen(stream)), any, 0, ev, n);
}

// The stream and expected version arguments of append_events and append_event, checked:
// the stream may not be of the reserved category. Messages name this stream from here on.
struct AppendTarget {
  StreamArg stream;
  bool any;  // expected_version was NULL
  int64 expected;
};
AppendTarget append_target(FunctionCallInfo fcinfo) {
  AppendTarget t;
  t.stream = stream_arg(fcinfo);
  refuse_reserved_stream(t.stream.name, t.stream.len, "append to");
  t.any = PG_ARGISNULL(1);
  t.expected = t.any ? 0 : PG_GETARG_INT64(1);
  check_expected(t.any, t.expected);
  g_stream_for_messages = t.stream.name;
  return t;
}

}  // namespace

int64 append_any(const char* stream, Jsonb* events) { return append_json(stream, true, events); }

int64 append_new(const char* stream, Jsonb* events) { return append_json(stream, false, events); }

}  // namespace pgc::eventstore

using namespace pgc::eventstore;
namespace pg = pgc::pg;

// consistency.append_events(stream, expected_version, events): returns the new version.
PGC_FUNCTION(pgc_es_append_events) {
  AppendTarget t = append_target(fcinfo);
  if (PG_ARGISNULL(2)) throw pgc::invalid_argument("events must not be NULL");
  Jsonb* events = PG_GETARG_JSONB_P(2);
  int n = 0;
  EventInput* ev = parse_events(events, &n);
  PG_RETURN_INT64(do_append(t.stream.name, t.stream.len, t.any, t.expected, ev, n));
}

// consistency.append_event(stream, expected_version, type, data, metadata): one event
// given as arguments; returns the new version.
PGC_FUNCTION(pgc_es_append_event) {
  AppendTarget t = append_target(fcinfo);
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
  ev.metadata = with_ids(ev.metadata, pgc::correlation::current_ids());
  check_size(0, ev.data, ev.metadata);
  PG_RETURN_INT64(do_append(t.stream.name, t.stream.len, t.any, t.expected, &ev, 1));
}

// consistency.stream_version(stream): 0 when the stream does not exist.
PGC_FUNCTION(pgc_es_stream_version) {
  StreamArg stream = stream_arg(fcinfo);
  pg::spi_connect();
  int64 v = current_version(stream.text);
  SPI_finish();
  PG_RETURN_INT64(v);
}
