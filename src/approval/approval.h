// Quorum approvals: who may vote on an action, and what the votes so far decide.
//
// Pure functions over an Action and its votes; the gateway runs them inside the store
// transaction that records the vote, so a quorum is reached exactly once.
#pragma once

#include <string>

#include "core/status.h"
#include "core/types.h"

namespace airlock::approval {

enum class Tally { kPending, kApproved, kRejected };

// Whether `approver` may vote on `action` now. Refuses: an action that is not pending, the
// requesting agent voting on its own action (never, whatever its token), and a second vote
// by the same approver.
Status CheckVoter(const Action& action, const std::string& approver);

// Any rejection ends the action; otherwise `quorum` distinct approvals approve it.
Tally Count(const Action& action);

// "1 of 2 approvals" for people.
std::string Progress(const Action& action);

}  // namespace airlock::approval
