// The event store component: shared memory, transaction callbacks and the gap-safe read
// horizon (docs/eventstore.md, "Gap-safe global order"); its settings are in settings.cpp.
//
// Writers: before a transaction takes its first position it publishes a lower bound of
// every position it may get (the sequence's next value, read before nextval):
//   - preloaded: in its own shared-memory slot (indexed by pgprocno), cleared by the
//     transaction callback at COMMIT/ABORT, which runs after the commit became visible;
//   - without shared memory, or when the transaction is prepared: as a transaction-level
//     advisory lock (classid/objid = the bound, objsubid = kFloorTag) that PostgreSQL
//     releases after the commit became visible, keeps through PREPARE TRANSACTION and
//     restores after a restart or on a promoted standby.
// Readers: H = min(sequence's next value, every published bound), read in that order,
// and only then take the snapshot they read with.
#include <random>

#include "common/backoff.hpp"
#include "consistency/horizon.hpp"
#include "eventstore/core.hpp"
#include "eventstore/es.hpp"
#include "pg/component.hpp"
#include "pg/guard.hpp"
#include "worker/databases.hpp"
#include "worker/wake.hpp"

extern "C" {
#include "access/twophase.h"
#include "access/xlog.h"
#include "commands/sequence.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/fmgrprotos.h"
#include "utils/timestamp.h"
}

