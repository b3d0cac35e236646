#include "saga/diagram.hpp"

#include <algorithm>

namespace pgc::saga::diagram {

namespace {

// Characters that pass into a label unchanged: letters, digits and punctuation without a
// meaning in Mermaid's state diagram grammar or in HTML. Bytes >= 0x80 pass too.
bool plain(unsigned char c) {
  if (c >= 0x80) return true;
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case ' ':
    case '_':
    case '.':
    case ',':
    case '(':
    case ')':
    case '/':
    case '\'':
    case '+':
    case '=':
    case '*':
    case '@':
    case '!':
    case '?':
    case '$':
    case '^':
    case '~':
    case '|':
    case '[':
    case ']':
      return true;
    default:
      return false;
  }
}

std::string step_id(int k) { return "step" + std::to_string(k); }
std::string undo_id(int k) { return "undo" + std::to_string(k); }

const Step& step_at(const Definition& def, int k) { return def.steps[static_cast<size_t>(k)]; }
int step_count(const Definition& def) { return static_cast<int>(def.steps.size()); }

// The highest step below `from` that has a compensation, or -1 (as the state machine
// walks back).
int previous_compensable(const Definition& def, int from) {
  for (int i = std::min(from, step_count(def)) - 1; i >= 0; i--)
    if (!step_at(def, i).compensation.is_none()) return i;
  return -1;
}

bool any_compensation(const Definition& def) { return previous_compensable(def, step_count(def)) >= 0; }

std::string action_text(const Action& a) {
  if (a.is_function()) return "function " + a.function;
  if (a.is_command()) return "command " + a.command + " on topic " + a.topic;
  return "nothing";
}

std::string attempts_text(int n) { return std::to_string(n) + (n == 1 ? " attempt" : " attempts"); }

// What happened to one action or compensation of the saga.
enum class Mark { kNotReached, kNext, kWaiting, kRetrying, kSucceeded, kFailed };
struct Run {
  Mark mark = Mark::kNotReached;
  int attempts = 0;  // the last attempt seen
  bool timed_out = false;
};

// The path one saga took, and where it is.
struct Path {
  std::vector<Run> action, undo;
  std::string terminal;      // "", completed, compensated, failed, aborted
  std::string current;       // the state the saga is in (running, compensating), or ""
  std::string aborted_from;  // aborted: the state it was aborted in
};

void fold_history(const Definition& def, const std::vector<HistoryEvent>& history, Path& p) {
  for (const HistoryEvent& e : history) {
    int k = e.step.empty() ? -1 : def.find_step(e.step);
    if (e.type == "SagaAborted") {
      if (k >= 0) p.aborted_from = (e.status == "running") ? step_id(k) : undo_id(k);
      continue;
    }
    if (k < 0) continue;
    Run& act = p.action[static_cast<size_t>(k)];
    Run& und = p.undo[static_cast<size_t>(k)];
    if (e.type == "StepSucceeded") {
      act.mark = Mark::kSucceeded;
      act.attempts = e.attempt;
    } else if (e.type == "StepFailed") {
      act.mark = e.retry_follows ? Mark::kRetrying : Mark::kFailed;
      act.attempts = e.attempt;
    } else if (e.type == "SagaTimedOut") {
      act.mark = Mark::kFailed;
      act.timed_out = true;
    } else if (e.type == "CommandSent") {
      Run& r = e.phase == "compensation" ? und : act;
      r.mark = Mark::kWaiting;
      r.attempts = e.attempt;
    } else if (e.type == "CompensationSucceeded") {
      und.mark = Mark::kSucceeded;
      und.attempts = e.attempt;
    } else if (e.type == "CompensationFailed") {
      und.mark = e.retry_follows ? Mark::kRetrying : Mark::kFailed;
      und.attempts = e.attempt;
    }
  }
}

void mark_if_unknown(Run& r, Mark m) {
  if (r.mark == Mark::kNotReached) r.mark = m;
}

// The row is authoritative for where the saga is; the history adds attempts and
// timeouts. Outcomes the row implies but the history lacks are filled in.
Path path_of(const Definition& def, const Instance& saga) {
  Path p;
  p.action.resize(def.steps.size());
  p.undo.resize(def.steps.size());
  fold_history(def, saga.history, p);
  const State& s = saga.state;
  int n = step_count(def);
  bool valid_step = s.step >= 0 && s.step < n;
  bool valid_failed = s.failed_step >= 0 && s.failed_step < n;
  if (s.status == Status::kCompleted) {
    for (Run& r : p.action) mark_if_unknown(r, Mark::kSucceeded);
    p.terminal = "completed";
    return p;
  }
  if (valid_failed) {
    for (int k = 0; k < s.failed_step; k++)
      mark_if_unknown(p.action[static_cast<size_t>(k)], Mark::kSucceeded);
    Run& failed = p.action[static_cast<size_t>(s.failed_step)];
    if (failed.mark != Mark::kFailed) failed.mark = Mark::kFailed;
    // Compensations already done: all of them once compensated, else those above the
    // one being compensated.
    for (int k = 0; k < s.failed_step; k++) {
      if (step_at(def, k).compensation.is_none()) continue;
      if (s.status == Status::kCompensated || k > s.step)
        mark_if_unknown(p.undo[static_cast<size_t>(k)], Mark::kSucceeded);
    }
  } else if (valid_step) {
    for (int k = 0; k < s.step; k++) mark_if_unknown(p.action[static_cast<size_t>(k)], Mark::kSucceeded);
  }
  if (s.status == Status::kCompensated) {
    p.terminal = "compensated";
    return p;
  }
  if (!valid_step) return p;
  bool compensating = valid_failed && s.status != Status::kRunning;
  Run& here = compensating ? p.undo[static_cast<size_t>(s.step)] : p.action[static_cast<size_t>(s.step)];
  std::string here_id = compensating ? undo_id(s.step) : step_id(s.step);
  if (s.status == Status::kAborted) {
    p.terminal = "aborted";
    if (p.aborted_from.empty()) p.aborted_from = here_id;
    return p;
  }
  if (s.status == Status::kFailed) {
    here.mark = Mark::kFailed;
    here.attempts = std::max(here.attempts, s.attempts);
    p.terminal = "failed";
    return p;
  }
  // Running or compensating: the current state.
  p.current = here_id;
  if (s.phase == Phase::kWaiting)
    here.mark = Mark::kWaiting;
  else if (s.attempts > 0)
    here.mark = Mark::kRetrying;
  else
    here.mark = Mark::kNext;
  if (s.attempts > 0) here.attempts = s.attempts;
  return p;
}

// The diagram's lines.
class Writer {
 public:
  void line(const std::string& s) { out_ += "    " + s + "\n"; }
  void raw(const std::string& s) { out_ += s + "\n"; }
  void state(const std::string& id, const std::string& label) {
    line("state \"" + escape_text(label) + "\" as " + id);
  }
  void describe(const std::string& id, const std::string& text) { line(id + " : " + escape_text(text)); }
  void edge(const std::string& from, const std::string& to, const std::string& label = "") {
    line(from + " --> " + to + (label.empty() ? "" : " : " + escape_text(label)));
  }
  std::string text() const { return out_; }

