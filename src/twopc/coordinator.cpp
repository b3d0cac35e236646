// Two-phase commit, coordinator side.
//
// remote_exec / remote_query open (or reuse) this backend's connection to the
// participant and BEGIN there on first use in the local transaction. At PRE_COMMIT every
// touched participant gets PREPARE TRANSACTION '<gid>' (all sent at once), and while they
// run the decision rows are inserted into consistency.twopc_decisions inside the local
// transaction. The local commit is the decision point: after it, COMMIT PREPARED goes to
// every participant; a failure there is a WARNING and is left to the worker's recovery.
// On abort, ROLLBACK or ROLLBACK PREPARED. Subtransactions are mirrored with savepoints.
#include "twopc/coordinator.hpp"

#include <memory>
#include <vector>

#include "common/error.hpp"
#include "pg/guard.hpp"
#include "pg/run_as.hpp"
#include "pg/spi.hpp"
#include "twopc/gid.hpp"
#include "twopc/recovery.hpp"
#include "twopc/savepoints.hpp"
#include "twopc/state.hpp"
#include "twopc/statement.hpp"
#include "worker/wake.hpp"

extern "C" {
#include "access/transam.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/array.h"
}

namespace pgc::twopc {

namespace {

enum class Phase {
  kNone,         // not part of the current local transaction
  kOpen,         // BEGIN sent; statements run
  kBroken,       // lost part of its work (connection lost below a savepoint): cannot commit
  kPrepareSent,  // PREPARE TRANSACTION sent, answer not read
  kPrepared,     // prepared under gid
};

struct Entry {
  int32 id = 0;
  std::string name;
  PGconn* conn = nullptr;
  Phase phase = Phase::kNone;
  SavepointTracker sp;
  std::string gid;
  std::string broken_reason;

