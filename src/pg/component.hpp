// How each pillar plugs into the module without editing a central list: a file declares
// a static `Component` and a `ComponentRegistrar`; _PG_init, the shared-memory hooks and
// the per-database worker then call every registered component in registration order.
#pragma once

#include "pg/postgres.hpp"

namespace pgc::pg {

struct Component {
  const char* name;
  // At _PG_init: DefineCustom*Variable for this component's GUCs.
  void (*define_gucs)();
  // Preload only: shared memory this component needs, and its initialisation (called
  // from shmem_startup_hook with AddinShmemInitLock held).
  Size (*shmem_size)();
  void (*shmem_init)();
  // In the per-database worker, outside any transaction. Returns how many milliseconds
  // until it wants to run again (0 = at once, more work is waiting). It may ereport: the
  // worker aborts any open transaction, logs the error and backs this component off.
  long (*worker_tick)();
  // In the worker at exit (proc_exit), for releasing outside resources.
  void (*worker_exit)();
};

inline constexpr int kMaxComponents = 16;

void register_component(const Component* c);
int component_count();
const Component* component_at(int i);

struct ComponentRegistrar {
  explicit ComponentRegistrar(const Component* c) { register_component(c); }
};

}  // namespace pgc::pg
