// Shared-memory counters, the Component that plugs two-phase commit into the
// module and the worker, and catalog access as the catalog's owner.
#include "twopc/state.hpp"

#include "pg/guard.hpp"
#include "pg/roles.hpp"
#include "pg/run_as.hpp"
#include "pg/spi.hpp"
#include "pg/text.hpp"
#include "twopc/recovery.hpp"
#include "worker/databases.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "libpq-fe.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

namespace pgc::twopc {

namespace {

// The Component's load-time hook: the settings, and the coordinator's transaction
// callbacks (every backend needs them from its start).
void at_load() {
  settings::define_settings();
  install_callbacks();
}

// The two-phase commit counters of a database whose slot was just claimed.
void init_stats(void* area) {
  Stats& s = *static_cast<Stats*>(area);
  pg_atomic_init_u64(&s.prepared, 0);
  pg_atomic_init_u64(&s.committed, 0);
  pg_atomic_init_u64(&s.rolled_back, 0);
  pg_atomic_init_u64(&s.commit_deferred, 0);
  pg_atomic_init_u64(&s.recovery_commits, 0);
  pg_atomic_init_u64(&s.recovery_rollbacks, 0);
  pg_atomic_init_u64(&s.recovery_runs, 0);
  pg_atomic_init_u64(&s.recovery_failures, 0);
  pg_atomic_init_u32(&s.in_doubt, 0);
  pg_atomic_init_u32(&s.unreachable, 0);
  pg_atomic_init_u64(&s.last_recovery_at, 0);
}

}  // namespace

const pg::Component kComponent = {"twopc",       at_load,       nullptr,       nullptr,
                                  recovery_tick, recovery_exit, sizeof(Stats), init_stats};
pg::ComponentRegistrar registrar(&kComponent);

Stats* my_stats() { return static_cast<Stats*>(worker::my_area(&kComponent)); }

void debug_point(DebugPoint point) {
  if (settings::debug_pause_at == point && settings::debug_pause_ms > 0) {
    ereport(LOG, (errmsg("pg_consistency: two-phase commit pausing %d ms %s (test hook)",
                         settings::debug_pause_ms, settings::debug_point_name(point))));
    TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), settings::debug_pause_ms);
    for (;;) {
      long ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), end);
      if (ms <= 0 || ProcDiePending || proc_exit_inprogress) break;
      (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms, PG_WAIT_EXTENSION);
      ResetLatch(MyLatch);
    }
  }
  if (settings::debug_crash_at == point)
    ereport(PANIC, (errmsg("pg_consistency: crashing on purpose %s "
                           "(test hook pg_consistency.twopc_debug_crash_at)",
                           settings::debug_point_name(point))));
}

std::string shown_name(const std::string& name) {
  return pg::clipped(name.data(), static_cast<int>(name.size()));
}

Oid catalog_owner() { return pg::extension_table_owner("twopc_participants"); }

std::vector<Datum> plan_column(pg::SavedPlan& plan, const Datum* args, const char* nulls, bool read_only) {
  uint64 n = pg::pg_call([&]() -> uint64 {
    plan.execute(args, nulls, read_only);
    return SPI_tuptable != nullptr ? SPI_processed : 0;
  });
  std::vector<Datum> out;
  for (uint64 i = 0; i < n; i++) {
    bool isnull = false;
    Datum d = pg::pg_call([&] { return pg::spi_value(i, 1, &isnull); });
    if (!isnull) out.push_back(d);
  }
  return out;
}

namespace {

// The roles participant `id` is granted to (SPI connected, inside the owner scope). A
// grant whose role was dropped still has its OID here; no role has it any more.
std::vector<Oid> load_grantees(int32 id) {
  static pg::SavedPlan plan(
      "SELECT g.role::pg_catalog.oid FROM consistency.twopc_participant_grants g "
      "WHERE g.participant_id OPERATOR(pg_catalog.=) $1",
      {INT4OID});
  Datum arg = Int32GetDatum(id);
  std::vector<Oid> out;
  for (Datum d : plan_column(plan, &arg)) out.push_back(DatumGetObjectId(d));
  return out;
}

}  // namespace

bool lookup_participant(const std::string& name, ParticipantRow* out) {
  pg::OwnerScope owner(catalog_owner());
  struct Raw {
    bool found;
    int32 id;
    char* conninfo;
    bool trusted;
  };
  Raw raw = pg::pg_call([&] {
    static pg::SavedPlan plan(
        "SELECT p.id, p.conninfo, p.trusted FROM consistency.twopc_participants p "
        "WHERE p.name OPERATOR(pg_catalog.=) $1",
        {TEXTOID});
    Datum arg = CStringGetTextDatum(name.c_str());
    plan.execute(&arg, nullptr, true, 1);
    Raw r{false, 0, nullptr, false};
    if (SPI_processed == 1) {
      bool isnull = false;
      r.found = true;
      r.id = DatumGetInt32(pg::spi_value(0, 1, &isnull));
      r.conninfo = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
      r.trusted = DatumGetBool(pg::spi_value(0, 3, &isnull));
    }
    return r;
  });
  if (!raw.found) return false;
  out->id = raw.id;
  out->name = name;
  out->conninfo = raw.conninfo ? raw.conninfo : "";
  out->trusted = raw.trusted;
  if (raw.conninfo) pfree(raw.conninfo);
  return true;
}

std::vector<ParticipantRow> list_participants() {
  pg::OwnerScope owner(catalog_owner());
  std::vector<ParticipantRow> rows;
  uint64 n = pg::pg_call([] {
    static pg::SavedPlan plan(
        "SELECT p.id, p.name, p.conninfo, p.trusted FROM consistency.twopc_participants p "
        "ORDER BY p.name COLLATE pg_catalog.\"C\"",
        {});
    plan.execute(nullptr, nullptr, true);
    return SPI_processed;
  });
  for (uint64 i = 0; i < n; i++) {
    ParticipantRow r;
    pg::pg_call([&] {
      bool isnull = false;
      r.id = DatumGetInt32(pg::spi_value(i, 1, &isnull));
      char* name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
      char* ci = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3);
      r.name = name ? name : "";
      r.conninfo = ci ? ci : "";
      r.trusted = DatumGetBool(pg::spi_value(i, 4, &isnull));
    });
    rows.push_back(std::move(r));
  }
  return rows;
}

bool may_use_participant(int32 id, Oid role) {
  bool privileged = pg::pg_call([&] {
    if (superuser_arg(role)) return true;
    Oid admin = get_role_oid("consistency_admin", true);
    return OidIsValid(admin) && has_privs_of_role(role, admin);
  });
  if (privileged) return true;
  std::vector<Oid> grantees;
  {
    pg::SpiScope spi;
    pg::OwnerScope owner(catalog_owner());
    grantees = load_grantees(id);
  }
  return pg::pg_call([&] {
    for (Oid g : grantees)
      if (has_privs_of_role(role, g)) return true;
    return false;
  });
}

std::string conninfo_problem(const std::string& conninfo) {
  if (conninfo.find_first_not_of(" \t\r\n") == std::string::npos) return "it is empty";
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (err != nullptr) PQfreemem(err);  // may quote parts of the conninfo: never shown
  if (opts == nullptr) return "it is not a valid libpq connection string";
  bool has_user = false;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; o++)
    if (strcmp(o->keyword, "user") == 0 && o->val != nullptr && o->val[0] != '\0') has_user = true;
  PQconninfoFree(opts);
  if (!has_user) return "it names no remote role (user=)";
  return "";
}

}  // namespace pgc::twopc
