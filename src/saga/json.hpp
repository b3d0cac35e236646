// A small JSON value with a parser and a serializer, for saga definitions and audit
// events. Pure C++: no PostgreSQL headers. Objects keep their members in input order.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgc::saga::json {

class Value {
 public:
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  using Member = std::pair<std::string, Value>;

  Value() = default;
  static Value null() { return Value(); }
  static Value boolean(bool b);
  static Value number(double d);
  static Value integer(int64_t i);
  static Value string(std::string s);
  static Value array();
  static Value object();

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_number() const { return kind_ == Kind::kNumber; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_object() const { return kind_ == Kind::kObject; }
  // A number with no fractional part that fits an int64.
  bool is_integer() const;

  bool as_bool() const { return bool_; }
  double as_number() const { return number_; }
  int64_t as_integer() const;
  const std::string& as_string() const { return string_; }
  const std::vector<Value>& items() const { return items_; }
  const std::vector<Member>& members() const { return members_; }

  // Object access: nullptr when absent (or when this is not an object).
  const Value* find(std::string_view key) const;
  // Builders; they return *this so calls chain.
  Value& set(std::string key, Value v);  // replaces an existing key
  Value& push(Value v);

  std::string dump() const;
  // Name of the kind for messages: "null", "boolean", "number", "string", "array", "object".
  const char* kind_name() const;

 private:
  Kind kind_ = Kind::kNull;
  bool bool_ = false;
  double number_ = 0;
  std::string raw_number_;  // the number's text as written, so integers round-trip exactly
  std::string string_;
  std::vector<Value> items_;
  std::vector<Member> members_;

  friend class Parser;
};

// Parses one JSON document (RFC 8259). Throws ParseError with the byte offset on any
// malformed input; nesting deeper than `max_depth` is refused rather than recursed into.
class ParseError : public std::runtime_error {
 public:
  ParseError(const std::string& message, size_t offset) : std::runtime_error(message), offset_(offset) {}
  size_t offset() const { return offset_; }

 private:
  size_t offset_;
};
Value parse(std::string_view text, int max_depth = 64);

// Appends `s` as a JSON string literal (with quotes) to `out`.
void append_quoted(std::string& out, std::string_view s);

}  // namespace pgc::saga::json
