#include "saga/diagram.hpp"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

using pgc::saga::Action;
using pgc::saga::Definition;
using pgc::saga::Phase;
using pgc::saga::State;
using pgc::saga::Status;
using pgc::saga::Step;
namespace diagram = pgc::saga::diagram;

namespace {

Action function(const std::string& name) {
  Action a;
  a.kind = Action::Kind::kFunction;
  a.function = name;
  return a;
}

Action command(const std::string& topic, const std::string& cmd) {
  Action a;
  a.kind = Action::Kind::kCommand;
  a.topic = topic;
  a.command = cmd;
  return a;
}

// reserve (undo: release) -> pay (command, undo: refund) -> ship (no undo)
Definition order() {
  Definition d;
  Step reserve;
  reserve.name = "reserve";
  reserve.action = function("shop.reserve");
  reserve.compensation = function("shop.release");
  Step pay;
  pay.name = "pay";
  pay.action = command("payments.commands", "Charge");
  pay.compensation = command("payments.commands", "Refund");
  pay.timeout_ms = 30000;
  Step ship;
  ship.name = "ship";
  ship.action = function("shop.ship");
  d.steps = {reserve, pay, ship};
  return d;
}

diagram::HistoryEvent ev(const std::string& type, const std::string& step, int attempt = 1,
                         bool retry_follows = false) {
  diagram::HistoryEvent e;
  e.type = type;
  e.step = step;
  e.attempt = attempt;
  e.retry_follows = retry_follows;
  return e;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

bool has_line(const std::string& text, const std::string& line) {
  for (const std::string& l : lines_of(text))
    if (l == "    " + line) return true;
  return false;
}

// The ids in `class a,b,c name` for class `name`.
std::string class_members(const std::string& text, const std::string& name) {
  const std::string head = "    class ", tail = " " + name;
  for (const std::string& l : lines_of(text)) {
    if (l.size() > head.size() + tail.size() && l.compare(0, head.size(), head) == 0 &&
        l.compare(l.size() - tail.size(), tail.size(), tail) == 0)
      return l.substr(head.size(), l.size() - head.size() - tail.size());
  }
  return "";
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

bool digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// A generated state id, or [*].
bool is_state(const std::string& s) {
  if (s == "[*]" || s == "saga_completed" || s == "saga_compensated" || s == "saga_failed" ||
      s == "saga_aborted")
    return true;
  return (starts_with(s, "step") && digits(s.substr(4))) || (starts_with(s, "undo") && digits(s.substr(4)));
}

// Escaped text: no character with a meaning in the grammar, '#' only in an entity code.
bool is_safe(const std::string& s) {
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    if (c == '#') {
      size_t end = s.find(';', i);
      if (end == std::string::npos || !digits(s.substr(i + 1, end - i - 1))) return false;
      i = end;
    } else if (std::string("\":;{}<>&%-\n").find(c) != std::string::npos) {
      return false;
    }
  }
  return true;
}

// Every line is one of the statement shapes the diagrams use, with generated ids only:
// what a name contains can never form another statement.
void expect_well_formed(const std::string& text) {
  std::vector<std::string> lines = lines_of(text);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0], "stateDiagram-v2");
  for (size_t i = 1; i < lines.size(); i++) {
    const std::string& l = lines[i];
    bool ok = false;
    if (starts_with(l, "    %% saga ")) {
      std::string rest = l.substr(12);
      size_t comma = rest.rfind(", ");
      ok = comma != std::string::npos &&
           (is_safe(rest.substr(0, comma)) ||
            rest.substr(0, comma).find_first_not_of("0123456789abcdef-") == std::string::npos);
    } else if (starts_with(l, "    state \"")) {
      size_t close = l.find('"', 11);
      ok = close != std::string::npos && is_safe(l.substr(11, close - 11)) &&
           starts_with(l.substr(close), "\" as ") && is_state(l.substr(close + 5));
    } else if (starts_with(l, "    classDef ") || starts_with(l, "    class ")) {
      ok = l.find_first_of("\";{}<>&%") == std::string::npos;
    } else if (l.find(" --> ") != std::string::npos) {
      size_t arrow = l.find(" --> ");
      std::string to = l.substr(arrow + 5), label;
      if (size_t colon = to.find(" : "); colon != std::string::npos) {
        label = to.substr(colon + 3);
        to = to.substr(0, colon);
        ok = label.find_first_not_of("abcdefghijklmnopqrstuvwxyz_ ") == std::string::npos;
      } else {
        ok = true;
      }
      ok = ok && starts_with(l, "    ") && is_state(l.substr(4, arrow - 4)) && is_state(to);
    } else if (size_t colon = l.find(" : "); colon != std::string::npos && starts_with(l, "    ")) {
      ok = is_state(l.substr(4, colon - 4)) && is_safe(l.substr(colon + 3));
    }
    EXPECT_TRUE(ok) << "line " << i << ": " << l;
  }
}

