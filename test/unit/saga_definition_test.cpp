#include "saga/definition.hpp"

#include <gtest/gtest.h>

#include <iterator>
#include <map>
#include <string>

#include "common/error.hpp"

using pgc::saga::Action;
using pgc::saga::compile;
using pgc::saga::Definition;
using pgc::saga::kNoLimit;
using pgc::saga::Resolver;
namespace json = pgc::saga::json;

namespace {

// Durations "N unit" only; functions from a fixed catalog.
class FakeResolver : public Resolver {
 public:
  std::map<std::string, std::string> functions = {
      {"inventory.reserve", "inventory.reserve"},
      {"inventory.release", "inventory.release"},
      {"reserve", "public.reserve"},
  };
  std::optional<int64_t> duration_ms(const std::string& text) override {
    long long n = 0;
    char unit[32] = {0};
    if (sscanf(text.c_str(), "%lld %31s", &n, unit) != 2) return std::nullopt;
    std::string u = unit;
    if (u == "milliseconds" || u == "ms") return n;
    if (u == "seconds" || u == "second" || u == "s") return n * 1000;
    if (u == "minutes" || u == "minute") return n * 60000;
    if (u == "days") return n * 86400000LL;
    return std::nullopt;
  }
  bool resolve_function(const std::string& name, std::string& canonical, uint32_t& oid, std::string& code,
                        std::string& message) override {
    if (name == "secret.fn") {
      code = "42501";
      message = "permission denied for function secret.fn";
      return false;
    }
    auto it = functions.find(name);
    if (it == functions.end()) {
      code = "CS002";
      message = "function " + name + "(uuid, jsonb) does not exist";
      return false;
    }
    canonical = it->second;
    oid = 16000 + static_cast<uint32_t>(std::distance(functions.begin(), it));
    return true;
  }
};

Definition compile_text(const std::string& text, const std::string& name = "order") {
  FakeResolver r;
  return compile(name, json::Value::parse(text), r);
}

// The CS code and message of compiling `text`, or "ok".
std::string error_of(const std::string& text, const std::string& name = "order") {
  try {
    compile_text(text, name);
    return "ok";
  } catch (const pgc::Error& e) {
    return e.code() + " " + e.what();
  }
}

const char* kOrderFlow = R"({
  "steps": [
    {"name": "reserve_inventory", "action": {"function": "inventory.reserve"},
     "compensation": {"function": "inventory.release"}, "timeout": "30 seconds",
     "retry": {"max_attempts": 5, "backoff": "100 milliseconds", "max_backoff": "10 seconds"}},
    {"name": "process_payment", "action": {"topic": "payments.commands", "command": "Charge"},
     "compensation": {"topic": "payments.commands", "command": "Refund"}},
    {"name": "complete_order", "action": {"function": "reserve"}, "compensation": null}
  ],
  "timeout": "5 minutes"
})";

}  // namespace

TEST(SagaDefinition, CompilesTheOrderFlow) {
  Definition d = compile_text(kOrderFlow);
  ASSERT_EQ(d.steps.size(), 3u);
  EXPECT_EQ(d.timeout_ms, 300000);
  EXPECT_EQ(d.steps[0].name, "reserve_inventory");
  EXPECT_TRUE(d.steps[0].action.is_function());
  EXPECT_EQ(d.steps[0].action.function, "inventory.reserve");
  EXPECT_EQ(d.steps[0].compensation.function, "inventory.release");
  EXPECT_EQ(d.steps[0].timeout_ms, 30000);
  EXPECT_EQ(d.steps[0].retry.max_attempts, 5);
  EXPECT_EQ(d.steps[0].retry.backoff_ms, 100);
  EXPECT_EQ(d.steps[0].retry.max_backoff_ms, 10000);
  EXPECT_TRUE(d.steps[1].action.is_command());
  EXPECT_EQ(d.steps[1].action.topic, "payments.commands");
  EXPECT_EQ(d.steps[1].action.command, "Charge");
  EXPECT_EQ(d.steps[1].compensation.command, "Refund");
  EXPECT_EQ(d.steps[1].timeout_ms, kNoLimit);
  EXPECT_EQ(d.steps[1].retry.max_attempts, 3);  // defaults
  EXPECT_EQ(d.steps[1].retry.backoff_ms, 100);
  EXPECT_EQ(d.steps[1].retry.max_backoff_ms, 10000);
  EXPECT_EQ(d.steps[2].action.function, "public.reserve");  // qualified by the resolver
  EXPECT_NE(d.steps[0].action.function_oid, 0u);            // and resolved to an OID
  EXPECT_NE(d.steps[0].action.function_oid, d.steps[0].compensation.function_oid);
  EXPECT_TRUE(d.steps[2].compensation.is_none());
  EXPECT_EQ(d.find_step("process_payment"), 1);
  EXPECT_EQ(d.find_step("nope"), -1);
}

