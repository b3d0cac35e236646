// The coordinator side inside a backend: per-backend connections to participants, the
// participant transactions bound to the local one, and the commit protocol run from the
// transaction callbacks.
#pragma once

#include <string>

#include "twopc/remote.hpp"

namespace pgc::twopc {

// Runs `sql` on participant `name` inside its transaction bound to the local one, as
// the current user: refused (42501) unless that role may use the participant (granted,
// admin or superuser). With a sink, the rows come one at a time into it.
// Throws CS002 (refused statement), CS004 (unknown participant), 42501, CS005 (remote
// failure), or whatever the sink throws.
Result execute_remote(const std::string& name, const std::string& sql, RowSink* sink = nullptr);

// True if the current local transaction ran statements on participant `id`.
bool participant_in_use(int32 id);

}  // namespace pgc::twopc
