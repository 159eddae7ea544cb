// The gateway's side of a shell target's egress proxy: the EgressGate a command's requests
// pass through while it runs (connectors/connector.h). It lives for one Submit; each request
// becomes an http action of the target, linked to the command's action.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "connectors/connector.h"
#include "gateway/claim_lock.h"
#include "gateway/gateway.h"

namespace airlock {

class GatewayEgressGate : public EgressGate {
 public:
  GatewayEgressGate(Gateway* gateway, Principal who, std::string exec_id, std::string target)
      : gateway_(gateway),
        who_(std::move(who)),
        exec_id_(std::move(exec_id)),
        target_(std::move(target)) {}

  EgressDecision Decide(const EgressRequest& request) override {
    Started started;
    EgressDecision d =
        gateway_->DecideEgress(who_, exec_id_, target_, request, &started.action, &started.claim);
    if (d.allowed) {
      std::lock_guard<std::mutex> lock(mu_);
      started_.emplace(d.action_id, std::move(started));
    }
    return d;
  }

  void Finish(const std::string& action_id, const Status& sent, const Json& result) override {
    Started s;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = started_.find(action_id);
      if (it == started_.end()) return;
      s = std::move(it->second);
      started_.erase(it);
    }
    // The claim is let go only after the outcome is recorded.
    gateway_->FinishEgress(std::move(s.action), who_, sent, result);
  }

 private:
  Gateway* const gateway_;
  const Principal who_;
  const std::string exec_id_;
  const std::string target_;
  struct Started {
    Action action;
    ClaimLock claim;
  };
  std::mutex mu_;
  std::map<std::string, Started> started_;  // GUARDED_BY(mu_): allowed, not yet finished
};

}  // namespace airlock
