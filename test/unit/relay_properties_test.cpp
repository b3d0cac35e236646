#include "relay/properties.hpp"

#include <gtest/gtest.h>

using pgc::relay::is_reserved_property;
using pgc::relay::parse_properties;
using pgc::relay::Properties;

TEST(KafkaProperties, EmptyIsFine) {
  Properties p{{"x", "y"}};
  std::string err;
  ASSERT_TRUE(parse_properties("", &p, &err));
  EXPECT_TRUE(p.empty());
  ASSERT_TRUE(parse_properties(" ; \n ;", &p, &err));
  EXPECT_TRUE(p.empty());
}

TEST(KafkaProperties, ParsesEntriesTrimmedInOrder) {
  Properties p;
  std::string err;
  ASSERT_TRUE(parse_properties(" linger.ms = 5 ;compression.codec=lz4\nsasl.password= a=b== ", &p, &err))
      << err;
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0], (std::pair<std::string, std::string>{"linger.ms", "5"}));
  EXPECT_EQ(p[1], (std::pair<std::string, std::string>{"compression.codec", "lz4"}));
  EXPECT_EQ(p[2], (std::pair<std::string, std::string>{"sasl.password", "a=b=="}))
      << "a value may contain '='";
}

TEST(KafkaProperties, EmptyValueAllowed) {
  Properties p;
  std::string err;
  ASSERT_TRUE(parse_properties("ssl.ca.location=", &p, &err));
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].second, "");
}

TEST(KafkaProperties, ErrorsNeverShowValues) {
  Properties p;
  std::string err;
  EXPECT_FALSE(parse_properties("linger.ms=5;s3cr3t-without-equals", &p, &err));
  EXPECT_NE(err.find("entry 2"), std::string::npos) << err;
  EXPECT_EQ(err.find("s3cr3t"), std::string::npos) << "the entry text may be a secret: " << err;

  EXPECT_FALSE(parse_properties("=s3cr3t", &p, &err));
  EXPECT_NE(err.find("empty name"), std::string::npos);
  EXPECT_EQ(err.find("s3cr3t"), std::string::npos);

  EXPECT_FALSE(parse_properties("bad name=s3cr3t", &p, &err));
  EXPECT_NE(err.find("invalid property name"), std::string::npos);
  EXPECT_EQ(err.find("s3cr3t"), std::string::npos);
}

TEST(KafkaProperties, RelayOwnedSettingsRefused) {
  Properties p;
  std::string err;
  for (const char* name : {"bootstrap.servers", "transactional.id", "enable.idempotence", "partitioner",
                           "metadata.broker.list"}) {
    EXPECT_TRUE(is_reserved_property(name)) << name;
    EXPECT_FALSE(parse_properties(std::string(name) + "=x", &p, &err)) << name;
    EXPECT_NE(err.find(name), std::string::npos) << err;
  }
  EXPECT_FALSE(is_reserved_property("linger.ms"));
  EXPECT_FALSE(is_reserved_property("security.protocol"));
}