TEST(SagaDefinition, CompiledFormRoundTrips) {
  Definition d = compile_text(kOrderFlow);
  json::Value c = pgc::saga::to_compiled_json(d);
  Definition back = pgc::saga::from_compiled_json(json::Value::parse(c.dump()));
  EXPECT_EQ(pgc::saga::to_compiled_json(back).dump(), c.dump());
  EXPECT_EQ(back.steps[1].action.topic, "payments.commands");
  EXPECT_EQ(back.timeout_ms, 300000);
  EXPECT_EQ(back.steps[1].timeout_ms, kNoLimit);
  EXPECT_EQ(back.steps[0].action.function_oid, d.steps[0].action.function_oid);
  EXPECT_EQ(back.steps[2].action.function_oid, d.steps[2].action.function_oid);
}

// A definition compiled before functions were stored by OID reads back with OID 0 (its
// function steps then fail at run time instead of resolving a name); a bad OID is an
// internal error.
TEST(SagaDefinition, CompiledFunctionOid) {
  const char* old_form = R"({"timeout_ms": null, "steps": [{"name": "a", "action": {"function": "s.f"},
      "compensation": null, "timeout_ms": null,
      "retry": {"max_attempts": 1, "backoff_ms": 0, "max_backoff_ms": 0}}]})";
  Definition d = pgc::saga::from_compiled_json(json::Value::parse(old_form));
  EXPECT_EQ(d.steps[0].action.function_oid, 0u);
  std::string with_oid = old_form;
  with_oid.replace(with_oid.find("\"s.f\"}"), 6, "\"s.f\", \"oid\": 4294967295}");
  EXPECT_EQ(pgc::saga::from_compiled_json(json::Value::parse(with_oid)).steps[0].action.function_oid,
            4294967295u);
  std::string bad = old_form;
  bad.replace(bad.find("\"s.f\"}"), 6, "\"s.f\", \"oid\": -1}");
  EXPECT_THROW(pgc::saga::from_compiled_json(json::Value::parse(bad)), pgc::Error);
}

TEST(SagaDefinition, MalformedCompiledFormIsAnInternalError) {
  EXPECT_THROW(pgc::saga::from_compiled_json(json::Value::parse(R"({"steps": []})")), pgc::Error);
  EXPECT_THROW(pgc::saga::from_compiled_json(json::Value::parse(R"([1])")), pgc::Error);
  EXPECT_THROW(pgc::saga::from_compiled_json(
                   json::Value::parse(R"({"timeout_ms": null, "steps": [{"name": "a", "action": null}]})")),
               pgc::Error);
}

TEST(SagaDefinition, TopLevelShape) {
  EXPECT_EQ(error_of("[]"),
            "CS002 invalid saga definition \"order\": the definition must be a JSON object, not array");
  EXPECT_EQ(error_of("{}"), "CS002 invalid saga definition \"order\": \"steps\" is missing");
  EXPECT_EQ(error_of(R"({"steps": []})"),
            "CS002 invalid saga definition \"order\": \"steps\" must be a non-empty array of steps, "
            "not an empty array");
  EXPECT_EQ(error_of(R"({"steps": {}})"),
            "CS002 invalid saga definition \"order\": \"steps\" must be a non-empty array of steps, "
            "not a JSON object");
  EXPECT_EQ(error_of(R"({"steps": [{"name": "a", "action": {"function": "reserve"}}], "retries": 1})"),
            "CS002 invalid saga definition \"order\": unknown key \"retries\" at the top level");
  EXPECT_EQ(error_of(R"({"steps": [{"name": "a", "action": {"function": "reserve"}}], "timeout": "soon"})"),
            "CS002 invalid saga definition \"order\": \"timeout\" is not a valid duration: \"soon\"");
  EXPECT_EQ(error_of(R"({"steps": [{"name": "a", "action": {"function": "reserve"}}], "timeout": 30})"),
            "CS002 invalid saga definition \"order\": \"timeout\" must be a duration string such as "
            "\"30 seconds\", not 30");
  EXPECT_EQ(
      error_of(R"({"steps": [{"name": "a", "action": {"function": "reserve"}}], "timeout": "0 seconds"})"),
      "CS002 invalid saga definition \"order\": \"timeout\" must be positive, not \"0 seconds\"");
  EXPECT_EQ(
      error_of(R"({"steps": [{"name": "a", "action": {"function": "reserve"}}], "timeout": "400 days"})"),
      "CS002 invalid saga definition \"order\": \"timeout\" must not exceed 366 days, not \"400 days\"");
}

