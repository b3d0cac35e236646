#include "saga/machine.hpp"

#include <gtest/gtest.h>

#include <functional>

#include <string>
#include <vector>

#include "common/error.hpp"

using namespace pgc::saga;

namespace {

constexpr int64_t kSec = 1000000;  // microseconds

Action fn(const std::string& name) {
  Action a;
  a.kind = Action::Kind::kFunction;
  a.function = name;
  return a;
}

Action cmd(const std::string& topic, const std::string& command) {
  Action a;
  a.kind = Action::Kind::kCommand;
  a.topic = topic;
  a.command = command;
  return a;
}

Step step(const std::string& name, Action action, Action compensation, int attempts = 3,
          int64_t timeout_ms = kNoLimit) {
  Step s;
  s.name = name;
  s.action = std::move(action);
  s.compensation = std::move(compensation);
  s.retry.max_attempts = attempts;
  s.retry.backoff_ms = 100;
  s.retry.max_backoff_ms = 1000;
  s.timeout_ms = timeout_ms;
  return s;
}

// The reference order flow: reserve -> pay -> ship -> complete; release / refund / cancel.
Definition order_flow(int64_t saga_timeout_ms = kNoLimit) {
  Definition d;
  d.steps.push_back(step("reserve_inventory", fn("inv.reserve"), fn("inv.release")));
  d.steps.push_back(step("process_payment", fn("pay.charge"), fn("pay.refund")));
  d.steps.push_back(step("create_shipment", cmd("shipping", "CreateShipment"),
                         cmd("shipping", "CancelShipment"), 2, 30000));
  d.steps.push_back(step("complete_order", fn("orders.complete"), Action{}));
  d.timeout_ms = saga_timeout_ms;
  return d;
}

std::vector<std::string> types(const Transition& t) {
  std::vector<std::string> out;
  for (const auto& e : t.events) out.push_back(e.type);
  return out;
}

// Runs the current function action/compensation successfully.
Transition ok(const State& s, const Definition& d, int64_t now) {
  return succeeded(begin_attempt(s), d, now);
}

Transition fail(const State& s, const Definition& d, int64_t now, const std::string& err = "boom") {
  return failed(begin_attempt(s), d, now, err, 0.5);
}

std::string code_of(const std::function<void()>& f) {
  try {
    f();
    return "none";
  } catch (const pgc::Error& e) {
    return e.code();
  }
}

}  // namespace

TEST(SagaMachine, StatusNamesRoundTrip) {
  for (Status s : {Status::kRunning, Status::kCompensating, Status::kCompleted, Status::kCompensated,
                   Status::kFailed, Status::kAborted}) {
    Status back;
    ASSERT_TRUE(parse_status(status_name(s), &back));
    EXPECT_EQ(back, s);
  }
  Status x;
  EXPECT_FALSE(parse_status("done", &x));
  EXPECT_TRUE(is_terminal(Status::kCompleted));
  EXPECT_TRUE(is_terminal(Status::kCompensated));
  EXPECT_TRUE(is_terminal(Status::kAborted));
  EXPECT_FALSE(is_terminal(Status::kFailed));  // waits for an operator
  EXPECT_FALSE(is_active(Status::kFailed));
  Phase p;
  EXPECT_TRUE(parse_phase("waiting", &p));
  EXPECT_EQ(p, Phase::kWaiting);
  EXPECT_FALSE(parse_phase("sleeping", &p));
}

