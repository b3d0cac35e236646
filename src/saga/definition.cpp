#include "saga/definition.hpp"

#include <initializer_list>

#include "common/error.hpp"

namespace pgc::saga {

namespace {

using json::Value;

// Builds messages such as: invalid saga definition "order": step 2 ("pay"): "timeout" ...
// Names and values are quoted by the resolver (the database's encoding).
class Context {
 public:
  Context(const std::string& saga, Resolver& resolver) : saga_(saga), resolver_(resolver) {}
  void enter_step(int index, const std::string& name) {
    where_ = "step " + std::to_string(index + 1);
    if (!name.empty()) where_ += " (" + quoted(name) + ")";
  }
  void leave_step() { where_.clear(); }

  [[noreturn]] void fail(const std::string& what, const std::string& hint = {},
                         const char* code = sqlstate::kInvalidArgument) const {
    std::string msg = "invalid saga definition " + quoted(saga_) + ": ";
    if (!where_.empty()) msg += where_ + ": ";
    msg += what;
    throw Error(code, msg, {}, hint);
  }

  std::string quoted(const std::string& s) const { return resolver_.quoted(s); }
  // An offending value in a message: strings quoted, numbers, booleans and null as JSON
  // (ASCII), arrays and objects by their kind.
  std::string describe(const Value& v) const {
    if (v.is_string()) return quoted(v.get_ref<const std::string&>());
    if (v.is_primitive()) return v.dump();
    return std::string("a JSON ") + v.type_name();
  }

