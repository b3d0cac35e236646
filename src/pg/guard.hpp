// Both directions of the C++/PostgreSQL boundary.
//
// C++ -> PostgreSQL: every SQL-callable function is defined with PGC_FUNCTION, whose
// wrapper catches any C++ exception, leaves the catch block and only then raises it
// with ereport, keeping the SQLSTATE the exception carries.
//
// PostgreSQL -> C++: pg_call(f) runs f under its own PG_TRY; an ereport(ERROR) inside
// is copied and rethrown as PgError, so C++ destructors of the caller still run.
#pragma once

#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "common/error.hpp"
#include "pg/postgres.hpp"

namespace pgc::pg {

// A PostgreSQL error caught by pg_call, travelling through C++ frames.
class PgError : public std::exception {
 public:
  explicit PgError(ErrorData* edata) : edata_(edata) {}
  const char* what() const noexcept override;
  ErrorData* edata() const noexcept { return edata_; }
  int sqlerrcode() const noexcept { return edata_ ? edata_->sqlerrcode : 0; }

 private:
  ErrorData* edata_;  // palloc'd in the context that was current at pg_call
};

namespace detail {
// Runs fn(arg) inside PG_TRY. Returns the copied error, or nullptr. Plain data only.
ErrorData* run_catching(void (*fn)(void*), void* arg);
}  // namespace detail

template <typename F>
auto pg_call(F&& f) -> decltype(f()) {
  using R = decltype(f());
  struct Ctx {
    F* f;
    std::exception_ptr cxx_error;
    std::conditional_t<std::is_void_v<R>, bool, std::optional<R>> result;
  } ctx{&f, nullptr, {}};
  // No C++ exception may unwind through the sigsetjmp frame: capture it and rethrow
  // after PG_END_TRY has restored PostgreSQL's exception stack.
  ErrorData* err = detail::run_catching(
      [](void* p) {
        auto* c = static_cast<Ctx*>(p);
        try {
          if constexpr (std::is_void_v<R>) {
            (*c->f)();
          } else {
            c->result.emplace((*c->f)());
          }
        } catch (...) {
          c->cxx_error = std::current_exception();
        }
      },
      &ctx);
  if (err != nullptr) throw PgError(err);
  if (ctx.cxx_error) std::rethrow_exception(ctx.cxx_error);
  if constexpr (!std::is_void_v<R>) return std::move(*ctx.result);
}

// Raises an ERROR from plain data; never returns.
[[noreturn]] void raise_error(const char* sqlstate, const char* message, const char* detail,
                              const char* hint);

// The current C++ exception as plain palloc'd data. Call it only inside a catch block;
// raise it with raise_captured after the block has ended.
struct CapturedError {
  ErrorData* pg_error = nullptr;
  const char* code = nullptr;
  char* message = nullptr;
  char* detail = nullptr;
  char* hint = nullptr;
};
CapturedError capture_current_exception() noexcept;
[[noreturn]] void raise_captured(const CapturedError& e);

// The wrapper behind PGC_FUNCTION.
Datum guard_entry(FunctionCallInfo fcinfo, Datum (*impl)(FunctionCallInfo));

}  // namespace pgc::pg

// Defines an SQL-callable C function `name` whose body is C++ guarded by guard_entry.
#define PGC_FUNCTION(name)                                                                        \
  extern "C" {                                                                                    \
  PG_FUNCTION_INFO_V1(name);                                                                      \
  }                                                                                               \
  static Datum name##_impl(FunctionCallInfo fcinfo);                                              \
  extern "C" Datum name(PG_FUNCTION_ARGS) { return ::pgc::pg::guard_entry(fcinfo, name##_impl); } \
  static Datum name##_impl([[maybe_unused]] FunctionCallInfo fcinfo)
