// Running a piece of work so that a PostgreSQL ERROR inside it comes back as data.
// These (with pg_call in guard.hpp) are the only PG_TRY blocks of the extension; the
// work they run keeps plain data across PostgreSQL calls (no C++ objects with
// destructors), or wraps such calls in pg_call itself.
#pragma once

#include "pg/postgres.hpp"

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

}  // namespace pgc::pg
