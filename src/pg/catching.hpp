// Running a piece of work so that a PostgreSQL ERROR inside it comes back as data.
// These (with pg_call in guard.hpp) are the only PG_TRY blocks of the extension; the
// work they run keeps plain data across PostgreSQL calls (no C++ objects with
// destructors), or wraps such calls in pg_call itself.
#pragma once

#include <string>

#include "pg/guard.hpp"
#include "pg/postgres.hpp"

extern "C" {
#include "access/xact.h"
#include "utils/resowner.h"
}

namespace pgc::pg {

// Runs fn(arg) in an internal subtransaction: released when fn returns, rolled back when
// it raises. Returns the error (copied into the memory context current at the call), or
// nullptr. on_error(arg), if given, runs first thing after the error is caught, before
// the rollback (e.g. to disarm a time limit that must not cancel the rollback).
// Memory context and resource owner are those of the caller afterwards.
ErrorData* run_in_subtransaction(void (*fn)(void*), void* arg, void (*on_error)(void*) = nullptr);

// For a background worker's loop: runs fn(arg); on an ERROR, switches to `cxt`, copies
// the error there, aborts whatever transaction is open, disarms a statement time limit
// and reports the backend idle. Returns the error, or nullptr.
ErrorData* run_aborting_on_error(void (*fn)(void*), void* arg, MemoryContext cxt);

// What in_subtransaction reports: an empty error when the body succeeded.
struct SubtransactionResult {
  std::string error;  // message, and " (detail)" when there is one
  int sqlerrcode = 0;
  bool ok() const { return error.empty(); }
  // Lost to a concurrent transaction: worth running again, not a failure of the work.
  bool conflict() const {
    return sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED || sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE;
  }
};

// The text of a caught PostgreSQL error ("message (detail)"); frees its ErrorData.
std::string take_error_text(const PgError& e);

// The C++ form of run_in_subtransaction, for code that keeps C++ objects live: runs
// body() in an internal subtransaction, released when it returns, rolled back when it
// throws (a PgError from pg_call, or any std::exception). Memory context and resource
// owner are the caller's afterwards.
template <typename F>
SubtransactionResult in_subtransaction(F&& body) {
  MemoryContext cxt = CurrentMemoryContext;
  ResourceOwner owner = CurrentResourceOwner;
  pg_call([] { BeginInternalSubTransaction(nullptr); });
  MemoryContextSwitchTo(cxt);
  SubtransactionResult r;
  try {
    body();
    pg_call([] { ReleaseCurrentSubTransaction(); });
    MemoryContextSwitchTo(cxt);
    CurrentResourceOwner = owner;
    return r;
  } catch (const PgError& e) {
    r.sqlerrcode = e.sqlerrcode();
    r.error = take_error_text(e);
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  if (r.error.empty()) r.error = "unknown error";
  pg_call([] { RollbackAndReleaseCurrentSubTransaction(); });
  MemoryContextSwitchTo(cxt);
  CurrentResourceOwner = owner;
  return r;
}

}  // namespace pgc::pg
