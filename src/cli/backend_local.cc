#include "cli/backend.h"

namespace airlock::cli {
namespace {

class Local final : public Backend {
 public:
  Local(std::unique_ptr<Gateway> g, std::optional<std::string> token)
      : g_(std::move(g)), token_(std::move(token)) {}
  Outcome Submit(const SubmitRequest& r) override { return g_->Submit(token_, r); }
  Outcome Vote(const std::string& id, bool approve, const std::string& reason) override {
    return g_->Vote(token_, id, approve, reason);
  }
  Outcome Rollback(const std::string& id, const std::string& reason) override {
    return g_->Rollback(token_, id, reason);
  }
  Outcome Show(const std::string& id) override { return g_->Show(token_, id); }
  Result<std::vector<Action>> Pending() override { return g_->Pending(token_); }
  Status ResetBreaker(const std::string& target, const std::string& agent) override {
    return g_->ResetBreaker(token_, target, agent);
  }
  Result<audit::VerifyReport> VerifyAudit() override { return g_->VerifyAudit(); }
  Status ScanAudit(const std::string& action_id,
                   const std::function<bool(const AuditEvent&)>& fn) override {
    return g_->ScanAudit(token_, action_id, fn);
  }

 private:
  std::unique_ptr<Gateway> g_;
  std::optional<std::string> token_;
};

}  // namespace

std::unique_ptr<Backend> LocalBackend(std::unique_ptr<Gateway> gateway,
                                      std::optional<std::string> token) {
  return std::make_unique<Local>(std::move(gateway), std::move(token));
}

}  // namespace airlock::cli
