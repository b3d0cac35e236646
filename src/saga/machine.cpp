#include "saga/machine.hpp"

#include <algorithm>
#include <iterator>

#include "common/backoff.hpp"
#include "common/error.hpp"

namespace pgc::saga {

namespace {

using json::Value;

constexpr int64_t kUsPerMs = 1000;

int64_t add_ms(int64_t t, int64_t ms) {
  if (t == kNever || ms == kNoLimit) return kNever;
  if (ms > (kNever - t) / kUsPerMs) return kNever;
  return t + ms * kUsPerMs;
}

bool valid_index(const Definition& def, int i) { return i >= 0 && static_cast<size_t>(i) < def.steps.size(); }

const Step& step_at(const Definition& def, int i) {
  if (!valid_index(def, i))
    throw Error(sqlstate::kInternal, "saga state refers to step " + std::to_string(i + 1) +
                                         " of a definition with " + std::to_string(def.steps.size()) +
                                         " steps");
  return def.steps[static_cast<size_t>(i)];
}

// The highest step below `from` that has a compensation, or -1.
int previous_compensable(const Definition& def, int from) {
  for (int i = std::min(from, static_cast<int>(def.steps.size())) - 1; i >= 0; i--)
    if (!def.steps[static_cast<size_t>(i)].compensation.is_none()) return i;
  return -1;
}

// {"step": <name>, "attempt": n} followed by the members of `more`.
Value step_data(const Definition& def, int step, int attempt, const Value& more = Value::object()) {
  Value data = Value::object({{"step", step_at(def, step).name}, {"attempt", attempt}});
  data.update(more);
  return data;
}

[[noreturn]] void illegal(const std::string& message) { throw Error(sqlstate::kIllegalTransition, message); }

void require_attempt_running(const State& s, const char* what) {
  if (!is_active(s.status) || s.attempts < 1)
    throw Error(sqlstate::kInternal, std::string("saga state machine: ") + what +
                                         " without a running attempt (status " + status_name(s.status) + ")");
}

// Nothing (more) to compensate after the failure of `n.failed_step`: the saga ends
// compensated, `compensated` steps undone.
void end_compensated(Transition& t, const Definition& def, int compensated) {
  State& n = t.state;
  n.status = Status::kCompensated;
  n.step = n.failed_step;
  n.next_run_at = kNever;
  t.events.push_back(
      {"SagaCompensated",
       Value::object({{"failed_step", step_at(def, n.failed_step).name}, {"compensated_steps", compensated}}),
       {}});
}

// From a step that failed for good: compensate completed steps in reverse order.
void start_compensation(Transition& t, const Definition& def, int failed_step, int64_t now,
                        const std::string& error) {
  State& n = t.state;
  n.failed_step = failed_step;
  n.attempts = 0;
  n.phase = Phase::kReady;
  n.deadline = kNever;  // compensations must finish, whatever the saga's timeout
  int first = previous_compensable(def, failed_step);
  if (first < 0) {
    end_compensated(t, def, 0);
    return;
  }
  n.status = Status::kCompensating;
  n.step = first;
  n.next_run_at = now;
  t.events.push_back({"CompensationStarted",
                      Value::object({{"failed_step", step_at(def, failed_step).name},
                                     {"error", error},
                                     {"first", step_at(def, first).name}}),
                      {}});
}

// After compensation of s.step ended (successfully): the next one down, or the end.
void next_compensation(Transition& t, const Definition& def, int64_t now) {
  State& n = t.state;
  int next = previous_compensable(def, n.step);
  n.attempts = 0;
  n.phase = Phase::kReady;
  if (next < 0) {
    int done = 0;
    for (int i = 0; i < n.failed_step; i++)
      done += def.steps[static_cast<size_t>(i)].compensation.is_none() ? 0 : 1;
    end_compensated(t, def, done);
    return;
  }
  n.step = next;
  n.next_run_at = now;
}

// Status names in the order of the enum.
constexpr const char* kStatusNames[] = {"running",     "compensating", "completed",
                                        "compensated", "failed",       "aborted"};
}  // namespace

const char* status_name(Status s) {
  auto i = static_cast<size_t>(s);
  return i < std::size(kStatusNames) ? kStatusNames[i] : "unknown";
}

bool parse_status(const std::string& text, Status* out) {
  for (size_t i = 0; i < std::size(kStatusNames); i++) {
    if (text == kStatusNames[i]) {
      *out = static_cast<Status>(i);
      return true;
    }
  }
  return false;
}

const char* phase_name(Phase p) { return p == Phase::kReady ? "ready" : "waiting"; }

bool parse_phase(const std::string& text, Phase* out) {
  if (text == "ready")
    *out = Phase::kReady;
  else if (text == "waiting")
    *out = Phase::kWaiting;
  else
    return false;
  return true;
}

bool is_terminal(Status s) {
  return s == Status::kCompleted || s == Status::kCompensated || s == Status::kAborted;
}

bool is_active(Status s) { return s == Status::kRunning || s == Status::kCompensating; }

std::string format_ms(int64_t ms) {
  if (ms == kNoLimit) return "no limit";
  if (ms != 0 && ms % 60000 == 0) return std::to_string(ms / 60000) + " min";
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  return std::to_string(ms) + " ms";
}

State initial_state(const Definition& def, int64_t now) {
  State s;
  s.status = Status::kRunning;
  s.step = 0;
  s.phase = Phase::kReady;
  s.attempts = 0;
  s.next_run_at = now;
  s.deadline = add_ms(now, def.timeout_ms);
  return s;
}

Work next_work(const State& s, const Definition& def, int64_t now) {
  Work w;
  if (!is_active(s.status) || !valid_index(def, s.step)) return w;
  w.step = s.step;
  if (s.status == Status::kRunning && s.deadline != kNever && now >= s.deadline) {
    w.kind = Work::Kind::kSagaTimeout;
    return w;
  }
  if (now < s.next_run_at) return w;
  if (s.phase == Phase::kWaiting)
    w.kind = Work::Kind::kReplyTimeout;
  else if (s.status == Status::kRunning)
    w.kind = Work::Kind::kRunAction;
  else
    w.kind = Work::Kind::kRunCompensation;
  return w;
}

const Action& current_action(const State& s, const Definition& def) {
  const Step& st = step_at(def, s.step);
  return s.status == Status::kCompensating ? st.compensation : st.action;
}

std::string current_step_name(const State& s, const Definition& def) {
  if (s.status == Status::kCompleted || s.status == Status::kCompensated) return "";
  if (!valid_index(def, s.step)) return "";
  return def.steps[static_cast<size_t>(s.step)].name;
}

State begin_attempt(const State& s) {
  if (!is_active(s.status))
    throw Error(sqlstate::kInternal,
                std::string("saga state machine: attempt started in status ") + status_name(s.status));
  State n = s;
  n.attempts = s.attempts + 1;
  n.phase = Phase::kReady;
  return n;
}

Transition command_sent(const State& s, const Definition& def, int64_t now) {
  require_attempt_running(s, "command sent");
  const Step& st = step_at(def, s.step);
  const Action& a = current_action(s, def);
  if (!a.is_command())
    throw Error(sqlstate::kInternal, "saga state machine: step \"" + st.name + "\" sends no command");
  Transition t;
  t.state = s;
  t.state.phase = Phase::kWaiting;
  int64_t reply_by = add_ms(now, st.timeout_ms);
  if (s.status == Status::kRunning) reply_by = std::min(reply_by, s.deadline);
  t.state.next_run_at = reply_by;
  t.events.push_back(
      {"CommandSent",
       step_data(
           def, s.step, s.attempts,
           Value::object({{"phase", s.status == Status::kRunning ? "action" : "compensation"},
                          {"topic", a.topic},
                          {"command", a.command},
                          {"reply_timeout_ms", st.timeout_ms == kNoLimit ? Value() : Value(st.timeout_ms)}})),
       {}});
  return t;
}

Transition succeeded(const State& s, const Definition& def, int64_t now) {
  require_attempt_running(s, "success");
  Transition t;
  t.state = s;
  t.state.phase = Phase::kReady;
  if (s.status == Status::kRunning) {
    t.events.push_back({"StepSucceeded", step_data(def, s.step, s.attempts), {}});
    t.state.step = s.step + 1;
    t.state.attempts = 0;
    if (static_cast<size_t>(t.state.step) >= def.steps.size()) {
      t.state.status = Status::kCompleted;
      t.state.step = static_cast<int>(def.steps.size()) - 1;
      t.state.next_run_at = kNever;
      t.state.deadline = kNever;
      t.events.push_back(
          {"SagaCompleted", Value::object({{"steps", static_cast<int64_t>(def.steps.size())}}), {}});
    } else {
      t.state.next_run_at = now;
    }
    return t;
  }
  t.events.push_back({"CompensationSucceeded", step_data(def, s.step, s.attempts), {}});
  next_compensation(t, def, now);
  return t;
}

Transition failed(const State& s, const Definition& def, int64_t now, const std::string& error,
                  double unit_random) {
  require_attempt_running(s, "failure");
  const Step& st = step_at(def, s.step);
  Transition t;
  t.state = s;
  t.state.phase = Phase::kReady;
  t.set_error = true;
  t.error = error;
  bool compensating = s.status == Status::kCompensating;
  const char* type = compensating ? "CompensationFailed" : "StepFailed";
  bool again = s.attempts < st.retry.max_attempts;
  Value retry_in;  // null: no attempt follows
  if (again) {
    BackoffPolicy policy{st.retry.backoff_ms, st.retry.max_backoff_ms, 2.0, 0.2};
    int64_t delay = backoff_delay_ms(policy, s.attempts, unit_random);
    int64_t at = add_ms(now, delay);
    if (!compensating) at = std::min(at, s.deadline);
    t.state.next_run_at = at;
    retry_in = delay;
  }
  t.events.push_back(
      {type,
       step_data(def, s.step, s.attempts, Value::object({{"error", error}, {"retry_in_ms", retry_in}})),
       {}});
  if (again) return t;
  if (!compensating) {
    start_compensation(t, def, s.step, now, error);
    return t;
  }
  // A compensation that cannot finish: an operator has to look at it.
  t.state.status = Status::kFailed;
  t.state.next_run_at = kNever;
  t.events.push_back(
      {"SagaFailed", Value::object({{"step", st.name}, {"attempts", s.attempts}, {"error", error}}), {}});
  return t;
}

State deferred(const State& s, int64_t now, int64_t delay_ms) {
  require_attempt_running(s, "deferral");
  State n = s;
  n.attempts = s.attempts - 1;
  n.phase = Phase::kReady;
  n.next_run_at = add_ms(now, std::max<int64_t>(delay_ms, 0));
  if (s.status == Status::kRunning) n.next_run_at = std::min(n.next_run_at, s.deadline);
  return n;
}

Transition reply_timed_out(const State& s, const Definition& def, int64_t now, double unit_random) {
  const Step& st = step_at(def, s.step);
  if (s.phase != Phase::kWaiting)
    throw Error(sqlstate::kInternal, "saga state machine: reply timeout while not waiting");
  std::string what = s.status == Status::kCompensating ? "compensation of step" : "step";
  return failed(s, def, now,
                "no reply to " + what + " \"" + st.name + "\" (attempt " + std::to_string(s.attempts) +
                    ") within " + format_ms(st.timeout_ms),
                unit_random);
}

Transition saga_timed_out(const State& s, const Definition& def, int64_t now) {
  if (s.status != Status::kRunning)
    throw Error(sqlstate::kInternal, "saga state machine: saga timeout while not running");
  const Step& st = step_at(def, s.step);
  Transition t;
  t.state = s;
  t.set_error = true;
  t.error = "saga timed out after " + format_ms(def.timeout_ms) + " in step \"" + st.name + "\"";
  t.events.push_back({"SagaTimedOut",
                      step_data(def, s.step, s.attempts, Value::object({{"timeout_ms", def.timeout_ms}})),
                      {}});
  start_compensation(t, def, s.step, now, t.error);
  return t;
}

Transition abort(const State& s, const Definition& def, int64_t /*now*/, const std::string& reason) {
  if (is_terminal(s.status)) illegal(std::string("the saga is already ") + status_name(s.status));
  Transition t;
  t.state = s;
  t.state.status = Status::kAborted;
  t.state.phase = Phase::kReady;
  t.state.next_run_at = kNever;
  t.state.deadline = kNever;
  t.set_error = true;
  t.error = "aborted: " + reason;
  t.events.push_back(
      {"SagaAborted",
       Value::object(
           {{"reason", reason}, {"status", status_name(s.status)}, {"step", step_at(def, s.step).name}}),
       {}});
  return t;
}

Transition retry(const State& s, const Definition& def, int64_t now) {
  if (is_terminal(s.status))
    illegal(std::string("the saga is already ") + status_name(s.status) + "; there is nothing to retry");
  const Step& st = step_at(def, s.step);
  if (s.phase == Phase::kWaiting)
    illegal("step \"" + st.name + "\" is waiting for a reply (attempt " + std::to_string(s.attempts) +
            "); answer it with complete_step or fail_step, or abort the saga");
  Transition t;
  t.state = s;
  t.state.next_run_at = now;
  if (s.status == Status::kFailed) {
    t.state.status = Status::kCompensating;
    t.state.attempts = 0;
  }
  t.events.push_back(
      {"SagaRetried",
       Value::object({{"step", st.name}, {"status", status_name(s.status)}, {"attempts", s.attempts}}),
       {}});
  return t;
}

namespace {

bool action_completed(const State& s, int k) {
  switch (s.status) {
    case Status::kCompleted:
      return true;
    case Status::kRunning:
      return k < s.step;
    default:
      return s.failed_step >= 0 ? k < s.failed_step : k < s.step;
  }
}

bool compensation_completed(const State& s, const Definition& def, int k) {
  if (s.failed_step < 0 || k >= s.failed_step) return false;
  if (def.steps[static_cast<size_t>(k)].compensation.is_none()) return false;
  if (s.status == Status::kCompensated) return true;
  return k > s.step;  // compensating, failed, aborted while compensating
}

bool action_failed_not_awaited(const State& s, int k) {
  if (s.failed_step == k) return true;  // failed for good
  bool in_backoff = s.phase == Phase::kReady && s.attempts > 0 && k == s.step;
  return s.failed_step < 0 && in_backoff && (s.status == Status::kRunning || s.status == Status::kAborted);
}

bool compensation_failed_not_awaited(const State& s, int k) {
  if (s.failed_step < 0 || k != s.step || s.attempts == 0) return false;
  if (s.status == Status::kFailed) return true;
  return s.phase == Phase::kReady && (s.status == Status::kCompensating || s.status == Status::kAborted);
}

}  // namespace

ReplyVerdict classify_reply(const State& s, const Definition& def, const std::string& step_name,
                            ReplyKind kind) {
  ReplyVerdict v;
  int k = def.find_step(step_name);
  if (k < 0) {
    v.reason = "the saga has no step \"" + step_name + "\"";
    return v;
  }
  const Step& st = def.steps[static_cast<size_t>(k)];
  bool awaited = is_active(s.status) && s.step == k && s.phase == Phase::kWaiting;
  if (awaited) {
    v.kind = ReplyVerdict::Kind::kApply;
    return v;
  }
  if (kind == ReplyKind::kComplete) {
    if ((st.action.is_command() && action_completed(s, k)) ||
        (st.compensation.is_command() && compensation_completed(s, def, k))) {
      v.kind = ReplyVerdict::Kind::kRepeat;
      return v;
    }
  } else {
    if ((st.action.is_command() && action_failed_not_awaited(s, k)) ||
        (st.compensation.is_command() && compensation_failed_not_awaited(s, k))) {
      v.kind = ReplyVerdict::Kind::kRepeat;
      return v;
    }
  }
  // Why not: the most specific reason first.
  if (!st.action.is_command() && !st.compensation.is_command()) {
    v.reason = "step \"" + step_name + "\" runs a function and takes no replies";
  } else if (is_terminal(s.status) || s.status == Status::kFailed) {
    v.reason = "step \"" + step_name + "\" is not awaiting a reply: the saga is " + status_name(s.status);
  } else if (s.step == k && s.phase == Phase::kReady && s.attempts > 0) {
    v.reason = "step \"" + step_name + "\" is not awaiting a reply: attempt " + std::to_string(s.attempts) +
               " already failed and the step waits to be retried";
  } else if (s.step == k) {
    v.reason = "step \"" + step_name + "\" is not awaiting a reply: its command has not been sent yet";
  } else if (s.status == Status::kRunning && k > s.step) {
    v.reason = "step \"" + step_name + "\" has not started; the current step is \"" +
               def.steps[static_cast<size_t>(s.step)].name + "\"";
  } else {
    v.reason = "step \"" + step_name + "\" is not awaiting a reply; the current step is \"" +
               def.steps[static_cast<size_t>(s.step)].name + "\" (" + status_name(s.status) + ")";
  }
  return v;
}

}  // namespace pgc::saga
