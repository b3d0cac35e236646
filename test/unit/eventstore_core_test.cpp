#include "eventstore/core.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace pgc::eventstore;

namespace {

// A validation (a problem text, or nothing) accepts every name of `accepted` and refuses
// every name of `refused`.
template <typename Problem>
void expect_accepts_and_refuses(Problem problem, std::initializer_list<std::string> accepted,
                                std::initializer_list<std::string> refused) {
  for (const std::string& name : accepted) EXPECT_FALSE(problem(name)) << name;
  for (const std::string& name : refused) EXPECT_TRUE(problem(name)) << name;
}

}  // namespace

TEST(EventstoreStreamName, AcceptsOrdinaryNames) {
  expect_accepts_and_refuses([](const std::string& s) { return stream_name_problem(s, true); },
                             {"order-42", "x", "Bestellung-größe-ü", std::string(1000, 'a')}, {});
}

TEST(EventstoreStreamName, RejectsEmptyLongAndControlCharacters) {
  auto empty = stream_name_problem("", true);
  ASSERT_TRUE(empty);
  EXPECT_NE(empty->find("must not be empty"), std::string::npos);

  auto long_name = stream_name_problem(std::string(1001, 'a'), true);
  ASSERT_TRUE(long_name);
  EXPECT_NE(long_name->find("1001 bytes"), std::string::npos);
  EXPECT_NE(long_name->find("limit is 1000"), std::string::npos);

  auto nl = stream_name_problem("order\n1", true);
  ASSERT_TRUE(nl);
  EXPECT_NE(nl->find("U+000A"), std::string::npos);
  EXPECT_NE(nl->find("byte 6"), std::string::npos);

  expect_accepts_and_refuses([](const std::string& s) { return stream_name_problem(s, true); }, {},
                             {std::string("a\0b", 3), "tab\there", "del\x7f"});
  // U+0085 (NEXT LINE) is a C1 control in UTF-8, but a letter in other encodings.
  EXPECT_TRUE(stream_name_problem("a\xC2\x85z", true));
  EXPECT_FALSE(stream_name_problem("a\xC2\x85z", false));
  // U+00A0 follows the C1 range and is allowed.
  EXPECT_FALSE(stream_name_problem("a\xC2\xA0z", true));
}

TEST(EventstoreStreamName, LongNameInMessageIsTruncatedOnCharacterBoundary) {
  std::string name(998, 'a');
  name += "\xC3\xA9\xC3\xA9";  // 1002 bytes, ends with two 2-byte characters
  auto p = stream_name_problem(name, true);
  ASSERT_TRUE(p);
  EXPECT_LT(p->size(), 200u);
  EXPECT_NE(p->find("..."), std::string::npos);
}

TEST(EventstoreCategory, TextBeforeFirstDash) {
  EXPECT_EQ(category_of("order-42"), "order");
  EXPECT_EQ(category_of("order-42-a"), "order");
  EXPECT_EQ(category_of("standalone"), "standalone");
  EXPECT_EQ(category_of("-x"), "");
  EXPECT_EQ(category_of("saga-3b1c"), "saga");
}

TEST(EventstoreCategory, FilterValidation) {
  expect_accepts_and_refuses([](const std::string& s) { return category_problem(s, true); }, {"order", ""},
                             {"order-1", "a\tb", std::string(1001, 'c')});
}

TEST(EventstoreEventType, Validation) {
  expect_accepts_and_refuses([](const std::string& s) { return event_type_problem(s, true); },
                             {"OrderPlaced", "order.placed.v2"}, {"", "a\nb", std::string(1001, 't')});
}

TEST(EventstoreExpected, Semantics) {
  Expected any{true, 0};
  Expected none{false, 0};
  Expected five{false, 5};
  EXPECT_TRUE(expected_matches(any, 0));
  EXPECT_TRUE(expected_matches(any, 17));
  EXPECT_TRUE(expected_matches(none, 0));
  EXPECT_FALSE(expected_matches(none, 1));
  EXPECT_TRUE(expected_matches(five, 5));
  EXPECT_FALSE(expected_matches(five, 4));
  EXPECT_FALSE(expected_matches(five, 6));
  EXPECT_FALSE(expected_version_problem(any));
  EXPECT_FALSE(expected_version_problem(none));
  EXPECT_FALSE(expected_version_problem(five));
  EXPECT_TRUE(expected_version_problem(Expected{false, -1}));
  EXPECT_EQ(describe_expected(any), "any version");
  EXPECT_EQ(describe_expected(none), "no stream (version 0)");
  EXPECT_EQ(describe_expected(five), "version 5");
}

