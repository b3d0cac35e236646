#include "twopc/remote.hpp"

#include "common/error.hpp"
#include "pg/guard.hpp"

extern "C" {
#include "mb/pg_wchar.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

namespace pgc::twopc {

namespace {

void ignore_notice(void*, const PGresult*) {}

std::string trimmed(const char* s) {
  std::string out = s ? s : "";
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

void check_interrupts() {
  pg::pg_call([] { CHECK_FOR_INTERRUPTS(); });
}

// Waits until the socket has one of `events`, the deadline passes (false) or, in
// interruptible mode, an interrupt arrives (PgError).
bool wait_socket(PGconn* conn, int events, TimestampTz deadline, WaitMode mode) {
  pgsocket sock = PQsocket(conn);
  if (sock == PGINVALID_SOCKET) return true;  // let libpq report the broken connection
  for (;;) {
    long ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
    if (ms <= 0) return false;
    int rc = pg::pg_call([&] {
      return WaitLatchOrSocket(MyLatch, WL_LATCH_SET | events | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                               sock, ms, PG_WAIT_EXTENSION);
    });
    if (rc & WL_LATCH_SET) {
      ResetLatch(MyLatch);
      if (mode == WaitMode::kInterruptible) check_interrupts();
    }
    if (rc & events) return true;
  }
}

Outcome lost(PGconn* conn) {
  Outcome o;
  o.kind = Outcome::kConnectionLost;
  o.message = trimmed(PQerrorMessage(conn));
  if (o.message.empty()) o.message = "connection closed";
  return o;
}

Outcome remote_error(PGresult* r, int index) {
  Outcome o;
  o.kind = Outcome::kRemoteError;
  o.failed_index = index;
  const char* f = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  o.sqlstate = f ? f : "";
  f = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  o.message = f ? f : trimmed(PQresultErrorMessage(r));
  f = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
  o.detail = f ? f : "";
  f = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT);
  o.hint = f ? f : "";
  o.result.reset(r);
  return o;
}

}  // namespace

TimestampTz deadline_in(int timeout_ms) {
  return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
}

void close_connection(PGconn*& conn) {
  if (conn != nullptr) {
    PQfinish(conn);
    conn = nullptr;
  }
}

PGconn* connect_participant(const std::string& name, const std::string& conninfo, bool trusted,
                            int timeout_ms, WaitMode mode, bool for_transactions) {
  TimestampTz deadline = deadline_in(timeout_ms);
  const char* keywords[] = {"dbname", "fallback_application_name", "client_encoding", nullptr};
  const char* values[] = {conninfo.c_str(), "pg_consistency", GetDatabaseEncodingName(), nullptr};
  PGconn* conn = PQconnectStartParams(keywords, values, 1);
  if (conn == nullptr)
    throw Error(sqlstate::kRemoteFailure,
                "could not connect to participant \"" + name + "\"", "out of memory in libpq");
  try {
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    if (PQstatus(conn) == CONNECTION_BAD) st = PGRES_POLLING_FAILED;
    while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
      int ev = st == PGRES_POLLING_READING ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE;
      if (!wait_socket(conn, ev, deadline, mode))
        throw Error(sqlstate::kRemoteFailure,
                    "could not connect to participant \"" + name + "\" within " +
                        std::to_string(timeout_ms) + " ms",
                    "", "See pg_consistency.twopc_timeout.");
      st = PQconnectPoll(conn);
    }
    if (st == PGRES_POLLING_FAILED || PQstatus(conn) != CONNECTION_OK)
      throw Error(sqlstate::kRemoteFailure, "could not connect to participant \"" + name + "\"",
                  trimmed(PQerrorMessage(conn)));
    PQsetNoticeReceiver(conn, ignore_notice, nullptr);
    if (!trusted && !PQconnectionUsedPassword(conn))
      throw Error(sqlstate::kRemoteFailure,
                  "participant \"" + name + "\" connected without a password",
                  "It was added by a non-superuser, so its server must authenticate with a "
                  "password.",
                  "Make the participant's server require a password, or have a superuser add "
                  "the participant.");
    if (!for_transactions) return conn;
    PGconn* c = conn;
    Outcome o = run(c, {"SELECT pg_catalog.current_setting('max_prepared_transactions')"},
                    timeout_ms, mode);
    conn = c;
    if (!o.ok())
      throw Error(sqlstate::kRemoteFailure,
                  "could not check participant \"" + name + "\" after connecting", o.message);
    const char* v = PQntuples(o.result.get()) == 1 ? PQgetvalue(o.result.get(), 0, 0) : "0";
    if (strcmp(v, "0") == 0)
      throw Error(sqlstate::kRemoteFailure,
                  "participant \"" + name + "\" cannot take part in two-phase commit",
                  "Its server has max_prepared_transactions = 0.",
                  "Set max_prepared_transactions above 0 on the participant's server and "
                  "restart it.");
  } catch (...) {
    close_connection(conn);
    throw;
  }
  return conn;
}

bool send_commands(PGconn* conn, const std::vector<std::string>& cmds) {
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) return false;
  if (cmds.size() == 1)
    return PQsendQueryParams(conn, cmds[0].c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) == 1;
  if (PQenterPipelineMode(conn) != 1) return false;
  for (const auto& c : cmds)
    if (PQsendQueryParams(conn, c.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) != 1)
      return false;
  return PQpipelineSync(conn) == 1;
}

