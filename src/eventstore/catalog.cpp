// Object ids, the upcaster and aggregate caches, privileges and SPI helpers.
#include "eventstore/core.hpp"
#include "eventstore/es.hpp"
#include "pg/guard.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/trigger.h"
#include "mb/pg_wchar.h"
#include "utils/acl.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
}

namespace pgc::eventstore {

namespace {

Oids g_oids;
bool g_oids_valid = false;

// Caches live in generation contexts. An invalidation only marks a cache stale; the next
// use loads a new generation and retires the old one, which is freed at the end of the
// transaction (a caller further up the stack may still hold pointers into it).
struct UpcasterEntry {
  char* type;
  int len;
  int32 latest;  // latest schema version
  Oid* fns;      // fns[v - 1] upcasts version v to v + 1
};
struct AggEntry {
  char* category;
  int len;
  AggregateDef def;
};

MemoryContext g_up_cxt = nullptr;
bool g_up_valid = false;
uint64 g_up_gen = 0;  // counts invalidations
UpcasterEntry* g_up = nullptr;
int g_nup = 0;

MemoryContext g_agg_cxt = nullptr;
bool g_agg_valid = false;
uint64 g_agg_gen = 0;
AggEntry* g_aggs = nullptr;
int g_naggs = 0;

List* g_retired = NIL;  // memory contexts to delete at transaction end

void invalidate_upcasters() {
  g_up_valid = false;
  g_up_gen++;
}

void invalidate_aggregates() {
  g_agg_valid = false;
  g_agg_gen++;
}

Oid relid_of(const char* name, Oid nsp) {
  Oid r = get_relname_relid(name, nsp);
  if (!OidIsValid(r))
    throw Error(sqlstate::kInternal, std::string("pg_consistency object consistency.") + name + " is missing",
                "",
                "Reinstall the extension: DROP EXTENSION pg_consistency; CREATE EXTENSION pg_consistency;");
  return r;
}

void load_oids() {
  Oid nsp = get_namespace_oid("consistency", true);
  if (!OidIsValid(nsp))
    throw Error(sqlstate::kInternal, "schema consistency does not exist", "",
                "Run CREATE EXTENSION pg_consistency in this database.");
  Oids o;
  o.schema = nsp;
  o.events = relid_of("events", nsp);
  o.streams = relid_of("streams", nsp);
  o.sequence = relid_of("event_position_seq", nsp);
  o.snapshots = relid_of("snapshots", nsp);
  o.upcasters = relid_of("upcasters", nsp);
  o.aggregates = relid_of("aggregates", nsp);
  o.subscriptions = relid_of("subscription_state", nsp);
  HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(o.events));
  if (!HeapTupleIsValid(tup)) elog(ERROR, "cache lookup failed for relation %u", o.events);
  o.owner = ((Form_pg_class)GETSTRUCT(tup))->relowner;
  ReleaseSysCache(tup);
  if (o.upcasters != g_oids.upcasters) invalidate_upcasters();
  if (o.aggregates != g_oids.aggregates) invalidate_aggregates();
  g_oids = o;
  g_oids_valid = true;
}

void on_relcache(Datum, Oid relid) {
  if (!OidIsValid(relid)) {
    g_oids_valid = false;
    invalidate_upcasters();
    invalidate_aggregates();
    return;
  }
  if (!g_oids_valid) return;
  if (relid == g_oids.upcasters) invalidate_upcasters();
  if (relid == g_oids.aggregates) invalidate_aggregates();
  if (relid == g_oids.events || relid == g_oids.streams || relid == g_oids.sequence ||
      relid == g_oids.snapshots || relid == g_oids.subscriptions || relid == g_oids.upcasters ||
      relid == g_oids.aggregates)
    g_oids_valid = false;
}

// A fresh generation context; the previous one is retired.
MemoryContext new_generation(MemoryContext* slot) {
  if (*slot != nullptr) {
    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    g_retired = lappend(g_retired, *slot);
    MemoryContextSwitchTo(old);
    *slot = nullptr;
  }
  *slot = AllocSetContextCreate(TopMemoryContext, "pg_consistency event store cache", ALLOCSET_SMALL_SIZES);
  return *slot;
}

char* copy_text_to(MemoryContext cxt, Datum d, int* len) {
  text* t = DatumGetTextPP(d);
  int n = VARSIZE_ANY_EXHDR(t);
  char* out = static_cast<char*>(MemoryContextAlloc(cxt, n + 1));
  memcpy(out, VARDATA_ANY(t), n);
  out[n] = '\0';
  *len = n;
  return out;
}

int compare_key(const char* a, int alen, const char* b, int blen) {
  int c = memcmp(a, b, Min(alen, blen));
  if (c != 0) return c;
  return alen < blen ? -1 : (alen > blen ? 1 : 0);
}

void load_upcasters() {
  static pg::SavedPlan plan(
      "SELECT event_type, from_schema_version, fn::pg_catalog.oid FROM consistency.upcasters "
      "ORDER BY event_type COLLATE pg_catalog.\"C\", from_schema_version",
      {});
  MemoryContext cxt = new_generation(&g_up_cxt);
  g_up = nullptr;
  g_nup = 0;
  // The rows are read with a fresh snapshot, so every change whose invalidation we
  // have processed is in them; one arriving while we load leaves the cache stale.
  uint64 gen = g_up_gen;
  SavedUser su;
  pg::spi_connect();
  enter_owner(&su);
  spi_run_latest(plan, nullptr, nullptr);
  leave_owner(&su);
  uint64 n = SPI_processed;
  SPITupleTable* tt = SPI_tuptable;
  UpcasterEntry* entries =
      static_cast<UpcasterEntry*>(MemoryContextAllocZero(cxt, sizeof(UpcasterEntry) * (n + 1)));
  int count = 0;
  for (uint64 i = 0; i < n; i++) {
    bool isnull;
    Datum type_d = SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull);
    int32 from = DatumGetInt32(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));
    Oid fn = DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull));
    text* t = DatumGetTextPP(type_d);
    const char* tp = VARDATA_ANY(t);
    int tl = VARSIZE_ANY_EXHDR(t);
    UpcasterEntry* e = count > 0 ? &entries[count - 1] : nullptr;
    if (e == nullptr || compare_key(e->type, e->len, tp, tl) != 0) {
      e = &entries[count++];
      e->type = copy_text_to(cxt, type_d, &e->len);
      e->latest = 1;
      e->fns = static_cast<Oid*>(MemoryContextAllocZero(cxt, sizeof(Oid) * (n + 1)));
    }
    // Only a contiguous chain from version 1 counts (register_upcaster keeps it so).
    if (from == e->latest) {
      e->fns[from - 1] = fn;
      e->latest = from + 1;
    }
  }
  SPI_finish();
  g_up = entries;
  g_nup = count;
  g_up_valid = gen == g_up_gen;
}