TEST(SagaMachine, OrderFlowSucceeds) {
  Definition d = order_flow(300000);
  int64_t now = 1000 * kSec;
  State s = initial_state(d, now);
  EXPECT_EQ(s.status, Status::kRunning);
  EXPECT_EQ(s.deadline, now + 300 * kSec);
  Work w = next_work(s, d, now);
  EXPECT_EQ(w.kind, Work::Kind::kRunAction);
  EXPECT_EQ(w.step, 0);

  Transition t = ok(s, d, now);
  EXPECT_EQ(types(t), std::vector<std::string>{"StepSucceeded"});
  EXPECT_EQ(t.events[0].data.at("step").get<std::string>(), "reserve_inventory");
  EXPECT_EQ(t.events[0].data.at("attempt").get<int64_t>(), 1);
  EXPECT_EQ(t.state.step, 1);
  EXPECT_EQ(t.state.attempts, 0);
  EXPECT_EQ(t.state.next_run_at, now);
  t = ok(t.state, d, now);
  EXPECT_EQ(t.state.step, 2);

  // The shipment is a command: sent, then waiting for a reply until the step timeout.
  ASSERT_TRUE(current_action(t.state, d).is_command());
  t = command_sent(begin_attempt(t.state), d, now);
  EXPECT_EQ(types(t), std::vector<std::string>{"CommandSent"});
  EXPECT_EQ(t.events[0].data.at("phase").get<std::string>(), "action");
  EXPECT_EQ(t.events[0].data.at("command").get<std::string>(), "CreateShipment");
  EXPECT_EQ(t.state.phase, Phase::kWaiting);
  EXPECT_EQ(t.state.attempts, 1);
  EXPECT_EQ(t.state.next_run_at, now + 30 * kSec);
  EXPECT_EQ(next_work(t.state, d, now + 29 * kSec).kind, Work::Kind::kNone);
  EXPECT_EQ(classify_reply(t.state, d, "create_shipment", ReplyKind::kComplete).kind,
            ReplyVerdict::Kind::kApply);
  t = succeeded(t.state, d, now + kSec);
  EXPECT_EQ(t.state.step, 3);
  EXPECT_EQ(t.state.phase, Phase::kReady);

  t = ok(t.state, d, now + 2 * kSec);
  EXPECT_EQ(types(t), (std::vector<std::string>{"StepSucceeded", "SagaCompleted"}));
  EXPECT_EQ(t.state.status, Status::kCompleted);
  EXPECT_EQ(t.state.next_run_at, kNever);
  EXPECT_EQ(next_work(t.state, d, now + 1000 * kSec).kind, Work::Kind::kNone);
  EXPECT_EQ(current_step_name(t.state, d), "");
}

TEST(SagaMachine, RetriesWithExponentialBackoffThenCompensatesInReverse) {
  Definition d = order_flow();
  int64_t now = 0;
  State s = ok(initial_state(d, now), d, now).state;  // reserve done
  s = ok(s, d, now).state;                            // payment done
  // Shipment (a command, 2 attempts) times out twice.
  Transition t = command_sent(begin_attempt(s), d, now);
  EXPECT_EQ(next_work(t.state, d, now + 30 * kSec).kind, Work::Kind::kReplyTimeout);
  t = reply_timed_out(t.state, d, now + 30 * kSec, 0.5);
  EXPECT_EQ(types(t), std::vector<std::string>{"StepFailed"});
  EXPECT_TRUE(t.set_error);
  EXPECT_EQ(t.error, "no reply to step \"create_shipment\" (attempt 1) within 30 s");
  EXPECT_EQ(t.events[0].data.at("retry_in_ms").get<int64_t>(), 100);
  EXPECT_EQ(t.state.status, Status::kRunning);
  EXPECT_EQ(t.state.next_run_at, 30 * kSec + 100000);
  EXPECT_EQ(next_work(t.state, d, 30 * kSec).kind, Work::Kind::kNone);  // backing off
  EXPECT_EQ(next_work(t.state, d, 30 * kSec + 100000).kind, Work::Kind::kRunAction);
  int64_t t2 = 31 * kSec;
  t = command_sent(begin_attempt(t.state), d, t2);
  EXPECT_EQ(t.state.attempts, 2);
  t = reply_timed_out(t.state, d, t2 + 30 * kSec, 0.5);
  // Exhausted: refund (payment) first, then release (reserve).
  EXPECT_EQ(types(t), (std::vector<std::string>{"StepFailed", "CompensationStarted"}));
  EXPECT_TRUE(t.events[0].data.at("retry_in_ms").is_null());
  EXPECT_EQ(t.state.status, Status::kCompensating);
  EXPECT_EQ(t.state.failed_step, 2);
  EXPECT_EQ(t.state.step, 1);
  EXPECT_EQ(current_step_name(t.state, d), "process_payment");
  EXPECT_EQ(current_action(t.state, d).function, "pay.refund");
  EXPECT_EQ(next_work(t.state, d, t2 + 30 * kSec).kind, Work::Kind::kRunCompensation);
  t = ok(t.state, d, t2 + 31 * kSec);
  EXPECT_EQ(types(t), std::vector<std::string>{"CompensationSucceeded"});
  EXPECT_EQ(t.state.step, 0);
  EXPECT_EQ(current_action(t.state, d).function, "inv.release");
  t = ok(t.state, d, t2 + 32 * kSec);
  EXPECT_EQ(types(t), (std::vector<std::string>{"CompensationSucceeded", "SagaCompensated"}));
  EXPECT_EQ(t.events[1].data.at("compensated_steps").get<int64_t>(), 2);
  EXPECT_EQ(t.state.status, Status::kCompensated);
  EXPECT_EQ(t.state.next_run_at, kNever);
}