 private:
  std::string out_;
};

// States and transitions common to both diagrams.
void write_graph(Writer& w, const Definition& def) {
  int n = step_count(def);
  for (int k = 0; k < n; k++) {
    const Step& st = step_at(def, k);
    w.state(step_id(k), st.name);
    w.describe(step_id(k), action_text(st.action));
    std::string policy = "up to " + attempts_text(st.retry.max_attempts);
    if (st.timeout_ms != kNoLimit) policy += ", timeout " + format_ms(st.timeout_ms);
    w.describe(step_id(k), policy);
    if (!st.compensation.is_none()) {
      w.state(undo_id(k), "undo " + st.name);
      w.describe(undo_id(k), action_text(st.compensation));
    }
  }
  w.state("saga_completed", "completed");
  w.state("saga_compensated", "compensated");
  if (any_compensation(def)) {
    w.state("saga_failed", "failed");
    w.describe("saga_failed", "a compensation exhausted its attempts, retry_saga or abort_saga");
  }
  w.state("saga_aborted", "aborted");
  w.describe("saga_aborted", "abort_saga, from any state that has not ended");
  if (def.timeout_ms != kNoLimit) w.describe(step_id(0), "saga timeout " + format_ms(def.timeout_ms));

  w.edge("[*]", step_id(0));
  for (int k = 0; k < n; k++) w.edge(step_id(k), k + 1 < n ? step_id(k + 1) : "saga_completed", "succeeded");
  for (int k = 0; k < n; k++) {
    int j = previous_compensable(def, k);
    w.edge(step_id(k), j >= 0 ? undo_id(j) : "saga_compensated", "failed");
  }
  for (int k = 0; k < n; k++) {
    if (step_at(def, k).compensation.is_none()) continue;
    int j = previous_compensable(def, k);
    w.edge(undo_id(k), j >= 0 ? undo_id(j) : "saga_compensated", "undone");
    w.edge(undo_id(k), "saga_failed", "undo failed");
  }
  w.edge("saga_completed", "[*]");
  w.edge("saga_compensated", "[*]");
  w.edge("saga_aborted", "[*]");
}

void header(Writer& w, const std::string& saga_name, int version) {
  w.raw("stateDiagram-v2");
  w.line("%% saga " + escape_text(saga_name) + ", definition version " + std::to_string(version));
}

std::string run_text(const Run& r, bool undo) {
  switch (r.mark) {
    case Mark::kSucceeded:
      return std::string(undo ? "undone" : "succeeded") +
             (r.attempts > 1 ? " at attempt " + std::to_string(r.attempts) : "");
    case Mark::kFailed:
      if (r.timed_out) return "failed, the saga timed out";
      return "failed" + (r.attempts > 0 ? " after " + attempts_text(r.attempts) : std::string());
    case Mark::kRetrying:
      return "attempt " + std::to_string(r.attempts) + " failed, retry due";
    case Mark::kWaiting:
      return "waiting for the reply to attempt " + std::to_string(r.attempts);
    case Mark::kNext:
      return "due to run";
    case Mark::kNotReached:
      break;
  }
  return "";
}

// The classes that colour a saga's path, in the order their lines are written.
enum Class { kSucceeded, kCompensated, kFailedClass, kCurrent, kPending, kClassCount };
constexpr const char* kClassNames[kClassCount] = {"succeeded", "compensated", "failed", "current", "pending"};
constexpr const char* kClassStyles[kClassCount] = {
    "fill:#d3f9d8,stroke:#2b8a3e,color:#1b4320", "fill:#fff3bf,stroke:#e67700,color:#5c3c00",
    "fill:#ffe3e3,stroke:#c92a2a,color:#5c0f0f", "fill:#d0ebff,stroke:#1864ab,stroke-width:3px,color:#0b2e4f",
    "fill:#f1f3f5,stroke:#adb5bd,color:#868e96"};

Class run_class(const Run& r, bool undo) {
  switch (r.mark) {
    case Mark::kSucceeded:
      return undo ? kCompensated : kSucceeded;
    case Mark::kFailed:
      return kFailedClass;
    case Mark::kRetrying:
    case Mark::kWaiting:
    case Mark::kNext:
      return kCurrent;
    case Mark::kNotReached:
      break;
  }
  return kPending;
}

}  // namespace

