// Object ids, the upcaster and aggregate caches, privileges and SPI helpers.
#include "eventstore/core.hpp"
#include "eventstore/es.hpp"
#include "pg/guard.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_proc.h"
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

// A cache of one catalog table, sorted by its key, in generation contexts. An
// invalidation only marks it stale; the next use loads a new generation and retires the
// old one, which is freed at the end of the transaction (a caller further up the stack
// may still hold pointers into it).
template <typename Entry>
struct Cache {
  MemoryContext cxt;
  bool valid;
  uint64 gen;  // counts invalidations
  Entry* entries;
  int n;

  void invalidate() {
    valid = false;
    gen++;
  }
};

struct UpcasterEntry {
  char* key;  // the event type
  int len;
  int32 latest;  // latest schema version
  Oid* fns;      // fns[v - 1] upcasts version v to v + 1
};
struct AggEntry {
  char* key;  // the category
  int len;
  AggregateDef def;
};

Cache<UpcasterEntry> g_up;
Cache<AggEntry> g_aggs;

List* g_retired = NIL;  // memory contexts to delete at transaction end

// The oid of relation `name` in schema `nsp`; raises XX000 when it is missing.
Oid relid_of(const char* name, Oid nsp) {
  Oid r = get_relname_relid(name, nsp);
  if (!OidIsValid(r))
    throw Error(sqlstate::kInternal, std::string("pg_consistency object consistency.") + name + " is missing",
                "",
                "Reinstall the extension: DROP EXTENSION pg_consistency; CREATE EXTENSION pg_consistency;");
  return r;
}

// Looks our schema, relations and their owner up; a cache whose table was recreated
// becomes stale.
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
  if (o.upcasters != g_oids.upcasters) g_up.invalidate();
  if (o.aggregates != g_oids.aggregates) g_aggs.invalidate();
  g_oids = o;
  g_oids_valid = true;
}

// Relcache invalidation callback: a change of one of our tables (or a reset, InvalidOid)
// makes the object ids and the matching cache stale.
void on_relcache(Datum, Oid relid) {
  if (!OidIsValid(relid)) {
    g_oids_valid = false;
    g_up.invalidate();
    g_aggs.invalidate();
    return;
  }
  if (!g_oids_valid) return;
  if (relid == g_oids.upcasters) g_up.invalidate();
  if (relid == g_oids.aggregates) g_aggs.invalidate();
  if (relid == g_oids.events || relid == g_oids.streams || relid == g_oids.sequence ||
      relid == g_oids.snapshots || relid == g_oids.subscriptions || relid == g_oids.upcasters ||
      relid == g_oids.aggregates)
    g_oids_valid = false;
}

// Orders keys bytewise, a shorter prefix first (as COLLATE "C").
int compare_key(const char* a, int alen, const char* b, int blen) {
  int c = memcmp(a, b, Min(alen, blen));
  if (c != 0) return c;
  return alen < blen ? -1 : (alen > blen ? 1 : 0);
}

// Loads a new generation of `cache`: retires the old one, reads the rows of `plan` as the
// owner with a fresh snapshot (so every change whose invalidation was processed before is
// in them; one arriving meanwhile leaves the cache stale) and lets `fill` build the
// entries in the new context (it returns their number).
template <typename Entry>
void reload(Cache<Entry>* cache, pg::SavedPlan& plan,
            int (*fill)(MemoryContext cxt, SPITupleTable* rows, uint64 n, Entry** out)) {
  if (cache->cxt != nullptr) {
    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    g_retired = lappend(g_retired, cache->cxt);
    MemoryContextSwitchTo(old);
    cache->cxt = nullptr;
  }
  cache->cxt =
      AllocSetContextCreate(TopMemoryContext, "pg_consistency event store cache", ALLOCSET_SMALL_SIZES);
  cache->entries = nullptr;
  cache->n = 0;
  uint64 gen = cache->gen;
  pg::spi_connect();
  spi_run_latest_as_owner(plan, nullptr, nullptr);
  Entry* entries = nullptr;
  int n = fill(cache->cxt, SPI_tuptable, SPI_processed, &entries);
  SPI_finish();
  cache->entries = entries;
  cache->n = n;
  cache->valid = gen == cache->gen;
}

