// The SQL functions of the consistency levels: session_token, max_token, wait_for_token
// and the procedure await_token (docs/consistency.md).
#include "consistency/horizon.hpp"
#include "consistency/token.hpp"
#include "consistency/wait.hpp"
#include "eventstore/es.hpp"
#include "pg/guard.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogrecovery.h"
}

namespace pgc::consistency {

namespace {

// The WAL position a token taken now needs: on a primary the end of the last record
// inserted (every commit that returned before this call ends at or before it); on a
// standby the end of the last record replayed (what this server's snapshots show).
uint64_t token_lsn() {
  if (RecoveryInProgress()) return GetXLogReplayRecPtr(nullptr);
  return insert_end(GetXLogInsertRecPtr(), XLOG_BLCKSZ, wal_segment_size, SizeOfXLogShortPHD,
                    SizeOfXLogLongPHD);
}

// One past the highest global position visible to a snapshot taken now: every event a
// transaction committed before this call lies below it. (Not the sequence's next value:
// positions handed out to transactions still open are not covered, and a position the
// sequence logged ahead on a standby may never be used.)
int64 next_visible_position() {
  static pg::SavedPlan max_position("SELECT pg_catalog.max(global_position) FROM consistency.events", {});
  pg::spi_connect();
  eventstore::spi_run_latest_as_owner(max_position, nullptr, nullptr, 1);
  int64 last = SPI_processed > 0 ? pg::spi_int64(0, 1, 0) : 0;
  SPI_finish();
  return last + 1;
}

// `t` as text (a PostgreSQL call after the C++ string is gone).
Datum token_text(const Token& t) {
  char buf[kTokenLength + 1];
  {
    std::string s = format_token(t);
    memcpy(buf, s.data(), kTokenLength);
  }
  buf[kTokenLength] = '\0';
  return CStringGetTextDatum(buf);
}

}  // namespace
}  // namespace pgc::consistency

using namespace pgc::consistency;
namespace pg = pgc::pg;

// consistency.session_token(): covers every transaction committed here before the call.
PGC_FUNCTION(pgc_cs_session_token) {
  Token t;
  t.system_id = GetSystemIdentifier();
  t.database = MyDatabaseId;
  t.lsn = token_lsn();
  t.position = next_visible_position();
  return token_text(t);
}

// consistency.max_token(a, b): the smallest token covering both; NULL stands for "no
// token yet", so a client can fold its tokens starting from NULL.
PGC_FUNCTION(pgc_cs_max_token) {
  if (PG_ARGISNULL(0) && PG_ARGISNULL(1)) PG_RETURN_NULL();
  if (PG_ARGISNULL(0) || PG_ARGISNULL(1)) {
    int argno = PG_ARGISNULL(0) ? 1 : 0;
    return token_text(token_arg(fcinfo, argno, argno == 0 ? "a" : "b"));
  }
  Token a = token_arg(fcinfo, 0, "a");
  Token b = token_arg(fcinfo, 1, "b");
  return token_text(combine(a, b));
}

// consistency.wait_for_token(token, timeout, subscription): the wait inside the calling
// statement, which keeps its snapshot (docs/consistency.md says when that is safe on a
// standby).
PGC_FUNCTION(pgc_cs_wait_for_token) {
  WaitTarget t = wait_target(fcinfo);
  pg::spi_connect();
  bool reached = wait_for(&t, false);
  SPI_finish();
  PG_RETURN_BOOL(reached);
}

// CALL consistency.await_token(token, timeout, subscription, INOUT reached): outside an
// explicit transaction block it commits first and waits with no snapshot; inside one it
// falls back to wait_for_token's wait (there is no transaction it could end).
PGC_FUNCTION(pgc_cs_await_token) {
  WaitTarget t = wait_target(fcinfo);
  bool nonatomic = pg::spi_connect_nonatomic_if_allowed(fcinfo);
  bool reached = wait_for(&t, nonatomic);
  SPI_finish();
  TupleDesc desc;
  if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
    elog(ERROR, "pg_consistency: await_token must be declared with an INOUT argument");
  desc = BlessTupleDesc(desc);
  Datum values[1] = {BoolGetDatum(reached)};
  bool nulls[1] = {false};
  return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}
