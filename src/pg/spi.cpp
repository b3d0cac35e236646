#include "pg/spi.hpp"

#include "pg/guard.hpp"

extern "C" {
#include "access/xact.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "utils/snapmgr.h"
}

namespace pgc::pg {

SavedPlan::SavedPlan(const char* sql, std::initializer_list<Oid> argtypes) : sql_(sql) {
  for (Oid t : argtypes) {
    if (nargs_ < kMaxArgs) argtypes_[nargs_++] = t;
  }
}

SPIPlanPtr SavedPlan::plan() {
  if (plan_ == nullptr) {
    SPIPlanPtr p = SPI_prepare(sql_, nargs_, argtypes_);
    if (p == nullptr)
      elog(ERROR, "pg_consistency: SPI_prepare failed (%s) for: %s", SPI_result_code_string(SPI_result),
           sql_);
    if (SPI_keepplan(p) != 0) elog(ERROR, "pg_consistency: SPI_keepplan failed");
    plan_ = p;
  }
  return plan_;
}

int SavedPlan::execute(const Datum* values, const char* nulls, bool read_only, long count) {
  int rc = SPI_execute_plan(plan(), const_cast<Datum*>(values), nulls, read_only, count);
  if (rc < 0)
    elog(ERROR, "pg_consistency: SPI_execute_plan failed (%s) for: %s", SPI_result_code_string(rc), sql_);
  return rc;
}

void spi_connect() {
  if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "pg_consistency: SPI_connect failed");
}

bool spi_connect_nonatomic_if_allowed(FunctionCallInfo fcinfo) {
  bool nonatomic = fcinfo->context != nullptr && IsA(fcinfo->context, CallContext) &&
                   !castNode(CallContext, fcinfo->context)->atomic;
  if (SPI_connect_ext(nonatomic ? SPI_OPT_NONATOMIC : 0) != SPI_OK_CONNECT)
    elog(ERROR, "pg_consistency: SPI_connect failed");
  return nonatomic;
}

void spi_commit() { SPI_commit(); }

// Through pg_call, so a failure to connect arrives as PgError while C++ objects are live.
SpiScope::SpiScope() {
  pg_call([] { spi_connect(); });
  connected_ = true;
}

SpiScope::~SpiScope() {
  // Only on the normal path: after an ereport the transaction abort resets SPI.
  if (connected_ && !std::uncaught_exceptions()) SPI_finish();
}

void SpiScope::finish() {
  if (connected_) {
    connected_ = false;
    SPI_finish();
  }
}

Datum spi_value(uint64 row, int col, bool* isnull) {
  return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, isnull);
}

int64 spi_int64(uint64 row, int col, int64 if_null) {
  bool isnull = false;
  Datum d = spi_value(row, col, &isnull);
  return isnull ? if_null : DatumGetInt64(d);
}

char* spi_text_copy(uint64 row, int col) {
  bool isnull = false;
  Datum d = spi_value(row, col, &isnull);
  if (isnull) return nullptr;
  text* t = DatumGetTextPP(d);
  size_t len = VARSIZE_ANY_EXHDR(t);
  char* out = static_cast<char*>(SPI_palloc(len + 1));
  memcpy(out, VARDATA_ANY(t), len);
  out[len] = '\0';
  return out;
}

void begin_worker_transaction(const char* activity) {
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  spi_connect();
  PushActiveSnapshot(GetTransactionSnapshot());
  if (activity != nullptr) pgstat_report_activity(STATE_RUNNING, activity);
}

void commit_worker_transaction() {
  SPI_finish();
  PopActiveSnapshot();
  CommitTransactionCommand();
}

}  // namespace pgc::pg
