#include "relay/batch.hpp"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

using namespace pgc::relay;

TEST(ErrorClass, PermanentVersusTransient) {
  EXPECT_EQ(classify_error(RD_KAFKA_RESP_ERR_NO_ERROR), ErrorClass::kNone);
  EXPECT_EQ(classify_error(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE), ErrorClass::kPermanent);
  EXPECT_EQ(classify_error(RD_KAFKA_RESP_ERR_INVALID_RECORD), ErrorClass::kPermanent);
  EXPECT_EQ(classify_error(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED), ErrorClass::kPermanent);
  EXPECT_EQ(classify_error(RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION), ErrorClass::kPermanent);
  EXPECT_EQ(classify_error(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT), ErrorClass::kTransient);
  EXPECT_EQ(classify_error(RD_KAFKA_RESP_ERR__TRANSPORT), ErrorClass::kTransient);
  EXPECT_EQ(classify_error(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN), ErrorClass::kTransient);
  EXPECT_EQ(classify_error(RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION), ErrorClass::kTransient);
  EXPECT_EQ(classify_error(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART), ErrorClass::kTransient);
  EXPECT_EQ(classify_error(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC), ErrorClass::kPermanent)
      << "a topic still missing after the metadata wait must not block the relay";
  EXPECT_EQ(classify_error(RD_KAFKA_RESP_ERR__QUEUE_FULL), ErrorClass::kTransient);
}

TEST(Batch, AllDelivered) {
  Batch b(7);
  for (int i = 0; i < 5; i++) b.sent(b.add(100 + i, "k" + std::to_string(i % 2), false));
  EXPECT_EQ(b.outstanding(), 5u);
  EXPECT_FALSE(b.complete());
  for (size_t i = 0; i < 5; i++) b.reported(i, 0, "");
  EXPECT_TRUE(b.complete());
  EXPECT_EQ(b.delivered_ids(), (std::vector<int64_t>{100, 101, 102, 103, 104}));
  EXPECT_EQ(b.ids(), b.delivered_ids());
  EXPECT_FALSE(b.any_failed());
  EXPECT_EQ(b.number(), 7);
  EXPECT_TRUE(b.first_error().empty());
}

TEST(Batch, DuplicateReportsCountOnce) {
  Batch b;
  b.sent(b.add(1, "a", false));
  b.sent(b.add(2, "a", false));
  b.reported(0, 0, "");
  b.reported(0, 0, "");
  EXPECT_EQ(b.outstanding(), 1u);
  EXPECT_FALSE(b.complete());
}

TEST(Batch, RefusedMessageBlocksItsKeyOnly) {
  Batch b;
  size_t a1 = b.add(1, "a", false), b1 = b.add(2, "b", false), a2 = b.add(3, "a", false),
         n1 = b.add(4, "", true), n2 = b.add(5, "", true);
  ASSERT_TRUE(b.may_send(a1));
  b.refused(a1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, "Message size too large");
  ASSERT_TRUE(b.may_send(b1));
  b.sent(b1);
  EXPECT_FALSE(b.may_send(a2)) << "a later message of key a would overtake the refused one";
  ASSERT_TRUE(b.may_send(n1));
  b.refused(n1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, "too large");
  EXPECT_TRUE(b.may_send(n2)) << "null keys have no order to keep";
  b.sent(n2);
  b.reported(b1, 0, "");
  b.reported(n2, 0, "");
  EXPECT_TRUE(b.complete());
  EXPECT_EQ(b.delivered_ids(), (std::vector<int64_t>{2, 5}));
  EXPECT_EQ(b.count(Outcome::kSkipped), 1u);
  EXPECT_EQ(b.count(Outcome::kPermanent), 2u);
  auto pf = b.permanent_failures();
  ASSERT_EQ(pf.size(), 2u);
  EXPECT_EQ(pf[0].first, 1);
  EXPECT_EQ(pf[0].second, "Message size too large");
  EXPECT_EQ(b.first_error(), "outbox id 1: Message size too large");
}

TEST(Batch, FailedReportBlocksLaterSendsOfTheKey) {
  Batch b;
  size_t x1 = b.add(1, "x", false), x2 = b.add(2, "x", false);
  ASSERT_TRUE(b.may_send(x1));
  b.sent(x1);
  b.reported(x1, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, "Local: Message timed out");
  EXPECT_FALSE(b.may_send(x2));
  EXPECT_EQ(b.count(Outcome::kTransient), 1u);
  EXPECT_TRUE(b.permanent_failures().empty()) << "a timeout counts no attempt";
}

TEST(Batch, AbortAllKeepsPermanentFailures) {
  Batch b(3);
  size_t i0 = b.add(10, "a", false), i1 = b.add(11, "b", false), i2 = b.add(12, "c", false);
  b.sent(i0);
  b.reported(i0, 0, "");
  b.refused(i1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, "too large");
  b.sent(i2);
  b.abort_all(Outcome::kSkipped, "aborted");
  EXPECT_TRUE(b.complete());
  EXPECT_TRUE(b.delivered_ids().empty()) << "nothing of an aborted transaction is delivered";
  EXPECT_EQ(b.count(Outcome::kPermanent), 1u);
  EXPECT_EQ(b.count(Outcome::kSkipped), 2u);
  b.reported(i2, 0, "");  // a late report changes nothing
  EXPECT_TRUE(b.delivered_ids().empty());

  Batch t(4);
  t.sent(t.add(1, "a", false));
  t.abort_all(Outcome::kTransient, "commit failed");
  EXPECT_EQ(t.count(Outcome::kTransient), 1u);
  EXPECT_TRUE(t.any_failed());
}

