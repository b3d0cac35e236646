#include "inbox/message.hpp"

#include <gtest/gtest.h>

#include <map>

using pgc::inbox::find_header;
using pgc::inbox::headers_json;
using pgc::inbox::Message;
using pgc::inbox::owner_process;
using pgc::inbox::unusable_reason;
using pgc::inbox::valid_text;
using pgc::relay::Header;

TEST(OwnerProcess, StableAndInRange) {
  for (int n : {1, 2, 3, 7, 16}) {
    std::map<int, int> used;
    for (int i = 0; i < 200; i++) {
      std::string name = "consumer-" + std::to_string(i);
      int p = owner_process(name, n);
      EXPECT_GE(p, 1);
      EXPECT_LE(p, n);
      EXPECT_EQ(p, owner_process(name, n)) << "the same name always maps to the same process";
      used[p]++;
    }
    EXPECT_EQ(static_cast<int>(used.size()), n) << "200 names spread over every one of " << n << " processes";
  }
  EXPECT_EQ(owner_process("x", 0), 1);
  // FNV-1a of "a" is 0xe40c292c: a fixed function, not one that changes between builds.
  EXPECT_EQ(owner_process("a", 7), static_cast<int>(0xe40c292cu % 7) + 1);
}

TEST(ValidText, Utf8WithoutNul) {
  for (const char* ok : {"", "plain", "caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"})
    EXPECT_TRUE(valid_text(ok)) << ok;
  const std::string bad[] = {std::string("a\0b", 3), "\xc3", "\xc0\xaf", "\xed\xa0\x80",
                             "\xf4\x90\x80\x80",     "\xff", "\xe2\x82"};
  for (const auto& s : bad) EXPECT_FALSE(valid_text(s)) << s;
}

TEST(HeadersJson, StringsNullsAndEscapes) {
  std::vector<Header> h = {{"ce_id", "id-1", false},
                           {"empty", "", true},
                           {"quote", "a\"b\\c\n\x01", false},
                           {"binary", std::string("\x00\xff", 2), false},
                           {std::string("\xff"), "dropped", false}};
  EXPECT_EQ(headers_json(h), R"({"ce_id":"id-1","empty":null,"quote":"a\"b\\c\n\u0001","binary":null})");
  EXPECT_EQ(headers_json({}), "{}");
}

TEST(FindHeader, LastWinsAndNullIsAbsent) {
  std::vector<Header> h = {{"ce_id", "first", false}, {"ce_id", "second", false}, {"gone", "", true}};
  ASSERT_NE(find_header(h, "ce_id"), nullptr);
  EXPECT_EQ(*find_header(h, "ce_id"), "second");
  EXPECT_EQ(find_header(h, "gone"), nullptr);
  EXPECT_EQ(find_header(h, "missing"), nullptr);
}

TEST(UnusableReason, KeyAndValueChecks) {
  Message m;
  m.key_null = false;
  m.key = "k";
  m.value_null = false;
  m.value = "{}";
  EXPECT_EQ(unusable_reason(m, false), "");
  m.value = std::string("\xff\x00", 2);
  EXPECT_NE(unusable_reason(m, false).find("CS002"), std::string::npos) << "not text for a jsonb handler";
  EXPECT_EQ(unusable_reason(m, true), "") << "a bytea handler takes any bytes";
  m.key = "\xff";
  EXPECT_NE(unusable_reason(m, true).find("key"), std::string::npos);
  m.key_null = true;
  m.value_null = true;
  EXPECT_EQ(unusable_reason(m, false), "") << "null key and value (a tombstone) are given as NULL";
}
