// The one way the extension acts as a role other than the caller's.
//
// Two shapes, because two different things happen as another role:
//
// * Our own statements with the extension owner's rights (catalog reads and writes):
//   OwnerScope / enter_owner_pinned. The search path is replaced by an override that
//   holds pg_catalog only — no pg_temp, nothing of the caller's — so no object a caller
//   can create (a pg_temp domain, a shadowing operator) is resolved inside. An override
//   costs no GUC round trip and keeps saved plans matching, which is why hot paths
//   (append, publish) can afford it. PostgreSQL 15's override stack also hides any
//   search_path a function SET clause would install, so user code never runs inside it.
//
// * User code (saga steps, subscription handlers, aggregate folds) as the role that
//   registered it: RunAs / run_as_enter. The code runs as a security-restricted
//   operation with search_path = pg_catalog, pg_temp (pg_temp last, explicitly), with an
//   optional statement time limit, and every setting the code changes — a plain SET or
//   set_config(..., false) included — is rolled back when the scope ends
//   (AtEOXact_GUC(false), as PostgreSQL's own maintenance commands do), so nothing the
//   code does leaks into the statements that follow it.
//
// Both restore the previous identity and security context when they end. On an error
// that aborts the (sub)transaction PostgreSQL restores identity and settings itself;
// the time limit is disarmed by the scope's destructor or by run_as_leave/
// run_as_disarm_timeout on the plain-data path.
#pragma once

#include <cstdint>

#include "pg/postgres.hpp"

namespace pgc::pg {

inline constexpr const char* kPinnedSearchPath = "pg_catalog, pg_temp";

// ---- plain-data interface (usable from files that keep no C++ objects around
// PostgreSQL calls). These ereport on failure. ----

struct OwnerState {
  Oid saved_user;
  int saved_context;
};
// Switches to `owner` (SECURITY_LOCAL_USERID_CHANGE) and pushes the catalog-only override.
void enter_owner_pinned(OwnerState* st, Oid owner);
void leave_owner_pinned(const OwnerState* st);

struct RunAsState {
  Oid saved_user;
  int saved_context;
  int nest_level;
  bool timeout_armed;
  TimestampTz outer_finish;  // an enclosing statement timeout to re-arm, or 0
  bool hard_armed;           // the hard stop (background workers only) is armed
  TimestampTz hard_outer;    // an enclosing hard stop to re-arm, or 0
};
// Runs as `role` from here on: security-restricted, pinned search_path, settings nested,
// and a statement timeout of timeout_ms (<= 0: none; an earlier enclosing deadline wins).
// In a background worker a limit L > 0 also arms a hard stop at L + max(1 s, L): code
// that catches its cancellation and goes on is not waited for, the process is ended as
// by pg_terminate_backend (FATAL at its next interrupt check) and hard_stop_fired()
// tells its exit callbacks why. Session backends never get the hard stop.
void run_as_enter(RunAsState* st, Oid role, int64_t timeout_ms);
// Rolls back every setting changed since run_as_enter, disarms the timeout, restores
// the identity.
void run_as_leave(RunAsState* st);
// One user call inside a scope that makes several (a fold: upcasters, then the apply
// function, for each event; a subscription handler after the upcasters of its event):
// every setting the call changes, a plain SET and set_config(..., false) included, is
// rolled back when it returns, as at the end of the scope. Otherwise a search_path one
// function set (an upcaster the aggregate's owner did not write) would decide which
// operators and functions the next one resolves. On an error the (sub)transaction's
// abort rolls them back. user_call_enter returns the level to pass to user_call_leave.
int user_call_enter();
void user_call_leave(int level);
// Only disarms the time limit: for error paths where the (sub)transaction abort restores
// identity and settings. Safe to call more than once.
void run_as_disarm_timeout(RunAsState* st);

// True when `role` may execute function `fn` (EXECUTE privilege, or superuser).
bool may_execute(Oid fn, Oid role);
// Raises 42501 "permission denied for function <fn>" unless `role` may execute `fn`;
// `who` names the role's part in the message ("the subscription's owner").
void require_execute(Oid fn, Oid role, const char* who);

// For a background worker, once after connecting: its own statements resolve names in
// pg_catalog only (an unqualified name can never reach a schema a tenant controls, even
// through "$user"), and the value is what run_as_enter pins anyway, so saved plans keep
// matching. Set at session level: function SET clauses still work.
void pin_process_search_path();
// For a background worker's error path: disarm a time limit (and hard stop) an aborted
// RunAs left.
void disarm_statement_timeout();
// True once this process's hard stop has fired (it is exiting).
bool hard_stop_fired();
// The hard stop's delay after a time limit of limit_ms (> 0).
int64_t hard_stop_delay_ms(int64_t limit_ms);

// ---- C++ scopes over the same operations (they raise PgError, never longjmp). ----

class OwnerScope {
 public:
  explicit OwnerScope(Oid owner);
  ~OwnerScope();
  OwnerScope(const OwnerScope&) = delete;
  OwnerScope& operator=(const OwnerScope&) = delete;

 private:
  OwnerState st_{};
};

class RunAs {
 public:
  RunAs(Oid role, int64_t timeout_ms);
  ~RunAs();
  RunAs(const RunAs&) = delete;
  RunAs& operator=(const RunAs&) = delete;

 private:
  RunAsState st_{};
};

}  // namespace pgc::pg
