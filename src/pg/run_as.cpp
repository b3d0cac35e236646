#include "pg/run_as.hpp"

#include <climits>
#include <cstring>

#include "pg/guard.hpp"

extern "C" {
#include "catalog/namespace.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/regproc.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
}

namespace pgc::pg {

namespace {
// pg_catalog only: no pg_temp (addTemp = false), no creation namespace.
OverrideSearchPath g_catalog_only = {NIL, true, false, 0};

// Arms timeout `id` to fire in `ms` unless it is armed to fire earlier already: a session's
// own statement timeout, or the hard stop of enclosing user code, then applies inside.
// *outer: the enclosing finish time, to re-arm afterwards (0: none). True when armed.
bool arm_earliest(TimeoutId id, int64_t ms, TimestampTz* outer) {
  int delay = static_cast<int>(ms > INT_MAX ? INT_MAX : ms);
  *outer = 0;
  if (get_timeout_active(id)) {
    *outer = get_timeout_finish_time(id);
    if (*outer <= TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay)) {
      *outer = 0;
      return false;
    }
  }
  enable_timeout_after(id, delay);
  return true;
}

// Arms the statement time limit of user code (none for 0).
void arm_timeout(RunAsState* st, int64_t timeout_ms) {
  st->timeout_armed = false;
  st->outer_finish = 0;
  if (timeout_ms <= 0) return;
  st->timeout_armed = arm_earliest(STATEMENT_TIMEOUT, timeout_ms, &st->outer_finish);
}

// ---- the hard stop (background workers only) ----
TimeoutId g_hard_stop_id = MAX_TIMEOUTS;  // not registered yet
volatile sig_atomic_t g_hard_stop_fired = 0;

// Runs in the SIGALRM handler: what die() does, plus the flag.
void hard_stop_handler() {
  if (!proc_exit_inprogress) {
    g_hard_stop_fired = 1;
    InterruptPending = true;
    ProcDiePending = true;
  }
  SetLatch(MyLatch);
}

// Arms the hard stop of a background process: a die-like exit at limit + max(1 s, limit).
void arm_hard_stop(RunAsState* st, int64_t timeout_ms) {
  st->hard_armed = false;
  st->hard_outer = 0;
  if (timeout_ms <= 0 || !IsBackgroundWorker) return;
  if (g_hard_stop_id == MAX_TIMEOUTS) g_hard_stop_id = RegisterTimeout(USER_TIMEOUT, hard_stop_handler);
  st->hard_armed = arm_earliest(g_hard_stop_id, hard_stop_delay_ms(timeout_ms), &st->hard_outer);
}

}  // namespace

bool hard_stop_fired() { return g_hard_stop_fired != 0; }

int64_t hard_stop_delay_ms(int64_t limit_ms) { return limit_ms + (limit_ms > 1000 ? limit_ms : 1000); }

void enter_owner_pinned(OwnerState* st, Oid owner) {
  GetUserIdAndSecContext(&st->saved_user, &st->saved_context);
  PushOverrideSearchPath(&g_catalog_only);
  SetUserIdAndSecContext(owner, st->saved_context | SECURITY_LOCAL_USERID_CHANGE);
}

void leave_owner_pinned(const OwnerState* st) {
  SetUserIdAndSecContext(st->saved_user, st->saved_context);
  PopOverrideSearchPath();
}

