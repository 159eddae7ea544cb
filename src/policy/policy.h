// The policy: parsed and validated once from one YAML file into this immutable struct.
// Every field says its default. Runtime state (votes, breakers, rate windows) lives in the
// store, never here.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/types.h"

namespace airlock {

enum class PolicyMode { kEnforce, kDryRun };

// Where a value came from, for error messages and `policy check` output.
struct SourceLoc {
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based
};

struct AgentSpec {
  std::string name;
  std::string token_sha256;         // 64 lowercase hex chars (validated)
  // What this agent may act on (validated to exist): a target's name, an MCP server's name
  // (every tool of it), or "SERVER/TOOLGLOB" (only the tools the glob matches).
  std::vector<std::string> scopes;
  SourceLoc loc;
};

struct ApproverSpec {
  std::string name;
  std::string token_sha256;
  std::vector<std::string> roles;   // optional, default none
  SourceLoc loc;
};

struct TargetSpec {
  std::string name;
  std::string kind;               // "sqlite", "shell", "smtp", "postgres" or "http"
  std::string environment;        // free text, default ""; shown to approvers
  int64_t max_low_rows = 100;     // sql: DML changing at most this many rows is low
  int64_t max_preview_rows = 20;  // sql: rows shown in the effect preview
  int64_t max_low_deletes = 20;   // shell: more deleted paths than this is high
  // shell: paths whose change is high (globs, see core/glob.h). Default
  // .git/**, .env*, **/*.pem, **/id_*.
  std::vector<std::string> protect;
  // All fields of the entry as JSON, relative paths resolved against the policy file's
  // directory; handed to the connector as ConnectorConfig::fields.
  Json fields = Json::object();
  SourceLoc loc;
};

// One predicate on a tool call's arguments, addressed by a JSON pointer (RFC 6901; "" is the
// whole arguments object). Every field it names must hold. A pointer that resolves to nothing
// never matches, except `count_gt`, for which a missing value counts 0.
struct ArgPredicate {
  std::string pointer;                 // "/to"
  std::optional<int64_t> count_gt;     // array: its length; object: its members; null/missing: 0;
                                       // a string or other scalar: 1 (one recipient)
  std::optional<std::string> matches;  // POSIX extended regex, searched in the string value
                                       // (a non-string never matches); compiled at load
  std::optional<Json> equals;          // JSON equality (1 equals 1.0)
  std::optional<double> gt;            // numeric: value > gt (a non-number never matches)
  SourceLoc loc;
};

// A rule matches when every field it names matches; unnamed fields match anything.
struct RuleMatch {
  std::optional<std::string> target;
  std::optional<std::string> agent;
  std::optional<std::string> kind;      // connector kind: sql
  std::optional<std::string> table;     // sql: any changed or DDL-touched table
  std::optional<std::string> op;        // insert|update|delete|drop_table|alter_table|...
  std::optional<int64_t> rows_gt;       // total rows changed > N
  std::optional<std::string> command;   // shell: glob on the command's name (argv[0] basename)
  // shell: glob on changed paths. Matches when a listed change matches, and also when the
  // effect lists only part of its changes (fail closed: an unlisted path might match).
  // http: a glob that starts with '/' ("/v1/payments/**") on the request's path instead.
  std::optional<std::string> path;
  std::optional<std::string> method;  // http: GET, POST, ... (upper case)
  // http: predicates on the request's JSON body (all must hold), as in MCP tool rules. One
  // that cannot be decided applies the rule at least at high (fail closed).
  std::vector<ArgPredicate> body;
  std::optional<int64_t> deletes_gt;    // shell: deleted paths > N
  std::optional<int64_t> files_gt;      // shell: changed paths (added+changed+deleted) > N
};

struct Rule {
  RuleMatch match;
  Risk risk = Risk::kHigh;  // required in the file
  std::string reason;       // default: "rule at FILE:LINE"
  SourceLoc loc;
};

struct Approvals {
  int read = 0;
  int low = 0;
  int high = 1;
  int critical = 2;
  int64_t timeout_ms = 60 * 60 * 1000;  // 1h
  int QuorumFor(Risk r) const;
};

enum class OnExceed { kDeny, kApprove, kTrip };

struct Limit {
  std::optional<std::string> match_target;  // none: any target
  std::optional<std::string> match_agent;   // none: any agent
  // rate: N per window (e.g. 20/min), per agent and target; 0 = none.
  int64_t rate_count = 0;
  int64_t rate_window_ms = 0;
  std::optional<int64_t> max_rows;        // hard cap: more rows changed is denied outright
  std::optional<int64_t> max_recipients;  // mail: more recipients in one message is denied
  // mail: recipients of this agent's mail on the target in the last hour (sent or waiting)
  // plus this message's; more is denied.
  std::optional<int64_t> max_recipients_per_hour;
  OnExceed on_exceed = OnExceed::kDeny;   // for the rate; max_* caps always deny
  SourceLoc loc;
};

// A webhook (`notify:`): where to POST, and which events it wants.
struct NotifySpec {
  std::string url;              // http:// or https://; required
  // Of: pending, applied, denied, rejected, expired, failed, rolled_back, breaker.
  // Default: all of them.
  std::vector<std::string> on;
  SourceLoc loc;
};

// ---- MCP servers (`mcp_servers:`) ---------------------------------------------------------

// `tools: [{tool: send_email, args: {"/to": {count_gt: 1}}, risk: high, reason: ...}]`.
struct McpToolRule {
  std::string tool;                   // a name or a glob (core/glob.h: '*', '?', [..])
  std::vector<ArgPredicate> args;     // all must hold; none: the tool alone matches
  Risk risk = Risk::kHigh;            // required
  std::string reason;                 // default: "rule at FILE:LINE"
  SourceLoc loc;
};

struct McpServerSpec {
  std::string name;                   // [a-z0-9_-]+, not a target's name, not "airlock"
  // stdio: argv of the upstream (argv[0] looked up on PATH) and the only environment it gets
  // besides PATH. Exactly one of `command` and `url` is set.
  std::vector<std::string> command;
  std::map<std::string, std::string> env;
  std::string sandbox;                // a shell target's name to run `command` in; "" = none
  // With `sandbox`: absolute paths bound read-only into the sandbox besides the system
  // directories (the server's own code, e.g. its node_modules). Default: none.
  std::vector<std::string> read_paths;
  std::string url;                    // streamable HTTP upstream (http:// or https://)
  // With `url`: headers sent with every request to it, name -> env:NAME, file:PATH
  // (absolute) or a literal (connectors/http/credentials.h), read when the upstream starts.
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<McpToolRule> tools;     // first to last; every matching rule raises the risk
  bool trust_annotations = false;     // use the upstream's readOnlyHint/destructiveHint
  int64_t approval_wait_ms = 60'000;  // how long a pending tools/call waits for a decision
  int64_t max_message_bytes = 4LL << 20;  // a bigger JSON-RPC message is refused
  // airlock mcp stdio: a read call's reply waits until its record is synced to disk, not
  // only written to the operating system (which a crash of airlock does not lose).
  bool sync_reads = false;
  SourceLoc loc;
};

struct Policy {
  std::string source_path;          // absolute path of the file it came from
  int version = 1;                  // required; only 1 exists
  PolicyMode mode = PolicyMode::kEnforce;
  std::string store_path;           // default: <policy dir>/airlock-state/airlock.db
  // A PostgreSQL store instead of the file: `store: postgres://...` (store_url) or
  // `store_dsn_env: NAME` (the DSN is read from that variable when the store is opened).
  // store_path then only places airlock's local files (claim locks, sandbox layers).
  std::string store_url;
  std::string store_dsn_env;
  bool UsesPostgresStore() const { return !store_url.empty() || !store_dsn_env.empty(); }
  std::vector<AgentSpec> agents;
  std::vector<ApproverSpec> approvers;
  std::map<std::string, TargetSpec> targets;
  std::vector<Rule> rules;
  Approvals approvals;
  std::vector<Limit> limits;
  std::vector<NotifySpec> notify;
  // Each server also appears in `targets` as a TargetSpec of kind "mcp" (fields: the entry
  // as JSON), so that actions on it go through the same pipeline, scopes and limits.
  std::map<std::string, McpServerSpec> mcp_servers;

