#include "twopc/savepoints.hpp"

#include <gtest/gtest.h>

using pgc::twopc::SavepointTracker;
using Kind = SavepointTracker::UndoKind;

TEST(TwopcSavepoints, FirstStatementBegins) {
  SavepointTracker t;
  auto p = t.before_statement(1);
  EXPECT_TRUE(p.begin);
  EXPECT_TRUE(p.savepoint.empty());
  p = t.before_statement(1);
  EXPECT_FALSE(p.begin);
  EXPECT_TRUE(p.savepoint.empty());
  EXPECT_TRUE(t.open());
}

TEST(TwopcSavepoints, DeeperStatementSetsSavepointAndRollbackReturnsToIt) {
  SavepointTracker t;
  t.before_statement(1);
  auto p = t.before_statement(2);
  ASSERT_FALSE(p.savepoint.empty());
  EXPECT_FALSE(p.begin);
  EXPECT_TRUE(t.before_statement(2).savepoint.empty());  // one mark per level
  auto u = t.on_subabort(2);
  EXPECT_EQ(u.kind, Kind::kRollbackTo);
  EXPECT_EQ(u.savepoint, p.savepoint);
  EXPECT_TRUE(t.open());
  // A sibling subtransaction gets a new mark.
  auto p2 = t.before_statement(2);
  EXPECT_FALSE(p2.savepoint.empty());
  EXPECT_NE(p2.savepoint, p.savepoint);
}

TEST(TwopcSavepoints, RollbackOfOpeningLevelRollsBackEverything) {
  SavepointTracker t;
  t.before_statement(3);  // first used inside a subtransaction
  t.before_statement(4);
  EXPECT_EQ(t.on_subabort(4).kind, Kind::kRollbackTo);
  auto u = t.on_subabort(3);
  EXPECT_EQ(u.kind, Kind::kRollbackAll);
  EXPECT_FALSE(t.open());
  EXPECT_TRUE(t.before_statement(1).begin);
}

TEST(TwopcSavepoints, SubtransactionWithoutRemoteWorkNeedsNothing) {
  SavepointTracker t;
  t.before_statement(1);
  EXPECT_EQ(t.on_subabort(2).kind, Kind::kNothing);
  t.on_subcommit(2);
  EXPECT_EQ(t.depth(), 0u);
}

TEST(TwopcSavepoints, CommittedChildMarkMovesToParent) {
  // Remote opened at level 1; work first happens at level 3 (levels 2 and 3 are open).
  SavepointTracker t;
  t.before_statement(1);
  auto p = t.before_statement(3);
  t.on_subcommit(3);  // level 3's work now belongs to level 2
  EXPECT_EQ(t.depth(), 1u);
  auto u = t.on_subabort(2);  // so rolling back level 2 undoes it
  EXPECT_EQ(u.kind, Kind::kRollbackTo);
  EXPECT_EQ(u.savepoint, p.savepoint);
}

TEST(TwopcSavepoints, CommittedChildMarkMergesIntoParentMark) {
  SavepointTracker t;
  t.before_statement(1);
  auto p2 = t.before_statement(2);
  t.before_statement(3);
  t.on_subcommit(3);  // level 2 already has an earlier mark: the child's is redundant
  EXPECT_EQ(t.depth(), 1u);
  auto u = t.on_subabort(2);
  EXPECT_EQ(u.kind, Kind::kRollbackTo);
  EXPECT_EQ(u.savepoint, p2.savepoint);
}

TEST(TwopcSavepoints, CommitOfOpeningLevelHandsTransactionToParent) {
  SavepointTracker t;
  t.before_statement(2);
  t.on_subcommit(2);
  EXPECT_TRUE(t.open());
  EXPECT_EQ(t.opened_level(), 1);
  EXPECT_EQ(t.on_subabort(2).kind, Kind::kNothing);  // a later sibling
  t.before_statement(2);
  EXPECT_EQ(t.on_subabort(2).kind, Kind::kRollbackTo);
}

TEST(TwopcSavepoints, CommitOfOpeningLevelAboveParentThenParentAbort) {
  // Opened at level 3, committed into level 2, level 2 aborts: everything goes.
  SavepointTracker t;
  t.before_statement(3);
  t.on_subcommit(3);
  EXPECT_EQ(t.opened_level(), 2);
  EXPECT_EQ(t.on_subabort(2).kind, Kind::kRollbackAll);
  EXPECT_FALSE(t.open());
}
