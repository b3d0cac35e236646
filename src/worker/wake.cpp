#include "worker/wake.hpp"

#include "worker/databases.hpp"
#include "worker/processes.hpp"

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

// Sets the bits of `mask` in the wake masks of this database's worker and of the
// processes of those components, and the latch of each that did not have them yet.
void wake_mask(uint32 mask) {
  DatabaseSlot* d = my_database(false);
  if (d == nullptr || mask == 0) return;
  PGPROC* procs[kMaxProcessesPerDatabase + 1];
  pg_atomic_uint32* masks[kMaxProcessesPerDatabase + 1];
  int n = 0;
  // Components that run in processes of their own are not the worker's business.
  uint32 worker_bits = mask;
  for (int i = 0; i < pg::component_count(); i++)
    if ((mask & (1u << i)) && runs_in_processes(pg::component_at(i))) worker_bits &= ~(1u << i);
  uint32 bits[kMaxProcessesPerDatabase + 1];
  SpinLockAcquire(databases_lock());
  if (d->worker.proc != nullptr && worker_bits != 0) {
    bits[n] = worker_bits;
    procs[n] = d->worker.proc;
    masks[n++] = &d->worker.wake_mask;
  }
  for (auto& p : d->processes) {
    if (p.in_use && p.proc != nullptr && p.component >= 0 && (mask & (1u << p.component))) {
      procs[n] = p.proc;
      bits[n] = mask;
      masks[n++] = &p.wake_mask;
    }
  }
  SpinLockRelease(databases_lock());
  for (int i = 0; i < n; i++) {
    // Bits still pending: the process has not started the round that takes them, and the
    // latch set with them is still set; it will see this commit too.
    uint32 before = pg_atomic_fetch_or_u32(masks[i], bits[i]);
    // A stale PGPROC only costs a spurious wake-up of whoever owns it now.
    if ((before & bits[i]) != bits[i]) SetLatch(&procs[i]->procLatch);
  }
}

// At commit: the flagged wake-ups and commit calls happen; at abort or PREPARE: none.
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
  int i = pg::component_index(c);
  if (i >= 0) wake_mask(1u << i);
}

void wake_at_commit(const pg::Component* c) {
  int i = pg::component_index(c);
  if (i >= 0) g_pending_mask |= (1u << i);
}

void call_at_commit(void (*fn)()) {
  for (int i = 0; i < g_commit_call_count; i++)
    if (g_commit_calls[i] == fn) return;
  if (g_commit_call_count == kMaxCommitCalls)
    elog(ERROR, "pg_consistency: too many distinct commit-time calls in one transaction");
  g_commit_calls[g_commit_call_count++] = fn;
}

bool wait_paced(long timeout_ms, TimestampTz* last_wake, int socket) {
  if (timeout_ms <= 0) return false;
  if (*last_wake != 0) {
    long since = static_cast<long>(GetCurrentTimestamp() - *last_wake);
    if (since >= 0 && since < kMinWakeGapUs)
      pg_usleep(std::min<long>(kMinWakeGapUs - since, timeout_ms * 1000L));
  }
  int events = WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH;
  int rc = socket >= 0 ? WaitLatchOrSocket(MyLatch, events | WL_SOCKET_READABLE, socket, timeout_ms,
                                           PG_WAIT_EXTENSION)
                       : WaitLatch(MyLatch, events, timeout_ms, PG_WAIT_EXTENSION);
  ResetLatch(MyLatch);
  if (rc & WL_LATCH_SET) *last_wake = GetCurrentTimestamp();
  return (rc & WL_SOCKET_READABLE) != 0;
}

void install_wake_callback() { RegisterXactCallback(on_xact, nullptr); }

}  // namespace pgc::worker
