// The saga state machine: statuses, step outcomes, retries with exponential backoff and
// jitter, reply and saga timeouts, compensation in reverse order, terminal states, and
// which replies a saga accepts. Pure C++ (no PostgreSQL headers): the PostgreSQL layer
// loads a State from its row, asks what to do, runs it, and stores the Transition.
//
// Times are microseconds on any fixed epoch (the PostgreSQL layer uses TimestampTz).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "saga/definition.hpp"
#include "saga/json.hpp"

namespace pgc::saga {

inline constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

enum class Status { kRunning, kCompensating, kCompleted, kCompensated, kFailed, kAborted };
enum class Phase { kReady, kWaiting };  // waiting: a command was sent, a reply is awaited

const char* status_name(Status s);
bool parse_status(const std::string& text, Status* out);
const char* phase_name(Phase p);
bool parse_phase(const std::string& text, Phase* out);
// Completed, compensated and aborted never change again. Failed waits for an operator.
bool is_terminal(Status s);
// The worker has something to do for it now or later (running or compensating).
bool is_active(Status s);

struct State {
  Status status = Status::kRunning;
  int step = 0;          // running: the step being executed; compensating: being compensated
  int failed_step = -1;  // the step whose failure started compensation (-1: none)
  Phase phase = Phase::kReady;
  int attempts = 0;           // attempts started for the current action or compensation
  int64_t next_run_at = 0;    // ready: when to run; waiting: reply deadline; kNever: nothing
  int64_t deadline = kNever;  // the whole saga's deadline (running only)
};

// One audit record: an event type and its data. `raw_json`, when not empty, is JSON
// text added to the data under `raw_key` (a step's output, a saga's input) unparsed.
// The PostgreSQL layer writes the records (pg_saga.hpp, append_audit).
struct Event {
  std::string type;
  json::Value data = json::Value::object();
  std::string raw_json;
  std::string raw_key = "output";
};

struct Transition {
  State state;
  std::vector<Event> events;
  bool set_error = false;  // last_error becomes `error`
  std::string error;
};

// What the worker should do for a saga now.
struct Work {
  enum class Kind {
    kNone,             // nothing due (terminal, failed, waiting, or backing off)
    kRunAction,        // run (or send) the action of `step`
    kRunCompensation,  // run (or send) the compensation of `step`
    kReplyTimeout,     // the awaited reply did not come in time
    kSagaTimeout,      // the saga ran past its own timeout
  };
  Kind kind = Kind::kNone;
  int step = -1;
};

State initial_state(const Definition& def, int64_t now);
Work next_work(const State& s, const Definition& def, int64_t now);

// The action or compensation due in `s` (what kRunAction/kRunCompensation refer to).
const Action& current_action(const State& s, const Definition& def);
// Name of the current step ("" once completed or compensated).
std::string current_step_name(const State& s, const Definition& def);

// Starts the next attempt of the current action or compensation: a function step runs
// and ends in the same transaction (then succeeded/failed); a command step is sent
// (command_sent) and ends with a reply or a timeout.
State begin_attempt(const State& s);
Transition command_sent(const State& s, const Definition& def, int64_t now);
// The current attempt succeeded / failed. `unit_random` in [0,1) jitters the backoff.
Transition succeeded(const State& s, const Definition& def, int64_t now);
Transition failed(const State& s, const Definition& def, int64_t now, const std::string& error,
                  double unit_random);
// The current attempt lost a conflict with a concurrent transaction (deadlock,
// serialization failure): it did not happen, and is tried again after `delay_ms` without
// counting as an attempt. No audit event: the saga's state does not change.
State deferred(const State& attempt_started, int64_t now, int64_t delay_ms);
// The awaited reply did not arrive: a failed attempt.
Transition reply_timed_out(const State& s, const Definition& def, int64_t now, double unit_random);
// The saga's own timeout: the current step fails for good and compensation starts.
Transition saga_timed_out(const State& s, const Definition& def, int64_t now);

// Operator intervention. Throw pgc::Error CS003 when the saga is in no state for it.
Transition abort(const State& s, const Definition& def, int64_t now, const std::string& reason);
Transition retry(const State& s, const Definition& def, int64_t now);

// A reply (complete_step / fail_step) for step `step_name`.
enum class ReplyKind { kComplete, kFail };
struct ReplyVerdict {
  enum class Kind { kApply, kRepeat, kIllegal };
  Kind kind = Kind::kIllegal;
  std::string reason;  // kIllegal: why, for the CS003 message
};
ReplyVerdict classify_reply(const State& s, const Definition& def, const std::string& step_name,
                            ReplyKind kind);

// "30 s", "100 ms", "5 min": for messages.
std::string format_ms(int64_t ms);

}  // namespace pgc::saga
