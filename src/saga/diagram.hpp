// Mermaid stateDiagram-v2 text of a saga definition, and of one saga marked with the path
// it took (consistency.saga_definition_diagram, consistency.saga_diagram). Pure C++: the
// PostgreSQL layer (diagram_functions.cpp) loads the compiled definition, the saga's row
// and its audit events and hands them here.
//
// State ids are generated (step0, undo0, saga_completed, ...), never taken from names:
// whatever a step is called, the text parses. Names appear only in labels and
// descriptions, escaped with Mermaid's entity codes (escape_text).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "saga/definition.hpp"
#include "saga/machine.hpp"

namespace pgc::saga::diagram {

// One audit event of a saga (stream saga-<id>), the members the diagram uses.
struct HistoryEvent {
  std::string type;            // StepSucceeded, StepFailed, CommandSent, SagaAborted, ...
  std::string step;            // data.step ("" when absent)
  int attempt = 0;             // data.attempt (0 when absent)
  bool retry_follows = false;  // StepFailed, CompensationFailed: data.retry_in_ms is not null
  std::string phase;           // CommandSent: "action" or "compensation"
  std::string status;          // SagaAborted, SagaRetried: the status the saga had
};

// A saga as saga_diagram draws it: its row's state (authoritative for where it is now)
// and its audit events in stream order (what happened before).
struct Instance {
  std::string id;  // the saga's uuid as text
  State state;
  std::vector<HistoryEvent> history;
};

// `text` for a Mermaid label or description: characters the grammar gives a meaning
// (quotes, colons, semicolons, braces, arrows, '#', '%', HTML) become entity codes
// (#quot;, #58;, ...); control characters become spaces; other bytes (letters, UTF-8 or
// any database encoding) pass unchanged.
std::string escape_text(std::string_view text);

// The definition: one state per step and per compensation, the terminal states, the
// transitions the state machine can take between them.
std::string definition_diagram(const std::string& saga_name, int version, const Definition& def);

// The same diagram with the saga's path marked: steps and compensations that succeeded,
// failed or were never reached (classDef/class lines), the current step, the terminal
// state reached, attempts in each state's description.
std::string saga_diagram(const std::string& saga_name, int version, const Definition& def,
                         const Instance& saga);

}  // namespace pgc::saga::diagram