TEST(Progress, RoundTrip) {
  EXPECT_EQ(encode_progress(42, 1000), "{\"batch\":42,\"messages\":1000}");
  EXPECT_EQ(decode_progress(encode_progress(42, 1000)), 42);
  EXPECT_EQ(decode_progress(encode_progress(9007199254740993LL, 1)), 9007199254740993LL);
  EXPECT_EQ(decode_progress("{\"batch\": 7}"), 7);
  EXPECT_FALSE(decode_progress("{}"));
  EXPECT_FALSE(decode_progress("{\"batch\":}"));
  EXPECT_FALSE(decode_progress("garbage"));
  EXPECT_FALSE(decode_progress("{\"batch\":12345678901234567890123}")) << "overflow refused";
}

TEST(Recovery, CommittedBatchIsFinalized) {
  RecoveryPlan p = plan_recovery(5, 5, 4);
  EXPECT_EQ(p.action, RecoveryPlan::Action::kFinalize);
  EXPECT_EQ(p.next_batch, 6);
  p = plan_recovery(5, 6, 4);  // cannot happen in practice, but Kafka being ahead still means committed
  EXPECT_EQ(p.action, RecoveryPlan::Action::kFinalize);
  EXPECT_EQ(p.next_batch, 7);
}

TEST(Recovery, UncommittedBatchIsDiscardedAndNeverReused) {
  RecoveryPlan p = plan_recovery(5, 4, 4);
  EXPECT_EQ(p.action, RecoveryPlan::Action::kDiscard);
  EXPECT_EQ(p.next_batch, 6) << "a fenced transaction's number is not reused";
  p = plan_recovery(1, 0, 0);  // first batch ever, progress topic empty
  EXPECT_EQ(p.action, RecoveryPlan::Action::kDiscard);
  EXPECT_EQ(p.next_batch, 2);
}

TEST(Recovery, NothingOpen) {
  RecoveryPlan p = plan_recovery(std::nullopt, 0, 0);
  EXPECT_EQ(p.action, RecoveryPlan::Action::kNothing);
  EXPECT_EQ(p.next_batch, 1);
  p = plan_recovery(std::nullopt, 10, 12);
  EXPECT_EQ(p.next_batch, 13);
  p = plan_recovery(std::nullopt, 15, 12);
  EXPECT_EQ(p.next_batch, 16);
}

TEST(Rfc3339, FormatsUtc) {
  EXPECT_EQ(format_rfc3339_utc(0), "2000-01-01T00:00:00.000000Z");
  EXPECT_EQ(format_rfc3339_utc(1), "2000-01-01T00:00:00.000001Z");
  EXPECT_EQ(format_rfc3339_utc(-1), "1999-12-31T23:59:59.999999Z");
  // 2024-02-29 12:34:56.789 UTC: 8825 days after 2000-01-01.
  int64_t t = (8825LL * 86400 + 12 * 3600 + 34 * 60 + 56) * 1000000 + 789000;
  EXPECT_EQ(format_rfc3339_utc(t), "2024-02-29T12:34:56.789000Z");
  EXPECT_EQ(format_rfc3339_utc(-946684800LL * 1000000), "1970-01-01T00:00:00.000000Z");
}

TEST(Batch, AnyFailedTracksEveryWayOfFailing) {
  Batch b;
  size_t a = b.add(1, "a", false), c = b.add(2, "c", false), d = b.add(3, "d", false);
  b.sent(a);
  b.sent(c);
  EXPECT_FALSE(b.any_failed());
  b.reported(a, 0, "");
  EXPECT_FALSE(b.any_failed());
  b.reported(c, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, "timed out");
  EXPECT_TRUE(b.any_failed());

  Batch r;
  r.refused(r.add(1, "a", false), RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, "too large");
  EXPECT_TRUE(r.any_failed());

  Batch t;
  t.sent(t.add(1, "a", false));
  t.abort_all(Outcome::kSkipped, "aborted");
  EXPECT_FALSE(t.any_failed()) << "skipped entries are not failures";
  Batch u;
  u.sent(u.add(1, "a", false));
  u.abort_all(Outcome::kTransient, "commit failed");
  EXPECT_TRUE(u.any_failed());
  (void)d;
}

TEST(Batch, LargeBatchBookkeepingIsLinear) {
  // 200,000 entries with a failure check after each produce, as the relay does.
  Batch b;
  for (int64_t i = 0; i < 200000; i++) {
    size_t k = b.add(i, "key-" + std::to_string(i % 1000), false);
    ASSERT_TRUE(b.may_send(k));
    b.sent(k);
    ASSERT_FALSE(b.any_failed());
  }
  for (size_t i = 0; i < b.size(); i++) b.reported(i, 0, "");
  EXPECT_TRUE(b.complete());
  EXPECT_EQ(b.delivered_ids().size(), 200000u);
}
