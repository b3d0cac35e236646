#include "twopc/gid.hpp"

#include <gtest/gtest.h>

using pgc::twopc::format_gid;
using pgc::twopc::Gid;
using pgc::twopc::gid_prefix;
using pgc::twopc::parse_gid;

TEST(TwopcGid, FormatNamesCoordinatorTransactionAndParticipant) {
  Gid g{7311234567890123456ULL, 16384, 4294967296ULL + 750, 3};
  EXPECT_EQ(format_gid(g), "pgc_7311234567890123456_16384_4294968046_3");
  EXPECT_EQ(gid_prefix(7311234567890123456ULL, 16384), "pgc_7311234567890123456_16384_");
}

TEST(TwopcGid, RoundTripsAtTheLimits) {
  for (Gid g :
       {Gid{0, 0, 0, 1}, Gid{18446744073709551615ULL, 4294967295U, 18446744073709551615ULL, 2147483647},
        Gid{1, 5, 742, 12}}) {
    std::string s = format_gid(g);
    EXPECT_LE(s.size(), pgc::twopc::kMaxGidLength);
    auto back = parse_gid(s);
    ASSERT_TRUE(back.has_value()) << s;
    EXPECT_EQ(*back, g) << s;
  }
}

TEST(TwopcGid, RejectsOtherGidsAndMalformedNumbers) {
  for (const char* s : {"", "pgc_", "pgc_1_2_3", "pgc_1_2_3_", "pgc_1_2_3_4_5", "citus_1_2_3_4",
                        "PGC_1_2_3_4", "pgc_1_2_3_0", "pgc_01_2_3_4", "pgc_1_02_3_4", "pgc_1_2_-3_4",
                        "pgc_1_2_3_4 ", " pgc_1_2_3_4", "pgc_1__3_4", "pgc_1_2_3_x", "pgc_1_2_3_+4"}) {
    EXPECT_FALSE(parse_gid(s).has_value()) << "'" << s << "'";
  }
}

TEST(TwopcGid, RejectsOverflow) {
  EXPECT_FALSE(parse_gid("pgc_18446744073709551616_1_1_1").has_value());  // sysid > 2^64-1
  EXPECT_FALSE(parse_gid("pgc_1_4294967296_1_1").has_value());            // oid > 2^32-1
  EXPECT_FALSE(parse_gid("pgc_1_1_18446744073709551616_1").has_value());  // xid > 2^64-1
  EXPECT_FALSE(parse_gid("pgc_1_1_1_2147483648").has_value());            // id > int32
  EXPECT_FALSE(parse_gid("pgc_1_1_1_99999999999999999999999").has_value());
}

TEST(TwopcGid, PrefixSelectsOneCoordinatorDatabase) {
  std::string a = format_gid(Gid{42, 16384, 900, 1});
  std::string b = format_gid(Gid{42, 163840, 900, 1});
  std::string p = gid_prefix(42, 16384);
  EXPECT_EQ(a.rfind(p, 0), 0u);
  EXPECT_NE(b.rfind(p, 0), 0u);  // the trailing '_' keeps 16384 from matching 163840
}
