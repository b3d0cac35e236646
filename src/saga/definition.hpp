// Saga definitions: the parsed form, validation of the user's JSON with precise
// messages, and the compiled JSON form stored next to the original. Pure C++: what
// needs the catalog (does this function exist? is this a valid interval?) is asked
// through a Resolver, which the PostgreSQL layer implements and unit tests fake.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "saga/json.hpp"

namespace pgc::saga {

inline constexpr int64_t kNoLimit = -1;
inline constexpr int kMaxSteps = 100;
inline constexpr int kMaxAttempts = 1000;
inline constexpr size_t kMaxStepNameBytes = 128;
inline constexpr size_t kMaxSagaNameBytes = 200;
inline constexpr int64_t kMaxDurationMs = 366LL * 24 * 3600 * 1000;  // a year

struct Action {
  enum class Kind { kNone, kFunction, kCommand };
  Kind kind = Kind::kNone;
  std::string function;       // kFunction: schema-qualified, quoted where needed (for messages)
  uint32_t function_oid = 0;  // kFunction: the function resolved at definition time (0: unknown)
  std::string topic;          // kCommand
  std::string command;        // kCommand

  bool is_none() const { return kind == Kind::kNone; }
  bool is_function() const { return kind == Kind::kFunction; }
  bool is_command() const { return kind == Kind::kCommand; }
};

struct RetryPolicy {
  int max_attempts = 3;  // attempts in all, the first included
  int64_t backoff_ms = 100;
  int64_t max_backoff_ms = 10000;
};

struct Step {
  std::string name;
  Action action;
  Action compensation;  // kind kNone: nothing to undo
  int64_t timeout_ms = kNoLimit;
  RetryPolicy retry;
};

struct Definition {
  std::vector<Step> steps;
  int64_t timeout_ms = kNoLimit;  // of the whole saga, from its start

  int find_step(const std::string& name) const;  // -1 when absent
};

// The catalog questions validation asks.
class Resolver {
 public:
  virtual ~Resolver() = default;
  // Milliseconds of a duration text such as "30 seconds", or nullopt if it is not one.
  virtual std::optional<int64_t> duration_ms(const std::string& text) = 0;
  // Checks that `name` is a function fn(saga_id uuid, data jsonb) RETURNS jsonb the
  // defining role may execute. On success returns true and sets `canonical` to the
  // schema-qualified name and `oid` to the function's OID (what the worker calls);
  // else sets `sqlstate` and `message` (naming the function).
  virtual bool resolve_function(const std::string& name, std::string& canonical, uint32_t& oid,
                                std::string& sqlstate, std::string& message) = 0;
  // `s` (a name or value from the definition) as a JSON string literal for messages. By
  // default json::quoted, which needs UTF-8; the PostgreSQL layer escapes byte for byte
  // in the database encoding.
  virtual std::string quoted(const std::string& s);
};

// Kafka's rule for topic names: 1-249 characters of [a-zA-Z0-9._-].
bool valid_topic_name(const std::string& topic);
// A saga name: 1-200 bytes without control characters or leading/trailing spaces.
bool valid_saga_name(const std::string& name);

// Validates `definition` (the user's JSON) and returns its parsed form. Throws
// pgc::Error CS002 with a message naming the saga, the step and the cause (or the
// resolver's SQLSTATE for a function that cannot be used).
Definition compile(const std::string& saga_name, const json::Value& definition, Resolver& resolver);

// The compiled form as JSON (defaults applied, durations in milliseconds, function
// names qualified and their OIDs), and back. from_compiled throws pgc::Error on malformed input.
json::Value to_compiled_json(const Definition& def);
Definition from_compiled_json(const json::Value& compiled);

}  // namespace pgc::saga