namespace pgc::eventstore {

namespace {

// objsubid values of our advisory lock tags; SQL's advisory functions use 1 and 2.
constexpr uint16 kFloorTag = 0x5045;   // a writer's lower bound, in classid:objid
constexpr uint16 kMarkerTag = 0x504D;  // held (share) by every bound published as a lock

struct WriterSlot {
  pg_atomic_uint64 floor;  // 0 = no open appending transaction
  Oid dboid;
  int pid;
  TimestampTz since;
};

// The event store's area in each database's slot (worker/databases.hpp).
struct DbFlags {
  pg_atomic_uint32 active;  // active subscriptions, as last counted by the worker
};

struct EsShared {
  ConditionVariable progress;  // a subscription checkpoint moved
  int nslots;
  WriterSlot slots[FLEXIBLE_ARRAY_MEMBER];
};

EsShared* g_shared = nullptr;

// This backend's transaction state.
bool g_published = false;  // a bound is published for the current transaction
bool g_via_slot = false;   // ... in the shared-memory slot (else as a lock)
int g_lock_level = 0;      // nesting level that holds the lock
int64 g_floor = 0;
int64 g_pending_last = 0;     // highest position appended, including this transaction
int64 g_session_last = 0;     // ... by committed (or prepared) transactions
bool g_wake_pending = false;  // wake the worker once this transaction has committed

int slot_count() { return MaxBackends + NUM_AUXILIARY_PROCS; }

Size shmem_size() { return add_size(offsetof(EsShared, slots), mul_size(sizeof(WriterSlot), slot_count())); }

void shmem_init() {
  bool found = false;
  EsShared* s = static_cast<EsShared*>(ShmemInitStruct("pg_consistency event store", shmem_size(), &found));
  if (!found) {
    ConditionVariableInit(&s->progress);
    s->nslots = slot_count();
    for (int i = 0; i < s->nslots; i++) {
      pg_atomic_init_u64(&s->slots[i].floor, 0);
      s->slots[i].dboid = InvalidOid;
      s->slots[i].pid = 0;
      s->slots[i].since = 0;
    }
  }
  g_shared = s;
}

WriterSlot* my_slot() {
  if (g_shared == nullptr || MyProc == nullptr) return nullptr;
  int i = MyProc->pgprocno;
  if (i < 0 || i >= g_shared->nslots) return nullptr;
  return &g_shared->slots[i];
}

// The advisory lock tag of `floor` (a 64-bit bound in classid:objid) of `kind` in this
// database.
void set_tag(LOCKTAG* tag, int64 floor, uint16 kind) {
  SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, static_cast<uint32>(static_cast<uint64>(floor) >> 32),
                       static_cast<uint32>(floor & 0xFFFFFFFF), kind);
}

// Publishes `floor` as transaction-level share locks (the bound and the marker).
void lock_floor(int64 floor) {
  LOCKTAG tag;
  set_tag(&tag, floor, kFloorTag);
  (void)LockAcquire(&tag, ShareLock, false, false);
  set_tag(&tag, 0, kMarkerTag);
  (void)LockAcquire(&tag, ShareLock, false, false);
}

// True when no transaction holds a bound as a lock in this database (a cheap probe
// that conflicts with the marker's share locks, but not with other probes).
bool no_lock_floors() {
  LOCKTAG tag;
  set_tag(&tag, 0, kMarkerTag);
  if (LockAcquire(&tag, RowExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL) return false;
  LockRelease(&tag, RowExclusiveLock, false);
  return true;
}

struct LockFloor {
  int64 floor;
  int pid;
  TransactionId prepared_xid;
};

// Bounds held as locks in this database (granted ones). Returns a palloc'd array.
LockFloor* lock_floors(int* n) {
  LockData* ld = GetLockStatusData();
  LockFloor* out = static_cast<LockFloor*>(palloc(sizeof(LockFloor) * (ld->nelements + 1)));
  int k = 0;
  for (int i = 0; i < ld->nelements; i++) {
    const LockInstanceData* li = &ld->locks[i];
    if (li->locktag.locktag_type != LOCKTAG_ADVISORY || li->holdMask == 0) continue;
    if (li->locktag.locktag_field1 != MyDatabaseId || li->locktag.locktag_field4 != kFloorTag) continue;
    out[k].floor = static_cast<int64>((static_cast<uint64>(li->locktag.locktag_field2) << 32) |
                                      li->locktag.locktag_field3);
    out[k].pid = li->pid;
    out[k].prepared_xid = InvalidTransactionId;
    // A prepared transaction's locks belong to a dummy process (pid 0); its xid is the
    // one whose transaction lock is held by the same virtual transaction.
    if (li->pid == 0) {
      for (int j = 0; j < ld->nelements; j++) {
        const LockInstanceData* lj = &ld->locks[j];
        if (lj->locktag.locktag_type == LOCKTAG_TRANSACTION && lj->holdMask != 0 && lj->pid == 0 &&
            lj->backend == li->backend && lj->lxid == li->lxid) {
          out[k].prepared_xid = static_cast<TransactionId>(lj->locktag.locktag_field1);
          break;
        }
      }
    }
    k++;
  }
  *n = k;
  pfree(ld->locks);
  pfree(ld);
  return out;
}

// The position sequence's next value (a lower bound of any position not yet taken).
int64 sequence_next(Oid seq) {
  SavedUser su;
  enter_owner(&su);
  LOCAL_FCINFO(fcinfo, 1);
  InitFunctionCallInfoData(*fcinfo, nullptr, 1, InvalidOid, nullptr, nullptr);
  fcinfo->args[0].value = ObjectIdGetDatum(seq);
  fcinfo->args[0].isnull = false;
  Datum d = pg_sequence_last_value(fcinfo);
  leave_owner(&su);
  if (fcinfo->isnull) return 1;  // never called: the next value is the start value
  return DatumGetInt64(d) + 1;
}

// Publishes this transaction's lower bound (the sequence's next value): in its
// shared-memory slot, or without one as locks.
void publish_floor(Oid seq) {
  int64 floor = sequence_next(seq);
  WriterSlot* slot = my_slot();
  if (slot != nullptr) {
    slot->dboid = MyDatabaseId;
    slot->pid = MyProcPid;
    slot->since = GetCurrentTransactionStartTimestamp();
    pg_write_barrier();
    pg_atomic_write_u64(&slot->floor, static_cast<uint64>(floor));
    pg_memory_barrier();  // the bound is visible before we take a position
    g_via_slot = true;
  } else {
    lock_floor(floor);
    g_lock_level = GetCurrentTransactionNestLevel();
    g_via_slot = false;
  }
  g_floor = floor;
  g_published = true;
}

// At the end of the transaction: withdraws the bound published in the slot (a bound
// held as locks goes with the transaction).
void clear_slot() {
  if (g_published && g_via_slot) {
    WriterSlot* slot = my_slot();
    if (slot != nullptr) pg_atomic_write_u64(&slot->floor, 0);
  }
  g_published = false;
  g_via_slot = false;
}

// Transaction callback: keeps the bound through PREPARE, withdraws it at the end, and
// keeps last_appended_position and the pending worker wake-up in step.
void on_xact(XactEvent event, void*) {
  switch (event) {
    case XACT_EVENT_PRE_PREPARE:
      // A prepared transaction outlives this backend (and a restart): keep its bound as
      // locks, which PostgreSQL carries with the prepared transaction until COMMIT or
      // ROLLBACK PREPARED. The slot is cleared once the locks are held.
      if (g_published && g_via_slot) lock_floor(g_floor);
      break;
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
      clear_slot();
      g_session_last = g_pending_last;
      catalog_at_xact_end();
      // Only now, with our bound gone, can the worker's horizon pass our events: a
      // wake-up sent earlier (wake_at_commit runs before this callback) could find the
      // bound still set and leave the events to the next poll.
      if (g_wake_pending) {
        g_wake_pending = false;
        worker::wake_now(&kComponent);
      }
      break;
    case XACT_EVENT_PREPARE:
      clear_slot();
      g_session_last = g_pending_last;
      g_wake_pending = false;  // COMMIT PREPARED may come from anywhere; the poll covers it
      catalog_at_xact_end();
      break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
      clear_slot();
      g_pending_last = g_session_last;
      g_wake_pending = false;
      catalog_at_xact_end();
      break;
    default:
      break;
  }
}

// Subtransaction callback: follows a bound held as a lock when the subtransaction that
// took it ends (aborted: gone; committed: its parent holds it).
void on_subxact(SubXactEvent event, SubTransactionId, SubTransactionId, void*) {
  if (!g_published || g_via_slot) return;  // a slot is kept until the top level ends
  int level = GetCurrentTransactionNestLevel();
  if (g_lock_level < level) return;
  if (event == SUBXACT_EVENT_ABORT_SUB) {
    g_published = false;  // the lock went with the subtransaction: publish again
  } else if (event == SUBXACT_EVENT_COMMIT_SUB) {
    g_lock_level = level - 1;  // the parent owns the lock now
  }
}

// The component's load hook: its settings, and the per-backend transaction callbacks.
void define_settings_and_callbacks() {
  settings::define_settings();
  // _PG_init runs this once per process: the right moment for per-backend callbacks.
  RegisterXactCallback(on_xact, nullptr);
  RegisterSubXactCallback(on_subxact, nullptr);
  register_catalog_callbacks();
}

void init_flags(void* area) { pg_atomic_init_u32(&static_cast<DbFlags*>(area)->active, 0); }

}  // namespace

const pg::Component kComponent = {"eventstore",       define_settings_and_callbacks,
                                  shmem_size,         shmem_init,
                                  subscriptions_tick, nullptr,
                                  sizeof(DbFlags),    init_flags};
namespace {
pg::ComponentRegistrar registrar(&kComponent);
}

bool have_shared_memory() { return g_shared != nullptr; }

int64 take_position() {
  Oid seq = oids().sequence;
  if (!g_published) publish_floor(seq);
  return nextval_internal(seq, false);
}

void note_appended(int64 position) {
  if (position > g_pending_last) g_pending_last = position;
}

int64 read_horizon() {
  // A standby sees no writer of the primary: it reads the horizon the primary published
  // into WAL (consistency/horizon.cpp).
  if (RecoveryInProgress()) return consistency::replayed_read_horizon();
  Oid seq = oids().sequence;
  int64 h = sequence_next(seq);
  pg_memory_barrier();  // read the sequence before the bounds (see the method's proof)
  int cap = (g_shared != nullptr ? g_shared->nslots : 0) + 1;
  int64* floors = static_cast<int64*>(palloc(sizeof(int64) * cap));
  int n = 0;
  if (g_published) floors[n++] = g_floor;
  if (g_shared != nullptr) {
    for (int i = 0; i < g_shared->nslots && n < cap; i++) {
      WriterSlot* slot = &g_shared->slots[i];
      uint64 f = pg_atomic_read_u64(&slot->floor);
      if (f == 0) continue;
      pg_read_barrier();
      if (slot->dboid == MyDatabaseId) floors[n++] = static_cast<int64>(f);
    }
  }
  h = eventstore::read_horizon(h, floors, n);
  if (g_shared == nullptr || !no_lock_floors()) {
    int nl = 0;
    LockFloor* lf = lock_floors(&nl);
    for (int i = 0; i < nl; i++)
      if (lf[i].floor < h) h = lf[i].floor;
    pfree(lf);
  }
  pfree(floors);
  return h;
}

void broadcast_progress() {
  if (g_shared != nullptr) ConditionVariableBroadcast(&g_shared->progress);
}

void prepare_progress_wait() {
  if (g_shared != nullptr) ConditionVariablePrepareToSleep(&g_shared->progress);
}

void wait_progress(long timeout_ms) {
  if (timeout_ms <= 0) return;
  if (g_shared != nullptr) {
    (void)ConditionVariableTimedSleep(&g_shared->progress, timeout_ms, PG_WAIT_EXTENSION);
  } else {
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, timeout_ms, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
  }
}

void cancel_progress_wait() {
  if (g_shared != nullptr) ConditionVariableCancelSleep();
}

void set_active_subscriptions(uint32 count) {
  if (auto* flags = static_cast<DbFlags*>(worker::my_area(&kComponent)))
    pg_atomic_write_u32(&flags->active, count);
}

bool subscriptions_may_be_active() {
  // No slot: no worker has run here since startup (a worker always has one).
  worker::DatabaseSlot* d = worker::my_database(false);
  if (d == nullptr) return false;
  return pg_atomic_read_u32(&static_cast<DbFlags*>(worker::area_of(d, &kComponent))->active) > 0;
}

void wake_subscriptions_at_commit() {
  if (subscriptions_may_be_active()) g_wake_pending = true;
}

}  // namespace pgc::eventstore

