#include "correlation/ids.hpp"

#include <gtest/gtest.h>

using pgc::correlation::id_problem;
using pgc::correlation::Ids;
using pgc::correlation::kMaxIdBytes;
using pgc::correlation::of_event;
using pgc::correlation::of_message;
using pgc::correlation::of_saga;
using pgc::correlation::valid_id;

TEST(IdProblem, AcceptsVisibleAscii) {
  EXPECT_TRUE(valid_id("3f1c2a4e-8d9b-4c1e-9a7f-0b1c2d3e4f50"));
  EXPECT_TRUE(valid_id("01HF8Z3QK2V6XK9J6W1T0Y7M4N"));
  EXPECT_TRUE(valid_id("orders/2/1234"));
  EXPECT_TRUE(valid_id("!~"));
  EXPECT_TRUE(valid_id(std::string(kMaxIdBytes, 'a')));
}

TEST(IdProblem, RefusesEmptyOversizedAndInvisible) {
  EXPECT_EQ(*id_problem(""), "an id must not be empty");
  EXPECT_EQ(*id_problem(std::string(kMaxIdBytes + 1, 'a')), "an id has at most 320 bytes; this one has 321");
  EXPECT_EQ(*id_problem("a b"), "byte 2 (0x20) is not a visible ASCII character");
  EXPECT_EQ(*id_problem("ab\n"), "byte 3 (0x0a) is not a visible ASCII character");
  EXPECT_EQ(*id_problem(std::string("a\0b", 3)), "byte 2 (0x00) is not a visible ASCII character");
  EXPECT_EQ(*id_problem("caf\xc3\xa9"), "byte 4 (0xc3) is not a visible ASCII character");
  EXPECT_EQ(*id_problem("\x7f"), "byte 1 (0x7f) is not a visible ASCII character");
}

TEST(OfMessage, CeIdIsTheCauseAndStartsTheConversation) {
  std::string ce = "evt-1";
  Ids ids = of_message(nullptr, &ce, "orders", 0, 7);
  EXPECT_EQ(ids.causation, "evt-1");
  EXPECT_EQ(ids.correlation, "evt-1");
}

TEST(OfMessage, IncomingCorrelationIsKept) {
  std::string ce = "evt-2", corr = "req-9";
  Ids ids = of_message(&corr, &ce, "orders", 0, 7);
  EXPECT_EQ(ids.causation, "evt-2");
  EXPECT_EQ(ids.correlation, "req-9");
}

TEST(OfMessage, WithoutUsableCeIdTheCoordinatesAreTheId) {
  Ids none = of_message(nullptr, nullptr, "orders.v1", 2, 1234);
  EXPECT_EQ(none.causation, "orders.v1/2/1234");
  EXPECT_EQ(none.correlation, "orders.v1/2/1234");
  std::string bad_ce = "has space", bad_corr(kMaxIdBytes + 1, 'x');
  Ids bad = of_message(&bad_corr, &bad_ce, "t", 0, 0);
  EXPECT_EQ(bad.causation, "t/0/0") << "an invalid ce_id is not passed on";
  EXPECT_EQ(bad.correlation, "t/0/0") << "nor an invalid correlation_id";
  std::string good_corr = "req-1";
  EXPECT_EQ(of_message(&good_corr, nullptr, "t", 1, 2).correlation, "req-1");
}

TEST(OfMessage, LongestTopicStillFits) {
  std::string topic(249, 't');
  Ids ids = of_message(nullptr, nullptr, topic, 2147483647, 9223372036854775807LL);
  EXPECT_EQ(ids.causation, topic + "/2147483647/9223372036854775807");
  EXPECT_TRUE(valid_id(ids.causation));
}

TEST(OfEvent, MetadataCorrelationElseEventId) {
  const char* id = "0b6a3c9e-1111-4222-8333-944455556666";
  Ids fresh = of_event("", id);
  EXPECT_EQ(fresh.causation, id);
  EXPECT_EQ(fresh.correlation, id);
  Ids inherited = of_event("req-7", id);
  EXPECT_EQ(inherited.causation, id);
  EXPECT_EQ(inherited.correlation, "req-7");
  EXPECT_EQ(of_event("not valid", id).correlation, id) << "an invalid metadata value is not passed on";
}

TEST(OfSaga, StoredCorrelationElseSagaId) {
  const char* saga = "5d1e6f70-aaaa-4bbb-8ccc-dddddddddddd";
  Ids started_in = of_saga("req-3", saga);
  EXPECT_EQ(started_in.correlation, "req-3");
  EXPECT_EQ(started_in.causation, saga);
  Ids root = of_saga("", saga);
  EXPECT_EQ(root.correlation, saga);
  EXPECT_EQ(root.causation, saga);
}
