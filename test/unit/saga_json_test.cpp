#include "saga/json.hpp"

#include <gtest/gtest.h>

#include <string>

using pgc::saga::json::parse;
using pgc::saga::json::ParseError;
using pgc::saga::json::Value;

TEST(SagaJson, ParsesScalarsArraysAndObjects) {
  Value v = parse(R"( {"a": 1, "b": [true, false, null], "c": "x\ny", "d": -2.5e2} )");
  ASSERT_TRUE(v.is_object());
  ASSERT_NE(v.find("a"), nullptr);
  EXPECT_TRUE(v.find("a")->is_integer());
  EXPECT_EQ(v.find("a")->as_integer(), 1);
  ASSERT_TRUE(v.find("b")->is_array());
  ASSERT_EQ(v.find("b")->items().size(), 3u);
  EXPECT_TRUE(v.find("b")->items()[0].as_bool());
  EXPECT_TRUE(v.find("b")->items()[2].is_null());
  EXPECT_EQ(v.find("c")->as_string(), "x\ny");
  EXPECT_DOUBLE_EQ(v.find("d")->as_number(), -250.0);
  EXPECT_FALSE(v.find("d")->is_integer() && v.find("d")->as_integer() != -250);
  EXPECT_EQ(v.find("missing"), nullptr);
}

TEST(SagaJson, KeepsMemberOrderAndLastDuplicateWins) {
  Value v = parse(R"({"z": 1, "a": 2, "z": 3})");
  ASSERT_EQ(v.members().size(), 2u);
  EXPECT_EQ(v.members()[0].first, "z");
  EXPECT_EQ(v.find("z")->as_integer(), 3);
}

TEST(SagaJson, LargeIntegersAreExact) {
  Value v = parse("9007199254740993");
  EXPECT_TRUE(v.is_integer());
  EXPECT_EQ(v.as_integer(), 9007199254740993LL);
  EXPECT_FALSE(parse("1.5").is_integer());
  EXPECT_TRUE(parse("3.0").is_integer());
  EXPECT_FALSE(parse("1e300").is_integer());
}

TEST(SagaJson, UnicodeEscapesBecomeUtf8) {
  EXPECT_EQ(parse(R"("\u00e9\u20ac")").as_string(), "\xC3\xA9\xE2\x82\xAC");
  EXPECT_EQ(parse(R"("\ud83d\ude00")").as_string(), "\xF0\x9F\x98\x80");
  EXPECT_THROW(parse(R"("\ud83d")"), ParseError);
  EXPECT_THROW(parse(R"("\ude00")"), ParseError);
  EXPECT_THROW(parse(R"("\u0000")"), ParseError);
}

TEST(SagaJson, RejectsMalformedInputWithOffset) {
  const char* bad[] = {"",      "{",       "[1,]",  "{\"a\" 1}", "{'a': 1}", "01",  "1.",       "-", "tru",
                       "\"abc", "\"\\x\"", "[1 2]", "{} {}",     "\"a\tb\"", "nul", "{\"a\":}", "1e"};
  for (const char* text : bad) {
    EXPECT_THROW(parse(text), ParseError) << "input: " << text;
  }
  try {
    parse("[1, 2, ?]");
    FAIL() << "no error";
  } catch (const ParseError& e) {
    EXPECT_EQ(e.offset(), 7u);
    EXPECT_NE(std::string(e.what()).find("offset 7"), std::string::npos);
  }
}

TEST(SagaJson, DeepNestingIsRefusedNotRecursed) {
  std::string deep(100000, '[');
  EXPECT_THROW(parse(deep), ParseError);
  std::string ok = std::string(10, '[') + std::string(10, ']');
  EXPECT_NO_THROW(parse(ok));
  EXPECT_THROW(parse(std::string(65, '[') + std::string(65, ']')), ParseError);
}

TEST(SagaJson, DumpRoundTrips) {
  Value v = Value::object()
                .set("s", Value::string("q\"uote\\ \x01"))
                .set("n", Value::integer(-42))
                .set("f", Value::number(0.5))
                .set("a", Value::array().push(Value::boolean(true)).push(Value::null()));
  std::string text = v.dump();
  EXPECT_EQ(text, R"({"s": "q\"uote\\ \u0001", "n": -42, "f": 0.5, "a": [true, null]})");
  Value back = parse(text);
  EXPECT_EQ(back.dump(), text);
}

TEST(SagaJson, SetReplacesExistingKey) {
  Value v = Value::object().set("a", Value::integer(1)).set("a", Value::integer(2));
  EXPECT_EQ(v.members().size(), 1u);
  EXPECT_EQ(v.find("a")->as_integer(), 2);
}
