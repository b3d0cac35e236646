// The event store's PostgreSQL side: shared declarations of its modules.
//
// Style rule for these files: functions that call PostgreSQL (which may ereport and
// longjmp) keep only plain-data locals (palloc'd memory, PostgreSQL types, PODs); C++
// containers and strings live only in the pure core (core.hpp) and in short helpers that
// call no PostgreSQL function. Our own errors are thrown as pgc::Error; the PGC_FUNCTION
// wrapper raises them after leaving C++.
#pragma once

#include <initializer_list>

#include "eventstore/settings.hpp"
#include "pg/postgres.hpp"
#include "pg/run_as.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "fmgr.h"
#include "utils/uuid.h"
}

namespace pgc::pg {
struct Component;
}

namespace pgc::eventstore {

// ----------------------------------------------------------------------------------------
// state.cpp: the component, its shared memory, gap safety (settings: settings.hpp)
// ----------------------------------------------------------------------------------------
extern const pg::Component kComponent;

// True when the library was preloaded and the shared-memory writer slots exist.
bool have_shared_memory();

// Takes the next global position for the current transaction, after publishing this
// transaction's lower bound (the first time in the transaction). Caller is elevated or
// otherwise allowed to use the position sequence.
int64 take_position();
// Remembers the highest position appended in this transaction (last_appended_position).
void note_appended(int64 position);

// The read horizon H: every position below H that will ever be visible is visible to a
// snapshot taken after this call. On a standby: the horizon replayed from the primary.
int64 read_horizon();

// Subscription progress: the worker broadcasts after committing a checkpoint.
void broadcast_progress();
// Waits for progress or until `timeout_ms`; returns at once when woken.
void prepare_progress_wait();
void wait_progress(long timeout_ms);
void cancel_progress_wait();

// Whether this database has active subscriptions (so appends wake the worker).
void set_active_subscriptions(uint32 count);
bool subscriptions_may_be_active();
// Wakes the worker at commit when subscriptions may be waiting for events.
void wake_subscriptions_at_commit();

// ----------------------------------------------------------------------------------------
// append.cpp
// ----------------------------------------------------------------------------------------

// Appends `events` (a JSON array as append_events takes it) to `stream` at whatever
// version it has, as append_events(stream, NULL, events) does, without the SQL call:
// for the extension's own audit trails (saga transitions). May throw pgc::Error.
int64 append_any(const char* stream, Jsonb* events);
// The same for a stream that must not exist yet (append_events(stream, 0, events)).
int64 append_new(const char* stream, Jsonb* events);

// ----------------------------------------------------------------------------------------
// catalog.cpp: object ids, caches, privileges, SPI helpers
// ----------------------------------------------------------------------------------------
struct Oids {
  Oid schema;
  Oid events;
  Oid streams;
  Oid sequence;
  Oid snapshots;
  Oid upcasters;
  Oid aggregates;
  Oid subscriptions;
  Oid owner;  // owner of consistency.events: the role our own statements run as
};
// Looks the objects up once per backend (again after DDL); raises if missing.
const Oids& oids();

// Runs our own statements as the extension owner: pgc::pg::enter_owner_pinned, i.e. the
// owner's identity plus a search path of pg_catalog only (no pg_temp, nothing of the
// caller's), so no name in the statement -- nor in a trigger it fires -- can resolve to an
// object a caller created. Never call user code (upcasters, apply functions, handlers)
// between the two. The caller's identity and path are restored by leave_owner, or by the
// transaction/subtransaction abort on an error. Enter and leave at the same
// subtransaction level.
using SavedUser = pg::OwnerState;
void enter_owner(SavedUser* saved);
void leave_owner(const SavedUser* saved);

// Executes a saved plan. Every statement of the event store names its functions,
// operators, types and collations with their schema (pg_catalog.now(),
// OPERATOR(pg_catalog.=), ...), so neither the plan nor its re-planning after DDL can
// resolve a name through the caller's search_path, even while running as the owner;
// triggers of other pillars on our tables keep the caller's search_path.
int spi_run(pg::SavedPlan& plan, const Datum* values, const char* nulls, bool read_only, long count = 0);
// Same with a snapshot taken now (after the caller computed the read horizon).
int spi_run_latest(pg::SavedPlan& plan, const Datum* values, const char* nulls, long count = 0);
// spi_run / spi_run_latest of one statement as the owner (between enter_owner and
// leave_owner).
int spi_run_as_owner(pg::SavedPlan& plan, const Datum* values, const char* nulls, bool read_only,
                     long count = 0);
int spi_run_latest_as_owner(pg::SavedPlan& plan, const Datum* values, const char* nulls, long count = 0);

// Calls `finfo` with `nargs` (at most kMaxCallArgs) non-NULL arguments as the current
// user; *isnull tells whether it returned NULL.
inline constexpr int kMaxCallArgs = 6;
Datum call_function(FmgrInfo* finfo, const Datum* args, int nargs, bool* isnull);
// call_function for one of several user calls in a pg::RunAs scope: what the call sets is
// rolled back when it returns (pg::user_call_enter), so it does not reach the next call.
Datum call_function_own_settings(FmgrInfo* finfo, const Datum* args, int nargs, bool* isnull);

// Upcasting. The latest schema version of an event type (1 without upcasters).
int32 latest_schema_version(const char* type, int len);
// The upcaster functions called in one context (one read call, one fold, one subscription
// batch), each with its own FmgrInfo: a SQL function keeps its parsed body in its FmgrInfo
// for the rest of the transaction, so an FmgrInfo first called under one role and search
// path must never be reused under another. Allocated in `cxt`. `in_run_as`: the calls
// run inside a pg::RunAs scope that makes other user calls too (a fold, a subscription
// handler), so each is called with call_function_own_settings.
struct UpcastFns;
UpcastFns* new_upcast_fns(MemoryContext cxt, bool in_run_as);
// Returns `data` upcast from `schema_version` to the latest version of `type`, and sets
// *out_version. Calls the registered functions as the current user, who must be allowed
// to EXECUTE each of them (42501 otherwise).
Datum upcast(UpcastFns* fns, const char* type, int len, int32 schema_version, Datum data, int32* out_version);

// Aggregates registered for a category, or nullptr.
struct AggregateDef {
  Oid apply_fn;
  Oid registered_by;    // the role folds run as
  Datum initial_state;  // jsonb, in cache memory
  int32 snapshot_every;
  FmgrInfo* finfo;  // lazily filled, in cache memory; only ever called inside a fold
                    // (as registered_by, with the pinned search path)
};
const AggregateDef* find_aggregate(const char* category, int len);

// Registers the cache invalidation and transaction callbacks (once per backend).
void register_catalog_callbacks();
// End of a top-level transaction: frees cache generations retired during it.
void catalog_at_xact_end();

// Helpers for arguments and SPI results.
bool database_is_utf8();
// Text datum `d` as a NUL-terminated copy in `cxt`, its length in *len.
char* copy_text_to(MemoryContext cxt, Datum d, int* len);
// The same for text argument `argno` (not NULL), in the current context.
char* text_arg_cstring(FunctionCallInfo fcinfo, int argno, int* len);
// Raises CS002 "<name> must not be NULL" for the first NULL among the arguments named by
// `names`, which are the first arguments in order.
void require_not_null(FunctionCallInfo fcinfo, std::initializer_list<const char*> names);
// The first argument, `stream`, checked: raises CS002 when it is NULL or cannot name a
// stream.
struct StreamArg {
  char* name;  // palloc'd, NUL-terminated
  int len;
  Datum text;  // the same as text
};
StreamArg stream_arg(FunctionCallInfo fcinfo);
// Raises 42501 when `stream` belongs to the reserved category (the sagas' audit trails):
// for the SQL functions that write (append_events, append_event, save_snapshot).
void refuse_reserved_stream(const char* stream, int len, const char* action);
// A name clipped for a message (at most ~200 bytes, on a character boundary), palloc'd.
char* clipped_name(const char* s, int len);
bool role_is_admin(Oid role);
// Raises 42501 unless the current user may manage an object owned by `owner`.
void require_manage_rights(Oid owner, const char* what, const char* name);
// Raises CS002 unless function `fn` takes exactly `argtypes` and returns `rettype` (not
// a set); `role` names its part ("handler"), `expected` the signature it must have.
void check_signature(Oid fn, const Oid* argtypes, int nargs, Oid rettype, const char* role,
                     const char* expected);

// ----------------------------------------------------------------------------------------
// append.cpp / read.cpp
// ----------------------------------------------------------------------------------------
// Appends `n` events; the entry point used by the SQL functions (and via SPI by other
// pillars through consistency.append_events).
struct EventInput {
  text* type;
  Datum data;      // jsonb
  Datum metadata;  // jsonb
  pg_uuid_t id;
  bool has_id;
};

// ----------------------------------------------------------------------------------------
// subscriptions.cpp: the worker's side (the SQL functions are in subscription_functions.cpp)
// ----------------------------------------------------------------------------------------
// The component's worker tick: charges hard stops, then runs one batch of every active
// subscription that is due. Returns the milliseconds until the next one is due.
long subscriptions_tick();
// One batch of subscription `name` (text; `name_c` for messages) now, whatever its
// schedule, in the caller's transaction with SPI connected (_subscription_step). Returns
// the events handled; raises CS004 when there is no such subscription.
int subscription_step(Datum name, const char* name_c);
// Raises CS004: no subscription is called `name`.
[[noreturn]] void throw_unknown_subscription(const char* name);
// Where subscription `name` (text) stands, read with a fresh snapshot as the extension
// owner, SPI connected; false when there is no such subscription.
struct SubscriptionProgress {
  int64 position;
  bool failed;  // parked: it moves again only after reset_subscription
};
bool subscription_progress(Datum name, SubscriptionProgress* out);

}  // namespace pgc::eventstore
