#include "twopc/row_json.hpp"

#include <gtest/gtest.h>

namespace t = pgc::twopc;
namespace oid = pgc::twopc::type_oid;

TEST(TwopcRowJson, JsonNumbers) {
  for (const char* s : {"0", "-0", "12", "-3.25", "1e+30", "1.5E-7", "123456789012345678901234567890.5"})
    EXPECT_TRUE(t::is_json_number(s)) << s;
  for (const char* s : {"", "-", "01", "1.", ".5", "1e", "NaN", "Infinity", "-Infinity", "+1", "0x10", "1 "})
    EXPECT_FALSE(t::is_json_number(s)) << s;
}

TEST(TwopcRowJson, ValuesByType) {
  auto v = [](uint32_t type, const char* text, bool null = false) {
    std::string out;
    t::append_json_value(out, type, text, null);
    return out;
  };
  EXPECT_EQ(v(oid::kBool, "t"), "true");
  EXPECT_EQ(v(oid::kBool, "f"), "false");
  EXPECT_EQ(v(oid::kInt4, "-42"), "-42");
  EXPECT_EQ(v(oid::kInt8, "9223372036854775807"), "9223372036854775807");
  EXPECT_EQ(v(oid::kNumeric, "1.50"), "1.50");
  EXPECT_EQ(v(oid::kNumeric, "NaN"), "\"NaN\"");
  EXPECT_EQ(v(oid::kFloat8, "-Infinity"), "\"-Infinity\"");
  EXPECT_EQ(v(oid::kFloat8, "1e+100"), "1e+100");
  EXPECT_EQ(v(oid::kJsonb, "{\"a\": [1, 2]}"), "{\"a\": [1, 2]}");
  EXPECT_EQ(v(oid::kJson, "[true]"), "[true]");
  EXPECT_EQ(v(25, "plain text"), "\"plain text\"");
  EXPECT_EQ(v(1007, "{1,2}"), "\"{1,2}\"");  // arrays keep their text form
  EXPECT_EQ(v(oid::kInt4, "ignored", true), "null");
  EXPECT_EQ(v(25, "", false), "\"\"");
}

TEST(TwopcRowJson, EscapesStrings) {
  std::string out;
  t::append_json_string(out, std::string("q\"b\\s/\n\t\r\b\f\x01\x1f") + "é");
  EXPECT_EQ(out, "\"q\\\"b\\\\s/\\n\\t\\r\\b\\f\\u0001\\u001fé\"");
}

TEST(TwopcRowJson, BuildsObjects) {
  t::JsonRow row;
  row.add("id", oid::kInt4, "1", false);
  row.add("name", 25, "a \"b\"", false);
  row.add("gone", 25, "", true);
  EXPECT_EQ(row.finish(), "{\"id\":1,\"name\":\"a \\\"b\\\"\",\"gone\":null}");
  EXPECT_EQ(row.finish(), "{}");  // reusable, and an empty row is an empty object
}