TEST(SagaMachine, BackoffGrowsAndIsCapped) {
  Definition d;
  d.steps.push_back(step("a", fn("f"), Action{}, 10));
  d.steps[0].retry.backoff_ms = 100;
  d.steps[0].retry.max_backoff_ms = 500;
  State s = initial_state(d, 0);
  std::vector<int64_t> delays;
  for (int i = 0; i < 5; i++) {
    Transition t = failed(begin_attempt(s), d, 0, "x", 0.5);
    delays.push_back(t.events[0].data.at("retry_in_ms").get<int64_t>());
    s = t.state;
  }
  EXPECT_EQ(delays, (std::vector<int64_t>{100, 200, 400, 500, 500}));
  // Jitter spreads the delay by +/-20 %.
  State one = begin_attempt(initial_state(d, 0));
  EXPECT_EQ(failed(one, d, 0, "x", 0.0).events[0].data.at("retry_in_ms").get<int64_t>(), 80);
  EXPECT_EQ(failed(one, d, 0, "x", 0.9999).events[0].data.at("retry_in_ms").get<int64_t>(), 119);
}

TEST(SagaMachine, FirstStepFailingLeavesNothingToCompensate) {
  Definition d = order_flow();
  State s = initial_state(d, 0);
  Transition t;
  for (int i = 0; i < 3; i++) {
    t = fail(s, d, 0, "out of stock");
    s = t.state;
  }
  EXPECT_EQ(types(t), (std::vector<std::string>{"StepFailed", "SagaCompensated"}));
  EXPECT_EQ(t.state.status, Status::kCompensated);
  EXPECT_EQ(t.events[1].data.at("compensated_steps").get<int64_t>(), 0);
  EXPECT_EQ(t.error, "out of stock");
}

TEST(SagaMachine, PaymentFailureReleasesInventory) {
  Definition d = order_flow();
  State s = ok(initial_state(d, 0), d, 0).state;
  for (int i = 0; i < 3; i++) s = fail(s, d, 0, "card declined").state;
  EXPECT_EQ(s.status, Status::kCompensating);
  EXPECT_EQ(s.step, 0);
  EXPECT_EQ(s.failed_step, 1);
  Transition t = ok(s, d, 0);
  EXPECT_EQ(t.state.status, Status::kCompensated);
  EXPECT_EQ(t.events[1].data.at("failed_step").get<std::string>(), "process_payment");
}

TEST(SagaMachine, StepsWithoutCompensationAreSkipped) {
  Definition d;
  d.steps.push_back(step("a", fn("a"), fn("undo_a")));
  d.steps.push_back(step("b", fn("b"), Action{}));
  d.steps.push_back(step("c", fn("c"), Action{}, 1));
  State s = ok(ok(initial_state(d, 0), d, 0).state, d, 0).state;
  Transition t = fail(s, d, 0);
  EXPECT_EQ(t.state.status, Status::kCompensating);
  EXPECT_EQ(t.state.step, 0);  // b has nothing to undo
  t = ok(t.state, d, 0);
  EXPECT_EQ(t.state.status, Status::kCompensated);
  EXPECT_EQ(t.events[1].data.at("compensated_steps").get<int64_t>(), 1);
}

TEST(SagaMachine, CompensationRetriedThenSucceeds) {
  Definition d = order_flow();
  State s = ok(initial_state(d, 0), d, 0).state;
  for (int i = 0; i < 3; i++) s = fail(s, d, 0).state;
  Transition t = fail(s, d, 0, "release failed");
  EXPECT_EQ(types(t), std::vector<std::string>{"CompensationFailed"});
  EXPECT_EQ(t.state.status, Status::kCompensating);
  EXPECT_EQ(t.state.attempts, 1);
  t = fail(t.state, d, 0, "release failed");
  EXPECT_EQ(t.state.attempts, 2);
  t = ok(t.state, d, 0);
  EXPECT_EQ(t.events[0].data.at("attempt").get<int64_t>(), 3);
  EXPECT_EQ(t.state.status, Status::kCompensated);
}

