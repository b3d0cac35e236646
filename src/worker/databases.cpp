#include "worker/databases.hpp"

#include "worker/settings.hpp"

extern "C" {
#include "miscadmin.h"
#include "storage/shmem.h"
}

namespace pgc::worker {

namespace {

struct Registry {
  slock_t mutex;
  int capacity;
  Size stride;  // bytes per slot: the header, then every component's area
  Size area_offset[pg::kMaxComponents];
  // capacity slots of `stride` bytes follow
};

Registry* g_registry = nullptr;
int g_mine = -1;  // this process's cached slot index (checked against MyDatabaseId on use)
Oid g_full_logged_for = InvalidOid;

// Bytes before the first slot (the registry header).
Size header_size() { return MAXALIGN(sizeof(Registry)); }

// The layout, computed the same way at request and at init.
Size layout(Size offsets[pg::kMaxComponents]) {
  Size stride = MAXALIGN(sizeof(DatabaseSlot));
  for (int i = 0; i < pg::component_count(); i++) {
    const pg::Component* c = pg::component_at(i);
    offsets[i] = stride;
    if (c->database_size > 0) stride = add_size(stride, MAXALIGN(c->database_size));
  }
  return stride;
}

Size shmem_size() {
  Size offsets[pg::kMaxComponents];
  return add_size(header_size(), mul_size(layout(offsets), settings::max_databases));
}

// Slot i (0-based) of the registry.
DatabaseSlot* slot_at(int i) {
  return reinterpret_cast<DatabaseSlot*>(reinterpret_cast<char*>(g_registry) + header_size() +
                                         static_cast<Size>(i) * g_registry->stride);
}

// An empty process row with its atomics initialised.
void init_process_slot(ProcessSlot& p) {
  uint32 zero = 0;
  memset(&p, 0, offsetof(ProcessSlot, wake_mask));
  pg_atomic_init_u32(&p.wake_mask, zero);
  pg_atomic_init_u32(&p.inject_errors, zero);
}

// Empties slot i and gives every component a fresh area. Lock held.
void reset_slot(int i) {
  DatabaseSlot* d = slot_at(i);
  memset(reinterpret_cast<char*>(d) + sizeof(pg_atomic_uint32), 0,
         g_registry->stride - sizeof(pg_atomic_uint32));
  init_process_slot(d->worker);
  d->worker.component = -1;
  for (auto& p : d->processes) init_process_slot(p);
  for (int c = 0; c < pg::component_count(); c++) {
    const pg::Component* comp = pg::component_at(c);
    if (comp->database_size > 0 && comp->database_init != nullptr) comp->database_init(area_of(d, comp));
  }
  pg_atomic_write_u32(&d->dboid, InvalidOid);
}

void shmem_init() {
  bool found = false;
  g_registry = static_cast<Registry*>(ShmemInitStruct("pg_consistency databases", shmem_size(), &found));
  if (found) return;
  SpinLockInit(&g_registry->mutex);
  g_registry->capacity = settings::max_databases;
  g_registry->stride = layout(g_registry->area_offset);
  for (int i = 0; i < g_registry->capacity; i++) {
    pg_atomic_init_u32(&slot_at(i)->dboid, InvalidOid);
    reset_slot(i);
  }
}

const pg::Component kComponent = {"databases", nullptr, shmem_size, shmem_init, nullptr, nullptr};
pg::ComponentRegistrar registrar(&kComponent);

// A free slot, or -1 (lock held).
int free_slot() {
  for (int i = 0; i < g_registry->capacity; i++)
    if (!slot_at(i)->in_use) return i;
  return -1;
}

// The in-use slot of database `dboid`, or -1 (lock held).
int find_by_oid(Oid dboid) {
  for (int i = 0; i < g_registry->capacity; i++)
    if (pg_atomic_read_u32(&slot_at(i)->dboid) == dboid && slot_at(i)->in_use) return i;
  return -1;
}

// The in-use slot named `dbname`, or -1 (lock held).
int find_by_name(const char* dbname) {
  for (int i = 0; i < g_registry->capacity; i++) {
    DatabaseSlot* d = slot_at(i);
    if (d->in_use && d->dbname[0] != '\0' && strcmp(d->dbname, dbname) == 0) return i;
  }
  return -1;
}

// The LOG of a claim that found every slot taken.
void log_full(const char* what) {
  ereport(LOG, (errmsg("pg_consistency: no shared-memory slot left for %s: all %d are taken", what,
                       g_registry->capacity),
                errhint("Raise pg_consistency.max_databases (needs a restart), or take databases off "
                        "pg_consistency.database.")));
}

}  // namespace

bool have_databases() { return g_registry != nullptr; }
slock_t* databases_lock() { return &g_registry->mutex; }
int database_capacity() { return g_registry != nullptr ? g_registry->capacity : 0; }
DatabaseSlot* database_at(int i) { return slot_at(i); }

void* area_of(DatabaseSlot* d, const pg::Component* c) {
  int i = pg::component_index(c);
  Assert(i >= 0 && c->database_size > 0);
  return reinterpret_cast<char*>(d) + g_registry->area_offset[i];
}

DatabaseSlot* my_database(bool claim) {
  if (g_registry == nullptr || !OidIsValid(MyDatabaseId)) return nullptr;
  if (g_mine >= 0 && pg_atomic_read_u32(&slot_at(g_mine)->dboid) == MyDatabaseId) return slot_at(g_mine);
  SpinLockAcquire(&g_registry->mutex);
  int i = find_by_oid(MyDatabaseId);
  if (i < 0 && !claim) {
    SpinLockRelease(&g_registry->mutex);
    return nullptr;
  }
  if (i < 0) {
    i = free_slot();
    if (i >= 0) {
      reset_slot(i);
      slot_at(i)->in_use = true;
      pg_atomic_write_u32(&slot_at(i)->dboid, MyDatabaseId);
    }
  }
  SpinLockRelease(&g_registry->mutex);
  if (i < 0) {
    if (g_full_logged_for != MyDatabaseId) {
      g_full_logged_for = MyDatabaseId;
      char what[64];
      snprintf(what, sizeof(what), "database %u", MyDatabaseId);
      log_full(what);
    }
    return nullptr;
  }
  g_mine = i;
  return slot_at(i);
}

void* my_area(const pg::Component* c) {
  DatabaseSlot* d = my_database();
  return d != nullptr ? area_of(d, c) : nullptr;
}

DatabaseSlot* find_database(Oid dboid) {
  if (g_registry == nullptr) return nullptr;
  SpinLockAcquire(&g_registry->mutex);
  int i = find_by_oid(dboid);
  SpinLockRelease(&g_registry->mutex);
  return i >= 0 ? slot_at(i) : nullptr;
}

DatabaseSlot* claim_listed(const char* dbname) {
  SpinLockAcquire(&g_registry->mutex);
  int i = find_by_name(dbname);
  if (i < 0) {
    i = free_slot();
    if (i >= 0) {
      reset_slot(i);
      slot_at(i)->in_use = true;
      strlcpy(slot_at(i)->dbname, dbname, NAMEDATALEN);
    }
  }
  if (i >= 0) slot_at(i)->listed = true;
  SpinLockRelease(&g_registry->mutex);
  if (i < 0) {
    char what[NAMEDATALEN + 16];
    snprintf(what, sizeof(what), "database \"%s\"", dbname);
    log_full(what);
    return nullptr;
  }
  return slot_at(i);
}

void release_listed(const char* dbname) {
  SpinLockAcquire(&g_registry->mutex);
  int i = find_by_name(dbname);
  if (i >= 0) {
    reset_slot(i);
    slot_at(i)->in_use = false;
  }
  SpinLockRelease(&g_registry->mutex);
}

bool is_listed(const char* dbname) {
  if (g_registry == nullptr || dbname == nullptr) return false;
  SpinLockAcquire(&g_registry->mutex);
  int i = find_by_name(dbname);
  bool listed = i >= 0 && slot_at(i)->listed;
  SpinLockRelease(&g_registry->mutex);
  return listed;
}

DatabaseSlot* join_as_worker(const char* dbname) {
  SpinLockAcquire(&g_registry->mutex);
  int by_oid = find_by_oid(MyDatabaseId);
  int by_name = find_by_name(dbname);
  int i = by_oid >= 0 ? by_oid : by_name;
  if (by_oid >= 0 && by_name >= 0 && by_oid != by_name) {
    // Sessions claimed a slot before the worker came: keep theirs (it has their state),
    // mark it listed, free the launcher's.
    slot_at(by_oid)->listed = slot_at(by_oid)->listed || slot_at(by_name)->listed;
    reset_slot(by_name);
    slot_at(by_name)->in_use = false;
  }
  if (i < 0) {
    i = free_slot();
    if (i >= 0) {
      reset_slot(i);
      slot_at(i)->in_use = true;
    }
  }
  if (i >= 0) {
    strlcpy(slot_at(i)->dbname, dbname, NAMEDATALEN);
    pg_atomic_write_u32(&slot_at(i)->dboid, MyDatabaseId);
  }
  SpinLockRelease(&g_registry->mutex);
  if (i < 0)
    ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                    errmsg("pg_consistency: no shared-memory slot left for database \"%s\": all %d are taken",
                           dbname, g_registry->capacity),
                    errhint("Raise pg_consistency.max_databases (needs a restart).")));
  g_mine = i;
  return slot_at(i);
}

void release_dropped(Oid dboid, const char* dbname) {
  if (g_registry == nullptr) return;
  SpinLockAcquire(&g_registry->mutex);
  for (int i = 0; i < g_registry->capacity; i++) {
    DatabaseSlot* d = slot_at(i);
    if (!d->in_use) continue;
    bool same_oid = OidIsValid(dboid) && pg_atomic_read_u32(&d->dboid) == dboid;
    bool same_name = dbname != nullptr && strcmp(d->dbname, dbname) == 0;
    if (same_oid || same_name) {
      reset_slot(i);
      d->in_use = false;
    }
  }
  SpinLockRelease(&g_registry->mutex);
}

const char* state_name(WorkerState s) {
  static const char* const kNames[] = {"stopped", "starting", "waiting_for_extension", "running", "backoff"};
  int i = static_cast<int>(s);
  return i >= 0 && i < static_cast<int>(sizeof(kNames) / sizeof(kNames[0])) ? kNames[i] : "unknown";
}

}  // namespace pgc::worker
