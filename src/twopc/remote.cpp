#include "twopc/remote.hpp"

#include "common/error.hpp"
#include "pg/guard.hpp"
#include "twopc/state.hpp"

extern "C" {
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

namespace pgc::twopc {

namespace {

// Notices of participants are not passed on to our client.
void ignore_notice(void*, const PGresult*) {}

// A libpq message without its trailing newline and spaces.
std::string trimmed(const char* s) {
  std::string out = s ? s : "";
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

enum class Waited { kReady, kTimedOut, kInterrupted };

// Waits until the socket has one of `events` or the deadline passes. Interruptible mode:
// an interrupt raises its error (PgError; FATAL for a terminate request); if interrupts
// are held off, a pending terminate or cancel ends the wait as kInterrupted. Held mode:
// a pending terminate, a process exit or a pending cancel end it as kInterrupted.
Waited wait_socket(PGconn* conn, int events, TimestampTz deadline, WaitMode mode) {
  pgsocket sock = PQsocket(conn);
  if (sock == PGINVALID_SOCKET) return Waited::kReady;  // let libpq report the broken connection
  for (;;) {
    if (mode == WaitMode::kInterruptible) {
      pg::pg_call([] { CHECK_FOR_INTERRUPTS(); });
      if (ProcDiePending || QueryCancelPending) return Waited::kInterrupted;  // held off
    } else if (held_wait_interrupted()) {
      return Waited::kInterrupted;
    }
    long ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
    if (ms <= 0) return Waited::kTimedOut;
    int rc = pg::pg_call([&] {
      return WaitLatchOrSocket(MyLatch, WL_LATCH_SET | events | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, sock, ms,
                               PG_WAIT_EXTENSION);
    });
    if (rc & WL_LATCH_SET) ResetLatch(MyLatch);
    if (rc & events) return Waited::kReady;
  }
}

// The outcome of a wait that ended without the socket being ready.
Outcome waited_outcome(Waited w) {
  Outcome o;
  o.kind = w == Waited::kInterrupted ? Outcome::kInterrupted : Outcome::kTimeout;
  if (w == Waited::kInterrupted) o.message = "the wait was interrupted (cancel or terminate request)";
  return o;
}

// The outcome of a broken connection, with libpq's message.
Outcome lost(PGconn* conn) {
  Outcome o;
  o.kind = Outcome::kConnectionLost;
  o.message = trimmed(PQerrorMessage(conn));
  if (o.message.empty()) o.message = "connection closed";
  return o;
}

// The outcome of command `index` failing on the participant; takes r.
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
  std::string problem = conninfo_problem(conninfo);
  if (!problem.empty())
    throw Error(sqlstate::kRemoteFailure,
                "cannot connect to participant \"" + name + "\": its conninfo is unusable",
                "The conninfo stored for it: " + problem + ".",
                "Drop the participant and add it again with user=<remote role> in its conninfo.");
  TimestampTz deadline = deadline_in(timeout_ms);
  const char* keywords[] = {"dbname", "fallback_application_name", "client_encoding", nullptr};
  const char* values[] = {conninfo.c_str(), "pg_consistency", GetDatabaseEncodingName(), nullptr};
  PGconn* conn = PQconnectStartParams(keywords, values, 1);
  if (conn == nullptr)
    throw Error(sqlstate::kRemoteFailure, "could not connect to participant \"" + name + "\"",
                "out of memory in libpq");
  try {
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    if (PQstatus(conn) == CONNECTION_BAD) st = PGRES_POLLING_FAILED;
    while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
      int ev = st == PGRES_POLLING_READING ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE;
      Waited w = wait_socket(conn, ev, deadline, mode);
      if (w == Waited::kInterrupted)
        throw Error(sqlstate::kRemoteFailure, "connecting to participant \"" + name + "\" was interrupted");
      if (w == Waited::kTimedOut)
        throw Error(
            sqlstate::kRemoteFailure,
            "could not connect to participant \"" + name + "\" within " + std::to_string(timeout_ms) + " ms",
            "", "See pg_consistency.twopc_timeout.");
      st = PQconnectPoll(conn);
    }
    if (st == PGRES_POLLING_FAILED || PQstatus(conn) != CONNECTION_OK)
      throw Error(sqlstate::kRemoteFailure, "could not connect to participant \"" + name + "\"",
                  trimmed(PQerrorMessage(conn)));
    PQsetNoticeReceiver(conn, ignore_notice, nullptr);
    if (!trusted && !PQconnectionUsedPassword(conn))
      throw Error(sqlstate::kRemoteFailure, "participant \"" + name + "\" connected without a password",
                  "It was added by a non-superuser, so its server must authenticate with a "
                  "password.",
                  "Make the participant's server require a password, or have a superuser add "
                  "the participant.");
    if (!for_transactions) return conn;
    PGconn* c = conn;
    Outcome o = run(c, {"SELECT pg_catalog.current_setting('max_prepared_transactions')"}, timeout_ms, mode);
    conn = c;
    if (!o.ok())
      throw Error(sqlstate::kRemoteFailure, "could not check participant \"" + name + "\" after connecting",
                  o.message);
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

bool send_commands(PGconn* conn, const std::vector<std::string>& cmds, bool single_row) {
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) return false;
  if (cmds.size() == 1) {
    if (PQsendQueryParams(conn, cmds[0].c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) != 1) return false;
    if (single_row) (void)PQsetSingleRowMode(conn);
    return true;
  }
  // In a pipeline, single-row mode is chosen when the last command's results begin
  // (collect()).
  if (PQenterPipelineMode(conn) != 1) return false;
  for (const auto& c : cmds)
    if (PQsendQueryParams(conn, c.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) != 1) return false;
  return PQpipelineSync(conn) == 1;
}

bool held_wait_interrupted() { return ProcDiePending || proc_exit_inprogress || QueryCancelPending; }

Outcome collect(PGconn* conn, int ncmds, TimestampTz deadline, WaitMode mode, RowSink* sink) {
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
    Waited w = wait_socket(conn, WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE, deadline, mode);
    if (w != Waited::kReady) return waited_outcome(w);
    if (!PQconsumeInput(conn)) return lost(conn);
  }
  bool pipelined = PQpipelineStatus(conn) != PQ_PIPELINE_OFF;
  Outcome failure;
  Result last;
  int index = 0;
  const char* copy_refused = nullptr;
  for (;;) {
    while (PQisBusy(conn)) {
      Waited w = wait_socket(conn, WL_SOCKET_READABLE, deadline, mode);
      if (w != Waited::kReady) return waited_outcome(w);
      if (!PQconsumeInput(conn)) return lost(conn);
    }
    Result r(PQgetResult(conn));
    if (!r) {
      if (!pipelined) break;
      if (PQstatus(conn) != CONNECTION_OK) return lost(conn);
      index++;
      if (sink != nullptr && index == ncmds - 1) (void)PQsetSingleRowMode(conn);
      continue;
    }
    ExecStatusType st = PQresultStatus(r.get());
    if (st == PGRES_PIPELINE_SYNC) break;
    if (st == PGRES_PIPELINE_ABORTED) continue;
    if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR) {
      if (PQstatus(conn) != CONNECTION_OK) return lost(conn);
      if (failure.kind == Outcome::kOk) failure = remote_error(r.release(), index);
      continue;
    }
    if (st == PGRES_COPY_IN) {
      // Nothing can feed it: end the COPY with an error; its result follows.
      copy_refused = "COPY FROM STDIN is not supported on a participant";
      if (PQputCopyEnd(conn, copy_refused) < 0) return lost(conn);
      continue;
    }
    if (st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
      // Read the data and drop it; the COPY's result follows.
      copy_refused = "COPY TO STDOUT is not supported on a participant";
      for (;;) {
        char* buf = nullptr;
        int n = PQgetCopyData(conn, &buf, 1);
        if (buf != nullptr) PQfreemem(buf);
        if (n > 0) continue;
        if (n == -1) break;
        if (n == -2) return lost(conn);
        Waited w = wait_socket(conn, WL_SOCKET_READABLE, deadline, mode);
        if (w != Waited::kReady) return waited_outcome(w);
        if (!PQconsumeInput(conn)) return lost(conn);
      }
      continue;
    }
    bool is_last = index == ncmds - 1 || !pipelined;
    if (sink != nullptr && is_last && (st == PGRES_SINGLE_TUPLE || st == PGRES_TUPLES_OK)) {
      // PGRES_TUPLES_OK with rows: single-row mode could not be chosen; same rows.
      if (failure.kind == Outcome::kOk && PQntuples(r.get()) > 0) {
        sink->delivered += static_cast<uint64>(PQntuples(r.get()));
        sink->rows(r.get());
      }
      if (st == PGRES_SINGLE_TUPLE) continue;
    }
    if (is_last) last = std::move(r);
  }
  if (pipelined && PQexitPipelineMode(conn) != 1) return lost(conn);
  if (failure.kind != Outcome::kOk) return failure;
  if (copy_refused != nullptr) {
    Outcome o;
    o.kind = Outcome::kRemoteError;
    o.failed_index = ncmds - 1;
    o.sqlstate = "0A000";
    o.message = copy_refused;
    o.hint = "Copy with INSERT ... SELECT or a file on the participant's server.";
    return o;
  }
  Outcome ok;
  ok.result = std::move(last);
  return ok;
}

void request_cancel(PGconn* conn) {
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) return;
  PGcancel* cancel = PQgetCancel(conn);
  if (cancel != nullptr) {
    char errbuf[256];
    (void)PQcancel(cancel, errbuf, sizeof(errbuf));
    PQfreeCancel(cancel);
  }
}