TEST(SagaMachine, CompensationThatNeverSucceedsFailsTheSagaAndRetryResumesIt) {
  Definition d = order_flow();
  State s = ok(initial_state(d, 0), d, 0).state;
  for (int i = 0; i < 3; i++) s = fail(s, d, 0).state;
  Transition t;
  for (int i = 0; i < 3; i++) {
    t = fail(s, d, 0, "release broken");
    s = t.state;
  }
  EXPECT_EQ(types(t), (std::vector<std::string>{"CompensationFailed", "SagaFailed"}));
  EXPECT_EQ(s.status, Status::kFailed);
  EXPECT_EQ(s.next_run_at, kNever);
  EXPECT_EQ(next_work(s, d, 1000 * kSec).kind, Work::Kind::kNone);
  EXPECT_EQ(current_step_name(s, d), "reserve_inventory");
  // An operator fixes the cause and retries: compensation resumes with fresh attempts.
  t = retry(s, d, 50 * kSec);
  EXPECT_EQ(types(t), std::vector<std::string>{"SagaRetried"});
  EXPECT_EQ(t.state.status, Status::kCompensating);
  EXPECT_EQ(t.state.attempts, 0);
  EXPECT_EQ(t.state.next_run_at, 50 * kSec);
  EXPECT_EQ(next_work(t.state, d, 50 * kSec).kind, Work::Kind::kRunCompensation);
  t = ok(t.state, d, 51 * kSec);
  EXPECT_EQ(t.state.status, Status::kCompensated);
}

TEST(SagaMachine, SagaTimeoutStartsCompensationAndCapsBackoff) {
  Definition d = order_flow(10000);  // 10 s for the whole saga
  State s = ok(initial_state(d, 0), d, 0).state;
  s = ok(s, d, 0).state;
  Transition t = command_sent(begin_attempt(s), d, kSec);
  EXPECT_EQ(t.state.next_run_at, 10 * kSec);  // the step allows 30 s, the saga only 10
  EXPECT_EQ(next_work(t.state, d, 10 * kSec).kind, Work::Kind::kSagaTimeout);
  t = saga_timed_out(t.state, d, 10 * kSec);
  EXPECT_EQ(types(t), (std::vector<std::string>{"SagaTimedOut", "CompensationStarted"}));
  EXPECT_EQ(t.error, "saga timed out after 10 s in step \"create_shipment\"");
  EXPECT_EQ(t.state.status, Status::kCompensating);
  EXPECT_EQ(t.state.step, 1);
  EXPECT_EQ(t.state.deadline, kNever);  // compensation is not cut short
  EXPECT_EQ(next_work(t.state, d, 11 * kSec).kind, Work::Kind::kRunCompensation);

  // A retry scheduled after the deadline runs at the deadline instead.
  Definition d2 = order_flow(1000);
  d2.steps[0].retry.backoff_ms = 5000;
  d2.steps[0].retry.max_backoff_ms = 5000;
  State r = fail(initial_state(d2, 0), d2, 0).state;
  EXPECT_EQ(r.next_run_at, kSec);
  EXPECT_EQ(next_work(r, d2, kSec).kind, Work::Kind::kSagaTimeout);
}

