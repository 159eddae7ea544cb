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

// ---- egress: requests a sandboxed command makes through airlock (shell `network: proxy`) ----

// One request the command sent to airlock's egress proxy, as the proxy read it.
struct EgressRequest {
  std::string method;  // "GET", "POST", ..., "CONNECT"; "" when the request did not parse
  std::string url;     // "http://host:port/path?q", or "host:port" for CONNECT; "" if unparsed
  std::string host;    // as the command wrote it (lower case)
  int port = 0;
  std::string path;     // normalized; "" for CONNECT (TLS hides it)
  Json body = nullptr;  // the request body when it is JSON (for rules on it), else null
  int64_t body_bytes = 0;
  // Non-empty: the proxy refuses the request already (malformed, a raw IP, a host outside
  // the allow list, no name resolution); the gate only records the denial.
  std::string refused;
};

struct EgressDecision {
  bool allowed = false;
  std::string reason;     // why not: sent back to the command in a 403
  std::string action_id;  // the http action recorded for this request ("" if none could be)
};

// Decides and records each request (the gateway implements it: the connector knows neither
// the policy nor the store). Called from the proxy's threads while the command runs.
class EgressGate {
 public:
  virtual ~EgressGate() = default;
  // Records the decision before anything is sent; any error while deciding is a refusal.
  virtual EgressDecision Decide(const EgressRequest& request) = 0;
  // Records what became of an allowed request: `sent` says whether it went out (its error
  // otherwise); `result` holds the response status and the byte counts.
  virtual void Finish(const std::string& action_id, const Status& sent, const Json& result) = 0;
};

class Connector {
 public:
  virtual ~Connector() = default;

  // Runs the action in a sandbox and reports what it would do; changes nothing.
  // InvalidArgument for malformed input (e.g. SQL that does not parse), with the target's
  // own message.
  virtual Result<DryRunResult> DryRun(const Json& args) = 0;
  // The same, with a gate for the outbound requests the action makes while it runs (only a
  // shell target with `network: proxy` has any; the others ignore the gate).
  virtual Result<DryRunResult> DryRunWithEgress(const Json& args, EgressGate* gate) {
    (void)gate;
    return DryRun(args);
  }

  // A hint that DryRun(args) follows shortly: the connector may start what it will need,
  // provided nothing of the action runs and nothing changes (a shell target builds its
  // sandbox, and the command waits in it). Errors are kept for DryRun to report; a DryRun
  // with other args, or none at all, discards what was started.
  virtual void Prestart(const Json& args) { (void)args; }

  // A long-lived caller (airlock serve) will submit more actions to this target: the
  // connector may keep built ahead what the next action needs, provided nothing of any action
  // runs before that action is submitted (a shell target keeps one sandbox ready, its command
  // not yet chosen). Called at most once, right after the connector is made.
  virtual void KeepWarm() {}

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

  // An outbound read (a tool call or request the policy marks read): the same as Apply, but
  // `in_flight` runs once, after the request is on its way and before its answer is awaited,
  // so that the gateway's durable record of the read overlaps the round trip. If in_flight
  // fails, the answer is withheld: the result is its error (the request was already sent).
  // A connector that overlaps them runs in_flight only once the request was sent. This
  // default overlaps nothing: in_flight first, then Apply.
  virtual Result<ApplyOutcome> ApplyRead(const std::string& action_id, const Json& args,
                                         const Effect& expected,
                                         const std::function<Status()>& in_flight) {
    RETURN_IF_ERROR(in_flight());
    return Apply(action_id, args, expected, [](const UndoRecord&) { return Status::Ok(); });
  }

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