TEST(SagaDefinition, SagaName) {
  const char* ok = R"({"steps": [{"name": "a", "action": {"function": "reserve"}}]})";
  EXPECT_EQ(error_of(ok, "order"), "ok");
  EXPECT_NE(error_of(ok, "").find("CS002 invalid saga name \"\""), std::string::npos);
  EXPECT_NE(error_of(ok, " order").find("CS002 invalid saga name"), std::string::npos);
  EXPECT_NE(error_of(ok, "a\nb").find("CS002 invalid saga name"), std::string::npos);
  EXPECT_NE(error_of(ok, std::string(201, 'x')).find("CS002 invalid saga name"), std::string::npos);
}

TEST(SagaDefinition, StepNames) {
  EXPECT_EQ(error_of(R"({"steps": [{"action": {"function": "reserve"}}]})"),
            "CS002 invalid saga definition \"order\": step 1: \"name\" must be a non-empty string "
            "(it is missing)");
  EXPECT_EQ(error_of(R"({"steps": [{"name": "", "action": {"function": "reserve"}}]})"),
            "CS002 invalid saga definition \"order\": step 1: \"name\" must be a non-empty string, not \"\"");
  EXPECT_EQ(error_of(R"({"steps": [{"name": 7, "action": {"function": "reserve"}}]})"),
            "CS002 invalid saga definition \"order\": step 1: \"name\" must be a non-empty string, not 7");
  EXPECT_EQ(
      error_of(R"({"steps": [{"name": "a", "action": {"function": "reserve"}},
                                    {"name": "b", "action": {"function": "reserve"}},
                                    {"name": "a", "action": {"function": "reserve"}}]})"),
      "CS002 invalid saga definition \"order\": step 3 (\"a\"): duplicate step name \"a\" (also step 1)");
  EXPECT_EQ(error_of(R"({"steps": ["a"]})"),
            "CS002 invalid saga definition \"order\": step 1: a step must be a JSON object, not string");
  EXPECT_EQ(error_of(R"({"steps": [{"name": "a", "action": {"function": "reserve"}, "retries": 2}]})"),
            "CS002 invalid saga definition \"order\": step 1 (\"a\"): unknown key \"retries\"");
  std::string many = R"({"steps": [)";
  for (int i = 0; i < 101; i++)
    many += std::string(i ? "," : "") + R"({"name": "s)" + std::to_string(i) +
            R"(", "action": {"function": "reserve"}})";
  many += "]}";
  EXPECT_EQ(error_of(many), "CS002 invalid saga definition \"order\": a saga has at most 100 steps, not 101");
}