  const TargetSpec* FindTarget(const std::string& name) const;
  const McpServerSpec* FindMcpServer(const std::string& name) const;
  const AgentSpec* FindAgent(const std::string& name) const;  // names are unique (the loader)
};

// Parses and validates. Every error is InvalidArgument with a message that begins with
// "FILE:LINE:COLUMN: ". Hostile input (aliases that expand, deep nesting, huge numbers,
// non-UTF-8, files over 1 MiB) is refused with a clear error.
Result<std::shared_ptr<const Policy>> LoadPolicyFile(const std::string& path);
Result<std::shared_ptr<const Policy>> LoadPolicyText(const std::string& text,
                                                     const std::string& path_for_errors);

// "90s", "15m", "1h", "2d", "500ms" -> milliseconds.
Result<int64_t> ParseDurationMs(const std::string& s);
// "512MiB", "1GiB", "64k", "1000" -> bytes.
Result<int64_t> ParseSizeBytes(const std::string& s);

// ---- Classification ------------------------------------------------------------------------

struct Classification {
  Risk risk = Risk::kRead;
  // Every default and rule that set the risk, for people: "DROP TABLE users (1,204 rows,
  // 2 indexes) is critical", "rule at airlock.yaml:31: payments are money (high)".
  std::vector<std::string> reasons;
};

// Precompiled for speed (rules indexed by target); immutable, thread-safe.
class Classifier {
 public:
  explicit Classifier(std::shared_ptr<const Policy> policy);
  // The default risk for the effect (DESIGN.md table), raised by every matching rule.
  Classification Classify(const std::string& agent, const std::string& target,
                          const Effect& effect) const;

 private:
  std::shared_ptr<const Policy> policy_;
  // Rules that name a target, by target; rules that name none apply everywhere.
  std::map<std::string, std::vector<const Rule*>> by_target_;
  std::vector<const Rule*> any_target_;
};

// MCP: whether `agent` sees `server` at all (some scope names it) and may call `tool` on it.
bool AgentSeesMcpServer(const AgentSpec& agent, const std::string& server);
bool AgentMayCallTool(const AgentSpec& agent, const std::string& server, const std::string& tool);

// MCP: the risk of calling `tool` with `arguments` on `server`, from the server's tool rules.
// No matching rule: high (fail closed), unless trust_annotations and the upstream's
// annotations (an object, possibly null) say readOnlyHint: true (read) or destructiveHint:
// false (low); destructiveHint: true never lowers anything. Every rule that matches raises
// the risk and adds its reason. Classifier::Classify calls this for effects of kind "mcp"
// (effect.extra: {"server", "tool", "arguments", "annotations"}).
Classification ClassifyMcpCall(const McpServerSpec& server, const std::string& tool,
                               const Json& arguments, const Json& annotations,
                               std::string_view policy_file);

// Formats 1204 as "1,204".
std::string FormatCount(int64_t n);

}  // namespace airlock