TEST(SagaDiagram, EscapesEverythingWithAMeaning) {
  EXPECT_EQ(diagram::escape_text("reserve inventory"), "reserve inventory");
  EXPECT_EQ(diagram::escape_text("a\"b"), "a#34;b");
  EXPECT_EQ(diagram::escape_text("x --> y"), "x #45;#45;#62; y");
  EXPECT_EQ(diagram::escape_text("a:b;c#d%e"), "a#58;b#59;c#35;d#37;e");
  EXPECT_EQ(diagram::escape_text("<script>&"), "#60;script#62;#38;");
  EXPECT_EQ(diagram::escape_text("{x}"), "#123;x#125;");
  EXPECT_EQ(diagram::escape_text("tab\there\nnl"), "tab here nl");
  // UTF-8 (or any encoding's bytes above 0x7f) pass unchanged.
  EXPECT_EQ(diagram::escape_text("r\xc3\xa9server \xe2\x9c\x93"), "r\xc3\xa9server \xe2\x9c\x93");
}

TEST(SagaDiagram, DefinitionHasStepsCompensationsAndTerminalStates) {
  std::string text = diagram::definition_diagram("order", 3, order());
  expect_well_formed(text);
  EXPECT_TRUE(has_line(text, "%% saga order, definition version 3"));
  EXPECT_TRUE(has_line(text, "state \"reserve\" as step0"));
  EXPECT_TRUE(has_line(text, "state \"undo reserve\" as undo0"));
  EXPECT_TRUE(has_line(text, "state \"undo pay\" as undo1"));
  EXPECT_EQ(text.find("as undo2"), std::string::npos) << "ship has no compensation";
  EXPECT_TRUE(has_line(text, "step1 : command Charge on topic payments.commands"));
  EXPECT_TRUE(has_line(text, "step1 : up to 3 attempts, timeout 30 s"));
  EXPECT_TRUE(has_line(text, "[*] --> step0"));
  EXPECT_TRUE(has_line(text, "step0 --> step1 : succeeded"));
  EXPECT_TRUE(has_line(text, "step2 --> saga_completed : succeeded"));
  // A failure compensates the completed steps in reverse order.
  EXPECT_TRUE(has_line(text, "step0 --> saga_compensated : failed"));
  EXPECT_TRUE(has_line(text, "step1 --> undo0 : failed"));
  EXPECT_TRUE(has_line(text, "step2 --> undo1 : failed"));
  EXPECT_TRUE(has_line(text, "undo1 --> undo0 : undone"));
  EXPECT_TRUE(has_line(text, "undo0 --> saga_compensated : undone"));
  EXPECT_TRUE(has_line(text, "undo1 --> saga_failed : undo failed"));
  EXPECT_TRUE(has_line(text, "saga_completed --> [*]"));
  EXPECT_EQ(text.find("class "), std::string::npos) << "a definition marks no path";
}

TEST(SagaDiagram, NoCompensationsMeansNoFailedState) {
  Definition d;
  Step a;
  a.name = "a";
  a.action = function("f.a");
  d.steps = {a};
  std::string text = diagram::definition_diagram("one", 1, d);
  expect_well_formed(text);
  EXPECT_EQ(text.find("saga_failed"), std::string::npos);
  EXPECT_TRUE(has_line(text, "step0 --> saga_compensated : failed"));
}

