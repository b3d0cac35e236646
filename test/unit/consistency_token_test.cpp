#include "consistency/token.hpp"

#include <gtest/gtest.h>

using namespace pgc::consistency;

namespace {

Token sample() {
  Token t;
  t.system_id = 0x7312345678901234ULL;
  t.database = 16384;
  t.lsn = 0x3000148ULL;
  t.position = 42;
  return t;
}

}  // namespace

TEST(ConsistencyToken, FormatsFixedWidthLowerCaseHex) {
  std::string s = format_token(sample());
  EXPECT_EQ(s, "pgc1-7312345678901234-00004000-0000000003000148-000000000000002a");
  EXPECT_EQ(s.size(), kTokenLength);
}

TEST(ConsistencyToken, RoundTrips) {
  Token t = sample();
  t.lsn = 0xFFFFFFFFFFFFFFF0ULL;
  t.position = INT64_MAX;
  ParsedToken p = parse_token(format_token(t));
  ASSERT_TRUE(p.token.has_value()) << p.problem;
  EXPECT_EQ(p.token->system_id, t.system_id);
  EXPECT_EQ(p.token->database, t.database);
  EXPECT_EQ(p.token->lsn, t.lsn);
  EXPECT_EQ(p.token->position, t.position);
}

TEST(ConsistencyToken, RefusesMalformedText) {
  const std::string good = format_token(sample());
  struct Case {
    std::string text;
    const char* problem_part;
  } cases[] = {
      {"", "not a pg_consistency token"},
      {"hello", "not a pg_consistency token"},
      {"pgc2-" + good.substr(5), "unknown token version"},
      {good.substr(0, 63), "64 characters, not 63"},
      {good + "0", "64 characters, not 65"},
      {"pgc1-7312345678901234+00004000-0000000003000148-000000000000002a", "'-' before the database"},
      {"pgc1-7312345678901234-00004000-0000000003000148_000000000000002a", "'-' before the event position"},
      {"pgc1-731234567890123G-00004000-0000000003000148-000000000000002a", "system identifier must be"},
      {"pgc1-7312345678901234-0000400A-0000000003000148-000000000000002a", "database must be"},
      {"pgc1-7312345678901234-00004000-00000000030001 8-000000000000002a", "WAL position must be"},
      {"pgc1-7312345678901234-00004000-0000000003000148-800000000000002a", "out of range"},
      {"pgc1-0000000000000000-00004000-0000000003000148-000000000000002a", "zero"},
      {"pgc1-7312345678901234-00000000-0000000003000148-000000000000002a", "zero"},
      {"pgc1-7312345678901234-00004000-0000000000000000-000000000000002a", "zero"},
      {"pgc1-7312345678901234-00004000-0000000003000148-0000000000000000", "zero"},
  };
  for (const auto& c : cases) {
    ParsedToken p = parse_token(c.text);
    EXPECT_FALSE(p.token.has_value()) << c.text;
    EXPECT_NE(p.problem.find(c.problem_part), std::string::npos) << c.text << ": " << p.problem;
  }
}

TEST(ConsistencyToken, RefusesEmbeddedNul) {
  std::string s = format_token(sample());
  s[20] = '\0';
  EXPECT_FALSE(parse_token(s).token.has_value());
}

TEST(ConsistencyToken, CombineTakesTheLaterOfEachPart) {
  Token a = sample(), b = sample();
  a.lsn = 100;
  a.position = 9;
  b.lsn = 50;
  b.position = 20;
  Token c = combine(a, b);
  EXPECT_EQ(c.lsn, 100u);
  EXPECT_EQ(c.position, 20);
  EXPECT_TRUE(covers(c, a));
  EXPECT_TRUE(covers(c, b));
  EXPECT_FALSE(covers(a, b));
  EXPECT_FALSE(covers(b, a));
  EXPECT_TRUE(covers(a, a));
  // Commutative and idempotent: the order in which a client met the tokens is irrelevant.
  Token d = combine(b, a);
  EXPECT_EQ(format_token(c), format_token(d));
  EXPECT_EQ(format_token(combine(c, c)), format_token(c));
}

TEST(ConsistencyToken, MismatchNamesClusterOrDatabase) {
  Token a = sample(), b = sample();
  EXPECT_FALSE(mismatch(a, b).has_value());
  b.database = 5;
  EXPECT_NE(mismatch(a, b)->find("databases"), std::string::npos);
  b = sample();
  b.system_id = 1;
  EXPECT_NE(mismatch(a, b)->find("clusters"), std::string::npos);
}

TEST(ConsistencyToken, InsertEndStepsBackOverPageHeaders) {
  const uint64_t page = 8192, seg = 16 * 1024 * 1024, shorth = 24, longh = 40;
  // In the middle of a page: the insert position is the end of the last record.
  EXPECT_EQ(insert_end(0x3000148, page, seg, shorth, longh), 0x3000148u);
  // Just past a page header: the last record ended at the page boundary.
  EXPECT_EQ(insert_end(3 * page + shorth, page, seg, shorth, longh), 3 * page);
  // Just past a segment's long header.
  EXPECT_EQ(insert_end(5 * seg + longh, page, seg, shorth, longh), 5 * seg);
  // 24 bytes into a segment's first page is inside its long header: unchanged.
  EXPECT_EQ(insert_end(5 * seg + shorth, page, seg, shorth, longh), 5 * seg + shorth);
}