UpcasterEntry* find_upcaster(const char* type, int len) {
  if (!g_up_valid) load_upcasters();
  int lo = 0, hi = g_nup - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    int c = compare_key(g_up[mid].type, g_up[mid].len, type, len);
    if (c == 0) return &g_up[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return nullptr;
}

void load_aggregates() {
  static pg::SavedPlan plan(
      "SELECT category, apply_fn::pg_catalog.oid, initial_state, snapshot_every, registered_by "
      "FROM consistency.aggregates "
      "ORDER BY category COLLATE pg_catalog.\"C\"",
      {});
  MemoryContext cxt = new_generation(&g_agg_cxt);
  g_aggs = nullptr;
  g_naggs = 0;
  uint64 gen = g_agg_gen;  // see load_upcasters
  SavedUser su;
  pg::spi_connect();
  enter_owner(&su);
  spi_run_latest(plan, nullptr, nullptr);
  leave_owner(&su);
  uint64 n = SPI_processed;
  SPITupleTable* tt = SPI_tuptable;
  AggEntry* entries = static_cast<AggEntry*>(MemoryContextAllocZero(cxt, sizeof(AggEntry) * (n + 1)));
  for (uint64 i = 0; i < n; i++) {
    bool isnull;
    AggEntry* e = &entries[i];
    e->category = copy_text_to(cxt, SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull), &e->len);
    e->def.apply_fn = DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));
    Datum st = SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull);
    MemoryContext old = MemoryContextSwitchTo(cxt);
    e->def.initial_state = PointerGetDatum(PG_DETOAST_DATUM_COPY(st));
    MemoryContextSwitchTo(old);
    e->def.snapshot_every = DatumGetInt32(SPI_getbinval(tt->vals[i], tt->tupdesc, 4, &isnull));
    e->def.registered_by = DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc, 5, &isnull));
    e->def.finfo = static_cast<FmgrInfo*>(MemoryContextAllocZero(cxt, sizeof(FmgrInfo)));
  }
  SPI_finish();
  g_aggs = entries;
  g_naggs = static_cast<int>(n);
  g_agg_valid = gen == g_agg_gen;
}

void check_function_exists(Oid fn, const char* what) {
  if (!SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(fn)))
    throw Error("42883",
                std::string(what) + " refers to function " + std::to_string(fn) + ", which no longer exists",
                "", "Register an existing function again.");
}

}  // namespace

const Oids& oids() {
  if (!g_oids_valid) load_oids();
  return g_oids;
}

