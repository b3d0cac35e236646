#include "pg/catching.hpp"

#include "pg/run_as.hpp"

extern "C" {
#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/resowner.h"
}

namespace pgc::pg {

ErrorData* run_in_subtransaction(void (*fn)(void*), void* arg, void (*on_error)(void*)) {
  MemoryContext oldcxt = CurrentMemoryContext;
  ResourceOwner oldowner = CurrentResourceOwner;
  ErrorData* volatile edata = nullptr;
  BeginInternalSubTransaction(nullptr);
  MemoryContextSwitchTo(oldcxt);
  PG_TRY();
  {
    fn(arg);
    ReleaseCurrentSubTransaction();
    MemoryContextSwitchTo(oldcxt);
    CurrentResourceOwner = oldowner;
  }
  PG_CATCH();
  {
    if (on_error != nullptr) on_error(arg);
    MemoryContextSwitchTo(oldcxt);
    edata = CopyErrorData();
    FlushErrorState();
    RollbackAndReleaseCurrentSubTransaction();
    MemoryContextSwitchTo(oldcxt);
    CurrentResourceOwner = oldowner;
  }
  PG_END_TRY();
  return edata;
}

ErrorData* run_aborting_on_error(void (*fn)(void*), void* arg, MemoryContext cxt) {
  ErrorData* volatile edata = nullptr;
  PG_TRY();
  { fn(arg); }
  PG_CATCH();
  {
    HOLD_INTERRUPTS();
    MemoryContextSwitchTo(cxt);
    edata = CopyErrorData();
    FlushErrorState();
    AbortOutOfAnyTransaction();
    disarm_statement_timeout();
    pgstat_report_activity(STATE_IDLE, nullptr);
    RESUME_INTERRUPTS();
  }
  PG_END_TRY();
  return edata;
}

std::string take_error_text(const PgError& e) {
  std::string m = e.what();
  if (e.edata() != nullptr && e.edata()->detail != nullptr) m += " (" + std::string(e.edata()->detail) + ")";
  if (e.edata() != nullptr) FreeErrorData(e.edata());
  return m;
}

}  // namespace pgc::pg