TEST(SagaDefinition, Actions) {
  auto step = [](const std::string& action) {
    return R"({"steps": [{"name": "a", "action": )" + action + "}]}";
  };
  EXPECT_EQ(error_of(R"({"steps": [{"name": "a"}]})"),
            "CS002 invalid saga definition \"order\": step 1 (\"a\"): \"action\" is missing");
  EXPECT_EQ(error_of(step(R"({"function": "nope.fn"})")),
            "CS002 invalid saga definition \"order\": step 1 (\"a\"): \"action\": function "
            "nope.fn(uuid, jsonb) does not exist");
  EXPECT_EQ(error_of(step(R"({"function": "secret.fn"})")),
            "42501 invalid saga definition \"order\": step 1 (\"a\"): \"action\": permission denied "
            "for function secret.fn");
  EXPECT_EQ(error_of(step(R"({"function": ""})")),
            "CS002 invalid saga definition \"order\": step 1 (\"a\"): \"action\".function must be a "
            "non-empty string, not \"\"");
  EXPECT_EQ(error_of(step(R"({"function": "reserve", "topic": "t", "command": "C"})")),
            "CS002 invalid saga definition \"order\": step 1 (\"a\"): \"action\" must name either a "
            "function or a topic and command, not both");
  EXPECT_EQ(
      error_of(step(R"({"topic": "t"})")),
      "CS002 invalid saga definition \"order\": step 1 (\"a\"): \"action\" has a topic but no \"command\"");
  EXPECT_EQ(
      error_of(step(R"({"command": "C"})")),
      "CS002 invalid saga definition \"order\": step 1 (\"a\"): \"action\" has a command but no \"topic\"");
  EXPECT_EQ(error_of(step(R"({"topic": "bad topic!", "command": "C"})")),
            "CS002 invalid saga definition \"order\": step 1 (\"a\"): \"action\".topic \"bad topic!\" "
            "is not a valid topic name");
  EXPECT_EQ(error_of(step(R"({"topic": "t", "command": ""})")),
            "CS002 invalid saga definition \"order\": step 1 (\"a\"): \"action\".command must be a "
            "non-empty string of at most 128 bytes, not \"\"");
  EXPECT_EQ(error_of(step(R"({"topic": "t", "command": "C", "key": "k"})")),
            "CS002 invalid saga definition \"order\": step 1 (\"a\"): unknown key \"key\" in \"action\"");
  EXPECT_EQ(error_of(step(R"("inventory.reserve")")),
            "CS002 invalid saga definition \"order\": step 1 (\"a\"): \"action\" must be "
            "{\"function\": \"schema.name\"} or {\"topic\": \"name\", \"command\": \"Name\"}, not "
            "\"inventory.reserve\"");
  EXPECT_EQ(error_of(step(R"({})")),
            "CS002 invalid saga definition \"order\": step 1 (\"a\"): \"action\" must be "
            "{\"function\": \"schema.name\"} or {\"topic\": \"name\", \"command\": \"Name\"}");
  EXPECT_EQ(error_of(R"({"steps": [{"name": "a", "action": {"function": "reserve"},
                                    "compensation": {"function": "missing"}}]})"),
            "CS002 invalid saga definition \"order\": step 1 (\"a\"): \"compensation\": function "
            "missing(uuid, jsonb) does not exist");
}

TEST(SagaDefinition, TimeoutsAndRetries) {
  auto step = [](const std::string& extra) {
    return R"({"steps": [{"name": "a", "action": {"function": "reserve"}, )" + extra + "}]}";
  };
  EXPECT_EQ(error_of(step(R"("timeout": "-5 seconds")")),
            "CS002 invalid saga definition \"order\": step 1 (\"a\"): \"timeout\" must be positive, "
            "not \"-5 seconds\"");
  EXPECT_EQ(error_of(step(R"("retry": 3)")),
            "CS002 invalid saga definition \"order\": step 1 (\"a\"): \"retry\" must be an object "
            "such as {\"max_attempts\": 3, \"backoff\": \"100 milliseconds\", \"max_backoff\": "
            "\"10 seconds\"}, not 3");
  EXPECT_EQ(error_of(step(R"("retry": {"max_attempts": 0})")),
            "CS002 invalid saga definition \"order\": step 1 (\"a\"): \"retry\".\"max_attempts\" must "
            "be an integer between 1 and 1000, not 0");
  EXPECT_EQ(error_of(step(R"("retry": {"max_attempts": 2.5})")),
            "CS002 invalid saga definition \"order\": step 1 (\"a\"): \"retry\".\"max_attempts\" must "
            "be an integer between 1 and 1000, not 2.5");
  EXPECT_EQ(error_of(step(R"("retry": {"max_attempts": 1001})")),
            "CS002 invalid saga definition \"order\": step 1 (\"a\"): \"retry\".\"max_attempts\" must "
            "be an integer between 1 and 1000, not 1001");
  EXPECT_EQ(error_of(step(R"("retry": {"max_attempts": "3"})")),
            "CS002 invalid saga definition \"order\": step 1 (\"a\"): \"retry\".\"max_attempts\" must "
            "be an integer between 1 and 1000, not \"3\"");
  EXPECT_EQ(error_of(step(R"("retry": {"backoff": "5 seconds", "max_backoff": "1 second"})")),
            "CS002 invalid saga definition \"order\": step 1 (\"a\"): \"retry\".\"max_backoff\" "
            "(1000 ms) must not be less than \"retry\".\"backoff\" (5000 ms)");
  EXPECT_EQ(error_of(step(R"("retry": {"backoff": "later"})")),
            "CS002 invalid saga definition \"order\": step 1 (\"a\"): \"retry\".\"backoff\" is not a "
            "valid duration: \"later\"");
  EXPECT_EQ(error_of(step(R"("retry": {"attempts": 3})")),
            "CS002 invalid saga definition \"order\": step 1 (\"a\"): unknown key \"attempts\" in \"retry\"");
  // A backoff above the default cap raises the cap; zero backoff is allowed.
  Definition d = compile_text(step(R"("retry": {"backoff": "20 seconds"})"));
  EXPECT_EQ(d.steps[0].retry.backoff_ms, 20000);
  EXPECT_EQ(d.steps[0].retry.max_backoff_ms, 20000);
  d = compile_text(step(R"("retry": {"max_attempts": 1, "backoff": "0 ms"})"));
  EXPECT_EQ(d.steps[0].retry.max_attempts, 1);
  EXPECT_EQ(d.steps[0].retry.backoff_ms, 0);
}