TEST(SagaDiagram, CompletedSagaMarksEveryStepSucceeded) {
  diagram::Instance s;
  s.id = "6f1c0d7e-0000-4000-8000-000000000001";
  s.state.status = Status::kCompleted;
  s.state.step = 2;
  s.history = {ev("SagaStarted", ""),       ev("StepSucceeded", "reserve"), ev("StepFailed", "pay", 1, true),
               ev("CommandSent", "pay", 2), ev("StepSucceeded", "pay", 2),  ev("StepSucceeded", "ship"),
               ev("SagaCompleted", "")};
  s.history[3].phase = "action";
  std::string text = diagram::saga_diagram("order", 1, order(), s);
  expect_well_formed(text);
  EXPECT_TRUE(has_line(text, "%% saga 6f1c0d7e-0000-4000-8000-000000000001, completed"));
  EXPECT_EQ(class_members(text, "succeeded"), "step0,step1,step2,saga_completed");
  EXPECT_EQ(class_members(text, "pending"), "undo0,undo1,saga_compensated,saga_failed,saga_aborted");
  EXPECT_EQ(class_members(text, "current"), "");
  EXPECT_TRUE(has_line(text, "step1 : succeeded at attempt 2"));
  EXPECT_TRUE(has_line(text, "step0 : succeeded"));
}

TEST(SagaDiagram, CompensatedSagaMarksFailureAndUndoneSteps) {
  diagram::Instance s;
  s.state.status = Status::kCompensated;
  s.state.step = 2;
  s.state.failed_step = 2;
  s.history = {ev("StepSucceeded", "reserve"),     ev("StepSucceeded", "pay"),
               ev("StepFailed", "ship", 1, true),  ev("StepFailed", "ship", 2, true),
               ev("StepFailed", "ship", 3, false), ev("CompensationStarted", ""),
               ev("CompensationSucceeded", "pay"), ev("CompensationSucceeded", "reserve"),
               ev("SagaCompensated", "")};
  std::string text = diagram::saga_diagram("order", 1, order(), s);
  expect_well_formed(text);
  EXPECT_EQ(class_members(text, "succeeded"), "step0,step1");
  EXPECT_EQ(class_members(text, "failed"), "step2");
  EXPECT_EQ(class_members(text, "compensated"), "undo0,undo1,saga_compensated");
  EXPECT_TRUE(has_line(text, "step2 : failed after 3 attempts"));
  EXPECT_TRUE(has_line(text, "undo1 : undone"));
}

TEST(SagaDiagram, FailedSagaMarksTheCompensationThatGaveUp) {
  diagram::Instance s;
  s.state.status = Status::kFailed;
  s.state.step = 0;
  s.state.failed_step = 1;
  s.state.attempts = 2;
  s.history = {ev("StepSucceeded", "reserve"), ev("StepFailed", "pay", 1, false),
               ev("CompensationFailed", "reserve", 1, true), ev("CompensationFailed", "reserve", 2, false),
               ev("SagaFailed", "reserve")};
  std::string text = diagram::saga_diagram("order", 1, order(), s);
  expect_well_formed(text);
  EXPECT_EQ(class_members(text, "failed"), "undo0,step1,saga_failed");
  EXPECT_EQ(class_members(text, "succeeded"), "step0");
  EXPECT_TRUE(has_line(text, "undo0 : failed after 2 attempts"));
  EXPECT_EQ(class_members(text, "current"), "");
}

TEST(SagaDiagram, RunningSagaMarksTheCurrentStep) {
  diagram::Instance s;
  s.state.status = Status::kRunning;
  s.state.step = 1;
  s.state.phase = Phase::kWaiting;
  s.state.attempts = 1;
  s.history = {ev("StepSucceeded", "reserve"), ev("CommandSent", "pay")};
  s.history[1].phase = "action";
  std::string text = diagram::saga_diagram("order", 1, order(), s);
  expect_well_formed(text);
  EXPECT_EQ(class_members(text, "current"), "step1");
  EXPECT_TRUE(has_line(text, "step1 : waiting for the reply to attempt 1"));
  EXPECT_EQ(class_members(text, "pending"),
            "undo0,undo1,step2,saga_completed,saga_compensated,saga_failed,saga_aborted");

  // Compensating: the compensation being run is current.
  s.state.status = Status::kCompensating;
  s.state.failed_step = 2;
  s.state.step = 1;
  s.state.phase = Phase::kReady;
  s.state.attempts = 1;
  s.history = {ev("StepSucceeded", "reserve"), ev("StepSucceeded", "pay"), ev("StepFailed", "ship"),
               ev("CompensationFailed", "pay", 1, true)};
  text = diagram::saga_diagram("order", 1, order(), s);
  EXPECT_EQ(class_members(text, "current"), "undo1");
  EXPECT_TRUE(has_line(text, "undo1 : attempt 1 failed, retry due"));
}