// Binary search of the cache's entries by key (bytes, as ORDER BY ... COLLATE "C").
template <typename Entry>
Entry* find_entry(const Cache<Entry>& cache, const char* key, int len) {
  int lo = 0, hi = cache.n - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    int c = compare_key(cache.entries[mid].key, cache.entries[mid].len, key, len);
    if (c == 0) return &cache.entries[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return nullptr;
}

// The upcaster entries of `n` rows (event_type, from_schema_version, fn) sorted by type
// and version: per event type, the chain of functions from schema version 1.
int fill_upcasters(MemoryContext cxt, SPITupleTable* tt, uint64 n, UpcasterEntry** out) {
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
    if (e == nullptr || compare_key(e->key, e->len, tp, tl) != 0) {
      e = &entries[count++];
      e->key = copy_text_to(cxt, type_d, &e->len);
      e->latest = 1;
      e->fns = static_cast<Oid*>(MemoryContextAllocZero(cxt, sizeof(Oid) * (n + 1)));
    }
    // Only a contiguous chain from version 1 counts (register_upcaster keeps it so).
    if (from == e->latest) {
      e->fns[from - 1] = fn;
      e->latest = from + 1;
    }
  }
  *out = entries;
  return count;
}

// The upcaster chain of `type`, or nullptr; reloads the cache first when it is stale.
UpcasterEntry* find_upcaster(const char* type, int len) {
  static pg::SavedPlan plan(
      "SELECT event_type, from_schema_version, consistency._bound_function(fn, fn_oid, bound_cluster) "
      "FROM consistency.upcasters "
      "ORDER BY event_type COLLATE pg_catalog.\"C\", from_schema_version",
      {});
  if (!g_up.valid) reload(&g_up, plan, fill_upcasters);
  return find_entry(g_up, type, len);
}

// The aggregate entries of `n` rows (category, apply_fn, initial_state, snapshot_every,
// registered_by) sorted by category.
int fill_aggregates(MemoryContext cxt, SPITupleTable* tt, uint64 n, AggEntry** out) {
  AggEntry* entries = static_cast<AggEntry*>(MemoryContextAllocZero(cxt, sizeof(AggEntry) * (n + 1)));
  for (uint64 i = 0; i < n; i++) {
    bool isnull;
    AggEntry* e = &entries[i];
    e->key = copy_text_to(cxt, SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull), &e->len);
    e->def.apply_fn = DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));
    Datum st = SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull);
    MemoryContext old = MemoryContextSwitchTo(cxt);
    e->def.initial_state = PointerGetDatum(PG_DETOAST_DATUM_COPY(st));
    MemoryContextSwitchTo(old);
    e->def.snapshot_every = DatumGetInt32(SPI_getbinval(tt->vals[i], tt->tupdesc, 4, &isnull));
    e->def.registered_by = DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc, 5, &isnull));
    e->def.finfo = static_cast<FmgrInfo*>(MemoryContextAllocZero(cxt, sizeof(FmgrInfo)));
  }
  *out = entries;
  return static_cast<int>(n);
}

// Raises 42883 when function `fn`, which `what` refers to, was dropped since.
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

int spi_run_as_owner(pg::SavedPlan& plan, const Datum* values, const char* nulls, bool read_only,
                     long count) {
  SavedUser su;
  enter_owner(&su);
  int rc = spi_run(plan, values, nulls, read_only, count);
  leave_owner(&su);
  return rc;
}

int spi_run_latest_as_owner(pg::SavedPlan& plan, const Datum* values, const char* nulls, long count) {
  SavedUser su;
  enter_owner(&su);
  int rc = spi_run_latest(plan, values, nulls, count);
  leave_owner(&su);
  return rc;
}

Datum call_function(FmgrInfo* finfo, const Datum* args, int nargs, bool* isnull) {
  Assert(nargs <= kMaxCallArgs);
  LOCAL_FCINFO(fcinfo, kMaxCallArgs);
  InitFunctionCallInfoData(*fcinfo, finfo, nargs, InvalidOid, nullptr, nullptr);
  for (int i = 0; i < nargs; i++) {
    fcinfo->args[i].value = args[i];
    fcinfo->args[i].isnull = false;
  }
  Datum r = FunctionCallInvoke(fcinfo);
  *isnull = fcinfo->isnull;
  return r;
}

Datum call_function_own_settings(FmgrInfo* finfo, const Datum* args, int nargs, bool* isnull) {
  int level = pg::user_call_enter();
  Datum r = call_function(finfo, args, nargs, isnull);
  pg::user_call_leave(level);
  return r;
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
  bool in_run_as;
};

