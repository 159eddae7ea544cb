// Where a CLI command is carried out: in this process, on the store the policy names (the
// default), or by a running `airlock serve` (`--server URL` or AIRLOCK_SERVER). Both give the
// same outcomes, so every command prints the same thing and exits with the same code either
// way.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "audit/audit.h"
#include "core/status.h"
#include "gateway/gateway.h"

namespace airlock::cli {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Outcome Submit(const SubmitRequest& request) = 0;
  virtual Outcome Vote(const std::string& id, bool approve, const std::string& reason) = 0;
  virtual Outcome Rollback(const std::string& id, const std::string& reason) = 0;
  virtual Outcome Show(const std::string& id) = 0;
  virtual Result<std::vector<Action>> Pending() = 0;
  virtual Status ResetBreaker(const std::string& target, const std::string& agent) = 0;
  virtual Result<audit::VerifyReport> VerifyAudit() = 0;
  // Events in order (only those of action_id if non-empty) until fn returns false.
  virtual Status ScanAudit(const std::string& action_id,
                           const std::function<bool(const AuditEvent&)>& fn) = 0;
};

// The gateway of this process, acting for `token` (nullopt: the local operator).
std::unique_ptr<Backend> LocalBackend(std::unique_ptr<Gateway> gateway,
                                      std::optional<std::string> token);

// A running `airlock serve` at `url` ("http://HOST:PORT"), acting for `token`. Over HTTP
// there is no operator: every request carries the token, and without one the server refuses.
Result<std::unique_ptr<Backend>> RemoteBackend(const std::string& url,
                                               std::optional<std::string> token);

}  // namespace airlock::cli
