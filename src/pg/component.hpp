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
  // Not called while the component runs in processes of its own (see `processes`).
  long (*worker_tick)();
  // In the worker at exit (proc_exit), for releasing outside resources.
  void (*worker_exit)();

  // Per-database shared memory (worker/databases.hpp): the bytes this component keeps in
  // each database's slot, zeroed when a database claims the slot, then database_init.
  Size database_size;
  void (*database_init)(void* area);

  // Processes of its own (worker/processes.hpp). processes(): how many the per-database
  // worker keeps running for this component now (0: none, and worker_tick runs in the
  // worker instead). Each runs process_tick(index), index 1..N, under the same rules as
  // worker_tick, after process_start(index) once connected. process_type is the
  // bgw_type its processes show in pg_stat_activity and the kind in consistency.workers.
  int (*processes)();
  long (*process_tick)(int index);
  void (*process_start)(int index);
  const char* process_type;
  // Optional: a descriptor that the process running this component's tick (its own
  // process, or the worker) waits on beside its latch; readable runs the tick at once
  // (e.g. a Kafka queue's wake-up pipe). -1: none now. The tick reads it empty.
  int (*wait_socket)() = nullptr;
};

// Bit i of a database's wake mask stands for component i.
inline constexpr int kMaxComponents = 32;

// Aborts loading (FATAL in _PG_init) once more than kMaxComponents registered.
void register_component(const Component* c);
int component_count();
const Component* component_at(int i);
// The registration index of `c`, or -1.
int component_index(const Component* c);
// True when a component could not be registered (checked by _PG_init).
bool components_overflowed();

struct ComponentRegistrar {
  explicit ComponentRegistrar(const Component* c) { register_component(c); }
};

}  // namespace pgc::pg
