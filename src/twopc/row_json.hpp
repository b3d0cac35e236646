// Renders one result row of a participant (text format, as libpq hands it over) as a
// JSON object keyed by column name, for remote_query's SETOF jsonb.
//   bool → true/false; int2/int4/int8/oid/float4/float8/numeric → JSON number (NaN and
//   ±Infinity → string); json/jsonb → embedded as is; NULL → null; every other type →
//   its text form as a JSON string.
// Type oids are PostgreSQL's built-in ones, which are the same on every server.
// No PostgreSQL header here: unit-tested on its own.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pgc::twopc {

namespace type_oid {
inline constexpr uint32_t kBool = 16;
inline constexpr uint32_t kInt8 = 20;
inline constexpr uint32_t kInt2 = 21;
inline constexpr uint32_t kInt4 = 23;
inline constexpr uint32_t kOid = 26;
inline constexpr uint32_t kJson = 114;
inline constexpr uint32_t kFloat4 = 700;
inline constexpr uint32_t kFloat8 = 701;
inline constexpr uint32_t kNumeric = 1700;
inline constexpr uint32_t kJsonb = 3802;
}  // namespace type_oid

// True if `s` is a number in JSON's grammar (-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?).
bool is_json_number(std::string_view s);

// Appends `s` as a quoted JSON string (escaping ", \ and control characters).
void append_json_string(std::string& out, std::string_view s);

// Appends one value; `value` is ignored when `is_null`.
void append_json_value(std::string& out, uint32_t type, std::string_view value, bool is_null);

// Builds {"col": value, ...} one field at a time.
class JsonRow {
 public:
  void add(std::string_view name, uint32_t type, std::string_view value, bool is_null);
  // The finished object; the builder is then empty again.
  std::string finish();

 private:
  std::string buf_ = "{";
  bool first_ = true;
};

}  // namespace pgc::twopc
