#include "approval/approval.h"

namespace airlock::approval {

Status CheckVoter(const Action& action, const std::string& approver) {
  if (action.status != ActionStatus::kPending) {
    return Status::FailedPrecondition(action.id + " is " + ActionStatusName(action.status) +
                                      ", not pending: votes are closed");
  }
  if (approver == action.agent) {
    return Status::PermissionDenied(approver + " requested " + action.id +
                                    " and cannot vote on it");
  }
  for (const auto& v : action.votes) {
    if (v.approver == approver) {
      return Status::FailedPrecondition(approver + " already voted on " + action.id);
    }
  }
  return Status::Ok();
}

Tally Count(const Action& action) {
  int approvals = 0;
  for (const auto& v : action.votes) {
    if (!v.approve) return Tally::kRejected;
    ++approvals;
  }
  return approvals >= action.quorum ? Tally::kApproved : Tally::kPending;
}

std::string Progress(const Action& action) {
  int approvals = 0;
  for (const auto& v : action.votes) approvals += v.approve ? 1 : 0;
  return std::to_string(approvals) + " of " + std::to_string(action.quorum) +
         (action.quorum == 1 ? " approval" : " approvals");
}

}  // namespace airlock::approval
