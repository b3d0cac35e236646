// The relay's keys must land where a Java producer puts them: murmur2 as in
// org.apache.kafka.common.utils.Utils and toPositive(hash) % partitions.
#include "relay/murmur2.hpp"

#include <string>

#include <gtest/gtest.h>

using pgc::relay::java_partition;
using pgc::relay::murmur2;

// Expected values from Kafka's own UtilsTest.testMurmur2 (clients module).
TEST(Murmur2, MatchesKafkaJavaTestVectors) {
  EXPECT_EQ(murmur2("21"), -973932308);
  EXPECT_EQ(murmur2("foobar"), -790332482);
  EXPECT_EQ(murmur2("a-little-bit-long-string"), -985981536);
  EXPECT_EQ(murmur2("a-little-bit-longer-string"), -1486304829);
  EXPECT_EQ(murmur2("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
  const char abc[] = {'a', 'b', 'c'};
  EXPECT_EQ(murmur2(abc, sizeof abc), 479470107);
}

// Short keys exercise every tail length (1, 2, 3 bytes) and a whole block.
TEST(Murmur2, TailLengths) {
  EXPECT_EQ(murmur2("1"), -1993445489);
  EXPECT_EQ(murmur2("12"), 126087238);
  EXPECT_EQ(murmur2("123"), -267702483);
  EXPECT_EQ(murmur2("1234"), -1614185708);
  EXPECT_EQ(murmur2("12345"), -1188365604);
}

TEST(Murmur2, EmptyKeyHashesLikeJava) {
  // Java hashes an empty byte array too (only a null key is spread randomly).
  EXPECT_EQ(murmur2(""), 275646681);
}

TEST(Murmur2, BytesAboveAsciiAreUnsigned) {
  // UTF-8 keys: bytes >= 0x80 must be taken as unsigned, as Java's & 0xff does.
  const unsigned char k[] = {0xc3, 0xa9, 0xff, 0x80, 0x7f};
  int32_t h1 = murmur2(k, sizeof k);
  const unsigned char k2[] = {0xc3, 0xa9, 0xff, 0x80, 0x7e};
  EXPECT_NE(h1, murmur2(k2, sizeof k2));
}

TEST(JavaPartition, PositiveModulo) {
  // toPositive(-973932308) = -973932308 & 0x7fffffff = 1173551340
  EXPECT_EQ(java_partition("21", 1), 0);
  EXPECT_EQ(java_partition("21", 7), 1173551340 % 7);
  EXPECT_EQ(java_partition("foobar", 12), (static_cast<uint32_t>(-790332482) & 0x7fffffffu) % 12);
  EXPECT_EQ(java_partition("abc", 3), 479470107 % 3);
  // Beyond the vectors: for every count, Java's toPositive (the sign bit masked, not abs())
  // of the hash, modulo the count -- a range check alone would pass a wrong formula.
  for (int p = 1; p < 50; p++) {
    std::string key = "order-" + std::to_string(p);
    int32_t got = java_partition(key, p);
    uint32_t positive = static_cast<uint32_t>(murmur2(key)) & 0x7fffffffu;
    EXPECT_EQ(got, static_cast<int32_t>(positive % static_cast<uint32_t>(p))) << key;
    EXPECT_GE(got, 0);
    EXPECT_LT(got, p);
  }
}

TEST(JavaPartition, RefusesNonPositiveCounts) {
  EXPECT_EQ(java_partition("x", 0), -1);
  EXPECT_EQ(java_partition("x", -3), -1);
}
