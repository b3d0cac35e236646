#include "worker/shared_state.hpp"

#include "pg/component.hpp"

extern "C" {
#include "storage/shmem.h"
}

namespace pgc::worker {

namespace {
SharedState* g_shared = nullptr;

// The cluster-wide part of the worker model (launcher, drop hold, hard stops).
Size shmem_size() { return MAXALIGN(sizeof(SharedState)); }

void shmem_init() {
  bool found = false;
  g_shared =
      static_cast<SharedState*>(ShmemInitStruct("pg_consistency worker state", sizeof(SharedState), &found));
  if (!found) {
    memset(g_shared, 0, sizeof(SharedState));
    SpinLockInit(&g_shared->mutex);
  }
}

const pg::Component kComponent = {"worker state", nullptr, shmem_size, shmem_init, nullptr, nullptr};
pg::ComponentRegistrar registrar(&kComponent);
}  // namespace

SharedState* shared() { return g_shared; }

}  // namespace pgc::worker
