// The small accessors of the policy struct.
#include "policy/policy.h"

namespace airlock {

int Approvals::QuorumFor(Risk r) const {
  switch (r) {
    case Risk::kRead:
      return read;
    case Risk::kLow:
      return low;
    case Risk::kHigh:
      return high;
    case Risk::kCritical:
      return critical;
  }
  return critical;  // unreachable; fail closed with the strictest quorum
}

const TargetSpec* Policy::FindTarget(const std::string& name) const {
  auto it = targets.find(name);
  return it == targets.end() ? nullptr : &it->second;
}

const AgentSpec* Policy::FindAgent(const std::string& name) const {
  for (const auto& a : agents) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

const McpServerSpec* Policy::FindMcpServer(const std::string& name) const {
  auto it = mcp_servers.find(name);
  return it == mcp_servers.end() ? nullptr : &it->second;
}

}  // namespace airlock