TEST(SagaMachine, AbortAndRetryRules) {
  Definition d = order_flow();
  State s = initial_state(d, 0);
  Transition a = pgc::saga::abort(s, d, 0, "customer called");
  EXPECT_EQ(a.state.status, Status::kAborted);
  EXPECT_EQ(a.error, "aborted: customer called");
  EXPECT_EQ(types(a), std::vector<std::string>{"SagaAborted"});
  EXPECT_EQ(next_work(a.state, d, kNever - 1).kind, Work::Kind::kNone);
  EXPECT_EQ(code_of([&] { pgc::saga::abort(a.state, d, 0, "again"); }), "CS003");
  EXPECT_EQ(code_of([&] { retry(a.state, d, 0); }), "CS003");

  State done = s;
  done.status = Status::kCompleted;
  EXPECT_EQ(code_of([&] { pgc::saga::abort(done, d, 0, "x"); }), "CS003");
  EXPECT_EQ(code_of([&] { retry(done, d, 0); }), "CS003");

  // Retry while backing off: run now, attempts kept.
  State b = fail(s, d, 0).state;
  EXPECT_EQ(b.next_run_at, 100000);
  Transition r = retry(b, d, 50000);
  EXPECT_EQ(r.state.next_run_at, 50000);
  EXPECT_EQ(r.state.attempts, 1);
  // Retry while waiting for a reply: refused.
  State w = ok(ok(s, d, 0).state, d, 0).state;
  w = command_sent(begin_attempt(w), d, 0).state;
  EXPECT_EQ(code_of([&] { retry(w, d, 0); }), "CS003");
  // A failed saga can be aborted by an operator who undid the rest by hand.
  State f = s;
  f.status = Status::kFailed;
  f.failed_step = 1;
  EXPECT_EQ(pgc::saga::abort(f, d, 0, "fixed by hand").state.status, Status::kAborted);
}

TEST(SagaMachine, RepliesDuplicateLateAndWrongStep) {
  Definition d = order_flow();
  State s = ok(ok(initial_state(d, 0), d, 0).state, d, 0).state;
  // Not yet sent.
  ReplyVerdict v = classify_reply(s, d, "create_shipment", ReplyKind::kComplete);
  EXPECT_EQ(v.kind, ReplyVerdict::Kind::kIllegal);
  EXPECT_EQ(v.reason, "step \"create_shipment\" is not awaiting a reply: its command has not been sent yet");
  State w = command_sent(begin_attempt(s), d, 0).state;
  EXPECT_EQ(classify_reply(w, d, "create_shipment", ReplyKind::kFail).kind, ReplyVerdict::Kind::kApply);
  // Wrong step: a function step, an unknown one, one not started.
  v = classify_reply(w, d, "process_payment", ReplyKind::kComplete);
  EXPECT_EQ(v.kind, ReplyVerdict::Kind::kIllegal);
  EXPECT_EQ(v.reason, "step \"process_payment\" runs a function and takes no replies");
  v = classify_reply(w, d, "ship_it", ReplyKind::kComplete);
  EXPECT_EQ(v.reason, "the saga has no step \"ship_it\"");

  // Completed by a reply: a duplicate is a repeat, also after the saga completed.
  State after = succeeded(w, d, 0).state;
  EXPECT_EQ(classify_reply(after, d, "create_shipment", ReplyKind::kComplete).kind,
            ReplyVerdict::Kind::kRepeat);
  State fin = ok(after, d, 0).state;
  EXPECT_EQ(fin.status, Status::kCompleted);
  EXPECT_EQ(classify_reply(fin, d, "create_shipment", ReplyKind::kComplete).kind,
            ReplyVerdict::Kind::kRepeat);
  // ... but a failure for a step that succeeded is not.
  v = classify_reply(fin, d, "create_shipment", ReplyKind::kFail);
  EXPECT_EQ(v.kind, ReplyVerdict::Kind::kIllegal);
  EXPECT_EQ(v.reason, "step \"create_shipment\" is not awaiting a reply: the saga is completed");

  // Late: the attempt timed out; a success arriving now is refused, a repeated failure is not.
  State late = reply_timed_out(w, d, 30 * kSec, 0.5).state;
  v = classify_reply(late, d, "create_shipment", ReplyKind::kComplete);
  EXPECT_EQ(v.kind, ReplyVerdict::Kind::kIllegal);
  EXPECT_EQ(v.reason,
            "step \"create_shipment\" is not awaiting a reply: attempt 1 already failed "
            "and the step waits to be retried");
  EXPECT_EQ(classify_reply(late, d, "create_shipment", ReplyKind::kFail).kind, ReplyVerdict::Kind::kRepeat);
  // A step that has not started.
  State early = initial_state(d, 0);
  v = classify_reply(early, d, "create_shipment", ReplyKind::kComplete);
  EXPECT_EQ(v.reason, "step \"create_shipment\" has not started; the current step is \"reserve_inventory\"");
}

