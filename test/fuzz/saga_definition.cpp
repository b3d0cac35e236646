// Saga definitions (src/saga/definition.*): the input is a saga name, a newline and the
// definition's JSON. compile() either accepts it or throws pgc::Error (anything else escaping
// is a bug), an accepted definition survives its compiled form unchanged, and reading any
// JSON as a compiled form fails only with pgc::Error.
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>

#include "common/error.hpp"
#include "fuzz_input.hpp"
#include "saga/definition.hpp"

namespace {

using pgc::saga::json::Value;

// Durations "N unit" (N may be negative or huge, so the range checks are reached);
// functions: "deny..." is refused with 42501, lower-case names resolve, the rest do not exist.
class FuzzResolver : public pgc::saga::Resolver {
 public:
  std::optional<int64_t> duration_ms(const std::string& text) override {
    int64_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end == text.data() + text.size() || *end != ' ') return std::nullopt;
    std::string unit(end + 1, text.data() + text.size());
    int64_t scale = 0;
    if (unit == "ms" || unit == "milliseconds") scale = 1;
    if (unit == "s" || unit == "seconds") scale = 1000;
    if (unit == "min" || unit == "minutes") scale = 60000;
    if (unit == "d" || unit == "days") scale = 86400000;
    int64_t ms = 0;
    if (scale == 0 || __builtin_mul_overflow(n, scale, &ms)) return std::nullopt;
    return ms;
  }
  bool resolve_function(const std::string& name, std::string& canonical, uint32_t& oid, std::string& code,
                        std::string& message) override {
    if (name.rfind("deny", 0) == 0) {
      code = "42501";
      message = "permission denied for function " + name;
      return false;
    }
    for (char c : name)
      if (!((c >= 'a' && c <= 'z') || c == '_' || c == '.')) {
        code = "CS002";
        message = "function does not exist";
        return false;
      }
    canonical = name.find('.') == std::string::npos ? "public." + name : name;
    oid = 16384 + static_cast<uint32_t>(name.size());
    return true;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  size_t nl = input.find('\n');
  if (nl == std::string::npos) return 0;
  std::string name = input.substr(0, nl);
  Value json = Value::parse(input.begin() + nl + 1, input.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return 0;

  FuzzResolver resolver;
  try {
    pgc::saga::Definition def = pgc::saga::compile(name, json, resolver);
    PGC_FUZZ_CHECK(!def.steps.empty() && def.steps.size() <= static_cast<size_t>(pgc::saga::kMaxSteps));
    for (const auto& step : def.steps) {
      PGC_FUZZ_CHECK(step.retry.backoff_ms <= step.retry.max_backoff_ms);
      PGC_FUZZ_CHECK(step.timeout_ms == pgc::saga::kNoLimit ||
                     (step.timeout_ms > 0 && step.timeout_ms <= pgc::saga::kMaxDurationMs));
    }
    Value compiled = pgc::saga::to_compiled_json(def);
    Value again = pgc::saga::to_compiled_json(pgc::saga::from_compiled_json(compiled));
    PGC_FUZZ_CHECK(again == compiled);
  } catch (const pgc::Error& e) {
    PGC_FUZZ_CHECK(!e.code().empty() && e.code() != pgc::sqlstate::kInternal);
  }

  try {
    (void)pgc::saga::from_compiled_json(json);
  } catch (const pgc::Error&) {
  }
  return 0;
}