// Numbers arrive as PostgreSQL's numeric prints them (json::number): an integral 3.0
// counts as an integer; a number past int64 or past a double's range is shown as read.
TEST(SagaDefinition, NumbersFromNumeric) {
  auto with_attempts = [](const json::Value& n) {
    json::Value def = json::Value::parse(R"({"steps": [{"name": "a", "action": {"function": "reserve"}}]})");
    def["steps"][0]["retry"] = json::Value::object({{"max_attempts", n}});
    return def;
  };
  FakeResolver r;
  EXPECT_EQ(compile("order", with_attempts(json::number("3.0")), r).steps[0].retry.max_attempts, 3);
  auto message = [&](const char* text) {
    try {
      compile("order", with_attempts(json::number(text)), r);
      return std::string("ok");
    } catch (const pgc::Error& e) {
      return std::string(e.what());
    }
  };
  const std::string prefix =
      "invalid saga definition \"order\": step 1 (\"a\"): \"retry\".\"max_attempts\" must be an integer "
      "between 1 and 1000, not ";
  EXPECT_EQ(message("9223372036854775808"), prefix + "9223372036854775808");
  EXPECT_EQ(message(("1" + std::string(400, '0')).c_str()), prefix + "1.7976931348623157e+308");
  EXPECT_EQ(message("0.1"), prefix + "0.1");
}

TEST(SagaDefinition, NamesInMessagesAreJsonQuoted) {
  EXPECT_EQ(error_of(R"({"steps": [{"name": "a\nb", "action": {"function": "reserve"}}]})"),
            "CS002 invalid saga definition \"order\": step 1 (\"a\\nb\"): a step name must not contain "
            "control characters");
  EXPECT_EQ(error_of(R"({"steps": [{"name": "a\"b", "action": {"function": "reserve"}}], "x": 1})", "o\"k"),
            "CS002 invalid saga definition \"o\\\"k\": unknown key \"x\" at the top level");
}

// The resolver quotes names and values (the PostgreSQL layer in the database encoding).
TEST(SagaDefinition, MessagesQuoteThroughTheResolver) {
  struct Angled : FakeResolver {
    std::string quoted(const std::string& s) override { return "<" + s + ">"; }
  } r;
  try {
    compile("order", json::Value::parse(R"({"steps": [{"name": "a", "action": {"function": "reserve"},
                                                      "timeout": "soon"}]})"),
            r);
    FAIL() << "no error";
  } catch (const pgc::Error& e) {
    EXPECT_STREQ(
        e.what(),
        "invalid saga definition <order>: step 1 (<a>): \"timeout\" is not a valid duration: <soon>");
  }
}

TEST(SagaDefinition, TopicNames) {
  using pgc::saga::valid_topic_name;
  for (const std::string& name :
       {std::string("inventory.commands"), std::string("a_b-C.9"), std::string(249, 'x')})
    EXPECT_TRUE(valid_topic_name(name)) << name;
  for (const std::string& name :
       {std::string(250, 'x'), std::string(""), std::string("a b"), std::string("a/b"), std::string("."),
        std::string(".."), std::string("t\xC3\xA9")})
    EXPECT_FALSE(valid_topic_name(name)) << name;
}