Outcome collect(PGconn* conn, int ncmds, TimestampTz deadline, WaitMode mode) {
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
    Outcome o;
    o.kind = Outcome::kConnectionLost;
    o.message = conn ? trimmed(PQerrorMessage(conn)) : "no connection";
    return o;
  }
  // Flush what is still buffered.
  for (;;) {
    int f = PQflush(conn);
    if (f == 0) break;
    if (f < 0) return lost(conn);
    if (!wait_socket(conn, WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE, deadline, mode)) {
      Outcome o;
      o.kind = Outcome::kTimeout;
      return o;
    }
    if (!PQconsumeInput(conn)) return lost(conn);
  }
  bool pipelined = PQpipelineStatus(conn) != PQ_PIPELINE_OFF;
  Outcome failure;
  Result last;
  int index = 0;
  for (;;) {
    while (PQisBusy(conn)) {
      if (!wait_socket(conn, WL_SOCKET_READABLE, deadline, mode)) {
        Outcome o;
        o.kind = Outcome::kTimeout;
        return o;
      }
      if (!PQconsumeInput(conn)) return lost(conn);
    }
    PGresult* r = PQgetResult(conn);
    if (r == nullptr) {
      if (!pipelined) break;
      if (PQstatus(conn) != CONNECTION_OK) return lost(conn);
      index++;
      continue;
    }
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_PIPELINE_SYNC) {
      PQclear(r);
      break;
    }
    if (st == PGRES_PIPELINE_ABORTED) {
      PQclear(r);
      continue;
    }
    if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR) {
      if (PQstatus(conn) != CONNECTION_OK) {
        PQclear(r);
        return lost(conn);
      }
      if (failure.kind == Outcome::kOk)
        failure = remote_error(r, index);
      else
        PQclear(r);
      continue;
    }
    if (index == ncmds - 1 || !pipelined)
      last.reset(r);
    else
      PQclear(r);
  }
  if (pipelined && PQexitPipelineMode(conn) != 1) return lost(conn);
  if (failure.kind != Outcome::kOk) return failure;
  Outcome ok;
  ok.result = std::move(last);
  return ok;
}

bool cancel_and_drain(PGconn* conn, int grace_ms) {
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) return false;
  PGcancel* cancel = PQgetCancel(conn);
  if (cancel != nullptr) {
    char errbuf[256];
    (void)PQcancel(cancel, errbuf, sizeof(errbuf));
    PQfreeCancel(cancel);
  }
  try {
    Outcome o = collect(conn, 1, deadline_in(grace_ms), WaitMode::kHeld);
    return o.kind == Outcome::kOk || o.kind == Outcome::kRemoteError;
  } catch (...) {
    return false;
  }
}

Outcome run(PGconn*& conn, const std::vector<std::string>& cmds, int timeout_ms, WaitMode mode) {
  if (!send_commands(conn, cmds)) {
    Outcome o = conn ? lost(conn) : Outcome{};
    o.kind = Outcome::kConnectionLost;
    return o;
  }
  Outcome o;
  try {
    o = collect(conn, static_cast<int>(cmds.size()), deadline_in(timeout_ms), mode);
  } catch (...) {
    // Interrupted: stop the remote command before the error goes on.
    if (!cancel_and_drain(conn, timeout_ms < 5000 ? timeout_ms : 5000)) close_connection(conn);
    throw;
  }
  if (o.kind == Outcome::kTimeout) {
    if (!cancel_and_drain(conn, timeout_ms < 5000 ? timeout_ms : 5000)) close_connection(conn);
  } else if (o.kind == Outcome::kConnectionLost) {
    close_connection(conn);
  }
  return o;
}

std::string quote_literal(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

TimestampTz unix_micros_to_timestamptz(int64 usec) {
  return usec - static_cast<int64>(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
}

}  // namespace pgc::twopc
