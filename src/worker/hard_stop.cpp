#include "worker/hard_stop.hpp"

#include "pg/run_as.hpp"

extern "C" {
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/timestamp.h"
}

namespace pgc::worker {

namespace {

char g_label[kHardStopLabelBytes];
bool g_callback_registered = false;

// Appends e to the ring; returns false (and *dropped = the oldest) when one was dropped.
bool append(const HardStopEntry& e, HardStopEntry* dropped) {
  SharedState* s = shared();
  bool dropped_one = false;
  SpinLockAcquire(&s->mutex);
  if (s->hard_stop_count >= kMaxHardStops) {
    *dropped = s->hard_stops[0];
    memmove(&s->hard_stops[0], &s->hard_stops[1], sizeof(HardStopEntry) * (kMaxHardStops - 1));
    s->hard_stop_count = kMaxHardStops - 1;
    dropped_one = true;
  }
  s->hard_stops[s->hard_stop_count++] = e;
  SpinLockRelease(&s->mutex);
  return !dropped_one;
}

// The ring was full: the oldest entry is dropped uncharged, and said so.
void log_dropped(const HardStopEntry& d) {
  ereport(LOG, (errmsg("pg_consistency: too many hard stops waiting to be charged; dropped the "
                       "oldest (%s in database %u, at %s)",
                       d.label, d.dboid, timestamptz_to_str(d.at))));
}

// before_shmem_exit: after a hard stop, record what was running.
void on_exit(int, Datum) {
  if (!pg::hard_stop_fired()) return;
  if (g_label[0] == '\0') {
    ereport(LOG, (errmsg("pg_consistency: user code ran past its time limit and did not stop "
                         "when cancelled; the process was stopped")));
    return;
  }
  ereport(LOG, (errmsg("pg_consistency: %s ran past its time limit and did not stop when "
                       "cancelled; the process was stopped, the next one charges it as a "
                       "failed attempt",
                       g_label)));
  if (shared() == nullptr || !OidIsValid(MyDatabaseId)) return;
  HardStopEntry e{};
  e.dboid = MyDatabaseId;
  e.at = GetCurrentTimestamp();
  strlcpy(e.label, g_label, sizeof(e.label));
  HardStopEntry dropped;
  if (!append(e, &dropped)) log_dropped(dropped);
}

}  // namespace

void set_hard_stop_label(const char* label) {
  if (!g_callback_registered && IsBackgroundWorker) {
    before_shmem_exit(on_exit, 0);
    g_callback_registered = true;
  }
  strlcpy(g_label, label, sizeof(g_label));
}

void clear_hard_stop_label() { g_label[0] = '\0'; }

int take_hard_stops(const char* prefix, HardStopEntry* out, int max) {
  SharedState* s = shared();
  if (s == nullptr || max <= 0) return 0;
  size_t plen = strlen(prefix);
  int taken = 0;
  SpinLockAcquire(&s->mutex);
  int kept = 0;
  for (int i = 0; i < s->hard_stop_count; i++) {
    const HardStopEntry& e = s->hard_stops[i];
    if (taken < max && e.dboid == MyDatabaseId && strncmp(e.label, prefix, plen) == 0) {
      out[taken++] = e;
    } else {
      if (kept != i) s->hard_stops[kept] = e;
      kept++;
    }
  }
  s->hard_stop_count = kept;
  SpinLockRelease(&s->mutex);
  return taken;
}

void put_back_hard_stop(const HardStopEntry& e) {
  if (shared() == nullptr) return;
  HardStopEntry dropped;
  if (!append(e, &dropped)) log_dropped(dropped);
}

}  // namespace pgc::worker
