// The module's entry: PG_MODULE_MAGIC, _PG_init (the foundation's settings first) and the
// shared-memory hooks that serve every registered component.
#include "pg/component.hpp"
#include "worker/drop_database.hpp"
#include "worker/launcher.hpp"
#include "worker/settings.hpp"
#include "worker/wake.hpp"

extern "C" {
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "storage/lwlock.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;
PGDLLEXPORT void _PG_init(void);
}

namespace {

shmem_request_hook_type prev_shmem_request_hook = nullptr;
shmem_startup_hook_type prev_shmem_startup_hook = nullptr;

// shmem_request_hook: the sum of every component's shared memory.
void request_shmem() {
  if (prev_shmem_request_hook != nullptr) prev_shmem_request_hook();
  Size total = 0;
  for (int i = 0; i < pgc::pg::component_count(); i++) {
    const pgc::pg::Component* c = pgc::pg::component_at(i);
    if (c->shmem_size != nullptr) total = add_size(total, c->shmem_size());
  }
  RequestAddinShmemSpace(total);
}

// shmem_startup_hook: every component initialises (or attaches to) its shared memory.
void startup_shmem() {
  if (prev_shmem_startup_hook != nullptr) prev_shmem_startup_hook();
  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  for (int i = 0; i < pgc::pg::component_count(); i++) {
    const pgc::pg::Component* c = pgc::pg::component_at(i);
    if (c->shmem_init != nullptr) c->shmem_init();
  }
  LWLockRelease(AddinShmemInitLock);
}

}  // namespace

void _PG_init(void) {
  if (pgc::pg::components_overflowed())
    ereport(FATAL, (errmsg("pg_consistency: more than %d components registered", pgc::pg::kMaxComponents)));
  pgc::worker::settings::define_settings();
  for (int i = 0; i < pgc::pg::component_count(); i++) {
    const pgc::pg::Component* c = pgc::pg::component_at(i);
    if (c->define_gucs != nullptr) c->define_gucs();
  }
  MarkGUCPrefixReserved("pg_consistency");
  pgc::worker::install_wake_callback();

  if (!process_shared_preload_libraries_in_progress) return;
  prev_shmem_request_hook = shmem_request_hook;
  shmem_request_hook = request_shmem;
  prev_shmem_startup_hook = shmem_startup_hook;
  shmem_startup_hook = startup_shmem;
  pgc::worker::register_launcher();
  pgc::worker::install_drop_database_hook();
}
