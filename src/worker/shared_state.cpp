#include "worker/shared_state.hpp"

#include "pg/component.hpp"

extern "C" {
#include "storage/shmem.h"
}

namespace pgc::worker {

namespace {
SharedState* g_shared = nullptr;

Size shmem_size() { return MAXALIGN(sizeof(SharedState)); }

void shmem_init() {
  bool found = false;
  g_shared =
      static_cast<SharedState*>(ShmemInitStruct("pg_consistency worker state", sizeof(SharedState), &found));
  if (!found) {
    memset(g_shared, 0, sizeof(SharedState));
    SpinLockInit(&g_shared->mutex);
    for (auto& slot : g_shared->slots) {
      pg_atomic_init_u32(&slot.wake_mask, 0);
      pg_atomic_init_u32(&slot.inject_errors, 0);
    }
  }
}

const pg::Component kComponent = {"worker state", nullptr, shmem_size, shmem_init, nullptr, nullptr};
pg::ComponentRegistrar registrar(&kComponent);
}  // namespace

SharedState* shared() { return g_shared; }

const char* state_name(WorkerState s) {
  switch (s) {
    case WorkerState::kStopped:
      return "stopped";
    case WorkerState::kStarting:
      return "starting";
    case WorkerState::kWaitingForExtension:
      return "waiting_for_extension";
    case WorkerState::kRunning:
      return "running";
    case WorkerState::kBackoff:
      return "backoff";
  }
  return "unknown";
}

}  // namespace pgc::worker
