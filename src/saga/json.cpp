#include "saga/json.hpp"

#include <cmath>
#include <limits>

namespace pgc::saga::json {

namespace {
// 2^63: the first double that does not fit an int64.
constexpr double kInt64Limit = 9223372036854775808.0;
}  // namespace

const Value* member(const Value& v, std::string_view key) {
  if (!v.is_object()) return nullptr;
  auto it = v.find(key);
  return it == v.end() ? nullptr : &*it;
}

bool is_integer(const Value& v) {
  switch (v.type()) {
    case Value::value_t::number_integer:
      return true;
    case Value::value_t::number_unsigned:
      return v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    case Value::value_t::number_float: {
      double d = v.get<double>();
      return std::floor(d) == d && d >= -kInt64Limit && d < kInt64Limit;
    }
    default:
      return false;
  }
}

int64_t as_integer(const Value& v) {
  if (!is_integer(v)) return 0;
  return v.is_number_float() ? static_cast<int64_t>(v.get<double>()) : v.get<int64_t>();
}

Value number(std::string_view text) {
  try {
    return Value::parse(text);
  } catch (const Value::out_of_range&) {
    double max = std::numeric_limits<double>::max();
    return !text.empty() && text.front() == '-' ? -max : max;
  }
}

std::string quoted(std::string_view s) {
  return Value(std::string(s)).dump(-1, ' ', false, Value::error_handler_t::replace);
}

}  // namespace pgc::saga::json
