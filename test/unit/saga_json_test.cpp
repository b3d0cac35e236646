#include "saga/json.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <string>

namespace json = pgc::saga::json;
using json::Value;

TEST(SagaJson, MemberFindsKeysOfObjectsOnly) {
  Value v = Value::parse(R"({"a": 1, "b": [true, null]})");
  ASSERT_NE(json::member(v, "a"), nullptr);
  EXPECT_EQ(json::member(v, "a")->get<int64_t>(), 1);
  EXPECT_TRUE(json::member(v, "b")->is_array());
  EXPECT_EQ(json::member(v, "missing"), nullptr);
  EXPECT_EQ(json::member(Value::parse("[1]"), "a"), nullptr);
  EXPECT_EQ(json::member(Value(), "a"), nullptr);
  EXPECT_EQ(json::member(Value("a"), "a"), nullptr);
}

TEST(SagaJson, ObjectsKeepMemberOrderAndAReplacedKeyKeepsItsPlace) {
  Value v = Value::object({{"z", 1}, {"a", 2}});
  v["m"] = 3;
  v["z"] = 4;
  EXPECT_EQ(v.dump(), R"({"z":4,"a":2,"m":3})");
  // Parsed text as well; of repeated keys the last value wins, as in jsonb.
  EXPECT_EQ(Value::parse(R"({"z": 1, "a": 2, "z": 3})").dump(), R"({"z":3,"a":2})");
}

TEST(SagaJson, IntegersAreExactAndIntegralFloatsCount) {
  EXPECT_TRUE(json::is_integer(Value::parse("9007199254740993")));
  EXPECT_EQ(json::as_integer(Value::parse("9007199254740993")), 9007199254740993LL);
  EXPECT_EQ(json::as_integer(Value::parse("-42")), -42);
  EXPECT_EQ(json::as_integer(Value::parse("9223372036854775807")), std::numeric_limits<int64_t>::max());
  EXPECT_TRUE(json::is_integer(Value::parse("3.0")));
  EXPECT_EQ(json::as_integer(Value::parse("3.0")), 3);
  EXPECT_FALSE(json::is_integer(Value::parse("1.5")));
  EXPECT_EQ(json::as_integer(Value::parse("1.5")), 0);
  EXPECT_FALSE(json::is_integer(Value::parse("1e300")));
  EXPECT_FALSE(json::is_integer(Value::parse("9223372036854775808")));  // 2^63: unsigned in nlohmann
  EXPECT_FALSE(json::is_integer(Value::parse("18446744073709551616")));
  EXPECT_FALSE(json::is_integer(Value("3")));
  EXPECT_FALSE(json::is_integer(Value(true)));
  EXPECT_FALSE(json::is_integer(Value()));
}

TEST(SagaJson, NumbersFromNumericText) {
  EXPECT_TRUE(json::number("42").is_number_integer());
  EXPECT_EQ(json::number("-9007199254740993").get<int64_t>(), -9007199254740993LL);
  EXPECT_DOUBLE_EQ(json::number("1.50").get<double>(), 1.5);
  // numeric has no range limit; beyond a double's the largest double of that sign.
  std::string huge = "1" + std::string(400, '0');
  EXPECT_EQ(json::number(huge).get<double>(), std::numeric_limits<double>::max());
  EXPECT_EQ(json::number("-" + huge).get<double>(), -std::numeric_limits<double>::max());
  EXPECT_EQ(json::number(huge).dump(), "1.7976931348623157e+308");
  EXPECT_EQ(json::number("0." + std::string(400, '0') + "1").get<double>(), 0.0);
}

TEST(SagaJson, QuotedEscapesForMessages) {
  EXPECT_EQ(json::quoted("order"), R"("order")");
  EXPECT_EQ(json::quoted(std::string("q\"uote\\ \n\t\x01\x7f/")), R"("q\"uote\\ \n\t\u0001)"
                                                                  "\x7f"
                                                                  R"(/")");
  EXPECT_EQ(json::quoted("caf\xC3\xA9"), "\"caf\xC3\xA9\"");  // UTF-8 as it is
  EXPECT_EQ(json::quoted("caf\xE9"), "\"caf\xEF\xBF\xBD\"");  // not UTF-8 (LATIN1 é): U+FFFD
  EXPECT_EQ(json::quoted(""), R"("")");
}