UpcastFns* new_upcast_fns(MemoryContext cxt, bool in_run_as) {
  UpcastFns* f = static_cast<UpcastFns*>(MemoryContextAllocZero(cxt, sizeof(UpcastFns)));
  f->cxt = cxt;
  f->in_run_as = in_run_as;
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

namespace {
struct UpcastStep {
  const char* type;
  int len;
  int32 from;
};

// An error raised by a user's upcaster reaches the reader as it was raised (its own
// SQLSTATE and message); this line says which event and link it came from.
void upcast_error_context(void* arg) {
  const UpcastStep* s = static_cast<const UpcastStep*>(arg);
  errcontext("upcasting an event of type \"%s\" from schema version %d", clipped_name(s->type, s->len),
             s->from);
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
    bool isnull = false;
    UpcastStep step{type, len, v};
    ErrorContextCallback cb{error_context_stack, upcast_error_context, &step};
    error_context_stack = &cb;
    Datum r = fns->in_run_as ? call_function_own_settings(fi, &data, 1, &isnull)
                             : call_function(fi, &data, 1, &isnull);
    error_context_stack = cb.previous;
    if (isnull) {
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
  static pg::SavedPlan plan(
      "SELECT category, consistency._bound_function(apply_fn, apply_fn_oid, bound_cluster), initial_state, "
      "snapshot_every, registered_by "
      "FROM consistency.aggregates ORDER BY category COLLATE pg_catalog.\"C\"",
      {});
  if (!g_aggs.valid) reload(&g_aggs, plan, fill_aggregates);
  AggEntry* e = find_entry(g_aggs, category, len);
  if (e == nullptr) return nullptr;
  AggregateDef* def = &e->def;
  if (def->finfo->fn_oid == InvalidOid) {
    check_function_exists(def->apply_fn, "the aggregate's apply function");
    fmgr_info_cxt(def->apply_fn, def->finfo, g_aggs.cxt);
  }
  return def;
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

void check_signature(Oid fn, const Oid* argtypes, int nargs, Oid rettype, const char* role,
                     const char* expected) {
  HeapTuple tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
  if (!HeapTupleIsValid(tup))
    throw invalid_argument(std::string(role) + " function " + std::to_string(fn) + " does not exist");
  Form_pg_proc p = reinterpret_cast<Form_pg_proc>(GETSTRUCT(tup));
  bool ok =
      p->pronargs == nargs && p->prorettype == rettype && !p->proretset && p->prokind == PROKIND_FUNCTION;
  for (int i = 0; ok && i < nargs; i++) ok = p->proargtypes.values[i] == argtypes[i];
  ReleaseSysCache(tup);
  if (!ok) {
    char* name = format_procedure(fn);
    throw invalid_argument(std::string(role) + " function " + name + " has the wrong signature",
                           std::string("It must be ") + expected + ".");
  }
}

bool database_is_utf8() { return GetDatabaseEncoding() == PG_UTF8; }

char* copy_text_to(MemoryContext cxt, Datum d, int* len) {
  text* t = DatumGetTextPP(d);
  int n = VARSIZE_ANY_EXHDR(t);
  char* out = static_cast<char*>(MemoryContextAlloc(cxt, n + 1));
  memcpy(out, VARDATA_ANY(t), n);
  out[n] = '\0';
  *len = n;
  return out;
}

char* text_arg_cstring(FunctionCallInfo fcinfo, int argno, int* len) {
  return copy_text_to(CurrentMemoryContext, PG_GETARG_DATUM(argno), len);
}

void require_not_null(FunctionCallInfo fcinfo, std::initializer_list<const char*> names) {
  int argno = 0;
  for (const char* name : names) {
    if (PG_ARGISNULL(argno)) throw invalid_argument(std::string(name) + " must not be NULL");
    argno++;
  }
}

namespace {
// Raises CS002 when `s` cannot name a stream.
void throw_if_bad_stream(const char* s, int len) {
  auto problem = stream_name_problem(std::string_view(s, len), database_is_utf8());
  if (problem) throw invalid_argument(*problem);
}
}  // namespace

StreamArg stream_arg(FunctionCallInfo fcinfo) {
  if (PG_ARGISNULL(0)) throw invalid_argument("stream must not be NULL");
  StreamArg a;
  a.name = text_arg_cstring(fcinfo, 0, &a.len);
  throw_if_bad_stream(a.name, a.len);
  a.text = PointerGetDatum(cstring_to_text_with_len(a.name, a.len));
  return a;
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
