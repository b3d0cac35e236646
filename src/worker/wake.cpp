#include "worker/wake.hpp"

#include "worker/shared_state.hpp"

extern "C" {
#include "storage/latch.h"
}

namespace pgc::worker {

namespace {
uint32 g_pending_mask = 0;

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
      pg_atomic_fetch_or_u32(&slot.wake_mask, mask);
      // A stale PGPROC only costs a spurious wake-up of whoever owns it now.
      SetLatch(&proc->procLatch);
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
      break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
    case XACT_EVENT_PREPARE:
      g_pending_mask = 0;
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

void install_wake_callback() { RegisterXactCallback(on_xact, nullptr); }

}  // namespace pgc::worker
