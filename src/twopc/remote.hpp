// libpq connections to participants, driven asynchronously: every wait is a
// WaitLatchOrSocket bounded by a deadline, so a hung participant cannot hang a backend,
// and (in interruptible mode) CHECK_FOR_INTERRUPTS runs while waiting, so a cancel or
// terminate request is honoured; the running remote command is then cancelled (PQcancel).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "pg/postgres.hpp"

extern "C" {
#include "libpq-fe.h"
}

namespace pgc::twopc {

struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, PgResultDeleter>;

enum class WaitMode {
  kInterruptible,  // CHECK_FOR_INTERRUPTS while waiting; an interrupt cancels the command
  kHeld,           // after the local commit / during abort: only the deadline ends a wait
};

struct Outcome {
  enum Kind { kOk, kRemoteError, kTimeout, kConnectionLost } kind = kOk;
  Result result;          // kOk: the last command's result; kRemoteError: the failing one
  int failed_index = -1;  // kRemoteError: which command failed
  std::string sqlstate;   // kRemoteError
  std::string message;    // remote primary message, or libpq's message
  std::string detail;
  std::string hint;
  bool ok() const { return kind == kOk; }
};

// A deadline `timeout_ms` from now.
TimestampTz deadline_in(int timeout_ms);

// Opens a connection to participant `name`. The conninfo is never put into a message.
// `trusted` = added by a superuser; otherwise the server must have asked for a password.
// With `for_transactions`, also checks that the participant can prepare transactions.
// Throws pgc::Error (CS005), or PgError when interrupted.
PGconn* connect_participant(const std::string& name, const std::string& conninfo, bool trusted,
                            int timeout_ms, WaitMode mode, bool for_transactions = true);

void close_connection(PGconn*& conn);

// Sends commands without waiting (one command: plain extended protocol; several: one
// pipeline). False when the connection failed at once (see collect()).
bool send_commands(PGconn* conn, const std::vector<std::string>& cmds);

// Waits for the results of what send_commands sent. Interrupts (interruptible mode)
// propagate as PgError with the remote command still running: use run() unless the
// caller cancels itself.
Outcome collect(PGconn* conn, int ncmds, TimestampTz deadline, WaitMode mode);

// Cancels the running command and reads what is left, within grace_ms. False when the
// connection is no longer usable (the caller closes it).
bool cancel_and_drain(PGconn* conn, int grace_ms);

// send + collect; on timeout or interrupt cancels the command (closing the connection
// when it does not recover). Interrupts are rethrown after the cancel.
Outcome run(PGconn*& conn, const std::vector<std::string>& cmds, int timeout_ms, WaitMode mode);

// 'text' as an SQL literal (standard_conforming_strings on).
std::string quote_literal(const std::string& s);

// Microseconds since the Unix epoch → TimestampTz.
TimestampTz unix_micros_to_timestamptz(int64 usec);

}  // namespace pgc::twopc
