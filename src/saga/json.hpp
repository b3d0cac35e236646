// JSON values of saga definitions and audit events: nlohmann/json's ordered_json, so
// objects keep their members in the order given (a repeated key keeps its first place
// and its last value, as in jsonb). Pure C++: no PostgreSQL headers.
//
// Strings hold bytes in the database encoding, which need not be UTF-8. nlohmann's
// parser and its dump() of strings accept only UTF-8, so values cross into and out of
// PostgreSQL through jsonb and PostgreSQL's own escaping (pg_saga.hpp): the backend hands
// nlohmann only ASCII (numeric's text to read; numbers, booleans and null to print).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

// PostgreSQL's port.h defines snprintf as pg_snprintf, which <cstdio> does not declare in
// std when it was included first; nlohmann/json calls std::snprintf.
#pragma push_macro("snprintf")
#undef snprintf
#include <nlohmann/json.hpp>
#pragma pop_macro("snprintf")

namespace pgc::saga::json {

using Value = nlohmann::ordered_json;

// Member `key` of object `v`; nullptr when it is absent or `v` is not an object.
const Value* member(const Value& v, std::string_view key);

// A number with no fractional part that fits an int64: 3 and 3.0, not 1.5 or 2^63.
bool is_integer(const Value& v);
// The value of a number for which is_integer holds; 0 for anything else.
int64_t as_integer(const Value& v);

// The number written `text` (JSON number syntax, as PostgreSQL's numeric prints it).
// Integers that fit an int64 stay exact; a magnitude beyond a double's range becomes
// the largest double of that sign instead of an error.
Value number(std::string_view text);

// `s` as a JSON string literal, for messages. A byte sequence that is not UTF-8 (a
// database in another encoding) shows as U+FFFD.
std::string quoted(std::string_view s);

}  // namespace pgc::saga::json
