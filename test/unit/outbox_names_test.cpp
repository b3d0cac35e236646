#include "outbox/names.hpp"

#include <gtest/gtest.h>

using pgc::outbox::category_problem;
using pgc::outbox::header_name_problem;
using pgc::outbox::stream_category;
using pgc::outbox::topic_name_problem;

TEST(TopicName, AcceptsKafkaNames) {
  for (const char* t : {"orders", "orders.v1", "a", "A-b_c.9", "__consumer_like", "..."})
    EXPECT_FALSE(topic_name_problem(t).has_value()) << t;
  EXPECT_FALSE(topic_name_problem(std::string(249, 'x')).has_value());
}

TEST(TopicName, RefusesWithReason) {
  auto p = topic_name_problem("");
  ASSERT_TRUE(p);
  EXPECT_NE(p->find("empty"), std::string::npos);

  p = topic_name_problem(std::string(250, 'x'));
  ASSERT_TRUE(p);
  EXPECT_NE(p->find("250"), std::string::npos);

  p = topic_name_problem("orders/eu");
  ASSERT_TRUE(p);
  EXPECT_NE(p->find("'/'"), std::string::npos) << *p;

  p = topic_name_problem("bad topic");
  ASSERT_TRUE(p);
  EXPECT_NE(p->find("' '"), std::string::npos) << *p;

  p = topic_name_problem("caf\xc3\xa9");
  ASSERT_TRUE(p);
  EXPECT_NE(p->find("0xc3"), std::string::npos) << *p;

  EXPECT_TRUE(topic_name_problem("."));
  EXPECT_TRUE(topic_name_problem(".."));
  EXPECT_TRUE(topic_name_problem(std::string("a\0b", 3)));
}

TEST(Category, Rules) {
  EXPECT_FALSE(category_problem("order").has_value());
  EXPECT_FALSE(category_problem("Order_Items").has_value());
  EXPECT_TRUE(category_problem(""));
  EXPECT_TRUE(category_problem("order-1"));
  EXPECT_TRUE(category_problem(std::string(201, 'c')));
  EXPECT_TRUE(category_problem("a\tb"));
}

TEST(Category, OfStream) {
  EXPECT_EQ(stream_category("order-42"), "order");
  EXPECT_EQ(stream_category("order-42-x"), "order");
  EXPECT_EQ(stream_category("standalone"), "standalone");
  EXPECT_EQ(stream_category("-x"), "");
}

TEST(HeaderName, Rules) {
  EXPECT_FALSE(header_name_problem("trace-id").has_value());
  EXPECT_TRUE(header_name_problem(""));
  EXPECT_TRUE(header_name_problem(std::string(256, 'h')));
  EXPECT_TRUE(header_name_problem(std::string("a\0b", 3)));
}
