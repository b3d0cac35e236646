// The module's entry: PG_MODULE_MAGIC, _PG_init, the foundation's GUCs and the
// shared-memory hooks that serve every registered component.
#include "pg/component.hpp"
#include "pg/gucs.hpp"
#include "worker/drop_database.hpp"
#include "worker/launcher.hpp"
#include "worker/wake.hpp"

extern "C" {
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "storage/lwlock.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;
PGDLLEXPORT void _PG_init(void);
}

namespace pgc::gucs {
char* database = nullptr;
int poll_interval_ms = 1000;
}  // namespace pgc::gucs

namespace {

shmem_request_hook_type prev_shmem_request_hook = nullptr;
shmem_startup_hook_type prev_shmem_startup_hook = nullptr;

void request_shmem() {
  if (prev_shmem_request_hook != nullptr) prev_shmem_request_hook();
  Size total = 0;
  for (int i = 0; i < pgc::pg::component_count(); i++) {
    const pgc::pg::Component* c = pgc::pg::component_at(i);
    if (c->shmem_size != nullptr) total = add_size(total, c->shmem_size());
  }
  RequestAddinShmemSpace(total);
}

void startup_shmem() {
  if (prev_shmem_startup_hook != nullptr) prev_shmem_startup_hook();
  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  for (int i = 0; i < pgc::pg::component_count(); i++) {
    const pgc::pg::Component* c = pgc::pg::component_at(i);
    if (c->shmem_init != nullptr) c->shmem_init();
  }
  LWLockRelease(AddinShmemInitLock);
}

void define_foundation_gucs() {
  DefineCustomStringVariable("pg_consistency.database",
                             "Databases (comma-separated) in which the pg_consistency worker runs.",
                             "The worker waits in a listed database until CREATE EXTENSION pg_consistency.",
                             &pgc::gucs::database, "postgres", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "pg_consistency.poll_interval", "Longest time the worker sleeps between checks for work.",
      "Commits of new work wake the worker at once; this is the fallback.", &pgc::gucs::poll_interval_ms,
      1000, 10, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
}

}  // namespace

void _PG_init(void) {
  define_foundation_gucs();
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