using namespace pgc::eventstore;
namespace pg = pgc::pg;

// Default of events.global_position.
PGC_FUNCTION(pgc_es_next_position) {
  int64 p = take_position();
  note_appended(p);
  PG_RETURN_INT64(p);
}

// consistency.read_horizon(): read_all returns positions below it.
PGC_FUNCTION(pgc_es_read_horizon) { PG_RETURN_INT64(pgc::eventstore::read_horizon()); }

// consistency.last_appended_position(): the highest position this session appended (in
// committed transactions and the current one).
PGC_FUNCTION(pgc_es_last_appended_position) { PG_RETURN_INT64(g_pending_last); }

// Open appending transactions: (pid, lower_bound, since, prepared_xid).
PGC_FUNCTION(pgc_es_open_writers) {
  InitMaterializedSRF(fcinfo, 0);
  ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  Datum values[4];
  bool nulls[4];
  if (g_shared != nullptr) {
    for (int i = 0; i < g_shared->nslots; i++) {
      WriterSlot* slot = &g_shared->slots[i];
      uint64 f = pg_atomic_read_u64(&slot->floor);
      if (f == 0) continue;
      pg_read_barrier();
      if (slot->dboid != MyDatabaseId) continue;
      int pid = slot->pid;
      TimestampTz since = slot->since;
      values[0] = Int32GetDatum(pid);
      values[1] = Int64GetDatum(static_cast<int64>(f));
      values[2] = TimestampTzGetDatum(since);
      nulls[0] = nulls[1] = false;
      nulls[2] = since == 0;
      nulls[3] = true;
      values[3] = 0;
      tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
  }
  int nl = 0;
  LockFloor* lf = lock_floors(&nl);
  for (int i = 0; i < nl; i++) {
    nulls[0] = lf[i].pid == 0;
    values[0] = Int32GetDatum(lf[i].pid);
    nulls[1] = false;
    values[1] = Int64GetDatum(lf[i].floor);
    nulls[2] = true;
    values[2] = 0;
    nulls[3] = !TransactionIdIsValid(lf[i].prepared_xid);
    values[3] = TransactionIdGetDatum(lf[i].prepared_xid);
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  }
  return (Datum)0;
}