void enter_owner(SavedUser* saved) { pg::enter_owner_pinned(saved, oids().owner); }

void leave_owner(const SavedUser* saved) { pg::leave_owner_pinned(saved); }

int spi_run(pg::SavedPlan& plan, const Datum* values, const char* nulls, bool read_only, long count) {
  return plan.execute(values, nulls, read_only, count);
}

int spi_run_latest(pg::SavedPlan& plan, const Datum* values, const char* nulls, long count) {
  SPIPlanPtr p = plan.plan();
  int rc = SPI_execute_snapshot(p, const_cast<Datum*>(values), nulls, GetLatestSnapshot(), InvalidSnapshot,
                                true, false, count);
  if (rc < 0) elog(ERROR, "pg_consistency: SPI_execute_snapshot failed (%s)", SPI_result_code_string(rc));
  return rc;
}

int32 latest_schema_version(const char* type, int len) {
  UpcasterEntry* e = find_upcaster(type, len);
  return e == nullptr ? 1 : e->latest;
}

struct UpcastFns {
  MemoryContext cxt;
  int n;
  int cap;
  Oid* oids;
  Oid* checked_for;  // the role whose EXECUTE right was checked
  FmgrInfo** infos;
};

UpcastFns* new_upcast_fns(MemoryContext cxt) {
  UpcastFns* f = static_cast<UpcastFns*>(MemoryContextAllocZero(cxt, sizeof(UpcastFns)));
  f->cxt = cxt;
  return f;
}

namespace {
// The FmgrInfo of upcaster `fn` in `fns`, after checking that the current user may
// execute it (once per function and role in the context).
FmgrInfo* upcaster_info(UpcastFns* fns, Oid fn) {
  Oid me = GetUserId();
  int i = 0;
  while (i < fns->n && fns->oids[i] != fn) i++;
  if (i < fns->n && fns->checked_for[i] == me) return fns->infos[i];
  check_function_exists(fn, "the upcaster");
  pg::require_execute(fn, me, "The role running the upcaster");
  if (i == fns->n) {
    if (fns->n == fns->cap) {
      int cap = fns->cap == 0 ? 4 : fns->cap * 2;
      Oid* oids = static_cast<Oid*>(MemoryContextAlloc(fns->cxt, sizeof(Oid) * cap));
      Oid* checked = static_cast<Oid*>(MemoryContextAlloc(fns->cxt, sizeof(Oid) * cap));
      FmgrInfo** infos = static_cast<FmgrInfo**>(MemoryContextAlloc(fns->cxt, sizeof(FmgrInfo*) * cap));
      for (int k = 0; k < fns->n; k++) {
        oids[k] = fns->oids[k];
        checked[k] = fns->checked_for[k];
        infos[k] = fns->infos[k];
      }
      fns->oids = oids;
      fns->checked_for = checked;
      fns->infos = infos;
      fns->cap = cap;
    }
    FmgrInfo* fi = static_cast<FmgrInfo*>(MemoryContextAllocZero(fns->cxt, sizeof(FmgrInfo)));
    fmgr_info_cxt(fn, fi, fns->cxt);
    fns->oids[i] = fn;
    fns->infos[i] = fi;
    fns->n++;
  }
  fns->checked_for[i] = me;
  return fns->infos[i];
}
}  // namespace

Datum upcast(UpcastFns* fns, const char* type, int len, int32 schema_version, Datum data,
             int32* out_version) {
  UpcasterEntry* e = find_upcaster(type, len);
  if (e == nullptr || schema_version >= e->latest) {
    *out_version = schema_version;
    return data;
  }
  for (int32 v = Max(schema_version, 1); v < e->latest; v++) {
    FmgrInfo* fi = upcaster_info(fns, e->fns[v - 1]);
    LOCAL_FCINFO(fcinfo, 1);
    InitFunctionCallInfoData(*fcinfo, fi, 1, InvalidOid, nullptr, nullptr);
    fcinfo->args[0].value = data;
    fcinfo->args[0].isnull = false;
    Datum r = FunctionCallInvoke(fcinfo);
    if (fcinfo->isnull) {
      char* fname = format_procedure(fi->fn_oid);
      char* tname = clipped_name(type, len);
      char msg[256];
      snprintf(msg, sizeof(msg), "upcaster %s returned NULL", fname);
      throw Error(
          sqlstate::kInvalidArgument,
          std::string(msg) + " for an event of type \"" + tname + "\" at schema version " + std::to_string(v),
          "", "An upcaster must return the event data in the next schema version.");
    }
    data = r;
  }
  *out_version = e->latest;
  return data;
}

