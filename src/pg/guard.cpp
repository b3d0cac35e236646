#include "pg/guard.hpp"

#include <new>

namespace pgc::pg {

const char* PgError::what() const noexcept {
  return (edata_ != nullptr && edata_->message != nullptr) ? edata_->message : "PostgreSQL error";
}

namespace detail {

ErrorData* run_catching(void (*fn)(void*), void* arg) {
  MemoryContext oldcxt = CurrentMemoryContext;
  ErrorData* volatile edata = nullptr;
  PG_TRY();
  { fn(arg); }
  PG_CATCH();
  {
    MemoryContextSwitchTo(oldcxt);
    edata = CopyErrorData();
    FlushErrorState();
  }
  PG_END_TRY();
  return edata;
}

}  // namespace detail

void raise_error(const char* code, const char* message, const char* detail, const char* hint) {
  int sqlerrcode = ERRCODE_INTERNAL_ERROR;
  if (code != nullptr && strlen(code) == 5)
    sqlerrcode = MAKE_SQLSTATE(code[0], code[1], code[2], code[3], code[4]);
  ereport(ERROR,
          (errcode(sqlerrcode), errmsg("%s", message ? message : "internal error"),
           (detail && *detail) ? errdetail("%s", detail) : 0, (hint && *hint) ? errhint("%s", hint) : 0));
  pg_unreachable();
}

CapturedError capture_current_exception() noexcept {
  CapturedError out;
  try {
    throw;
  } catch (const PgError& e) {
    out.pg_error = e.edata();
  } catch (const Error& e) {
    out.code = pstrdup(e.code().c_str());
    out.message = pstrdup(e.what());
    out.detail = e.detail().empty() ? nullptr : pstrdup(e.detail().c_str());
    out.hint = e.hint().empty() ? nullptr : pstrdup(e.hint().c_str());
  } catch (const std::bad_alloc&) {
    out.code = sqlstate::kOutOfMemory;
    out.message = pstrdup("out of memory in pg_consistency");
  } catch (const std::exception& e) {
    out.code = sqlstate::kInternal;
    out.message = psprintf("pg_consistency internal error: %s", e.what());
  } catch (...) {
    out.code = sqlstate::kInternal;
    out.message = pstrdup("pg_consistency internal error: unknown C++ exception");
  }
  return out;
}

void raise_captured(const CapturedError& e) {
  if (e.pg_error != nullptr) ReThrowError(e.pg_error);
  raise_error(e.code, e.message, e.detail, e.hint);
}

Datum guard_entry(FunctionCallInfo fcinfo, Datum (*impl)(FunctionCallInfo)) {
  CapturedError captured;
  try {
    return impl(fcinfo);
  } catch (...) {
    captured = capture_current_exception();
  }
  // Out of the catch block: the exception object is gone, so the longjmp is safe.
  raise_captured(captured);
}

}  // namespace pgc::pg
