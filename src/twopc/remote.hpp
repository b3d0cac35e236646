// libpq connections to participants, driven asynchronously: every wait is a
// WaitLatchOrSocket bounded by a deadline, so a hung participant cannot hang a backend.
// Every wait also reacts to interrupts: in interruptible mode CHECK_FOR_INTERRUPTS runs
// (a cancel or terminate request raises its error, after which the running remote
// command is cancelled with PQcancel); in held mode (after the local commit, during
// abort, where no error may be raised) a pending cancel, a pending terminate or a
// process exit ends the wait at once as kInterrupted, and the caller gives up on the
// participant (cancel request, connection closed, the worker's recovery finishes).
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
  kHeld,           // after the local commit / during abort: the deadline, a pending
                   // cancel or terminate, or process exit end a wait (kInterrupted)
};

// Receives the rows of the last command, read one at a time (libpq single-row mode), so
// that a large result is never buffered whole. rows() may throw: the remote command is
// then cancelled and the exception goes on.
class RowSink {
 public:
  virtual ~RowSink() = default;
  virtual void rows(const PGresult* r) = 0;  // every tuple of r (usually one)
  uint64 delivered = 0;                      // rows handed to rows() so far
};

struct Outcome {
  enum Kind { kOk, kRemoteError, kTimeout, kConnectionLost, kInterrupted } kind = kOk;
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
// It must name the remote role (user=, see conninfo_problem): refused (CS005) otherwise.
// `trusted` = added by a superuser; otherwise the server must have asked for a password.
// With `for_transactions`, also checks that the participant can prepare transactions.
// Throws pgc::Error (CS005), or PgError when interrupted.
PGconn* connect_participant(const std::string& name, const std::string& conninfo, bool trusted,
                            int timeout_ms, WaitMode mode, bool for_transactions = true);

// Closes conn if open, and sets it to nullptr.
void close_connection(PGconn*& conn);

// Sends commands without waiting (one command: plain extended protocol; several: one
// pipeline). False when the connection failed at once (see collect()). With
// `single_row`, the last command's rows come one at a time (pass a RowSink to collect).
bool send_commands(PGconn* conn, const std::vector<std::string>& cmds, bool single_row = false);

// Waits for the results of what send_commands sent. Interrupts (interruptible mode)
// and exceptions of `sink` propagate with the remote command still running: use run()
// unless the caller cancels itself. COPY to or from the client is refused (the data of
// COPY TO STDOUT is read and dropped; COPY FROM STDIN is ended with an error).
Outcome collect(PGconn* conn, int ncmds, TimestampTz deadline, WaitMode mode, RowSink* sink = nullptr);

// Sends a cancel request for the command running on conn; does not wait for its answer.
void request_cancel(PGconn* conn);

// Cancels the running command and reads what is left, within grace_ms. False when the
// connection is no longer usable (the caller closes it).
bool cancel_and_drain(PGconn* conn, int grace_ms);

// send + collect; on timeout or interrupt cancels the command (closing the connection
// when it does not recover). Interrupts and sink exceptions are rethrown after the cancel.
Outcome run(PGconn*& conn, const std::vector<std::string>& cmds, int timeout_ms, WaitMode mode,
            RowSink* sink = nullptr);

// True when a wait in held mode must end now: a terminate request, a process exit, or a
// query cancel is pending.
bool held_wait_interrupted();

// 'text' as an SQL literal (standard_conforming_strings on).
std::string quote_literal(const std::string& s);

// Microseconds since the Unix epoch → TimestampTz.
TimestampTz unix_micros_to_timestamptz(int64 usec);

}  // namespace pgc::twopc