TEST(EventstoreIdempotency, NothingFoundProceeds) {
  auto d = decide_idempotency({true, true}, {});
  EXPECT_EQ(d.outcome, Idempotency::kProceed);
}

TEST(EventstoreIdempotency, SameIdsSameOrderSameContentIsNoOp) {
  auto d = decide_idempotency({true, true, true}, {{2, 9, true}, {0, 7, true}, {1, 8, true}});
  EXPECT_EQ(d.outcome, Idempotency::kAlreadyAppended);
  EXPECT_EQ(d.version, 9);
}

TEST(EventstoreIdempotency, SingleEventRepeat) {
  auto d = decide_idempotency({true}, {{0, 1, true}});
  EXPECT_EQ(d.outcome, Idempotency::kAlreadyAppended);
  EXPECT_EQ(d.version, 1);
}

TEST(EventstoreIdempotency, ClashCases) {
  // Different content.
  auto content = decide_idempotency({true}, {{0, 3, false}});
  EXPECT_EQ(content.outcome, Idempotency::kClash);
  EXPECT_NE(content.reason.find("different"), std::string::npos);
  // Partial overlap.
  auto partial = decide_idempotency({true, true}, {{0, 3, true}});
  EXPECT_EQ(partial.outcome, Idempotency::kClash);
  EXPECT_NE(partial.reason.find("1 of the 2"), std::string::npos);
  // Other order.
  auto order = decide_idempotency({true, true}, {{0, 4, true}, {1, 3, true}});
  EXPECT_EQ(order.outcome, Idempotency::kClash);
  // Not consecutive.
  auto gap = decide_idempotency({true, true}, {{0, 3, true}, {1, 5, true}});
  EXPECT_EQ(gap.outcome, Idempotency::kClash);
  // A request event without id cannot be a repeat.
  auto no_id = decide_idempotency({true, false}, {{0, 3, true}});
  EXPECT_EQ(no_id.outcome, Idempotency::kClash);
  EXPECT_NE(no_id.reason.find("event 2 has no id"), std::string::npos);
}

TEST(EventstoreHorizon, MinimumOfSequenceAndSetSlots) {
  int64_t none[] = {0, 0, 0};
  EXPECT_EQ(read_horizon(11, none, 3), 11);
  int64_t some[] = {0, 15, 9, 0, 12};
  EXPECT_EQ(read_horizon(20, some, 5), 9);
  // A slot above the sequence's next value (published just before a reader read the
  // sequence) never raises the horizon.
  int64_t above[] = {30};
  EXPECT_EQ(read_horizon(20, above, 1), 20);
  EXPECT_EQ(read_horizon(1, nullptr, 0), 1);
}

TEST(EventstoreUpcasters, ChainRules) {
  EXPECT_FALSE(upcaster_registration_problem(1, 1));  // first link
  EXPECT_FALSE(upcaster_registration_problem(3, 3));  // extends 1->2->3 to 4
  EXPECT_FALSE(upcaster_registration_problem(2, 3));  // replaces 2->3
  auto gap = upcaster_registration_problem(3, 1);
  ASSERT_TRUE(gap);
  EXPECT_NE(gap->find("must start from 1"), std::string::npos);
  EXPECT_TRUE(upcaster_registration_problem(0, 1));
  EXPECT_TRUE(upcaster_registration_problem(-4, 1));
}

TEST(EventstoreRetry, BacksOffThenParks) {
  pgc::BackoffPolicy p{100, 10000, 2.0, 0.0};
  auto r1 = after_failure(1, 3, p, 0.5);
  EXPECT_FALSE(r1.park);
  EXPECT_EQ(r1.delay_ms, 100);
  auto r2 = after_failure(2, 3, p, 0.5);
  EXPECT_FALSE(r2.park);
  EXPECT_EQ(r2.delay_ms, 200);
  auto r3 = after_failure(3, 3, p, 0.5);
  EXPECT_TRUE(r3.park);
  EXPECT_TRUE(after_failure(1, 1, p, 0.5).park);
  EXPECT_TRUE(after_failure(7, 3, p, 0.5).park);
}

TEST(EventstoreCheckpoint, AdvancesToHorizonOnlyWhenBatchComplete) {
  EXPECT_EQ(next_checkpoint(10, 10, true, 50), 49);   // nothing matched below 50
  EXPECT_EQ(next_checkpoint(10, 25, false, 50), 25);  // batch full: stop at last handled
  EXPECT_EQ(next_checkpoint(10, 10, false, 50), 10);  // first event failed
  EXPECT_EQ(next_checkpoint(10, 30, true, 20), 30);   // never moves backwards
  EXPECT_EQ(next_checkpoint(0, 0, true, 1), 0);       // empty store
}