 private:
  std::string saga_;
  Resolver& resolver_;
  std::string where_;
};

// The string held by `v` (checked to be a string before).
const std::string& text(const Value& v) { return v.get_ref<const std::string&>(); }

void check_keys(const Context& ctx, const Value& obj, std::initializer_list<const char*> allowed,
                const std::string& where) {
  for (auto m = obj.begin(); m != obj.end(); ++m) {
    bool ok = false;
    for (const char* a : allowed) ok |= m.key() == a;
    if (!ok) {
      std::string list;
      for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
      ctx.fail("unknown key " + ctx.quoted(m.key()) + where, "Allowed keys: " + list + ".");
    }
  }
}

int64_t duration(const Context& ctx, Resolver& resolver, const Value& v, const std::string& what,
                 bool allow_zero) {
  if (!v.is_string())
    ctx.fail(what + " must be a duration string such as \"30 seconds\", not " + ctx.describe(v));
  std::optional<int64_t> ms = resolver.duration_ms(text(v));
  if (!ms)
    ctx.fail(what + " is not a valid duration: " + ctx.quoted(text(v)),
             "Use an interval such as \"500 milliseconds\", \"30 seconds\" or \"5 minutes\".");
  if (*ms < 0 || (*ms == 0 && !allow_zero))
    ctx.fail(what + " must be " + (allow_zero ? "zero or positive" : "positive") + ", not " +
             ctx.quoted(text(v)));
  if (*ms > kMaxDurationMs) ctx.fail(what + " must not exceed 366 days, not " + ctx.quoted(text(v)));
  return *ms;
}

Action action(const Context& ctx, Resolver& resolver, const Value& v, const std::string& what) {
  const std::string shape = "{\"function\": \"schema.name\"} or {\"topic\": \"name\", \"command\": \"Name\"}";
  if (!v.is_object()) ctx.fail(what + " must be " + shape + ", not " + ctx.describe(v));
  const Value* fn = json::member(v, "function");
  const Value* topic = json::member(v, "topic");
  const Value* command = json::member(v, "command");
  Action a;
  if (fn != nullptr) {
    if (topic != nullptr || command != nullptr)
      ctx.fail(what + " must name either a function or a topic and command, not both", "Use " + shape + ".");
    check_keys(ctx, v, {"function"}, " in " + what);
    if (!fn->is_string() || text(*fn).empty())
      ctx.fail(what + ".function must be a non-empty string, not " + ctx.describe(*fn));
    std::string canonical, code, message;
    uint32_t oid = 0;
    if (!resolver.resolve_function(text(*fn), canonical, oid, code, message))
      ctx.fail(what + ": " + message,
               "A step function has the signature fn(saga_id uuid, data jsonb) RETURNS jsonb.",
               code.empty() ? sqlstate::kInvalidArgument : code.c_str());
    a.kind = Action::Kind::kFunction;
    a.function = canonical;
    a.function_oid = oid;
    return a;
  }
  if (topic == nullptr && command == nullptr) ctx.fail(what + " must be " + shape);
  check_keys(ctx, v, {"topic", "command"}, " in " + what);
  if (topic == nullptr) ctx.fail(what + " has a command but no \"topic\"");
  if (command == nullptr) ctx.fail(what + " has a topic but no \"command\"");
  if (!topic->is_string() || !valid_topic_name(text(*topic)))
    ctx.fail(what + ".topic " + ctx.describe(*topic) + " is not a valid topic name",
             "Topic names have 1-249 characters of [a-zA-Z0-9._-].");
  if (!command->is_string() || text(*command).empty() || text(*command).size() > kMaxStepNameBytes)
    ctx.fail(what + ".command must be a non-empty string of at most 128 bytes, not " +
             ctx.describe(*command));
  a.kind = Action::Kind::kCommand;
  a.topic = text(*topic);
  a.command = text(*command);
  return a;
}

RetryPolicy retry(const Context& ctx, Resolver& resolver, const Value& v) {
  RetryPolicy r;
  if (v.is_null()) return r;
  if (!v.is_object())
    ctx.fail(
        "\"retry\" must be an object such as {\"max_attempts\": 3, \"backoff\": "
        "\"100 milliseconds\", \"max_backoff\": \"10 seconds\"}, not " +
        ctx.describe(v));
  check_keys(ctx, v, {"max_attempts", "backoff", "max_backoff"}, " in \"retry\"");
  if (const Value* n = json::member(v, "max_attempts")) {
    if (!json::is_integer(*n) || json::as_integer(*n) < 1 || json::as_integer(*n) > kMaxAttempts)
      ctx.fail("\"retry\".\"max_attempts\" must be an integer between 1 and " + std::to_string(kMaxAttempts) +
               ", not " + ctx.describe(*n));
    r.max_attempts = static_cast<int>(json::as_integer(*n));
  }
  bool explicit_max = false;
  if (const Value* b = json::member(v, "backoff"))
    r.backoff_ms = duration(ctx, resolver, *b, "\"retry\".\"backoff\"", true);
  if (const Value* b = json::member(v, "max_backoff")) {
    r.max_backoff_ms = duration(ctx, resolver, *b, "\"retry\".\"max_backoff\"", true);
    explicit_max = true;
  }
  if (r.max_backoff_ms < r.backoff_ms) {
    if (explicit_max)
      ctx.fail("\"retry\".\"max_backoff\" (" + std::to_string(r.max_backoff_ms) +
               " ms) must not be less than \"retry\".\"backoff\" (" + std::to_string(r.backoff_ms) + " ms)");
    r.max_backoff_ms = r.backoff_ms;  // a long backoff with the default cap: the cap follows
  }
  return r;
}

}  // namespace

std::string Resolver::quoted(const std::string& s) { return json::quoted(s); }

int Definition::find_step(const std::string& name) const {
  for (size_t i = 0; i < steps.size(); i++)
    if (steps[i].name == name) return static_cast<int>(i);
  return -1;
}

bool valid_topic_name(const std::string& topic) {
  if (topic.empty() || topic.size() > 249) return false;
  for (char c : topic) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return topic != "." && topic != "..";
}

bool valid_saga_name(const std::string& name) {
  if (name.empty() || name.size() > kMaxSagaNameBytes) return false;
  if (name.front() == ' ' || name.back() == ' ') return false;
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

Definition compile(const std::string& saga_name, const json::Value& def, Resolver& resolver) {
  Context ctx(saga_name, resolver);
  if (!valid_saga_name(saga_name))
    throw Error(sqlstate::kInvalidArgument,
                "invalid saga name " + resolver.quoted(saga_name) +
                    ": it must have 1-200 bytes, no control characters and no leading or "
                    "trailing spaces");
  if (!def.is_object()) ctx.fail(std::string("the definition must be a JSON object, not ") + def.type_name());
  check_keys(ctx, def, {"steps", "timeout", "description"}, " at the top level");
  Definition out;
  const Value* steps = json::member(def, "steps");
  if (steps == nullptr) ctx.fail("\"steps\" is missing");
  if (!steps->is_array() || steps->empty())
    ctx.fail("\"steps\" must be a non-empty array of steps, not " +
             (steps->is_array() ? std::string("an empty array") : ctx.describe(*steps)));
  if (steps->size() > static_cast<size_t>(kMaxSteps))
    ctx.fail("a saga has at most " + std::to_string(kMaxSteps) + " steps, not " +
             std::to_string(steps->size()));
  if (const Value* t = json::member(def, "timeout"); t != nullptr && !t->is_null())
    out.timeout_ms = duration(ctx, resolver, *t, "\"timeout\"", false);
  if (const Value* d = json::member(def, "description"); d != nullptr && !d->is_string() && !d->is_null())
    ctx.fail("\"description\" must be a string, not " + ctx.describe(*d));

  for (size_t i = 0; i < steps->size(); i++) {
    const Value& s = (*steps)[i];
    ctx.enter_step(static_cast<int>(i), "");
    if (!s.is_object()) ctx.fail(std::string("a step must be a JSON object, not ") + s.type_name());
    const Value* name = json::member(s, "name");
    if (name == nullptr || !name->is_string() || text(*name).empty())
      ctx.fail("\"name\" must be a non-empty string" +
               (name ? ", not " + ctx.describe(*name) : std::string(" (it is missing)")));
    Step step;
    step.name = text(*name);
    ctx.enter_step(static_cast<int>(i), step.name);
    if (step.name.size() > kMaxStepNameBytes)
      ctx.fail("a step name has at most " + std::to_string(kMaxStepNameBytes) + " bytes");
    for (unsigned char c : step.name)
      if (c < 0x20 || c == 0x7f) ctx.fail("a step name must not contain control characters");
    int dup = out.find_step(step.name);
    if (dup >= 0)
      ctx.fail(
          "duplicate step name " + ctx.quoted(step.name) + " (also step " + std::to_string(dup + 1) + ")",
          "Step names must be unique within a saga.");
    check_keys(ctx, s, {"name", "action", "compensation", "timeout", "retry"}, "");
    const Value* act = json::member(s, "action");
    if (act == nullptr) ctx.fail("\"action\" is missing");
    step.action = action(ctx, resolver, *act, "\"action\"");
    if (const Value* c = json::member(s, "compensation"); c != nullptr && !c->is_null())
      step.compensation = action(ctx, resolver, *c, "\"compensation\"");
    if (const Value* t = json::member(s, "timeout"); t != nullptr && !t->is_null())
      step.timeout_ms = duration(ctx, resolver, *t, "\"timeout\"", false);
    if (const Value* r = json::member(s, "retry")) step.retry = retry(ctx, resolver, *r);
    out.steps.push_back(std::move(step));
  }
  return out;
}

namespace {

Value action_json(const Action& a) {
  switch (a.kind) {
    case Action::Kind::kNone:
      return nullptr;
    case Action::Kind::kFunction:
      return Value::object({{"function", a.function}, {"oid", static_cast<int64_t>(a.function_oid)}});
    case Action::Kind::kCommand:
      return Value::object({{"topic", a.topic}, {"command", a.command}});
  }
  return nullptr;
}

Value limit_json(int64_t ms) { return ms == kNoLimit ? Value() : Value(ms); }

[[noreturn]] void bad_compiled(const std::string& what) {
  throw Error(sqlstate::kInternal, "malformed compiled saga definition: " + what);
}

const Value& need(const Value& obj, const char* key) {
  const Value* v = json::member(obj, key);
  if (v == nullptr) bad_compiled(std::string("missing \"") + key + "\"");
  return *v;
}

int64_t int_of(const Value& v, const char* what) {
  if (!json::is_integer(v)) bad_compiled(std::string(what) + " is not an integer");
  return json::as_integer(v);
}

int64_t limit_of(const Value& v, const char* what) { return v.is_null() ? kNoLimit : int_of(v, what); }

Action action_of(const Value& v) {
  Action a;
  if (v.is_null()) return a;
  if (const Value* fn = json::member(v, "function")) {
    if (!fn->is_string()) bad_compiled("function is not a string");
    a.kind = Action::Kind::kFunction;
    a.function = text(*fn);
    // Definitions compiled before functions were stored by OID have none: their steps
    // fail (the worker never resolves a name at run time) until the saga is redefined.
    if (const Value* oid = json::member(v, "oid")) {
      if (!json::is_integer(*oid) || json::as_integer(*oid) < 0 || json::as_integer(*oid) > 0xFFFFFFFFLL)
        bad_compiled("function oid is not an OID");
      a.function_oid = static_cast<uint32_t>(json::as_integer(*oid));
    }
    return a;
  }
  const Value& topic = need(v, "topic");
  const Value& command = need(v, "command");
  if (!topic.is_string() || !command.is_string()) bad_compiled("topic/command not strings");
  a.kind = Action::Kind::kCommand;
  a.topic = text(topic);
  a.command = text(command);
  return a;
}

}  // namespace

json::Value to_compiled_json(const Definition& def) {
  Value steps = Value::array();
  for (const Step& s : def.steps) {
    Value retry = Value::object({{"max_attempts", s.retry.max_attempts},
                                 {"backoff_ms", s.retry.backoff_ms},
                                 {"max_backoff_ms", s.retry.max_backoff_ms}});
    steps.push_back(Value::object({{"name", s.name},
                                   {"action", action_json(s.action)},
                                   {"compensation", action_json(s.compensation)},
                                   {"timeout_ms", limit_json(s.timeout_ms)},
                                   {"retry", std::move(retry)}}));
  }
  return Value::object({{"steps", std::move(steps)}, {"timeout_ms", limit_json(def.timeout_ms)}});
}

Definition from_compiled_json(const json::Value& compiled) {
  Definition def;
  if (!compiled.is_object()) bad_compiled("not an object");
  const Value& steps = need(compiled, "steps");
  if (!steps.is_array() || steps.empty()) bad_compiled("no steps");
  def.timeout_ms = limit_of(need(compiled, "timeout_ms"), "timeout_ms");
  for (const Value& s : steps) {
    Step step;
    const Value& name = need(s, "name");
    if (!name.is_string()) bad_compiled("step name is not a string");
    step.name = text(name);
    step.action = action_of(need(s, "action"));
    if (step.action.is_none()) bad_compiled("step without an action");
    step.compensation = action_of(need(s, "compensation"));
    step.timeout_ms = limit_of(need(s, "timeout_ms"), "timeout_ms");
    const Value& r = need(s, "retry");
    step.retry.max_attempts = static_cast<int>(int_of(need(r, "max_attempts"), "max_attempts"));
    step.retry.backoff_ms = int_of(need(r, "backoff_ms"), "backoff_ms");
    step.retry.max_backoff_ms = int_of(need(r, "max_backoff_ms"), "max_backoff_ms");
    if (step.retry.max_attempts < 1) bad_compiled("max_attempts < 1");
    def.steps.push_back(std::move(step));
  }
  return def;
}

}  // namespace pgc::saga