bool cancel_and_drain(PGconn* conn, int grace_ms) {
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) return false;
  request_cancel(conn);
  try {
    Outcome o = collect(conn, 1, deadline_in(grace_ms), WaitMode::kHeld);
    return o.kind == Outcome::kOk || o.kind == Outcome::kRemoteError;
  } catch (...) {
    return false;
  }
}

Outcome run(PGconn*& conn, const std::vector<std::string>& cmds, int timeout_ms, WaitMode mode,
            RowSink* sink) {
  if (!send_commands(conn, cmds, sink != nullptr)) {
    Outcome o = conn ? lost(conn) : Outcome{};
    o.kind = Outcome::kConnectionLost;
    return o;
  }
  Outcome o;
  // After a cancel request the participant normally answers within milliseconds; one
  // that does not is given up (connection closed) after the grace, so that a cancel or
  // terminate request is served within about a second even when it is frozen.
  int grace_ms = timeout_ms < 5000 ? timeout_ms : 5000;
  int interrupt_grace_ms = timeout_ms < 1000 ? timeout_ms : 1000;
  try {
    o = collect(conn, static_cast<int>(cmds.size()), deadline_in(timeout_ms), mode, sink);
  } catch (const pg::PgError&) {
    // Interrupted (cancel, statement timeout): stop the remote command before the error
    // goes on. A terminate request never gets here: its FATAL exits the process, and the
    // abort callbacks close the connection.
    if (!cancel_and_drain(conn, interrupt_grace_ms)) close_connection(conn);
    throw;
  } catch (...) {
    // The sink refused the rows: stop the remote command, drop what is still coming.
    if (!cancel_and_drain(conn, grace_ms)) close_connection(conn);
    throw;
  }
  if (o.kind == Outcome::kTimeout) {
    if (!cancel_and_drain(conn, grace_ms)) close_connection(conn);
  } else if (o.kind == Outcome::kInterrupted) {
    if (!cancel_and_drain(conn, interrupt_grace_ms)) close_connection(conn);
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