const AggregateDef* find_aggregate(const char* category, int len) {
  if (!g_agg_valid) load_aggregates();
  int lo = 0, hi = g_naggs - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    int c = compare_key(g_aggs[mid].category, g_aggs[mid].len, category, len);
    if (c == 0) {
      AggregateDef* def = &g_aggs[mid].def;
      if (def->finfo->fn_oid == InvalidOid) {
        check_function_exists(def->apply_fn, "the aggregate's apply function");
        fmgr_info_cxt(def->apply_fn, def->finfo, g_agg_cxt);
      }
      return def;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return nullptr;
}

namespace {
// Names in messages are clipped on a character boundary of the database encoding.
size_t clip_by_database_encoding(std::string_view s, size_t max_bytes) {
  return static_cast<size_t>(pg_mbcliplen(s.data(), static_cast<int>(s.size()), static_cast<int>(max_bytes)));
}
}  // namespace

void register_catalog_callbacks() {
  CacheRegisterRelcacheCallback(on_relcache, (Datum)0);
  set_clip_rule(clip_by_database_encoding);
}

void catalog_at_xact_end() {
  if (g_retired == NIL) return;
  ListCell* lc;
  foreach (lc, g_retired) MemoryContextDelete(static_cast<MemoryContext>(lfirst(lc)));
  list_free(g_retired);
  g_retired = NIL;
}

bool database_is_utf8() { return GetDatabaseEncoding() == PG_UTF8; }

char* text_arg_cstring(FunctionCallInfo fcinfo, int argno, int* len) {
  text* t = PG_GETARG_TEXT_PP(argno);
  int n = VARSIZE_ANY_EXHDR(t);
  char* out = static_cast<char*>(palloc(n + 1));
  memcpy(out, VARDATA_ANY(t), n);
  out[n] = '\0';
  if (len != nullptr) *len = n;
  return out;
}

namespace {
void throw_if_bad_stream(const char* s, int len) {
  auto problem = stream_name_problem(std::string_view(s, len), database_is_utf8());
  if (problem) throw invalid_argument(*problem);
}
}  // namespace

char* checked_stream_arg(FunctionCallInfo fcinfo, int argno, const char* argname, int* len) {
  if (PG_ARGISNULL(argno)) throw invalid_argument(std::string(argname) + " must not be NULL");
  int n = 0;
  char* s = text_arg_cstring(fcinfo, argno, &n);
  throw_if_bad_stream(s, n);
  if (len != nullptr) *len = n;
  return s;
}

void refuse_reserved_stream(const char* stream, int len, const char* action) {
  if (!is_reserved_stream(std::string_view(stream, len))) return;
  throw Error(sqlstate::kInsufficientPrivilege,
              std::string("cannot ") + action + " stream \"" + shown_name(std::string_view(stream, len)) +
                  "\": streams of category \"" + std::string(kReservedCategory) +
                  "\" are the sagas' audit trails, written only by the extension",
              "", "Use another category for your own streams.");
}

char* clipped_name(const char* s, int len) {
  int n = len;
  if (n > static_cast<int>(kMessageNameBytes)) {
    n = pg_mbcliplen(s, len, static_cast<int>(kMessageNameBytes));
    char* out = static_cast<char*>(palloc(n + 4));
    memcpy(out, s, n);
    memcpy(out + n, "...", 4);
    return out;
  }
  return pnstrdup(s, n);
}

bool role_is_admin(Oid role) {
  Oid admin = get_role_oid("consistency_admin", true);
  return OidIsValid(admin) && has_privs_of_role(role, admin);
}

void require_manage_rights(Oid owner, const char* what, const char* name) {
  Oid me = GetUserId();
  if (has_privs_of_role(me, owner) || role_is_admin(me)) return;
  char* owner_name = GetUserNameFromId(owner, true);
  throw Error(sqlstate::kInsufficientPrivilege,
              std::string("permission denied to manage ") + what + " \"" + name + "\"",
              std::string("It belongs to role ") + (owner_name ? owner_name : "(dropped)") + ".",
              "Only its owner or a member of consistency_admin may change it.");
}

}  // namespace pgc::eventstore

// Statement trigger on consistency.upcasters and consistency.aggregates: every backend
// reloads its cache after the change commits.
PGC_FUNCTION(pgc_es_invalidate) {
  if (!CALLED_AS_TRIGGER(fcinfo))
    throw pgc::Error(pgc::sqlstate::kFeatureNotSupported,
                     "consistency._eventstore_invalidate() must be called as a trigger");
  TriggerData* td = reinterpret_cast<TriggerData*>(fcinfo->context);
  CacheInvalidateRelcacheByRelid(RelationGetRelid(td->tg_relation));
  return PointerGetDatum(nullptr);
}