std::string escape_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (plain(c)) {
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c == 0x7f) {
      out.push_back(' ');
    } else {
      // Mermaid decodes #<decimal>; in labels and descriptions (its entity codes).
      out += "#" + std::to_string(static_cast<int>(c)) + ";";
    }
  }
  return out;
}

std::string definition_diagram(const std::string& saga_name, int version, const Definition& def) {
  Writer w;
  header(w, saga_name, version);
  write_graph(w, def);
  return w.text();
}

std::string saga_diagram(const std::string& saga_name, int version, const Definition& def,
                         const Instance& saga) {
  Path p = path_of(def, saga);
  Writer w;
  header(w, saga_name, version);
  w.line("%% saga " + saga.id + ", " + status_name(saga.state.status));
  write_graph(w, def);
  if (!p.aborted_from.empty()) w.edge(p.aborted_from, "saga_aborted", "abort_saga");

  // What happened in each state, then the classes that colour the path.
  std::vector<std::string> members[kClassCount];
  int n = step_count(def);
  for (int k = 0; k < n; k++) {
    const Run& act = p.action[static_cast<size_t>(k)];
    std::string what = run_text(act, false);
    if (!what.empty()) w.describe(step_id(k), what);
    if (p.aborted_from == step_id(k)) w.describe(step_id(k), "aborted here");
    members[run_class(act, false)].push_back(step_id(k));
    if (step_at(def, k).compensation.is_none()) continue;
    const Run& und = p.undo[static_cast<size_t>(k)];
    what = run_text(und, true);
    if (!what.empty()) w.describe(undo_id(k), what);
    if (p.aborted_from == undo_id(k)) w.describe(undo_id(k), "aborted here");
    members[run_class(und, true)].push_back(undo_id(k));
  }
  struct Terminal {
    const char* status;
    Class reached;
  };
  for (Terminal t : {Terminal{"completed", kSucceeded}, Terminal{"compensated", kCompensated},
                     Terminal{"failed", kFailedClass}, Terminal{"aborted", kFailedClass}}) {
    if (std::string(t.status) == "failed" && !any_compensation(def)) continue;
    members[p.terminal == t.status ? t.reached : kPending].push_back(std::string("saga_") + t.status);
  }
  for (int c = 0; c < kClassCount; c++)
    w.line(std::string("classDef ") + kClassNames[c] + " " + kClassStyles[c]);
  for (int c = 0; c < kClassCount; c++) {
    if (members[c].empty()) continue;
    std::string ids;
    for (const std::string& id : members[c]) ids += (ids.empty() ? "" : ",") + id;
    w.line("class " + ids + " " + kClassNames[c]);
  }
  return w.text();
}

}  // namespace pgc::saga::diagram