  // The local transaction is over: forget its state (the connection stays for the next).
  void end_transaction() {
    phase = Phase::kNone;
    sp.reset();
    gid.clear();
    broken_reason.clear();
  }
};

std::vector<std::unique_ptr<Entry>> g_entries;  // this backend's participants
bool g_committing = false;                      // between PRE_COMMIT and the end
bool g_exit_hook = false;

// True when the participant is part of the current local transaction.
bool touched(const Entry& e) { return e.phase != Phase::kNone; }

// Waits while a transaction or subtransaction aborts: nothing is decided there any more,
// so a participant that does not answer within this is given up (its connection closed:
// an open transaction there ends with it; a prepared one is rolled back by recovery),
// and an abort never outlasts a frozen participant by more than a few seconds.
constexpr int kAbortWaitMs = 5000;
int abort_wait_ms() { return settings::timeout_ms < kAbortWaitMs ? settings::timeout_ms : kAbortWaitMs; }

// proc_exit hook: closes every participant connection of this backend.
void close_all(int, Datum) {
  for (auto& e : g_entries) close_connection(e->conn);
}

// This backend's entry for participant `row`, created on first use. A participant dropped
// and added again under the same name takes the old entry over, its connection closed.
Entry* entry_for(const ParticipantRow& row) {
  for (auto& e : g_entries) {
    if (e->id == row.id) return e.get();
  }
  for (auto& e : g_entries) {
    if (e->name == row.name) {  // dropped and added again: a new participant
      close_connection(e->conn);
      e->id = row.id;
      return e.get();
    }
  }
  if (!g_exit_hook) {
    pg::pg_call([] { on_proc_exit(close_all, 0); });
    g_exit_hook = true;
  }
  auto e = std::make_unique<Entry>();
  e->id = row.id;
  e->name = row.name;
  g_entries.push_back(std::move(e));
  return g_entries.back().get();
}

// A remote error as an error detail: its message, SQLSTATE and own detail.
std::string remote_detail(const Outcome& o) {
  std::string d = o.message;
  if (!o.sqlstate.empty()) d += " (SQLSTATE " + o.sqlstate + ")";
  if (!o.detail.empty()) d += "\n" + o.detail;
  return d;
}

// Throws the CS005 error that says why `what` failed on participant e.
[[noreturn]] void throw_outcome(const Entry& e, const Outcome& o, const char* what) {
  const std::string who = "participant \"" + e.name + "\"";
  switch (o.kind) {
    case Outcome::kTimeout:
      throw Error(sqlstate::kRemoteFailure,
                  who + " did not answer " + what + " within " + std::to_string(settings::timeout_ms) + " ms",
                  "The remote command was cancelled.", "See pg_consistency.twopc_timeout.");
    case Outcome::kConnectionLost:
      throw Error(sqlstate::kRemoteFailure, "lost the connection to " + who, o.message);
    case Outcome::kInterrupted:
      throw Error(sqlstate::kRemoteFailure, "waiting for " + who + " was interrupted",
                  "The remote command was cancelled.");
    case Outcome::kRemoteError:
    case Outcome::kOk:
      break;
  }
  throw Error(sqlstate::kRemoteFailure, std::string(what) + " failed on " + who, remote_detail(o), o.hint);
}

// Reads the rest of an unanswered command within the timeout; false = connection closed.
bool settle(Entry& e, bool cancel) {
  if (e.conn == nullptr) return false;
  if (PQstatus(e.conn) != CONNECTION_OK) {
    close_connection(e.conn);
    return false;
  }
  if (PQtransactionStatus(e.conn) != PQTRANS_ACTIVE) return true;
  bool ok = false;
  if (cancel) {
    ok = cancel_and_drain(e.conn, abort_wait_ms());
  } else {
    Outcome::Kind k = collect(e.conn, 1, deadline_in(abort_wait_ms()), WaitMode::kHeld).kind;
    ok = k == Outcome::kOk || k == Outcome::kRemoteError;
  }
  if (!ok || PQstatus(e.conn) != CONNECTION_OK) close_connection(e.conn);
  return e.conn != nullptr;
}

// ---- transaction callbacks ----

// PRE_COMMIT: PREPARE TRANSACTION on every participant the transaction touched, and the
// decision rows inserted while they prepare. Throws (the local transaction then aborts)
// when a participant cannot prepare.
void pre_commit() {
  std::vector<Entry*> parts;
  for (auto& e : g_entries)
    if (touched(*e)) parts.push_back(e.get());
  if (parts.empty()) return;
  g_committing = true;
  for (Entry* e : parts) {
    if (e->phase == Phase::kBroken || e->conn == nullptr)
      throw Error(sqlstate::kRemoteFailure,
                  "cannot commit: participant \"" + e->name + "\" lost its part of the transaction",
                  e->broken_reason.empty() ? "The connection to it was lost." : e->broken_reason,
                  "Roll back and retry the transaction.");
  }
  uint64 xid = pg::pg_call([] { return U64FromFullTransactionId(GetTopFullTransactionId()); });
  uint64 sysid = GetSystemIdentifier();
  for (Entry* e : parts) {
    Gid g;
    g.system_id = sysid;
    g.database = MyDatabaseId;
    g.xid = xid;
    g.participant = e->id;
    e->gid = format_gid(g);
    if (!send_commands(e->conn, {"PREPARE TRANSACTION " + quote_literal(e->gid)})) {
      std::string msg = PQerrorMessage(e->conn);
      close_connection(e->conn);
      e->phase = Phase::kOpen;
      throw Error(sqlstate::kRemoteFailure,
                  "lost the connection to participant \"" + e->name + "\" before PREPARE", msg);
    }
    e->phase = Phase::kPrepareSent;
  }
  TimestampTz deadline = deadline_in(settings::timeout_ms);

  // The decision, inside the local transaction, while the participants prepare.
  {
    std::vector<Datum> ids;
    for (Entry* e : parts) ids.push_back(Int32GetDatum(e->id));
    pg::SpiScope spi;
    pg::OwnerScope owner(catalog_owner());
    pg::pg_call([&] {
      static pg::SavedPlan plan(
          "INSERT INTO consistency.twopc_decisions (participant_id, xid) "
          "SELECT pg_catalog.unnest($1::pg_catalog.int4[]), $2::pg_catalog.xid8",
          {INT4ARRAYOID, XID8OID});
      ArrayType* arr =
          construct_array(ids.data(), static_cast<int>(ids.size()), INT4OID, 4, true, TYPALIGN_INT);
      Datum args[2] = {PointerGetDatum(arr), UInt64GetDatum(xid)};
      // Portals are closed at PRE_COMMIT: the statement needs a snapshot of its own.
      PushActiveSnapshot(GetTransactionSnapshot());
      plan.execute(args, nullptr, false);
      PopActiveSnapshot();
    });
  }

  // PREPAREs given up on (twopc_timeout, a cancel, statement_timeout) are cancelled on the
  // participants still preparing, as remote statements are: a deferred trigger there may
  // run for long, holding its locks. The abort then reads their answers and rolls back
  // those that prepared all the same.
  auto cancel_preparing = [&parts] {
    for (Entry* p : parts)
      if (p->phase == Phase::kPrepareSent) request_cancel(p->conn);
  };
  for (Entry* e : parts) {
    Outcome o;
    try {
      o = collect(e->conn, 1, deadline, WaitMode::kInterruptible);
    } catch (...) {
      cancel_preparing();
      throw;
    }
    if (o.kind == Outcome::kTimeout || o.kind == Outcome::kInterrupted) cancel_preparing();
    if (o.ok()) {
      const char* tag = PQcmdStatus(o.result.get());
      if (tag == nullptr || strcmp(tag, "PREPARE TRANSACTION") != 0) {
        // An aborted remote transaction answers PREPARE with ROLLBACK.
        e->phase = Phase::kOpen;
        throw Error(sqlstate::kRemoteFailure,
                    "participant \"" + e->name + "\" rolled back its transaction at PREPARE",
                    "A statement had failed there earlier in the transaction.");
      }
      e->phase = Phase::kPrepared;
      count(&Stats::prepared);
      continue;
    }
    if (o.kind == Outcome::kRemoteError) {
      e->phase = Phase::kOpen;  // the remote transaction is gone; nothing was prepared
      if (o.sqlstate == "55000" && o.message.find("prepared transactions are disabled") != std::string::npos)
        throw Error(sqlstate::kRemoteFailure, "participant \"" + e->name + "\" cannot prepare transactions",
                    remote_detail(o),
                    "Set max_prepared_transactions above 0 on the participant's server and "
                    "restart it.");
      throw Error(sqlstate::kRemoteFailure,
                  "could not prepare the transaction on participant \"" + e->name + "\"", remote_detail(o),
                  o.hint);
    }
    throw_outcome(*e, o, "PREPARE TRANSACTION");  // timeout / lost: settled at abort
  }
  debug_point(kDebugAfterPrepare);
}

// The WARNING that COMMIT/ROLLBACK PREPARED on e is left to the worker's recovery.
void warn(const Entry& e, const char* action, const std::string& why) {
  ereport(WARNING, (errcode(ERRCODE_CONNECTION_FAILURE),
                    errmsg("could not %s prepared transaction \"%s\" on participant \"%s\"", action,
                           e.gid.c_str(), e.name.c_str()),
                    errdetail("%s", why.c_str()),
                    errhint("The pg_consistency worker will %s it once the participant answers.", action)));
}

// Why a remote command did not succeed, as the detail of a message.
std::string outcome_text(const Outcome& o) {
  switch (o.kind) {
    case Outcome::kTimeout:
      return "No answer in time (pg_consistency.twopc_timeout; while aborting, at most 5 s).";
    case Outcome::kConnectionLost:
      return o.message;
    case Outcome::kInterrupted:
      return "The wait was given up: a cancel or terminate request arrived.";
    default:
      return remote_detail(o);
  }
}

// Sends `verb PREPARED` for every entry in `list` and reads the answers; never throws.
void finish_prepared(std::vector<Entry*>& list, bool commit) {
  const char* verb = commit ? "commit" : "roll back";
  std::vector<Entry*> sent;
  for (Entry* e : list) {
    std::string cmd = std::string(commit ? "COMMIT" : "ROLLBACK") + " PREPARED " + quote_literal(e->gid);
    if (send_commands(e->conn, {cmd})) {
      sent.push_back(e);
    } else {
      std::string why = e->conn ? PQerrorMessage(e->conn) : "no connection";
      close_connection(e->conn);
      warn(*e, verb, why);
      count(&Stats::commit_deferred);
      worker::wake_now(&kComponent);
    }
  }
  TimestampTz deadline = deadline_in(commit ? settings::timeout_ms : abort_wait_ms());
  for (Entry* e : sent) {
    Outcome o = collect(e->conn, 1, deadline, WaitMode::kHeld);
    if (o.ok() || (o.kind == Outcome::kRemoteError && o.sqlstate == "42704")) {
      // 42704: already resolved by the worker's recovery.
      count(commit ? &Stats::committed : &Stats::rolled_back);
      continue;
    }
    if (o.kind == Outcome::kRemoteError && o.sqlstate == "55000" &&
        o.message.find("is busy") != std::string::npos)
      continue;  // the worker's recovery is finishing it right now
    if (o.kind != Outcome::kRemoteError && !cancel_and_drain(e->conn, 1000)) close_connection(e->conn);
    warn(*e, verb, outcome_text(o));
    count(&Stats::commit_deferred);
    worker::wake_now(&kComponent);
  }
}

// COMMIT: the local commit is durable; COMMIT PREPARED on every prepared participant.
void on_commit() {
  g_committing = false;
  std::vector<Entry*> prepared;
  for (auto& e : g_entries) {
    if (e->phase == Phase::kPrepared) {
      prepared.push_back(e.get());
    } else if (touched(*e)) {
      // Cannot happen: PRE_COMMIT prepared every touched participant or failed.
      ereport(WARNING, (errmsg("participant \"%s\" was not prepared at commit; its work is "
                               "discarded",
                               e->name.c_str())));
      close_connection(e->conn);
    }
  }
  if (!prepared.empty()) {
    debug_point(kDebugAfterLocalCommit);
    finish_prepared(prepared, true);
    if (QueryCancelPending) {
      // As a synchronous-replication wait does: the commit stands, the cancel only ended
      // the wait; forgetting it keeps the next statement from being cancelled for it.
      QueryCancelPending = false;
      ereport(WARNING, (errmsg("canceled the wait for COMMIT PREPARED on participants due to user "
                               "request"),
                        errdetail("The transaction has already committed locally; the pg_consistency "
                                  "worker commits it on the participants that did not confirm.")));
    }
  }
  for (auto& e : g_entries) e->end_transaction();
}

// ABORT: rolls back every participant's part, prepared or still open, reading first the
// answer of a PREPARE still in flight.
void on_abort() {
  g_committing = false;
  std::vector<Entry*> prepared, open;
  for (auto& e : g_entries) {
    if (!touched(*e)) continue;
    switch (e->phase) {
      case Phase::kPrepareSent: {
        if (e->conn == nullptr || PQstatus(e->conn) != CONNECTION_OK) {
          close_connection(e->conn);
          count(&Stats::commit_deferred);
          worker::wake_now(&kComponent);
          break;
        }
        Outcome o = collect(e->conn, 1, deadline_in(abort_wait_ms()), WaitMode::kHeld);
        const char* tag = o.ok() ? PQcmdStatus(o.result.get()) : nullptr;
        if (tag != nullptr && strcmp(tag, "PREPARE TRANSACTION") == 0) {
          count(&Stats::prepared);
          prepared.push_back(e.get());
        } else if (o.kind == Outcome::kTimeout || o.kind == Outcome::kConnectionLost ||
                   o.kind == Outcome::kInterrupted) {
          // Outcome unknown: recovery rolls it back if it prepared. A PREPARE still running
          // there is cancelled: closing the connection alone would not stop it.
          if (o.kind != Outcome::kConnectionLost) request_cancel(e->conn);
          close_connection(e->conn);
          count(&Stats::commit_deferred);
          worker::wake_now(&kComponent);
        }
        break;
      }
      case Phase::kPrepared:
        prepared.push_back(e.get());
        break;
      default:
        if (settle(*e, true) && PQtransactionStatus(e->conn) != PQTRANS_IDLE) open.push_back(e.get());
        break;
    }
  }
  for (Entry* e : open) {
    Outcome o = run(e->conn, {"ROLLBACK"}, abort_wait_ms(), WaitMode::kHeld);
    if (!o.ok()) close_connection(e->conn);
  }
  if (!prepared.empty()) finish_prepared(prepared, false);
  for (auto& e : g_entries) e->end_transaction();
}

// A subtransaction commits: its savepoints now belong to its parent (nothing is sent).
void on_subcommit(int level) {
  for (auto& e : g_entries)
    if (touched(*e)) e->sp.on_subcommit(level);
}

// A subtransaction rolls back: ROLLBACK TO its savepoint on the participants that set one,
// or ROLLBACK where the remote transaction began inside it.
void on_subabort(int level) {
  for (auto& e : g_entries) {
    if (!touched(*e)) continue;
    SavepointTracker::Undo u = e->sp.on_subabort(level);
    if (u.kind == SavepointTracker::UndoKind::kNothing) continue;
    bool usable = settle(*e, true);
    if (u.kind == SavepointTracker::UndoKind::kRollbackAll) {
      if (usable) {
        Outcome o = run(e->conn, {"ROLLBACK"}, abort_wait_ms(), WaitMode::kHeld);
        if (!o.ok()) close_connection(e->conn);
      }
      e->end_transaction();  // everything it did is undone (or died with the connection)
      continue;
    }
    if (e->phase == Phase::kBroken) continue;
    if (!usable) {
      e->phase = Phase::kBroken;
      e->broken_reason = "The connection to it was lost inside a savepoint.";
      continue;
    }
    Outcome o = run(e->conn, {"ROLLBACK TO SAVEPOINT " + u.savepoint}, abort_wait_ms(), WaitMode::kHeld);
    if (!o.ok()) {
      close_connection(e->conn);
      e->phase = Phase::kBroken;
      e->broken_reason = "ROLLBACK TO SAVEPOINT failed there: " + outcome_text(o);
    }
  }
}

// C++ failures in callbacks that may still fail the transaction become ERRORs; in those
// that run after the commit or during abort they become WARNINGs.
template <typename F>
void guarded(F&& f, bool may_fail) {
  pg::CapturedError captured;
  bool failed = false;
  try {
    f();
  } catch (...) {
    captured = pg::capture_current_exception();
    failed = true;
  }
  if (!failed) return;
  if (may_fail) pg::raise_captured(captured);
  const char* msg = captured.pg_error ? captured.pg_error->message : captured.message;
  ereport(WARNING, (errmsg("pg_consistency two-phase commit: %s", msg ? msg : "unknown error")));
  for (auto& e : g_entries) {
    if (touched(*e)) close_connection(e->conn);
    e->end_transaction();
  }
  g_committing = false;
}

// PostgreSQL's transaction callback: the commit protocol.
void xact_callback(XactEvent event, void*) {
  switch (event) {
    case XACT_EVENT_PRE_COMMIT:
      guarded(pre_commit, true);
      break;
    case XACT_EVENT_PRE_PREPARE:
      guarded(
          [] {
            for (auto& e : g_entries)
              if (touched(*e))
                throw Error(
                    sqlstate::kFeatureNotSupported,
                    "cannot PREPARE a transaction that ran statements on participant \"" + e->name + "\"",
                    "pg_consistency coordinates that transaction itself.");
          },
          true);
      break;
    case XACT_EVENT_COMMIT:
      guarded(on_commit, false);
      break;
    case XACT_EVENT_ABORT:
      guarded(on_abort, false);
      break;
    default:
      break;
  }
}

// PostgreSQL's subtransaction callback: mirrors savepoints onto the participants.
void subxact_callback(SubXactEvent event, SubTransactionId, SubTransactionId, void*) {
  if (g_entries.empty()) return;
  int level = GetCurrentTransactionNestLevel();
  if (event == SUBXACT_EVENT_COMMIT_SUB)
    guarded([level] { on_subcommit(level); }, false);
  else if (event == SUBXACT_EVENT_ABORT_SUB)
    guarded([level] { on_subabort(level); }, false);
}

}  // namespace

void install_callbacks() {
  RegisterXactCallback(xact_callback, nullptr);
  RegisterSubXactCallback(subxact_callback, nullptr);
}

bool participant_in_use(int32 id) {
  for (auto& e : g_entries)
    if (e->id == id && touched(*e)) return true;
  return false;
}

Result execute_remote(const std::string& name, const std::string& sql, RowSink* sink) {
  const std::string shown = shown_name(name);  // not yet validated: clipped in messages
  StatementInfo info = classify_statement(sql);
  if (info.kind == StatementKind::kEmpty)
    throw invalid_argument("statement for participant \"" + shown + "\" is empty");
  if (info.kind == StatementKind::kTransactionControl)
    throw invalid_argument(
        "statement for participant \"" + shown + "\" is a transaction control statement (" + info.keyword +
            ")",
        "The participant's transaction is bound to the local one: it is committed or rolled "
        "back with it.",
        "Use COMMIT, ROLLBACK or SAVEPOINT locally; they are carried to the participants.");
  if (XactReadOnly)
    throw Error("25006", "cannot run statements on participant \"" + shown + "\" in a read-only transaction",
                "The outcome of a distributed transaction is recorded in this database at "
                "COMMIT.",
                "Run it in a read-write transaction (on the primary).");
  if (g_committing)
    throw Error(sqlstate::kFeatureNotSupported,
                "cannot run statements on participant \"" + shown + "\" while the transaction commits");

  Entry* e = nullptr;
  for (auto& x : g_entries)
    if (x->name == name && touched(*x)) e = x.get();
  ParticipantRow row;
  if (e == nullptr) {
    if (auto problem = participant_name_problem(name))
      throw Error(sqlstate::kUnknownObject, "participant \"" + shown + "\" does not exist",
                  "Invalid participant name: " + *problem + ".");
    bool found;
    {
      pg::SpiScope spi;
      found = lookup_participant(name, &row);
    }
    if (!found)
      throw Error(sqlstate::kUnknownObject, "participant \"" + name + "\" does not exist", "",
                  "Add it with consistency.add_participant(name, conninfo).");
    e = entry_for(row);
  }
  // Checked at every call: the same transaction may run as several roles, and a grant
  // revoked meanwhile counts at once.
  Oid user = GetUserId();
  if (!may_use_participant(e->id, user)) {
    const char* rolname = GetUserNameFromId(user, true);
    throw Error(
        sqlstate::kInsufficientPrivilege, "permission denied for participant \"" + name + "\"",
        std::string("Role \"") + (rolname ? rolname : "?") + "\" has not been granted the participant.",
        "An admin grants it with consistency.grant_participant(participant, role).");
  }
  if (e->phase == Phase::kBroken)
    throw Error(sqlstate::kRemoteFailure, "participant \"" + name + "\" lost its part of this transaction",
                e->broken_reason, "Roll back the transaction and retry.");

  int level = GetCurrentTransactionNestLevel();
  for (int attempt = 0;; attempt++) {
    bool first = e->phase == Phase::kNone;
    bool reused = false;
    if (first) {
      if (e->conn != nullptr &&
          (PQstatus(e->conn) != CONNECTION_OK || PQtransactionStatus(e->conn) != PQTRANS_IDLE))
        close_connection(e->conn);
      if (e->conn == nullptr)
        e->conn = connect_participant(e->name, row.conninfo, row.trusted, settings::timeout_ms,
                                      WaitMode::kInterruptible);
      else
        reused = true;
    } else if (e->conn == nullptr) {
      e->phase = Phase::kBroken;
      e->broken_reason = "The connection to it was lost.";
      throw Error(sqlstate::kRemoteFailure, "participant \"" + name + "\" lost its part of this transaction",
                  e->broken_reason, "Roll back the transaction and retry.");
    }
    SavepointTracker::Prepare prep = e->sp.before_statement(level);
    std::vector<std::string> cmds;
    if (prep.begin) cmds.push_back("BEGIN");
    if (!prep.savepoint.empty()) cmds.push_back("SAVEPOINT " + prep.savepoint);
    cmds.push_back(sql);
    e->phase = Phase::kOpen;
    Outcome o = run(e->conn, cmds, settings::timeout_ms, WaitMode::kInterruptible, sink);
    if (o.kind == Outcome::kConnectionLost && first && reused && attempt == 0 &&
        (sink == nullptr || sink->delivered == 0)) {
      // The cached connection died while idle (participant restarted): nothing of this
      // transaction was there yet, so reconnect once.
      e->end_transaction();
      close_connection(e->conn);
      {
        pg::SpiScope spi;
        if (!lookup_participant(name, &row))
          throw Error(sqlstate::kUnknownObject, "participant \"" + name + "\" does not exist");
      }
      continue;
    }
    if (!o.ok()) {
      if (o.kind == Outcome::kRemoteError && o.failed_index < static_cast<int>(cmds.size()) - 1)
        throw_outcome(*e, o, cmds[o.failed_index].c_str());
      throw_outcome(*e, o, "statement");
    }
    if (PQtransactionStatus(e->conn) != PQTRANS_INTRANS) {
      close_connection(e->conn);
      e->phase = Phase::kBroken;
      e->broken_reason = "A statement ended the participant's transaction.";
      throw Error(sqlstate::kRemoteFailure, "participant \"" + name + "\" left its transaction",
                  e->broken_reason);
    }
    return std::move(o.result);
  }
}

}  // namespace pgc::twopc
