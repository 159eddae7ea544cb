#include "approval/approval.h"

#include <gtest/gtest.h>

namespace airlock::approval {
namespace {

Action PendingAction(int quorum) {
  Action a;
  a.id = "act_1";
  a.agent = "support-bot";
  a.status = ActionStatus::kPending;
  a.quorum = quorum;
  return a;
}

TEST(Approval, RequesterCannotVote) {
  Action a = PendingAction(1);
  Status st = CheckVoter(a, "support-bot");
  EXPECT_EQ(st.code(), StatusCode::kPermissionDenied);
}

TEST(Approval, EachApproverVotesOnce) {
  Action a = PendingAction(2);
  a.votes.push_back({"alice", true, "", 1});
  EXPECT_EQ(CheckVoter(a, "alice").code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(CheckVoter(a, "bob").ok());
}

TEST(Approval, OnlyPendingActionsTakeVotes) {
  Action a = PendingAction(1);
  a.status = ActionStatus::kApplied;
  EXPECT_EQ(CheckVoter(a, "alice").code(), StatusCode::kFailedPrecondition);
}

TEST(Approval, CriticalNeedsTwoDistinctApprovals) {
  Action a = PendingAction(2);
  EXPECT_EQ(Count(a), Tally::kPending);
  a.votes.push_back({"alice", true, "", 1});
  EXPECT_EQ(Count(a), Tally::kPending);
  EXPECT_EQ(Progress(a), "1 of 2 approvals");
  a.votes.push_back({"bob", true, "", 2});
  EXPECT_EQ(Count(a), Tally::kApproved);
}

TEST(Approval, AnyRejectionEndsTheAction) {
  Action a = PendingAction(2);
  a.votes.push_back({"alice", true, "", 1});
  a.votes.push_back({"bob", false, "no", 2});
  EXPECT_EQ(Count(a), Tally::kRejected);
}

}  // namespace
}  // namespace airlock::approval
