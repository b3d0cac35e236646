// Renders one result row of a participant (text format, as libpq hands it over) as a
// JSON object keyed by column name, for remote_query's SETOF jsonb.
//   bool → true/false; int2/int4/int8/oid/float4/float8/numeric → JSON number (NaN and
//   ±Infinity → string); json/jsonb → embedded as is; NULL → null; every other type →
//   its text form as a JSON string.
// Type oids are PostgreSQL's built-in ones, which are the same on every server.
//
// The participant's text arrives in the local database's encoding (client_encoding),
// which need not be UTF-8, so strings are escaped by PostgreSQL's escape_json, byte for
// byte: JsonRow runs in the backend (row_json.cpp). What each value becomes is decided
// here, without PostgreSQL headers, and unit-tested on its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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

// True if `s` is a number in JSON's grammar (-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?), of
// any magnitude (numeric has no range limit, unlike a double).
inline bool is_json_number(std::string_view s) {
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  std::size_t i = 0, n = s.size();
  if (i < n && s[i] == '-') i++;
  if (i >= n) return false;
  if (s[i] == '0') {
    i++;
  } else if (is_digit(s[i])) {
    while (i < n && is_digit(s[i])) i++;
  } else {
    return false;
  }
  if (i < n && s[i] == '.') {
    i++;
    if (i >= n || !is_digit(s[i])) return false;
    while (i < n && is_digit(s[i])) i++;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= n || !is_digit(s[i])) return false;
    while (i < n && is_digit(s[i])) i++;
  }
  return i == n;
}

// How a column value is written.
enum class JsonForm {
  kNull,
  kTrue,
  kFalse,
  kVerbatim,  // a number or JSON text, as it is
  kString,    // the text form as a JSON string
};

// What the text `v` of a column of type `type` becomes.
inline JsonForm json_form(uint32_t type, std::string_view v, bool is_null) {
  if (is_null) return JsonForm::kNull;
  switch (type) {
    case type_oid::kBool:
      if (v == "t" || v == "true") return JsonForm::kTrue;
      if (v == "f" || v == "false") return JsonForm::kFalse;
      break;
    case type_oid::kInt2:
    case type_oid::kInt4:
    case type_oid::kInt8:
    case type_oid::kOid:
    case type_oid::kFloat4:
    case type_oid::kFloat8:
    case type_oid::kNumeric:
      if (is_json_number(v)) return JsonForm::kVerbatim;
      break;  // NaN, Infinity, -Infinity
    case type_oid::kJson:
    case type_oid::kJsonb:
      if (!v.empty()) return JsonForm::kVerbatim;
      break;
    default:
      break;
  }
  return JsonForm::kString;
}

// Builds {"col": value, ...} one field at a time (in the backend).
class JsonRow {
 public:
  void add(std::string_view name, uint32_t type, std::string_view value, bool is_null);
  // The finished object, written the way it always was: no spaces, so its length (what
  // pg_consistency.twopc_max_result_bytes counts) stays the same; the builder is then
  // empty again.
  std::string finish();

 private:
  struct Field {
    std::string name;
    JsonForm form;
    std::string value;
  };
  std::vector<Field> fields_;
};

}  // namespace pgc::twopc