TEST(SagaMachine, CompensationCommandReplies) {
  Definition d;
  d.steps.push_back(step("ship", cmd("s", "Ship"), cmd("s", "Unship")));
  d.steps.push_back(step("bill", fn("bill"), Action{}, 1));
  State s = command_sent(begin_attempt(initial_state(d, 0)), d, 0).state;
  s = succeeded(s, d, 0).state;
  s = fail(s, d, 0).state;  // bill fails for good
  ASSERT_EQ(s.status, Status::kCompensating);
  ASSERT_EQ(s.step, 0);
  // The compensation command is not sent yet: a duplicate of the action's reply is a repeat.
  EXPECT_EQ(classify_reply(s, d, "ship", ReplyKind::kComplete).kind, ReplyVerdict::Kind::kRepeat);
  Transition t = command_sent(begin_attempt(s), d, 0);
  EXPECT_EQ(t.events[0].data.at("phase").get<std::string>(), "compensation");
  EXPECT_EQ(t.events[0].data.at("command").get<std::string>(), "Unship");
  EXPECT_EQ(classify_reply(t.state, d, "ship", ReplyKind::kComplete).kind, ReplyVerdict::Kind::kApply);
  State failed_once = failed(t.state, d, 0, "carrier down", 0.5).state;
  EXPECT_EQ(classify_reply(failed_once, d, "ship", ReplyKind::kFail).kind, ReplyVerdict::Kind::kRepeat);
  State done = succeeded(t.state, d, 0).state;
  EXPECT_EQ(done.status, Status::kCompensated);
  EXPECT_EQ(classify_reply(done, d, "ship", ReplyKind::kComplete).kind, ReplyVerdict::Kind::kRepeat);
  EXPECT_EQ(classify_reply(done, d, "ship", ReplyKind::kFail).kind, ReplyVerdict::Kind::kIllegal);
}

TEST(SagaMachine, IllegalInternalTransitionsAreRejected) {
  Definition d = order_flow();
  State s = initial_state(d, 0);
  // No attempt started.
  EXPECT_EQ(code_of([&] { succeeded(s, d, 0); }), "XX000");
  EXPECT_EQ(code_of([&] { failed(s, d, 0, "x", 0); }), "XX000");
  // A function step sends no command; a ready step has no reply to time out.
  EXPECT_EQ(code_of([&] { command_sent(begin_attempt(s), d, 0); }), "XX000");
  EXPECT_EQ(code_of([&] { reply_timed_out(begin_attempt(s), d, 0, 0); }), "XX000");
  State done = s;
  done.status = Status::kCompleted;
  EXPECT_EQ(code_of([&] { begin_attempt(done); }), "XX000");
  EXPECT_EQ(code_of([&] { saga_timed_out(done, d, 0); }), "XX000");
  // A state pointing past the definition.
  State bad = s;
  bad.step = 9;
  EXPECT_EQ(next_work(bad, d, 0).kind, Work::Kind::kNone);
  EXPECT_EQ(code_of([&] { succeeded(begin_attempt(bad), d, 0); }), "XX000");
}

TEST(SagaMachine, DeferredAttemptIsNotCounted) {
  Definition d = order_flow(1000);
  State s = fail(initial_state(d, 0), d, 0).state;  // attempt 1 failed
  ASSERT_EQ(s.attempts, 1);
  State again = begin_attempt(s);  // attempt 2 starts, then loses a deadlock
  State n = deferred(again, 500000, 30);
  EXPECT_EQ(n.attempts, 1);
  EXPECT_EQ(n.status, Status::kRunning);
  EXPECT_EQ(n.phase, Phase::kReady);
  EXPECT_EQ(n.next_run_at, 530000);
  EXPECT_EQ(next_work(n, d, 530000).kind, Work::Kind::kRunAction);
  // Never past the saga's deadline.
  EXPECT_EQ(deferred(again, 990000, 100).next_run_at, 1000000);
  State idle = initial_state(d, 0);
  EXPECT_EQ(code_of([&] { deferred(idle, 0, 10); }), "XX000");
}

TEST(SagaMachine, FormatMs) {
  EXPECT_EQ(format_ms(30000), "30 s");
  EXPECT_EQ(format_ms(120000), "2 min");
  EXPECT_EQ(format_ms(1500), "1500 ms");
  EXPECT_EQ(format_ms(0), "0 ms");
  EXPECT_EQ(format_ms(kNoLimit), "no limit");
}