TEST(EventstoreUtf8, TruncateKeepsWholeCharacters) {
  EXPECT_EQ(truncate_utf8("abc", 10), "abc");
  EXPECT_EQ(truncate_utf8("abcdef", 3), "abc");
  EXPECT_EQ(truncate_utf8("a\xC3\xA9", 2), "a");
  EXPECT_EQ(truncate_utf8("a\xE2\x82\xAC"
                          "b",
                          3),
            "a");
  EXPECT_EQ(truncate_utf8("a\xE2\x82\xAC"
                          "b",
                          4),
            "a\xE2\x82\xAC");
}

TEST(EventstoreUuid, ParsesTheFormsPostgresAccepts) {
  unsigned char u[16];
  ASSERT_TRUE(parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", u));
  EXPECT_EQ(u[0], 0xa0);
  EXPECT_EQ(u[15], 0x11);
  EXPECT_TRUE(parse_uuid("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", u));
  EXPECT_TRUE(parse_uuid("{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", u));
  EXPECT_TRUE(parse_uuid("a0eebc999c0b4ef8bb6d6bb9bd380a11", u));
  EXPECT_TRUE(parse_uuid("a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11", u));
  EXPECT_EQ(u[1], 0xee);
}

TEST(EventstoreUuid, RejectsMalformed) {
  unsigned char u[16];
  EXPECT_FALSE(parse_uuid("", u));
  EXPECT_FALSE(parse_uuid("not-a-uuid", u));
  EXPECT_FALSE(parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", u));    // 31 digits
  EXPECT_FALSE(parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111", u));  // 33 digits
  EXPECT_FALSE(parse_uuid("a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11", u));
  EXPECT_FALSE(parse_uuid("-a0eebc999c0b4ef8bb6d6bb9bd380a11", u));
  EXPECT_FALSE(parse_uuid("a0eebc999c0b4ef8bb6d6bb9bd380a11-", u));
  EXPECT_FALSE(parse_uuid("{a0eebc999c0b4ef8bb6d6bb9bd380a11", u));
  EXPECT_FALSE(parse_uuid("a0eeb-c999c0b4ef8bb6d6bb9bd380a11", u));  // hyphen after 5 digits
  EXPECT_FALSE(parse_uuid("g0eebc999c0b4ef8bb6d6bb9bd380a11", u));
}

TEST(EventstoreObjectName, Validation) {
  EXPECT_FALSE(object_name_problem("subscription name", "projector", 200, true));
  auto empty = object_name_problem("subscription name", "", 200, true);
  ASSERT_TRUE(empty);
  EXPECT_EQ(*empty, "subscription name must not be empty");
  EXPECT_TRUE(object_name_problem("subscription name", std::string(201, 'n'), 200, true));
  auto ctl = object_name_problem("subscription name", "a\rb", 200, true);
  ASSERT_TRUE(ctl);
  EXPECT_NE(ctl->find("U+000D"), std::string::npos);
}

TEST(EventstoreReserved, SagaCategoryIsReserved) {
  expect_accepts_and_refuses(is_reserved_stream, {"sagas-1", "Saga-1", "order-saga-1", "-saga"},
                             {"saga-3b1c0000-0000-4000-8000-000000000001", "saga", "saga-"});
}

TEST(EventstoreClip, NamesInMessagesAreClippedOnCharacterBoundaries) {
  EXPECT_EQ(shown_name("order-1"), "order-1");
  std::string huge(100000, 's');
  std::string shown = shown_name(huge);
  EXPECT_EQ(shown.size(), kMessageNameBytes + 3);
  EXPECT_EQ(shown.substr(shown.size() - 3), "...");
  // 'x' then two-byte characters: byte 200 falls in the middle of one.
  std::string multi = "x";
  for (int i = 0; i < 300; i++) multi += "\xC3\xA9";
  std::string clipped = clip_text(multi, 200);
  EXPECT_EQ(clipped.size(), 199u);
  EXPECT_EQ(shown_name(multi), clipped + "...");
  // The database encoding's rule replaces the UTF-8 default (here: 3-byte characters).
  set_clip_rule([](std::string_view, size_t max_bytes) { return max_bytes - max_bytes % 3; });
  EXPECT_EQ(clip_text(std::string(10, 'a'), 7).size(), 6u);
  EXPECT_EQ(clip_text("abc", 7), "abc");
  set_clip_rule(nullptr);
  EXPECT_EQ(clip_text(multi, 200).size(), 199u);
  // Validation messages clip too.
  auto p = stream_name_problem(multi + std::string(1000, 'a'), true);
  ASSERT_TRUE(p);
  EXPECT_LT(p->size(), 200u);
}