void run_as_enter(RunAsState* st, Oid role, int64_t timeout_ms) {
  GetUserIdAndSecContext(&st->saved_user, &st->saved_context);
  st->timeout_armed = false;
  st->outer_finish = 0;
  st->nest_level = NewGUCNestLevel();
  // As a function's SET clause does (GUC_ACTION_SAVE at a new nest level), but undone
  // with AtEOXact_GUC(false) so that a plain SET inside does not survive either.
  // A background process whose own path is pinned to it already (pin_process_search_path)
  // skips the set, which costs more than a short handler call; the nest level still rolls
  // back whatever the code sets.
  if (namespace_search_path == nullptr || strcmp(namespace_search_path, kPinnedSearchPath) != 0)
    (void)set_config_option("search_path", kPinnedSearchPath, superuser() ? PGC_SUSET : PGC_USERSET,
                            PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
  SetUserIdAndSecContext(role,
                         st->saved_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
  st->hard_armed = false;
  st->hard_outer = 0;
  arm_timeout(st, timeout_ms);
  arm_hard_stop(st, timeout_ms);
}

int user_call_enter() { return NewGUCNestLevel(); }

void user_call_leave(int level) { AtEOXact_GUC(false, level); }

void run_as_disarm_timeout(RunAsState* st) {
  if (!st->timeout_armed && !st->hard_armed) return;
  // One call for both timers: the alarm is rescheduled once.
  DisableTimeoutParams params[2];
  int n = 0;
  if (st->hard_armed) params[n++] = DisableTimeoutParams{g_hard_stop_id, false};
  if (st->timeout_armed) params[n++] = DisableTimeoutParams{STATEMENT_TIMEOUT, true};
  disable_timeouts(params, n);
  if (st->timeout_armed) {
    // A timeout that fired after the code had already returned is forgotten.
    if (get_timeout_indicator(STATEMENT_TIMEOUT, true)) QueryCancelPending = false;
    if (st->outer_finish != 0) enable_timeout_at(STATEMENT_TIMEOUT, st->outer_finish);
  }
  if (st->hard_armed && st->hard_outer != 0) enable_timeout_at(g_hard_stop_id, st->hard_outer);
  st->timeout_armed = false;
  st->outer_finish = 0;
  st->hard_armed = false;
  st->hard_outer = 0;
}

void run_as_leave(RunAsState* st) {
  run_as_disarm_timeout(st);
  AtEOXact_GUC(false, st->nest_level);
  SetUserIdAndSecContext(st->saved_user, st->saved_context);
}

void pin_process_search_path() {
  SetConfigOption("search_path", kPinnedSearchPath, PGC_SUSET, PGC_S_SESSION);
}

void disarm_statement_timeout() {
  if (get_timeout_active(STATEMENT_TIMEOUT)) disable_timeout(STATEMENT_TIMEOUT, false);
  if (g_hard_stop_id != MAX_TIMEOUTS && get_timeout_active(g_hard_stop_id))
    disable_timeout(g_hard_stop_id, false);
  QueryCancelPending = false;
}

bool may_execute(Oid fn, Oid role) { return pg_proc_aclcheck(fn, role, ACL_EXECUTE) == ACLCHECK_OK; }

void require_execute(Oid fn, Oid role, const char* who) {
  if (may_execute(fn, role)) return;
  char* name = format_procedure(fn);
  ereport(ERROR,
          (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE), errmsg("permission denied for function %s", name),
           errdetail("%s (%s) may not execute it.", who,
                     GetUserNameFromId(role, true) ? GetUserNameFromId(role, true) : "a dropped role")));
}

OwnerScope::OwnerScope(Oid owner) {
  pg_call([&] { enter_owner_pinned(&st_, owner); });
}

OwnerScope::~OwnerScope() {
  // Both calls only restore saved state; neither raises.
  leave_owner_pinned(&st_);
}

RunAs::RunAs(Oid role, int64_t timeout_ms) {
  try {
    pg_call([&] { run_as_enter(&st_, role, timeout_ms); });
  } catch (...) {
    // set_config_option or the timer failed after the nest level was opened.
    try {
      pg_call([&] { run_as_disarm_timeout(&st_); });
    } catch (...) {
    }
    AtEOXact_GUC(false, st_.nest_level);
    SetUserIdAndSecContext(st_.saved_user, st_.saved_context);
    throw;
  }
}

RunAs::~RunAs() {
  try {
    pg_call([&] { run_as_leave(&st_); });
  } catch (...) {
    // Restoring saved settings does not fail in practice; if it did, the enclosing
    // (sub)transaction's abort restores identity and settings.
  }
}

}  // namespace pgc::pg
