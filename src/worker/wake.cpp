#include "worker/wake.hpp"

#include "worker/shared_state.hpp"

#include <algorithm>

extern "C" {
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/wait_event.h"
}

namespace pgc::worker {

namespace {
uint32 g_pending_mask = 0;
constexpr int kMaxCommitCalls = 4;
void (*g_commit_calls[kMaxCommitCalls])() = {};
int g_commit_call_count = 0;
constexpr long kMinWakeGapUs = 1000;

int component_index(const pg::Component* c) {
  for (int i = 0; i < pg::component_count(); i++)
    if (pg::component_at(i) == c) return i;
  return -1;
}

void wake_mask(uint32 mask) {
  SharedState* s = shared();
  if (s == nullptr || mask == 0) return;
  for (auto& slot : s->slots) {
    SpinLockAcquire(&s->mutex);
    bool mine = slot.dboid == MyDatabaseId && slot.proc != nullptr;
    PGPROC* proc = slot.proc;
    SpinLockRelease(&s->mutex);
    if (mine) {
      // Bits still pending: the worker has not started the tick that takes them, and the
      // latch set with them is still set; it will see this commit too.
      uint32 before = pg_atomic_fetch_or_u32(&slot.wake_mask, mask);
      // A stale PGPROC only costs a spurious wake-up of whoever owns it now.
      if ((before & mask) != mask) SetLatch(&proc->procLatch);
    }
  }
}

void on_xact(XactEvent event, void*) {
  switch (event) {
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
      if (g_pending_mask != 0) {
        uint32 mask = g_pending_mask;
        g_pending_mask = 0;
        wake_mask(mask);
      }
      for (int i = 0; i < g_commit_call_count; i++) g_commit_calls[i]();
      g_commit_call_count = 0;
      break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
    case XACT_EVENT_PREPARE:
      g_pending_mask = 0;
      g_commit_call_count = 0;
      break;
    default:
      break;
  }
}
}  // namespace

void wake_now(const pg::Component* c) {
  int i = component_index(c);
  if (i >= 0) wake_mask(1u << i);
}

void wake_at_commit(const pg::Component* c) {
  int i = component_index(c);
  if (i >= 0) g_pending_mask |= (1u << i);
}

void call_at_commit(void (*fn)()) {
  for (int i = 0; i < g_commit_call_count; i++)
    if (g_commit_calls[i] == fn) return;
  if (g_commit_call_count == kMaxCommitCalls)
    elog(ERROR, "pg_consistency: too many distinct commit-time calls in one transaction");
  g_commit_calls[g_commit_call_count++] = fn;
}

void wait_paced(long timeout_ms, TimestampTz* last_wake) {
  if (timeout_ms <= 0) return;
  if (*last_wake != 0) {
    long since = static_cast<long>(GetCurrentTimestamp() - *last_wake);
    if (since >= 0 && since < kMinWakeGapUs)
      pg_usleep(std::min<long>(kMinWakeGapUs - since, timeout_ms * 1000L));
  }
  int rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, timeout_ms, PG_WAIT_EXTENSION);
  ResetLatch(MyLatch);
  if (rc & WL_LATCH_SET) *last_wake = GetCurrentTimestamp();
}

void install_wake_callback() { RegisterXactCallback(on_xact, nullptr); }

}  // namespace pgc::worker
