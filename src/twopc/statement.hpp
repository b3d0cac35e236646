// Checks on what callers hand to remote_exec / remote_query / add_participant, before
// anything is sent. No PostgreSQL header here: unit-tested on its own.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pgc::twopc {

enum class StatementKind {
  kOrdinary,
  kEmpty,               // only white space and comments
  kTransactionControl,  // BEGIN, START, COMMIT, END, ROLLBACK, ABORT, SAVEPOINT, RELEASE,
                        // PREPARE TRANSACTION, COMMIT/ROLLBACK PREPARED
};

struct StatementInfo {
  StatementKind kind = StatementKind::kOrdinary;
  std::string keyword;  // the leading keyword(s), upper case, for messages ("PREPARE TRANSACTION")
};

// Looks at the first keyword after white space, SQL comments (-- to the end of the line,
// \n or \r, and nested /* */) and empty statements (";COMMIT" is COMMIT to the server).
// The participant's transaction belongs to the coordinator: a statement that would end
// it, or a savepoint the coordinator does not know about, must not reach it. (Several
// statements in one string are refused by the participant itself: they are sent with
// the extended query protocol, which takes exactly one.)
StatementInfo classify_statement(std::string_view sql);

// Participant names: 1-63 characters from [A-Za-z0-9_.-]. nullopt = valid, else the reason.
std::optional<std::string> participant_name_problem(std::string_view name);

}  // namespace pgc::twopc
