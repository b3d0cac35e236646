#include "twopc/decision.hpp"

#include <gtest/gtest.h>

using pgc::twopc::Action;
using pgc::twopc::decide;
using pgc::twopc::LocalStatus;
using pgc::twopc::parse_local_status;

TEST(TwopcDecision, DecisionPresentMeansCommitWhateverTheStatus) {
  for (LocalStatus s : {LocalStatus::kInProgress, LocalStatus::kCommitted, LocalStatus::kAborted,
                        LocalStatus::kTooOld, LocalStatus::kUnassigned})
    EXPECT_EQ(decide(true, s), Action::kCommit);
}

TEST(TwopcDecision, FinishedWithoutDecisionMeansRollback) {
  EXPECT_EQ(decide(false, LocalStatus::kAborted), Action::kRollback);
  EXPECT_EQ(decide(false, LocalStatus::kTooOld), Action::kRollback);
  // Lost in a crash before any WAL reached disk: the xid will be handed out again.
  EXPECT_EQ(decide(false, LocalStatus::kUnassigned), Action::kRollback);
}

TEST(TwopcDecision, StillRunningMeansLeave) {
  EXPECT_EQ(decide(false, LocalStatus::kInProgress), Action::kLeave);
}

TEST(TwopcDecision, CommittedWithoutDecisionForThisParticipantIsRollback) {
  // A reused xid whose new transaction committed elsewhere does not decide for the gid
  // an earlier, crashed transaction left on this participant.
  EXPECT_EQ(decide(false, LocalStatus::kCommitted), Action::kRollback);
}

TEST(TwopcDecision, ParsesPgXactStatus) {
  EXPECT_EQ(parse_local_status("in progress", false), LocalStatus::kInProgress);
  EXPECT_EQ(parse_local_status("committed", false), LocalStatus::kCommitted);
  EXPECT_EQ(parse_local_status("aborted", false), LocalStatus::kAborted);
  EXPECT_EQ(parse_local_status(nullptr, false), LocalStatus::kTooOld);
  EXPECT_EQ(parse_local_status(nullptr, true), LocalStatus::kUnassigned);
  EXPECT_EQ(parse_local_status("aborted", true), LocalStatus::kUnassigned);
  EXPECT_EQ(parse_local_status("something else", false), LocalStatus::kAborted);
}

TEST(TwopcDecision, Labels) {
  EXPECT_STREQ(pgc::twopc::decision_label(Action::kCommit), "commit");
  EXPECT_STREQ(pgc::twopc::decision_label(Action::kRollback), "rollback");
  EXPECT_STREQ(pgc::twopc::decision_label(Action::kLeave), "pending");
  EXPECT_STREQ(pgc::twopc::action_name(Action::kLeave), "leave");
}