TEST(SagaDiagram, AbortedSagaShowsWhereItWasAborted) {
  diagram::Instance s;
  s.state.status = Status::kAborted;
  s.state.step = 1;
  s.history = {ev("StepSucceeded", "reserve"), ev("CommandSent", "pay"), ev("SagaAborted", "pay")};
  s.history[1].phase = "action";
  s.history[2].status = "running";
  std::string text = diagram::saga_diagram("order", 1, order(), s);
  expect_well_formed(text);
  EXPECT_TRUE(has_line(text, "step1 --> saga_aborted : abort_saga"));
  EXPECT_TRUE(has_line(text, "step1 : aborted here"));
  EXPECT_NE(class_members(text, "failed").find("saga_aborted"), std::string::npos);
}

TEST(SagaDiagram, TheRowFillsInWhatTheHistoryLacks) {
  // No audit events at all (an integrity problem): the row still gives the path.
  diagram::Instance s;
  s.state.status = Status::kCompensating;
  s.state.step = 0;
  s.state.failed_step = 2;
  std::string text = diagram::saga_diagram("order", 1, order(), s);
  expect_well_formed(text);
  EXPECT_EQ(class_members(text, "succeeded"), "step0,step1");
  EXPECT_EQ(class_members(text, "failed"), "step2");
  EXPECT_EQ(class_members(text, "compensated"), "undo1");
  EXPECT_EQ(class_members(text, "current"), "undo0");
}

TEST(SagaDiagram, SagaTimeoutIsShown) {
  diagram::Instance s;
  s.state.status = Status::kCompensated;
  s.state.step = 1;
  s.state.failed_step = 1;
  s.history = {ev("StepSucceeded", "reserve"), ev("CommandSent", "pay"), ev("SagaTimedOut", "pay"),
               ev("CompensationSucceeded", "reserve")};
  std::string text = diagram::saga_diagram("order", 1, order(), s);
  EXPECT_TRUE(has_line(text, "step1 : failed, the saga timed out"));
}

TEST(SagaDiagram, HostileNamesStayInsideTheirLabels) {
  Definition d;
  std::vector<std::string> names = {"end",
                                    "state",
                                    "[*]",
                                    "a --> b",
                                    "x : y",
                                    "\"quoted\"",
                                    "classDef red fill:#f00;",
                                    "%%{init: {}}%%",
                                    "note left of step0",
                                    "}",
                                    "<img src=x onerror=alert(1)>",
                                    "r\xc3\xa9server l\xe2\x80\x99inventaire \xf0\x9f\x93\xa6",
                                    "direction LR",
                                    "-- --- ----"};
  for (const std::string& n : names) {
    Step s;
    s.name = n;
    s.action = function("\"my schema\".\"fn;--\"");
    s.compensation = command("t", n);
    d.steps.push_back(s);
  }
  std::string text = diagram::definition_diagram("saga \"x\" --> y", 1, d);
  expect_well_formed(text);
  EXPECT_TRUE(has_line(text, "state \"a #45;#45;#62; b\" as step3"));
  EXPECT_TRUE(has_line(text, "state \"r\xc3\xa9server l\xe2\x80\x99inventaire \xf0\x9f\x93\xa6\" as step11"));
  diagram::Instance s;
  s.state.status = Status::kRunning;
  s.state.step = 4;
  s.history = {ev("StepSucceeded", "end"), ev("StepSucceeded", "state"), ev("StepSucceeded", "[*]"),
               ev("StepSucceeded", "a --> b"), ev("StepFailed", "x : y", 1, true)};
  text = diagram::saga_diagram("saga", 1, d, s);
  expect_well_formed(text);
  EXPECT_EQ(class_members(text, "succeeded"), "step0,step1,step2,step3");
  EXPECT_EQ(class_members(text, "current"), "step4");
}

}  // namespace
