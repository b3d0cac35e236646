#include "inbox/hard_stop_label.hpp"

#include <gtest/gtest.h>

using pgc::inbox::hard_stop_label;
using pgc::inbox::hard_stop_prefix;
using pgc::inbox::parse_hard_stop_label;
using pgc::inbox::partition_key;
using pgc::inbox::StoppedMessage;

TEST(HardStopLabel, RoundTrip) {
  std::string label = hard_stop_label(2, "orders-in", "orders", 3, 9000000000LL);
  EXPECT_EQ(label.rfind(hard_stop_prefix(2), 0), 0u) << label;
  StoppedMessage m;
  ASSERT_TRUE(parse_hard_stop_label(label, &m)) << label;
  EXPECT_EQ(m.process, 2);
  EXPECT_EQ(m.key, partition_key("orders-in", "orders"));
  EXPECT_EQ(m.partition, 3);
  EXPECT_EQ(m.offset, 9000000000LL);
  EXPECT_NE(label.find("consumer \"orders-in\" topic orders"), std::string::npos) << "names for the log";
}

TEST(HardStopLabel, ParsedPartSurvivesCutNames) {
  // The shared ring keeps 255 bytes: long names are cut, the fields before them are not.
  std::string label = hard_stop_label(1, std::string(300, 'c'), std::string(249, 't'), 0, 7).substr(0, 255);
  StoppedMessage m;
  ASSERT_TRUE(parse_hard_stop_label(label, &m));
  EXPECT_EQ(m.key, partition_key(std::string(300, 'c'), std::string(249, 't')));
  EXPECT_EQ(m.offset, 7);
}

TEST(HardStopLabel, KeySeparatesConsumerFromTopic) {
  EXPECT_NE(partition_key("ab", "c"), partition_key("a", "bc"));
  EXPECT_EQ(partition_key("a", "b"), partition_key("a", "b"));
}

TEST(HardStopLabel, OthersRefused) {
  StoppedMessage m;
  for (const char* bad :
       {"subscription:x", "saga:1:2", "consumer:", "consumer:1:zz:0:1:", "consumer:0:00:0:1:",
        "consumer:1:00:-1:1:", "consumer:1:00:0:", "consumer:1:00:0:1"})
    EXPECT_FALSE(parse_hard_stop_label(bad, &m)) << bad;
}
