// A fixed, minimal search_path for extension code that runs SQL with elevated rights.
#pragma once

#include "pg/guard.hpp"

extern "C" {
#include "catalog/namespace.h"
}

namespace pgc::pg {

// Runs f with only pg_catalog on the search path (no pg_temp, nothing of the caller's),
// so that no object the caller can create is resolved inside it. Cheaper than a
// function's `SET search_path` clause, which costs a GUC save/restore and two search
// path recomputations per call (about a tenth of publish()'s time); the saved plans run
// inside keep matching this path and are not re-analysed. On an exception the path is
// popped before it propagates (an ERROR that aborts the (sub)transaction would also
// drop it).
template <typename F>
auto with_catalog_search_path(F&& f) -> decltype(f()) {
  static OverrideSearchPath catalog_only = {NIL, true, false, 0};
  pg_call([] { PushOverrideSearchPath(&catalog_only); });
  try {
    if constexpr (std::is_void_v<decltype(f())>) {
      f();
      pg_call([] { PopOverrideSearchPath(); });
    } else {
      auto result = f();
      pg_call([] { PopOverrideSearchPath(); });
      return result;
    }
  } catch (...) {
    pg_call([] { PopOverrideSearchPath(); });
    throw;
  }
}

}  // namespace pgc::pg
