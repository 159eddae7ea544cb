// The one interface every target kind implements (STYLE.md: dry-run -> Effect,
// apply(expected Effect), undo). A connector knows nothing of the policy, the store or a
// front end: the gateway hands it arguments and receives values.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/status.h"
#include "core/types.h"

namespace airlock {

// A target as the connector sees it: its name, kind and the fields of its policy entry
// (already validated by the policy loader), with relative paths resolved against the
// policy file's directory.
struct ConnectorConfig {
  std::string name;
  std::string kind;
  Json fields = Json::object();  // e.g. {"path": "/abs/prod.db", "max_preview_rows": 20}
};

struct DryRunResult {
  Effect effect;          // effect.IsRead(): nothing would change
  Json result = nullptr;  // for a read: what the caller sees (rows); else null
};

struct ApplyOutcome {
  bool effect_matched = false;  // false: the real effect differed; nothing was applied
  Effect effect;                // the effect observed while applying
  Json result = nullptr;
  UndoRecord undo;  // only meaningful when effect_matched
};

class Connector {
 public:
  virtual ~Connector() = default;

  // Runs the action in a sandbox and reports what it would do; changes nothing.
  // InvalidArgument for malformed input (e.g. SQL that does not parse), with the target's
  // own message.
  virtual Result<DryRunResult> DryRun(const Json& args) = 0;

  // The read fast path: if the action is plainly a read, runs it without the target's
  // serialisation (and without what a dry-run of a write needs) and returns what DryRun
  // would have returned. nullopt means "not shown to be a read here": the caller takes the
  // full path, DryRun. It must never change the target, and never fail in a way DryRun would
  // not: any doubt is nullopt. Connectors without such a path keep this default.
  virtual std::optional<DryRunResult> TryRead(const Json& args) {
    (void)args;
    return std::nullopt;
  }

  // Runs the action for real. The real effect's hash must equal `expected.effect_hash` (the
  // approved, previewed effect), otherwise nothing is applied and effect_matched is false.
  // `expected` also tells the connector what to snapshot before it starts (e.g. tables that
  // DDL will drop or alter), so that the undo restores the state from before the action.
  // `before_commit` receives the undo record while the target's transaction is still open (the
  // gateway stores it durably); if it fails, nothing is committed. The connector records
  // `action_id` inside the same target transaction so that IsApplied() can answer after a crash.
  virtual Result<ApplyOutcome> Apply(
      const std::string& action_id, const Json& args, const Effect& expected,
      const std::function<Status(const UndoRecord&)>& before_commit) = 0;

  // Undoes an applied action from its undo record, all or nothing. If the target changed
  // since in a way that conflicts, returns Conflict and fills *report with the conflicting
  // rows/objects; nothing is changed. Records `action_id` as rolled back in the same
  // transaction.
  virtual Status Rollback(const std::string& action_id, const UndoRecord& undo, Json* report) = 0;

  // Crash recovery: whether the target committed the apply / the rollback of action_id.
  virtual Result<bool> IsApplied(const std::string& action_id) = 0;
  virtual Result<bool> IsRolledBack(const std::string& action_id) = 0;
};

// A connector whose applied actions leave the building (a tool call, a sent message, an HTTP
// request): airlock cannot undo them, and nothing it could read back tells whether one in
// flight at a crash arrived. Rollback refuses with `note`; recovery never finds one applied,
// so the gateway records an interrupted one as an unknown outcome and never sends it again.
class IrreversibleConnector : public Connector {
 public:
  explicit IrreversibleConnector(std::string note) : note_(std::move(note)) {}
  Status Rollback(const std::string&, const UndoRecord&, Json*) override {
    return Status::FailedPrecondition(note_);
  }
  Result<bool> IsApplied(const std::string&) override { return false; }
  Result<bool> IsRolledBack(const std::string&) override { return false; }
  const std::string& note() const { return note_; }

 private:
  const std::string note_;
};

// The registry: one line per connector kind (connectors/registry.cc).
Result<std::unique_ptr<Connector>> CreateConnector(const ConnectorConfig& config);

}  // namespace airlock
