// The correlation context of this backend: the ids that publishes and appends made now
// carry. Only the extension's own C++ code sets it, around a handler call (a consumer's
// message, a subscription's event, a saga's function step); it is restored when the call
// returns, when the call's subtransaction aborts, and at the end of every transaction, so
// one message's ids never reach the next message or a later transaction. Outside handlers
// the setting pg_consistency.correlation_id supplies the correlation id (no causation id).
#pragma once

#include <string>

#include "correlation/ids.hpp"
#include "pg/postgres.hpp"

extern "C" {
#include "utils/jsonb.h"
}

namespace pgc::correlation {

// ---- plain-data interface (for code that lets an ERROR longjmp through it) ----

// Makes the ids current (NUL-terminated, "" = none) until leave(); returns the depth to
// pass to leave(). ERROR when handler contexts nest more than 16 deep.
int enter(const char* correlation, const char* causation);
// The same with the ids of an event a subscription handles: `event_id` (uuid) and the
// correlation_id of `metadata` (jsonb), as of_event() says.
int enter_event(Datum event_id, Datum metadata);
// Restores the context current before the enter() that returned `depth`.
void leave(int depth);

// ---- C++ ----

// enter() for a scope.
class Scope {
 public:
  explicit Scope(const Ids& ids);
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  int depth_;
};

// The ids in effect for a write made now, as a jsonb object with the keys correlation_id
// and causation_id (a key without a value left out), or nullptr when none is in effect:
// the innermost handler context, else pg_consistency.correlation_id. Raises CS002 (as a
// pgc::Error) when that setting holds a value that cannot be an id.
Jsonb* current_ids();

// The correlation id in effect now (as current_ids() finds it), or "".
std::string current_correlation();

// `obj` (a jsonb object) with the members of `ids` it does not have itself: values the
// caller gave explicitly win, JSON null included.
Jsonb* add_missing(Jsonb* obj, Jsonb* ids);

}  // namespace pgc::correlation
