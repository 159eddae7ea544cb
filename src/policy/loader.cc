// YAML -> Policy. Every value is checked here, once, and every error names FILE:LINE:COLUMN
// of the offending key or value, so that `airlock policy check` points at the exact spot.
//
// yaml-cpp throws; nothing thrown may leave this file (STYLE.md: no exceptions across the
// library boundary), so the whole load runs inside one try block that turns any exception
// into InvalidArgument.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <span>
#include <sstream>
#include <string_view>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "connectors/smtp/message.h"  // the one address check, shared with the connector
#include "connectors/http/credentials.h"
#include "connectors/http/url.h"
#include "connectors/shell/egress_request.h"
#include "core/glob.h"
#include "policy/guard.h"
#include "policy/mcp_rules.h"
#include "policy/policy.h"
#include "policy/units.h"

namespace airlock {
namespace {

namespace fs = std::filesystem;
using policy_internal::ParseInt64;
using policy_internal::ParseRate;
using policy_internal::Where;

using Keys = std::span<const std::string_view>;

constexpr std::string_view kTopKeys[] = {"version",   "mode",    "store",      "agents",
                                         "approvers", "targets", "rules",      "approvals",
                                         "limits",    "notify",  "mcp_servers", "store_dsn_env"};
constexpr std::string_view kAgentKeys[] = {"name", "token_sha256", "scopes"};
constexpr std::string_view kApproverKeys[] = {"name", "token_sha256", "roles"};
constexpr std::string_view kSqliteKeys[] = {
    "kind", "path", "environment", "max_low_rows", "max_preview_rows", "busy_timeout", "timeout"};
constexpr std::string_view kPostgresKeys[] = {
    "kind",         "dsn_env",           "dsn_file",     "schemas",         "environment",
    "max_low_rows", "max_preview_rows",  "lock_timeout", "statement_timeout"};
constexpr std::string_view kShellKeys[] = {
    "kind",    "workspace", "environment", "network",         "memory",      "pids",
    "cpu",     "timeout",   "hide",        "protect",         "max_low_deletes",
    "max_upper_size", "max_upper_files", "max_output", "max_preview_files", "egress"};
constexpr std::string_view kSmtpKeys[] = {
    "kind",          "url",            "from",           "username", "password_env",
    "password_file", "max_recipients", "environment",    "timeout"};
constexpr std::string_view kHttpKeys[] = {"kind",    "base_url",           "allow",      "headers",
                                          "timeout", "max_response_bytes", "environment",
                                          "recipients", "max_recipients"};
constexpr std::string_view kRuleKeys[] = {"match", "risk", "reason"};
constexpr std::string_view kRuleMatchKeys[] = {"target",     "agent",    "kind",    "table",
                                               "op",         "rows_gt",  "command", "path",
                                               "deletes_gt", "files_gt", "method",  "body"};
constexpr std::string_view kApprovalKeys[] = {"read", "low", "high", "critical", "timeout"};
constexpr std::string_view kLimitKeys[] = {"match",          "rate",
                                           "max_rows",       "max_recipients",
                                           "max_recipients_per_hour", "on_exceed"};
constexpr std::string_view kLimitMatchKeys[] = {"target", "agent"};
constexpr std::string_view kNotifyKeys[] = {"url", "on"};
constexpr std::string_view kNotifyEvents[] = {"pending", "applied", "denied",      "rejected",
                                              "expired", "failed",  "rolled_back", "breaker"};
constexpr std::string_view kMcpServerKeys[] = {"command",       "env",
                                               "sandbox",       "url",
                                               "tools",         "trust_annotations",
                                               "approval_wait", "max_message_size",
                                               "read_paths",    "sync_reads",
                                               "headers"};
constexpr std::string_view kMcpToolKeys[] = {"tool", "args", "risk", "reason"};
constexpr std::string_view kArgCheckKeys[] = {"count_gt", "matches", "equals", "gt"};
constexpr std::string_view kTargetKinds[] = {"sqlite", "shell", "smtp", "postgres", "http"};
constexpr std::string_view kNetworkModes[] = {"off", "on", "proxy"};
constexpr std::string_view kEffectKinds[] = {"sql", "shell", "mail", "http", "mcp"};
constexpr std::string_view kOps[] = {
    "insert",       "update",      "delete",       "drop_table",   "drop_index",
    "drop_trigger", "drop_view",   "create_table", "create_index", "create_trigger",
    "create_view",  "alter_table", "attach",       "detach",       "pragma_write",
    "vacuum_into",  "vacuum",      "reindex",      "analyze"};

constexpr int64_t kMaxPreviewRows = 10000;
constexpr int64_t kMaxBusyTimeoutMs = 2147483647;  // sqlite3_busy_timeout takes an int
// Every event is queued once per webhook: a policy with thousands of them would turn one
// action into thousands of POSTs. No real set-up needs more than a handful.
constexpr size_t kMaxWebhooks = 64;
constexpr size_t kMaxUrlBytes = 2048;
// The built-in MCP server's name (`airlock mcp stdio --server airlock`): no target or server
// may take it, so that a scope "airlock" means one thing.
constexpr std::string_view kBuiltinMcpServer = "airlock";
constexpr int64_t kMaxApprovalWaitMs = 60 * 60 * 1000;  // a client holds the call open

std::string Join(Keys keys) {
  std::string out;
  for (std::string_view k : keys) {
    if (!out.empty()) out += ", ";
    out += k;
  }
  return out;
}

bool Contains(Keys keys, std::string_view k) {
  return std::find(keys.begin(), keys.end(), k) != keys.end();
}

std::string Quote(const std::string& s) {
  constexpr size_t kMax = 60;  // keep messages readable when the value is a novel
  if (s.size() <= kMax) return "\"" + s + "\"";
  size_t cut = kMax;
  // Do not cut a UTF-8 sequence in half.
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return "\"" + s.substr(0, cut) + "...\"";
}

std::string Describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar:
      return Quote(n.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "an undefined value";
  }
}

bool IsLowerHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

// Names appear on command lines, in URLs and in the audit log: keep them plain.
bool IsValidName(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    bool ok =
        std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '@';
    if (!ok) return false;
  }
  return true;
}

// What is wrong with a webhook URL, or "" if nothing. A webhook URL often carries its secret
// in the path (Slack's /services/T../B../XXXX) and `policy check` output lands in CI logs, so
// the problem never quotes the URL itself.
std::string WebhookUrlProblem(const std::string& url) {
  if (url.size() > kMaxUrlBytes) {
    return "the url is longer than " + FormatCount(kMaxUrlBytes) + " bytes";
  }
  const size_t sep = url.find("://");
  std::string scheme = sep == std::string::npos ? "" : url.substr(0, sep);
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "http" && scheme != "https") {
    return "expected an http:// or https:// URL, got " +
           (sep == std::string::npos ? std::string("no scheme") : "the scheme " + Quote(scheme));
  }
  for (char c : url) {
    // Spaces and control characters are how header injection and mis-pasted values start,
    // and parsers disagree on what a backslash means; a valid URL has them percent-encoded.
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7F || c == '\\') {
      return "the url contains a space, a control character or a backslash (percent-encode it)";
    }
  }
  const size_t start = sep + 3;
  const size_t end = url.find_first_of("/?#", start);
  std::string authority = url.substr(start, end == std::string::npos ? end : end - start);
  if (size_t at = authority.rfind('@'); at != std::string::npos) authority.erase(0, at + 1);
  std::string host = authority, port;
  bool has_port = false;
  if (!authority.empty() && authority[0] == '[') {  // [v6-address]:port
    const size_t close = authority.find(']');
    if (close == std::string::npos) return "the url has an unclosed '[' in its host";
    host = authority.substr(0, close + 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return "the url has junk after its host";
      port = authority.substr(close + 2);
      has_port = true;
    }
  } else if (size_t colon = authority.rfind(':'); colon != std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    has_port = true;
  }
  if (host.empty() || host == "[]") return "the url has no host";
  const bool bracketed = host[0] == '[';
  for (char c : bracketed ? host.substr(1, host.size() - 2) : host) {
    const unsigned char u = static_cast<unsigned char>(c);
    // Letters, digits and . - _ ~ % (and UTF-8 for internationalised names); an IPv6 address
    // in brackets also has ':'. Anything else ('<', '"', a second ':') is how URL-parser
    // confusion attacks start.
    bool ok = std::isalnum(u) || u >= 0x80 || c == '.' || c == '-' || c == '_' || c == '~' ||
              c == '%' || (bracketed && c == ':');
    if (!ok) return "the url's host has a character that is not allowed in a host name";
  }
  if (has_port) {
    bool digits =
        !port.empty() && port.size() <= 5 &&
        std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || std::stoi(port) < 1 || std::stoi(port) > 65535) {
      return "bad port in the url of " + scheme + "://" + host + ": expected 1 to 65535";
    }
  }
  return "";
}

// One key of a mapping: its name, the key node (for "unknown key" errors) and the value
// node (for "bad value" errors), plus the dotted path used in messages.
struct Field {
  std::string name;
  std::string path;
  YAML::Node key;
  YAML::Node value;
};

class Fields {
 public:
  Fields(YAML::Node map, std::vector<Field> items)
      : map_(std::move(map)), items_(std::move(items)) {}
  const Field* Find(std::string_view name) const {
    for (const Field& f : items_) {
      if (f.name == name) return &f;
    }
    return nullptr;
  }
  const YAML::Node& map() const { return map_; }

 private:
  YAML::Node map_;
  std::vector<Field> items_;
};

SourceLoc LocOf(const YAML::Node& n) {
  YAML::Mark m = n.Mark();
  return SourceLoc{m.line < 0 ? 0 : m.line + 1, m.column < 0 ? 0 : m.column + 1};
}

class Loader {
 public:
  Loader(std::string file, fs::path source, fs::path dir)
      : file_(std::move(file)), dir_(std::move(dir)) {
    policy_.source_path = source.string();
    rule_file_ = source.filename().string();
  }

  Result<std::shared_ptr<const Policy>> Load(std::string_view text) {
    RETURN_IF_ERROR(policy_internal::CheckHostileInput(text, file_));
    YAML::Node root = YAML::Load(std::string(text));
    if (root.IsNull()) {
      return Status::InvalidArgument(Where(file_, 0, 0) +
                                     "the policy is empty (it needs at least `version: 1`)");
    }
    if (!root.IsMap()) {
      return Status::InvalidArgument(At(root) + "the policy must be a mapping of keys (" +
                                     Join(kTopKeys) + "), got " + Describe(root));
    }
    RETURN_IF_ERROR(LoadTop(root));
    return std::shared_ptr<const Policy>(std::make_shared<Policy>(std::move(policy_)));
  }

 private:
  std::string At(const YAML::Node& n) const {
    YAML::Mark m = n.Mark();
    return Where(file_, m.line, m.column);
  }
  Status Err(const YAML::Node& n, const std::string& msg) const {
    return Status::InvalidArgument(At(n) + msg);
  }
  // At the value, or at its key when there is no value to point at (`key:` alone).
  Status ValueErr(const Field& f, const std::string& msg) const {
    bool use_key = !f.value.IsDefined() || f.value.IsNull() || f.value.Mark().is_null();
    return Err(use_key ? f.key : f.value, f.path + ": " + msg);
  }

  Result<Fields> ReadMap(const YAML::Node& n, const std::string& path, Keys allowed) const {
    if (!n.IsMap()) {
      return Err(n,
                 path + ": expected a mapping of keys (" + Join(allowed) + "), got " + Describe(n));
    }
    std::vector<Field> items;
    for (auto it = n.begin(); it != n.end(); ++it) {
      const YAML::Node key = it->first;
      if (!key.IsScalar()) return Err(key, path + ": keys must be plain strings");
      std::string name = key.Scalar();
      std::string where = path.empty() ? "the top level" : path;
      if (!Contains(allowed, name)) {
        return Err(key, "unknown key " + Quote(name) + " in " + where +
                            " (allowed: " + Join(allowed) + ")");
      }
      for (const Field& f : items) {
        if (f.name == name) {
          // yaml-cpp keeps both; which one wins would be a silent surprise.
          return Err(key, "duplicate key " + Quote(name) + " in " + where + " (first at line " +
                              std::to_string(f.key.Mark().line + 1) + ")");
        }
      }
      items.push_back(Field{name, path.empty() ? name : path + "." + name, key, it->second});
    }
    return Fields(n, std::move(items));
  }

  Status Missing(const Fields& fields, const std::string& path, const std::string& key,
                 const std::string& hint = "") const {
    return Err(fields.map(), path + ": missing required key " + Quote(key) + hint);
  }

  Result<std::string> GetString(const Field& f) const {
    if (!f.value.IsScalar()) return ValueErr(f, "expected a string, got " + Describe(f.value));
    return f.value.Scalar();
  }

  Result<std::string> GetName(const Field& f) const {
    ASSIGN_OR_RETURN(std::string s, GetString(f));
    if (!IsValidName(s)) {
      return ValueErr(
          f, "bad name " + Quote(s) + ": use 1 to 128 letters, digits, '.', '_', '-' or '@'");
    }
    return s;
  }

  Result<int64_t> GetInt(const Field& f, int64_t min, int64_t max) const {
    if (!f.value.IsScalar() || f.value.Tag() == "!") {
      // Tag "!" marks a quoted scalar: `version: "1"` is a string, not a number.
      return ValueErr(f, "expected an integer, got " +
                             (f.value.IsScalar() ? "the string " : std::string()) +
                             Describe(f.value));
    }
    Result<int64_t> n = ParseInt64(f.value.Scalar());
    if (!n.ok()) return ValueErr(f, n.status().message());
    if (*n < min) {
      return ValueErr(f, "must be at least " + FormatCount(min) + ", got " + FormatCount(*n));
    }
    if (*n > max) {
      return ValueErr(f, "must be at most " + FormatCount(max) + ", got " + FormatCount(*n));
    }
    return *n;
  }

  Result<int64_t> GetDuration(const Field& f, bool allow_zero) const {
    ASSIGN_OR_RETURN(std::string s, GetString(f));
    Result<int64_t> ms = ParseDurationMs(s);
    if (!ms.ok()) return ValueErr(f, ms.status().message());
    if (!allow_zero && *ms == 0) return ValueErr(f, "duration must be greater than zero");
    return *ms;
  }

  // A list section; `key:` with nothing after it is an empty list.
  Result<std::vector<YAML::Node>> GetList(const Field& f) const {
    std::vector<YAML::Node> out;
    if (f.value.IsNull()) return out;
    if (!f.value.IsSequence()) return ValueErr(f, "expected a list, got " + Describe(f.value));
    for (auto it = f.value.begin(); it != f.value.end(); ++it) out.push_back(*it);
    return out;
  }

  Result<std::vector<std::pair<std::string, YAML::Node>>> GetStringList(const Field& f) const {
    ASSIGN_OR_RETURN(std::vector<YAML::Node> items, GetList(f));
    std::vector<std::pair<std::string, YAML::Node>> out;
    for (const YAML::Node& item : items) {
      if (!item.IsScalar()) {
        return Err(item, f.path + ": expected a list of strings, got " + Describe(item) + " in it");
      }
      out.emplace_back(item.Scalar(), item);
    }
    return out;
  }

  std::string Resolve(const std::string& p) const {
    fs::path path(p);
    if (path.is_relative()) path = dir_ / path;
    return path.lexically_normal().string();
  }

  std::string Origin(const YAML::Node& n) const {
    YAML::Mark m = n.Mark();
    return file_ + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
  }

  // ---- sections ------------------------------------------------------------------------

  Status LoadTop(const YAML::Node& root) {
    ASSIGN_OR_RETURN(Fields top, ReadMap(root, "", kTopKeys));
    const Field* version = top.Find("version");
    if (version == nullptr) {
      return Err(root, "missing required key \"version\" (add `version: 1` at the top)");
    }
    ASSIGN_OR_RETURN(int64_t v, GetInt(*version, INT64_MIN, INT64_MAX));
    if (v != 1) {
      return ValueErr(
          *version, "unsupported version " + std::to_string(v) + " (this airlock reads version 1)");
    }
    policy_.version = 1;

    if (const Field* f = top.Find("mode")) {
      ASSIGN_OR_RETURN(std::string mode, GetString(*f));
      if (mode == "enforce") {
        policy_.mode = PolicyMode::kEnforce;
      } else if (mode == "dry-run") {
        policy_.mode = PolicyMode::kDryRun;
      } else {
        return ValueErr(*f, "unknown mode " + Quote(mode) + " (allowed: enforce, dry-run)");
      }
    }

    policy_.store_path = Resolve("airlock-state/airlock.db");
    if (const Field* f = top.Find("store")) {
      ASSIGN_OR_RETURN(std::string store, GetString(*f));
      if (store.empty()) return ValueErr(*f, "must not be empty");
      if (store.rfind("postgres://", 0) == 0 || store.rfind("postgresql://", 0) == 0) {
        policy_.store_url = store;
      } else {
        policy_.store_path = Resolve(store);
      }
    }
    if (const Field* f = top.Find("store_dsn_env")) {
      ASSIGN_OR_RETURN(std::string name, GetString(*f));
      if (name.empty()) return ValueErr(*f, "must name an environment variable");
      if (!policy_.store_url.empty()) {
        return ValueErr(*f, "give the PostgreSQL store either in store: or in store_dsn_env, not both");
      }
      policy_.store_dsn_env = name;
    }

    // Order matters: MCP servers name a shell target as their sandbox, agents' scopes name
    // targets and servers, quorums count approvers, rules and limits name all of them.
    if (const Field* f = top.Find("targets")) RETURN_IF_ERROR(LoadTargets(*f));
    if (const Field* f = top.Find("mcp_servers")) RETURN_IF_ERROR(LoadMcpServers(*f));
    if (const Field* f = top.Find("agents")) RETURN_IF_ERROR(LoadAgents(*f));
    if (const Field* f = top.Find("approvers")) RETURN_IF_ERROR(LoadApprovers(*f));
    if (const Field* f = top.Find("approvals")) RETURN_IF_ERROR(LoadApprovals(*f));
    if (const Field* f = top.Find("rules")) RETURN_IF_ERROR(LoadRules(*f));
    if (const Field* f = top.Find("limits")) RETURN_IF_ERROR(LoadLimits(*f));
    if (const Field* f = top.Find("notify")) RETURN_IF_ERROR(LoadNotify(*f));
    return Status::Ok();
  }

  Status LoadTargets(const Field& section) {
    if (section.value.IsNull()) return Status::Ok();
    if (!section.value.IsMap()) {
      return ValueErr(
          section, "expected a mapping of target names to targets, got " + Describe(section.value));
    }
    for (auto it = section.value.begin(); it != section.value.end(); ++it) {
      const YAML::Node key = it->first;
      if (!key.IsScalar()) return Err(key, "targets: target names must be plain strings");
      Field name_field{"", "targets", key, key};
      ASSIGN_OR_RETURN(std::string name, GetName(name_field));
      if (policy_.targets.count(name) != 0) {
        return Err(key, "targets: duplicate target " + Quote(name));
      }
      if (name == kBuiltinMcpServer) {
        return Err(key, "targets: the name \"airlock\" is reserved for the built-in MCP server");
      }
      RETURN_IF_ERROR(LoadTarget(name, key, it->second));
    }
    return Status::Ok();
  }

  Status LoadTarget(const std::string& name, const YAML::Node& key, const YAML::Node& entry) {
    const std::string path = "targets." + name;
    if (!entry.IsMap()) {
      return Err(entry.IsNull() ? key : entry,
                 path + ": expected a mapping with at least `kind`, got " + Describe(entry));
    }
    // The kind decides which keys are allowed, so it is read first.
    YAML::Node kind_node;
    bool has_kind = false;
    for (auto it = entry.begin(); it != entry.end() && !has_kind; ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == "kind") {
        kind_node = it->second;
        has_kind = true;
      }
    }
    if (!has_kind) {
      return Err(entry,
                 path + ": missing required key \"kind\" (supported: " + Join(kTargetKinds) + ")");
    }
    if (kind_node.IsScalar() && kind_node.Scalar() == "mcp") {
      return Err(kind_node, path +
                                ".kind: MCP servers are defined under `mcp_servers:`, not "
                                "`targets:`");
    }
    if (!kind_node.IsScalar() || !Contains(kTargetKinds, kind_node.Scalar())) {
      return Err(kind_node, path + ".kind: unknown target kind " + Describe(kind_node) +
                                " (supported: " + Join(kTargetKinds) + ")");
    }
    TargetSpec t;
    t.name = name;
    t.kind = kind_node.Scalar();
    t.loc = LocOf(key);
    if (t.kind == "shell") {
      ASSIGN_OR_RETURN(Fields fields, ReadMap(entry, path, kShellKeys));
      RETURN_IF_ERROR(LoadShellTarget(fields, path, &t));
    } else if (t.kind == "smtp") {
      ASSIGN_OR_RETURN(Fields fields, ReadMap(entry, path, kSmtpKeys));
      RETURN_IF_ERROR(LoadSmtpTarget(fields, path, &t));
    } else if (t.kind == "postgres") {
      ASSIGN_OR_RETURN(Fields fields, ReadMap(entry, path, kPostgresKeys));
      RETURN_IF_ERROR(LoadPostgresTarget(fields, path, &t));
    } else if (t.kind == "http") {
      ASSIGN_OR_RETURN(Fields fields, ReadMap(entry, path, kHttpKeys));
      RETURN_IF_ERROR(LoadHttpTarget(fields, path, &t));
    } else {
      ASSIGN_OR_RETURN(Fields fields, ReadMap(entry, path, kSqliteKeys));
      RETURN_IF_ERROR(LoadSqliteTarget(fields, path, &t));
    }
    policy_.targets.emplace(name, std::move(t));
    return Status::Ok();
  }

  Status LoadSqliteTarget(const Fields& fields, const std::string& path, TargetSpec* t) {
    t->fields = Json::object();
    t->fields["kind"] = t->kind;
    const Field* p = fields.Find("path");
    if (p == nullptr) {
      return Missing(fields, path, "path", " (the SQLite database file)");
    }
    ASSIGN_OR_RETURN(std::string db, GetString(*p));
    if (db.empty()) return ValueErr(*p, "must not be empty");
    t->fields["path"] = db == ":memory:" ? db : Resolve(db);
    if (const Field* f = fields.Find("environment")) {
      ASSIGN_OR_RETURN(t->environment, GetString(*f));
      t->fields["environment"] = t->environment;
    }
    if (const Field* f = fields.Find("max_low_rows")) {
      ASSIGN_OR_RETURN(t->max_low_rows, GetInt(*f, 0, INT64_MAX));
    }
    if (const Field* f = fields.Find("max_preview_rows")) {
      ASSIGN_OR_RETURN(t->max_preview_rows, GetInt(*f, 0, kMaxPreviewRows));
    }
    t->fields["max_low_rows"] = t->max_low_rows;
    t->fields["max_preview_rows"] = t->max_preview_rows;
    if (const Field* f = fields.Find("busy_timeout")) {
      ASSIGN_OR_RETURN(int64_t ms, GetDuration(*f, /*allow_zero=*/true));
      if (ms > kMaxBusyTimeoutMs) return ValueErr(*f, "busy_timeout is too long");
      t->fields["busy_timeout_ms"] = ms;
    }
    if (const Field* f = fields.Find("timeout")) {
      ASSIGN_OR_RETURN(int64_t ms, GetDuration(*f, /*allow_zero=*/false));
      if (ms > kMaxBusyTimeoutMs) return ValueErr(*f, "timeout is too long");
      t->fields["timeout_ms"] = ms;
    }
    return Status::Ok();
  }

  // A mail target: the server, the sender, where the password is, and the hard cap on
  // recipients of one message. The password itself is never in the policy: only the name
  // of the variable or file that holds it, read when a message is sent.
  Status LoadSmtpTarget(const Fields& fields, const std::string& path, TargetSpec* t) {
    Json& j = t->fields;
    j = Json::object();
    j["kind"] = t->kind;
    const Field* u = fields.Find("url");
    if (u == nullptr) return Missing(fields, path, "url", " (smtp://HOST:PORT or smtps://HOST:PORT)");
    ASSIGN_OR_RETURN(std::string url, GetString(*u));
    const bool plain = url.rfind("smtp://", 0) == 0, tls = url.rfind("smtps://", 0) == 0;
    const std::string rest = url.substr(plain ? 7 : tls ? 8 : 0);
    if ((!plain && !tls) || rest.empty() || rest[0] == '/' || rest[0] == ':') {
      return ValueErr(*u, "must be smtp://HOST[:PORT] or smtps://HOST[:PORT], got " + Quote(url));
    }
    if (rest.find('@') != std::string::npos) {
      return ValueErr(*u, "must not hold credentials: use username and password_env or "
                          "password_file");
    }
    for (unsigned char c : url) {
      if (c <= 0x20 || c >= 0x7F) return ValueErr(*u, "contains a space or control character");
    }
    j["url"] = url;
    const Field* f = fields.Find("from");
    if (f == nullptr) return Missing(fields, path, "from", " (the sender's address)");
    ASSIGN_OR_RETURN(std::string from, GetString(*f));
    Status valid = mail::ValidateAddress(from);
    if (!valid.ok()) return ValueErr(*f, valid.message());
    j["from"] = from;
    if (const Field* x = fields.Find("username")) {
      ASSIGN_OR_RETURN(std::string user, GetString(*x));
      if (user.empty()) return ValueErr(*x, "must not be empty");
      for (unsigned char c : user) {
        if (c < 0x20 || c == 0x7F) return ValueErr(*x, "contains a control character");
      }
      j["username"] = user;
    }
    const Field* env = fields.Find("password_env");
    const Field* file = fields.Find("password_file");
    if (env != nullptr && file != nullptr) {
      return ValueErr(*file, "set password_env or password_file, not both");
    }
    if (env != nullptr) {
      ASSIGN_OR_RETURN(std::string name, GetString(*env));
      bool ok = !name.empty() && !(name[0] >= '0' && name[0] <= '9');
      for (char c : name) {
        ok = ok && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                    (c >= '0' && c <= '9') || c == '_');
      }
      if (!ok) return ValueErr(*env, "must be the name of an environment variable");
      j["password_env"] = name;
    }
    if (file != nullptr) {
      ASSIGN_OR_RETURN(std::string p, GetString(*file));
      if (p.empty()) return ValueErr(*file, "must not be empty");
      j["password_file"] = Resolve(p);
    }
    if ((env != nullptr || file != nullptr) && !j.contains("username")) {
      return Missing(fields, path, "username", " (a password is set, so AUTH needs a user name)");
    }
    int64_t max_recipients = 100;
    if (const Field* x = fields.Find("max_recipients")) {
      ASSIGN_OR_RETURN(max_recipients, GetInt(*x, 1, 10'000));
    }
    j["max_recipients"] = max_recipients;
    if (const Field* x = fields.Find("environment")) {
      ASSIGN_OR_RETURN(t->environment, GetString(*x));
      j["environment"] = t->environment;
    }
    int64_t timeout_ms = 60'000;
    if (const Field* x = fields.Find("timeout")) {
      ASSIGN_OR_RETURN(timeout_ms, GetDuration(*x, /*allow_zero=*/false));
      if (timeout_ms > 3'600'000) return ValueErr(*x, "timeout is too long (at most 1h)");
    }
    j["timeout_ms"] = timeout_ms;
    return Status::Ok();
  }

  // A PostgreSQL database. The connection string itself never appears in the policy (it
  // holds a password): only where airlock reads it from, an environment variable or a file.
  Status LoadPostgresTarget(const Fields& fields, const std::string& path, TargetSpec* t) {
    Json& j = t->fields;
    j = Json::object();
    j["kind"] = t->kind;
    const Field* env = fields.Find("dsn_env");
    const Field* file = fields.Find("dsn_file");
    if (env == nullptr && file == nullptr) {
      return Missing(fields, path, "dsn_env",
                     " (or dsn_file: where airlock reads the connection string)");
    }
    if (env != nullptr && file != nullptr) {
      return ValueErr(*file, "give either dsn_env or dsn_file, not both");
    }
    if (env != nullptr) {
      ASSIGN_OR_RETURN(std::string name, GetString(*env));
      bool ok = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0]));
      for (char c : name) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
      if (!ok) return ValueErr(*env, "must be an environment variable name, e.g. APP_DB_DSN");
      j["dsn_env"] = name;
    } else {
      ASSIGN_OR_RETURN(std::string f, GetString(*file));
      if (f.empty() || f.find('\0') != std::string::npos) return ValueErr(*file, "bad path");
      j["dsn_file"] = Resolve(f);
    }
    Json schemas = Json::array({"public"});
    if (const Field* f = fields.Find("schemas")) {
      ASSIGN_OR_RETURN(auto items, GetStringList(*f));
      if (items.empty()) return ValueErr(*f, "must name at least one schema");
      schemas = Json::array();
      for (auto& [name, node] : items) {
        if (name.empty() || name == "airlock" || name.rfind("pg_", 0) == 0 ||
            name == "information_schema") {
          return Err(node, f->path + ": " + Quote(name) + " cannot be captured");
        }
        schemas.push_back(name);
      }
    }
    j["schemas"] = schemas;
    if (const Field* f = fields.Find("environment")) {
      ASSIGN_OR_RETURN(t->environment, GetString(*f));
      j["environment"] = t->environment;
    }
    if (const Field* f = fields.Find("max_low_rows")) {
      ASSIGN_OR_RETURN(t->max_low_rows, GetInt(*f, 0, INT64_MAX));
    }
    if (const Field* f = fields.Find("max_preview_rows")) {
      ASSIGN_OR_RETURN(t->max_preview_rows, GetInt(*f, 0, kMaxPreviewRows));
    }
    j["max_low_rows"] = t->max_low_rows;
    j["max_preview_rows"] = t->max_preview_rows;
    // PostgreSQL takes both as an int of milliseconds.
    int64_t lock = 2000, statement = 30000;
    if (const Field* f = fields.Find("lock_timeout")) {
      ASSIGN_OR_RETURN(lock, GetDuration(*f, /*allow_zero=*/false));
      if (lock > kMaxBusyTimeoutMs) return ValueErr(*f, "lock_timeout is too long");
    }
    if (const Field* f = fields.Find("statement_timeout")) {
      ASSIGN_OR_RETURN(statement, GetDuration(*f, /*allow_zero=*/false));
      if (statement > kMaxBusyTimeoutMs) return ValueErr(*f, "statement_timeout is too long");
    }
    j["lock_timeout_ms"] = lock;
    j["statement_timeout_ms"] = statement;
    return Status::Ok();
  }

  Result<int64_t> GetSize(const Field& f, int64_t min, int64_t max) const {
    ASSIGN_OR_RETURN(std::string s, GetString(f));
    Result<int64_t> n = ParseSizeBytes(s);
    if (!n.ok()) return ValueErr(f, n.status().message());
    if (*n < min || *n > max) {
      return ValueErr(f, "must be between " + FormatCount(min) + " and " + FormatCount(max) +
                             " bytes, got " + FormatCount(*n));
    }
    return *n;
  }

  Result<std::vector<std::string>> GetGlobs(const Field& f) const {
    ASSIGN_OR_RETURN(auto items, GetStringList(f));
    std::vector<std::string> out;
    for (auto& [glob, node] : items) {
      std::string why;
      if (!GlobValid(glob, &why)) return Err(node, f.path + ": bad pattern " + Quote(glob) + ": " + why);
      out.push_back(glob);
    }
    return out;
  }

  // A shell target: the workspace a command sees through an overlay, and the limits of its
  // sandbox. Whether the workspace exists is checked when a command runs (it may be created
  // after the policy), and reported as bad input then.
  Status LoadShellTarget(const Fields& fields, const std::string& path, TargetSpec* t) {
    Json& j = t->fields;
    j = Json::object();
    j["kind"] = t->kind;
    const Field* w = fields.Find("workspace");
    if (w == nullptr) return Missing(fields, path, "workspace", " (the directory commands work in)");
    ASSIGN_OR_RETURN(std::string ws, GetString(*w));
    if (ws.empty()) return ValueErr(*w, "must not be empty");
    if (ws.find('\0') != std::string::npos) return ValueErr(*w, "contains a NUL byte");
    j["workspace"] = Resolve(ws);
    if (j["workspace"] == "/") return ValueErr(*w, "the workspace cannot be the whole file system");
    if (const Field* f = fields.Find("environment")) {
      ASSIGN_OR_RETURN(t->environment, GetString(*f));
      j["environment"] = t->environment;
    }
    std::string network = "off";
    if (const Field* f = fields.Find("network")) {
      ASSIGN_OR_RETURN(network, GetOneOf(*f, kNetworkModes, "network mode"));
    }
    j["network"] = network;
    // network: proxy. The hosts the command may reach through airlock's egress proxy; none
    // listed: every request is refused (fail closed).
    j["egress"] = Json::array();
    if (const Field* f = fields.Find("egress")) {
      if (network != "proxy") {
        return ValueErr(*f, "egress needs network: proxy (with network: " + network +
                                " no request goes through airlock)");
      }
      ASSIGN_OR_RETURN(auto items, GetStringList(*f));
      for (auto& [text, node] : items) {
        Result<shell::EgressAllow> allow = shell::ParseEgressAllow(text);
        if (!allow.ok()) {
          return Err(node, f->path + ": bad entry " + Quote(text) + ": " + allow.status().message());
        }
        j["egress"].push_back(text);
      }
    }
    int64_t memory = 512LL << 20, upper = 1LL << 30, output = 1LL << 20;
    if (const Field* f = fields.Find("memory")) {
      ASSIGN_OR_RETURN(memory, GetSize(*f, 4LL << 20, 1LL << 40));
    }
    if (const Field* f = fields.Find("max_upper_size")) {
      ASSIGN_OR_RETURN(upper, GetSize(*f, 1LL << 20, 1LL << 40));
    }
    if (const Field* f = fields.Find("max_output")) {
      ASSIGN_OR_RETURN(output, GetSize(*f, 1024, 64LL << 20));
    }
    j["memory_bytes"] = memory;
    j["max_upper_size_bytes"] = upper;
    j["max_output_bytes"] = output;
    int64_t pids = 128, files = 100000, deletes = 20, preview = 50;
    if (const Field* f = fields.Find("pids")) {
      ASSIGN_OR_RETURN(pids, GetInt(*f, 2, 1 << 22));
    }
    if (const Field* f = fields.Find("max_upper_files")) {
      ASSIGN_OR_RETURN(files, GetInt(*f, 16, 100'000'000));
    }
    if (const Field* f = fields.Find("max_low_deletes")) {
      ASSIGN_OR_RETURN(deletes, GetInt(*f, 0, INT64_MAX));
    }
    if (const Field* f = fields.Find("max_preview_files")) {
      ASSIGN_OR_RETURN(preview, GetInt(*f, 0, 100000));
    }
    j["pids"] = pids;
    j["max_upper_files"] = files;
    j["max_low_deletes"] = deletes;
    j["max_preview_files"] = preview;
    t->max_low_deletes = deletes;
    double cpu = 1.0;
    if (const Field* f = fields.Find("cpu")) {
      ASSIGN_OR_RETURN(std::string c, GetString(*f));
      char* end = nullptr;
      cpu = std::strtod(c.c_str(), &end);
      if (c.empty() || end == nullptr || *end != '\0' || !(cpu >= 0.01 && cpu <= 1024)) {
        return ValueErr(*f, "expected a number of CPUs between 0.01 and 1024, e.g. 1 or 0.5");
      }
    }
    j["cpu"] = cpu;
    int64_t timeout = 60'000;
    if (const Field* f = fields.Find("timeout")) {
      ASSIGN_OR_RETURN(timeout, GetDuration(*f, /*allow_zero=*/false));
      if (timeout > 24LL * 3600 * 1000) return ValueErr(*f, "timeout is longer than a day");
    }
    j["timeout_ms"] = timeout;
    // A command keeps uid 0 (without capabilities), so root-only files of the bound system
    // directories would be readable by owner bits: the secrets among them are hidden too.
    std::vector<std::string> hide = {"/root", "/home", "/var/lib/postgresql", "/etc/shadow",
                                     "/etc/gshadow", "/etc/ssh", "/etc/sudoers", "/etc/sudoers.d",
                                     "/var/lib/airlock"};
    if (const Field* f = fields.Find("hide")) {
      ASSIGN_OR_RETURN(auto items, GetStringList(*f));
      hide.clear();
      for (auto& [h, node] : items) {
        if (h.empty() || h.find('\0') != std::string::npos) return Err(node, f->path + ": bad path " + Quote(h));
        hide.push_back(Resolve(h));
      }
    }
    j["hide"] = hide;
    t->protect = {".git/**", ".env*", "**/*.pem", "**/id_*"};
    if (const Field* f = fields.Find("protect")) {
      ASSIGN_OR_RETURN(t->protect, GetGlobs(*f));
    }
    j["protect"] = t->protect;
    return Status::Ok();
  }

  // `headers:`, the headers (credentials) airlock adds to every request: header name ->
  // env:NAME, file:PATH (made absolute) or a literal, in the order written. Refused besides
  // what ParseHeaderSpec refuses: a name in `reserved` (lower case; headers the caller sets
  // itself) and a name given twice in any case. No message quotes a value.
  Result<std::vector<std::pair<std::string, std::string>>> GetHeaders(
      const Field& f, std::initializer_list<std::string_view> reserved) {
    std::vector<std::pair<std::string, std::string>> out;
    if (!f.value.IsNull() && !f.value.IsMap()) {
      return ValueErr(f,
                      "expected a mapping of header names to values, e.g. "
                      "{Authorization: \"env:API_TOKEN\"}, got " +
                          Describe(f.value));
    }
    auto lower = [](std::string v) {
      for (char& ch : v) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      return v;
    };
    for (auto it = f.value.begin(); f.value.IsMap() && it != f.value.end(); ++it) {
      if (!it->first.IsScalar()) return Err(it->first, f.path + ": keys must be header names");
      const std::string name = it->first.Scalar();
      if (!it->second.IsScalar()) {
        return Err(it->second.IsNull() ? it->first : it->second,
                   f.path + "." + name + ": expected a string (env:NAME, file:PATH or a value)");
      }
      for (const auto& [prev, unused] : out) {
        if (lower(prev) == lower(name)) {
          return Err(it->first, f.path + ": duplicate header " + Quote(name));
        }
      }
      for (std::string_view own : reserved) {
        if (lower(name) == own) {
          return Err(it->first, f.path + ": header " + Quote(name) +
                                    " is set by airlock itself, not by the policy");
        }
      }
      std::string value = it->second.Scalar();
      Result<http_target::HeaderSpec> spec = http_target::ParseHeaderSpec(name, value);
      if (!spec.ok()) return Err(it->second, f.path + ": " + spec.status().message());
      if (spec->source == http_target::HeaderSpec::Source::kFile) {
        value = "file:" + Resolve(spec->ref);
      }
      out.emplace_back(name, std::move(value));
    }
    return out;
  }

  // An HTTP target: the API's base URL, the requests it allows, and the headers (credentials)
  // airlock adds. Header values are references (env:NAME, file:PATH) or literals; none is
  // ever quoted in an error.
  Status LoadHttpTarget(const Fields& fields, const std::string& path, TargetSpec* t) {
    Json& j = t->fields;
    j = Json::object();
    j["kind"] = t->kind;
    const Field* b = fields.Find("base_url");
    if (b == nullptr) {
      return Missing(fields, path, "base_url", " (the API's URL, e.g. https://api.example.com)");
    }
    ASSIGN_OR_RETURN(std::string base, GetString(*b));
    Result<http_target::BaseUrl> parsed = http_target::ParseBaseUrl(base);
    if (!parsed.ok()) return ValueErr(*b, parsed.status().message());
    j["base_url"] = base;
    if (const Field* f = fields.Find("environment")) {
      ASSIGN_OR_RETURN(t->environment, GetString(*f));
      j["environment"] = t->environment;
    }
    // No allow list: nothing is allowed (fail closed), which `policy check` accepts.
    j["allow"] = Json::array();
    if (const Field* f = fields.Find("allow")) {
      ASSIGN_OR_RETURN(auto items, GetStringList(*f));
      for (auto& [text, node] : items) {
        Result<http_target::AllowRule> rule = http_target::ParseAllowRule(text);
        if (!rule.ok()) {
          return Err(node, f->path + ": bad entry " + Quote(text) + ": " + rule.status().message());
        }
        j["allow"].push_back(text);
      }
    }
    j["headers"] = Json::object();
    if (const Field* f = fields.Find("headers")) {
      ASSIGN_OR_RETURN(auto headers, GetHeaders(*f, {}));
      for (auto& [name, value] : headers) j["headers"][name] = value;
    }
    int64_t timeout = 30'000;
    if (const Field* f = fields.Find("timeout")) {
      ASSIGN_OR_RETURN(timeout, GetDuration(*f, /*allow_zero=*/false));
      if (timeout > 3600LL * 1000) return ValueErr(*f, "timeout is longer than an hour");
    }
    j["timeout_ms"] = timeout;
    int64_t max_response = 1LL << 20;
    if (const Field* f = fields.Find("max_response_bytes")) {
      ASSIGN_OR_RETURN(max_response, GetSize(*f, 0, 64LL << 20));
    }
    j["max_response_bytes"] = max_response;
    if (const Field* f = fields.Find("recipients")) {
      ASSIGN_OR_RETURN(std::string pointer, GetString(*f));
      if (pointer.empty() || pointer[0] != '/') {
        return ValueErr(*f, "expected a JSON pointer into the request body, e.g. /to");
      }
      try {
        (void)Json::json_pointer(pointer);
      } catch (const std::exception&) {
        return ValueErr(*f, "not a valid JSON pointer: " + Quote(pointer));
      }
      j["recipients"] = pointer;
    }
    if (const Field* f = fields.Find("max_recipients")) {
      if (!fields.Find("recipients")) {
        return ValueErr(*f, "max_recipients needs recipients: (where the body lists them)");
      }
      ASSIGN_OR_RETURN(int64_t n, GetInt(*f, 1, 1'000'000));
      j["max_recipients"] = n;
    }
    return Status::Ok();
  }

  // Agents and approvers share one namespace of names and of tokens: a token must say who
  // is calling without ambiguity.
  Status CheckIdentity(const std::string& what, const Field& name_field, const std::string& name,
                       const Field& token_field, const std::string& token) {
    if (auto it = names_.find(name); it != names_.end()) {
      return ValueErr(name_field, "duplicate name " + Quote(name) + " (already used by the " +
                                      it->second + ")");
    }
    if (auto it = tokens_.find(token); it != tokens_.end()) {
      return ValueErr(token_field, "this token_sha256 is already used by the " + it->second +
                                       ": every agent and approver needs its own token");
    }
    std::string desc = what + " " + Quote(name) + " at " + Origin(name_field.value);
    names_.emplace(name, desc);
    tokens_.emplace(token, desc);
    return Status::Ok();
  }

  Result<std::string> GetToken(const Field& f) const {
    ASSIGN_OR_RETURN(std::string s, GetString(f));
    std::string lower = s;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    bool hex = lower.size() == 64 && std::all_of(lower.begin(), lower.end(), IsLowerHex);
    if (!hex) {
      return ValueErr(f,
                      "must be 64 hexadecimal characters (the SHA-256 of the token, e.g. "
                      "`printf %s \"$TOKEN\" | sha256sum`), got " +
                          std::to_string(s.size()) + " characters");
    }
    return lower;
  }

  // Reads the name and token_sha256 both identities have; `keys` says which else is allowed.
  Result<Fields> ReadIdentity(const YAML::Node& item, const std::string& path, Keys keys,
                              const std::string& what, std::string* name, std::string* token) {
    ASSIGN_OR_RETURN(Fields fields, ReadMap(item, path, keys));
    const Field* n = fields.Find("name");
    if (n == nullptr) return Missing(fields, path, "name");
    ASSIGN_OR_RETURN(*name, GetName(*n));
    const Field* t = fields.Find("token_sha256");
    if (t == nullptr) {
      return Missing(fields, path, "token_sha256", " (hex SHA-256 of the " + what + "'s token)");
    }
    ASSIGN_OR_RETURN(*token, GetToken(*t));
    RETURN_IF_ERROR(CheckIdentity(what, *n, *name, *t, *token));
    return fields;
  }

  Status LoadAgents(const Field& section) {
    ASSIGN_OR_RETURN(std::vector<YAML::Node> items, GetList(section));
    for (size_t i = 0; i < items.size(); ++i) {
      AgentSpec a;
      a.loc = LocOf(items[i]);
      std::string path = "agents[" + std::to_string(i) + "]";
      ASSIGN_OR_RETURN(Fields fields,
                       ReadIdentity(items[i], path, kAgentKeys, "agent", &a.name, &a.token_sha256));
      if (const Field* f = fields.Find("scopes")) {
        ASSIGN_OR_RETURN(auto scopes, GetStringList(*f));
        for (auto& [scope, node] : scopes) {
          RETURN_IF_ERROR(CheckScope(scope, node, f->path));
          a.scopes.push_back(scope);
        }
      }
      policy_.agents.push_back(std::move(a));
    }
    return Status::Ok();
  }

  // A target, an MCP server (every tool of it), "airlock" (the built-in server), or
  // "SERVER/TOOLGLOB" (the tools of SERVER that the glob matches).
  Status CheckScope(const std::string& scope, const YAML::Node& node,
                    const std::string& path) const {
    if (policy_.targets.count(scope) != 0 || scope == kBuiltinMcpServer) return Status::Ok();
    const size_t slash = scope.find('/');
    if (slash == std::string::npos) {
      return Err(node, path + ": unknown target " + Quote(scope) + KnownTargets());
    }
    const std::string server = scope.substr(0, slash);
    const std::string glob = scope.substr(slash + 1);
    if (server != kBuiltinMcpServer && policy_.mcp_servers.count(server) == 0) {
      return Err(node, path + ": unknown MCP server " + Quote(server) + " in scope " +
                           Quote(scope) + KnownTargets());
    }
    std::string why;
    if (!GlobValid(glob, &why)) {
      return Err(node, path + ": bad tool pattern " + Quote(glob) + " in scope " + Quote(scope) +
                           ": " + why);
    }
    return Status::Ok();
  }

  Status LoadApprovers(const Field& section) {
    ASSIGN_OR_RETURN(std::vector<YAML::Node> items, GetList(section));
    for (size_t i = 0; i < items.size(); ++i) {
      ApproverSpec a;
      a.loc = LocOf(items[i]);
      std::string path = "approvers[" + std::to_string(i) + "]";
      ASSIGN_OR_RETURN(Fields fields, ReadIdentity(items[i], path, kApproverKeys, "approver",
                                                   &a.name, &a.token_sha256));
      if (const Field* f = fields.Find("roles")) {
        ASSIGN_OR_RETURN(auto roles, GetStringList(*f));
        for (auto& [role, node] : roles) {
          if (role.empty()) return Err(node, f->path + ": a role must not be empty");
          a.roles.push_back(role);
        }
      }
      policy_.approvers.push_back(std::move(a));
    }
    return Status::Ok();
  }

  // MCP servers are in `targets` too, but people wrote them in their own section.
  std::string KnownTargets() const {
    if (policy_.targets.empty()) return " (no targets are defined)";
    std::string targets, servers;
    for (const auto& [name, t] : policy_.targets) {
      std::string& list = t.kind == "mcp" ? servers : targets;
      list += (list.empty() ? "" : ", ") + name;
    }
    return " (defined targets: " + (targets.empty() ? std::string("none") : targets) +
           (servers.empty() ? "" : "; MCP servers: " + servers) + ")";
  }

  std::string KnownShellTargets() const {
    std::string out;
    for (const auto& [name, t] : policy_.targets) {
      if (t.kind == "shell") out += (out.empty() ? "" : ", ") + name;
    }
    return out.empty() ? " (no shell targets are defined)" : " (shell targets: " + out + ")";
  }

  std::string KnownAgents() const {
    if (policy_.agents.empty()) return " (no agents are defined)";
    std::string out;
    for (const AgentSpec& a : policy_.agents) out += (out.empty() ? "" : ", ") + a.name;
    return " (defined agents: " + out + ")";
  }

  Status LoadApprovals(const Field& section) {
    if (section.value.IsNull()) return Status::Ok();
    ASSIGN_OR_RETURN(Fields fields, ReadMap(section.value, "approvals", kApprovalKeys));
    Approvals& ap = policy_.approvals;
    const int64_t approvers = static_cast<int64_t>(policy_.approvers.size());
    struct Level {
      const char* key;
      int* value;
    };
    const Level levels[] = {
        {"read", &ap.read}, {"low", &ap.low}, {"high", &ap.high}, {"critical", &ap.critical}};
    for (const Level& level : levels) {
      const Field* f = fields.Find(level.key);
      if (f == nullptr) continue;
      ASSIGN_OR_RETURN(int64_t q, GetInt(*f, 0, INT64_MAX));
      if (q > approvers) {
        // Such actions could never be approved: a policy that looks strict but only denies.
        return ValueErr(*f, "needs " + FormatCount(q) + " approval" + (q == 1 ? "" : "s") +
                                " but only " + std::to_string(approvers) + " approver" +
                                (approvers == 1 ? " is" : "s are") + " defined");
      }
      *level.value = static_cast<int>(q);
    }
    // A riskier action must never need fewer approvals than a safer one.
    const int* prev = nullptr;
    const char* prev_key = nullptr;
    for (const Level& level : levels) {
      if (prev != nullptr && *level.value < *prev) {
        const Field* f = fields.Find(level.key);
        const Field* at = f != nullptr ? f : fields.Find(prev_key);
        return ValueErr(*at, std::string(level.key) + " needs " + std::to_string(*level.value) +
                                 " approvals, fewer than " + prev_key + " (" +
                                 std::to_string(*prev) +
                                 "): riskier actions need at least as many");
      }
      prev = level.value;
      prev_key = level.key;
    }
    if (const Field* f = fields.Find("timeout")) {
      ASSIGN_OR_RETURN(ap.timeout_ms, GetDuration(*f, /*allow_zero=*/false));
    }
    return Status::Ok();
  }

  bool AgentExists(const std::string& name) const {
    return std::any_of(policy_.agents.begin(), policy_.agents.end(),
                       [&](const AgentSpec& a) { return a.name == name; });
  }

  Result<std::string> GetTargetRef(const Field& f) const {
    ASSIGN_OR_RETURN(std::string s, GetString(f));
    if (policy_.targets.count(s) == 0)
      return ValueErr(f, "unknown target " + Quote(s) + KnownTargets());
    return s;
  }

  Result<std::string> GetAgentRef(const Field& f) const {
    ASSIGN_OR_RETURN(std::string s, GetString(f));
    if (!AgentExists(s)) return ValueErr(f, "unknown agent " + Quote(s) + KnownAgents());
    return s;
  }

  Result<std::string> GetOneOf(const Field& f, Keys allowed, const std::string& what) const {
    ASSIGN_OR_RETURN(std::string s, GetString(f));
    if (!Contains(allowed, s)) {
      return ValueErr(f, "unknown " + what + " " + Quote(s) + " (allowed: " + Join(allowed) + ")");
    }
    return s;
  }

  Status LoadRuleMatch(const Field& section, RuleMatch* m) {
    if (section.value.IsNull()) return Status::Ok();  // `match:` alone: every action
    ASSIGN_OR_RETURN(Fields fields, ReadMap(section.value, section.path, kRuleMatchKeys));
    if (const Field* f = fields.Find("target")) {
      ASSIGN_OR_RETURN(m->target, GetTargetRef(*f));
    }
    if (const Field* f = fields.Find("agent")) {
      ASSIGN_OR_RETURN(m->agent, GetAgentRef(*f));
    }
    if (const Field* f = fields.Find("kind")) {
      ASSIGN_OR_RETURN(m->kind, GetOneOf(*f, kEffectKinds, "kind"));
    }
    if (const Field* f = fields.Find("table")) {
      ASSIGN_OR_RETURN(std::string table, GetString(*f));
      if (table.empty()) return ValueErr(*f, "must not be empty");
      m->table = table;
    }
    if (const Field* f = fields.Find("op")) {
      ASSIGN_OR_RETURN(m->op, GetOneOf(*f, kOps, "op"));
    }
    if (const Field* f = fields.Find("rows_gt")) {
      ASSIGN_OR_RETURN(m->rows_gt, GetInt(*f, 0, INT64_MAX));
    }
    if (const Field* f = fields.Find("command")) {
      ASSIGN_OR_RETURN(std::string c, GetString(*f));
      if (c.empty() || c.find('/') != std::string::npos) {
        return ValueErr(*f, "expected a command name such as rm or git (a glob, no '/')");
      }
      m->command = c;
    }
    if (const Field* f = fields.Find("path")) {
      ASSIGN_OR_RETURN(std::string g, GetString(*f));
      if (!g.empty() && g[0] == '/') {
        // An HTTP request path; shell paths are relative to the workspace.
        Result<std::string> glob = http_target::ParsePathGlob(g);
        if (!glob.ok())
          return ValueErr(*f, "bad pattern " + Quote(g) + ": " + glob.status().message());
      } else {
        std::string why;
        if (!GlobValid(g, &why)) return ValueErr(*f, "bad pattern " + Quote(g) + ": " + why);
      }
      m->path = g;
    }
    if (const Field* f = fields.Find("method")) {
      ASSIGN_OR_RETURN(std::string method, GetString(*f));
      Result<std::string> normalized = http_target::NormalizeMethod(method);
      if (!normalized.ok()) return ValueErr(*f, normalized.status().message());
      m->method = *normalized;
    }
    if (const Field* f = fields.Find("body")) RETURN_IF_ERROR(LoadArgChecks(*f, &m->body));
    if (const Field* f = fields.Find("deletes_gt")) {
      ASSIGN_OR_RETURN(m->deletes_gt, GetInt(*f, 0, INT64_MAX));
    }
    if (const Field* f = fields.Find("files_gt")) {
      ASSIGN_OR_RETURN(m->files_gt, GetInt(*f, 0, INT64_MAX));
    }
    return Status::Ok();
  }

  Status LoadRules(const Field& section) {
    ASSIGN_OR_RETURN(std::vector<YAML::Node> items, GetList(section));
    for (size_t i = 0; i < items.size(); ++i) {
      Rule r;
      r.loc = LocOf(items[i]);
      std::string path = "rules[" + std::to_string(i) + "]";
      ASSIGN_OR_RETURN(Fields fields, ReadMap(items[i], path, kRuleKeys));
      const Field* risk = fields.Find("risk");
      if (risk == nullptr) {
        return Missing(fields, path, "risk", " (one of read, low, high, critical)");
      }
      ASSIGN_OR_RETURN(std::string risk_name, GetString(*risk));
      std::optional<Risk> parsed = ParseRisk(risk_name);
      if (!parsed) {
        return ValueErr(
            *risk, "unknown risk " + Quote(risk_name) + " (allowed: read, low, high, critical)");
      }
      r.risk = *parsed;
      if (const Field* f = fields.Find("match")) RETURN_IF_ERROR(LoadRuleMatch(*f, &r.match));
      r.reason = "rule at " + rule_file_ + ":" + std::to_string(r.loc.line);
      if (const Field* f = fields.Find("reason")) {
        ASSIGN_OR_RETURN(std::string reason, GetString(*f));
        if (!reason.empty()) r.reason = std::move(reason);
      }
      policy_.rules.push_back(std::move(r));
    }
    return Status::Ok();
  }

  Status LoadLimits(const Field& section) {
    ASSIGN_OR_RETURN(std::vector<YAML::Node> items, GetList(section));
    for (size_t i = 0; i < items.size(); ++i) {
      Limit l;
      l.loc = LocOf(items[i]);
      std::string path = "limits[" + std::to_string(i) + "]";
      ASSIGN_OR_RETURN(Fields fields, ReadMap(items[i], path, kLimitKeys));
      if (const Field* f = fields.Find("match"); f != nullptr && !f->value.IsNull()) {
        ASSIGN_OR_RETURN(Fields match, ReadMap(f->value, f->path, kLimitMatchKeys));
        if (const Field* t = match.Find("target")) {
          ASSIGN_OR_RETURN(l.match_target, GetTargetRef(*t));
        }
        if (const Field* a = match.Find("agent")) {
          ASSIGN_OR_RETURN(l.match_agent, GetAgentRef(*a));
        }
      }
      if (const Field* f = fields.Find("rate")) {
        ASSIGN_OR_RETURN(std::string rate, GetString(*f));
        Result<policy_internal::Rate> parsed = ParseRate(rate);
        if (!parsed.ok()) return ValueErr(*f, parsed.status().message());
        l.rate_count = parsed->count;
        l.rate_window_ms = parsed->window_ms;
      }
      if (const Field* f = fields.Find("max_rows")) {
        ASSIGN_OR_RETURN(l.max_rows, GetInt(*f, 0, INT64_MAX));
      }
      if (const Field* f = fields.Find("max_recipients")) {
        ASSIGN_OR_RETURN(l.max_recipients, GetInt(*f, 0, INT64_MAX));
      }
      if (const Field* f = fields.Find("max_recipients_per_hour")) {
        ASSIGN_OR_RETURN(l.max_recipients_per_hour, GetInt(*f, 0, INT64_MAX));
      }
      if (const Field* f = fields.Find("on_exceed")) {
        constexpr std::string_view kOnExceed[] = {"deny", "approve", "trip"};
        ASSIGN_OR_RETURN(std::string v, GetOneOf(*f, kOnExceed, "on_exceed"));
        l.on_exceed = v == "deny"      ? OnExceed::kDeny
                      : v == "approve" ? OnExceed::kApprove
                                       : OnExceed::kTrip;
      }
      if (l.rate_count == 0 && !l.max_rows && !l.max_recipients && !l.max_recipients_per_hour) {
        return Err(fields.map(), path + ": a limit must set rate, max_rows, max_recipients or "
                                        "max_recipients_per_hour");
      }
      policy_.limits.push_back(std::move(l));
    }
    return Status::Ok();
  }

  Result<std::string> GetWebhookUrl(const Field& f) const {
    ASSIGN_OR_RETURN(std::string url, GetString(f));
    std::string problem = WebhookUrlProblem(url);
    if (!problem.empty()) return ValueErr(f, problem);
    return url;
  }

  Result<std::vector<std::string>> GetNotifyEvents(const Field& f) const {
    ASSIGN_OR_RETURN(auto items, GetStringList(f));
    if (items.empty()) {
      // A hook that wants nothing is a mistake, not a way to switch one off.
      return ValueErr(f, "name at least one event (" + Join(kNotifyEvents) +
                             "), or leave out `on` for all of them");
    }
    std::vector<std::string> out;
    for (auto& [event, node] : items) {
      if (!Contains(kNotifyEvents, event)) {
        return Err(node, f.path + ": unknown event " + Quote(event) +
                             " (allowed: " + Join(kNotifyEvents) + ")");
      }
      if (std::find(out.begin(), out.end(), event) != out.end()) {
        return Err(node, f.path + ": " + Quote(event) + " is listed twice");
      }
      out.push_back(event);
    }
    return out;
  }

  Status LoadNotify(const Field& section) {
    ASSIGN_OR_RETURN(std::vector<YAML::Node> items, GetList(section));
    if (items.size() > kMaxWebhooks) {
      return Err(items[kMaxWebhooks],
                 "notify: at most " + std::to_string(kMaxWebhooks) + " webhooks are allowed");
    }
    for (size_t i = 0; i < items.size(); ++i) {
      NotifySpec n;
      n.loc = LocOf(items[i]);
      std::string path = "notify[" + std::to_string(i) + "]";
      ASSIGN_OR_RETURN(Fields fields, ReadMap(items[i], path, kNotifyKeys));
      const Field* url = fields.Find("url");
      if (url == nullptr) return Missing(fields, path, "url", " (the http:// or https:// webhook)");
      ASSIGN_OR_RETURN(n.url, GetWebhookUrl(*url));
      for (const NotifySpec& prev : policy_.notify) {
        if (prev.url == n.url) {
          // Every event would be delivered twice; one entry lists all the events it wants.
          return ValueErr(*url, "the same url as the webhook at line " +
                                    std::to_string(prev.loc.line) +
                                    " (list its events in one `on`)");
        }
      }
      n.on.assign(std::begin(kNotifyEvents), std::end(kNotifyEvents));
      if (const Field* f = fields.Find("on")) {
        ASSIGN_OR_RETURN(n.on, GetNotifyEvents(*f));
      }
      policy_.notify.push_back(std::move(n));
    }
    return Status::Ok();
  }

  // ---- MCP servers ----------------------------------------------------------------------

  Result<bool> GetBool(const Field& f) const {
    if (f.value.IsScalar() && f.value.Tag() != "!") {
      const std::string& s = f.value.Scalar();
      if (s == "true" || s == "True" || s == "TRUE") return true;
      if (s == "false" || s == "False" || s == "FALSE") return false;
    }
    return ValueErr(f, "expected true or false, got " +
                           (f.value.IsScalar() && f.value.Tag() == "!" ? std::string("the string ")
                                                                       : std::string()) +
                           Describe(f.value));
  }

  // A plain YAML number ("5", "-2.5", "1e3"); nothing else (no .inf, no hex).
  static std::optional<double> ParseNumber(const std::string& s) {
    if (s.empty() || s.size() > 64) return std::nullopt;
    bool digit = false;
    for (char c : s) {
      if (c >= '0' && c <= '9') {
        digit = true;
      } else if (c != '+' && c != '-' && c != '.' && c != 'e' && c != 'E') {
        return std::nullopt;
      }
    }
    if (!digit) return std::nullopt;
    char* end = nullptr;
    errno = 0;
    double d = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size() || errno == ERANGE || !std::isfinite(d)) return std::nullopt;
    return d;
  }

  Result<double> GetNumber(const Field& f) const {
    std::optional<double> d;
    if (f.value.IsScalar() && f.value.Tag() != "!") d = ParseNumber(f.value.Scalar());
    if (!d) {
      return ValueErr(f,
                      "expected a number, got " +
                          (f.value.IsScalar() && f.value.Tag() == "!" ? std::string("the string ")
                                                                      : std::string()) +
                          Describe(f.value));
    }
    return *d;
  }

  static bool IsDecimalInteger(const std::string& s) {
    size_t i = !s.empty() && (s[0] == '-' || s[0] == '+') ? 1 : 0;
    return i < s.size() && std::all_of(s.begin() + static_cast<long>(i), s.end(),
                                       [](char c) { return c >= '0' && c <= '9'; });
  }

  // `equals:` values as JSON: quoted scalars are strings; plain ones are null, booleans,
  // integers and numbers when they look like one, strings otherwise. The depth is bounded
  // by CheckHostileInput.
  Result<Json> YamlToJson(const YAML::Node& n, const std::string& path) const {
    switch (n.Type()) {
      case YAML::NodeType::Null:
        return Json(nullptr);
      case YAML::NodeType::Scalar: {
        const std::string& s = n.Scalar();
        if (n.Tag() == "!" || n.Tag() == "tag:yaml.org,2002:str") return Json(s);
        if (s == "null" || s == "Null" || s == "NULL" || s == "~") return Json(nullptr);
        if (s == "true" || s == "True" || s == "TRUE") return Json(true);
        if (s == "false" || s == "False" || s == "FALSE") return Json(false);
        if (IsDecimalInteger(s)) {
          Result<int64_t> i = ParseInt64(s);
          if (!i.ok()) return Err(n, path + ": " + i.status().message());
          return Json(*i);
        }
        if (std::optional<double> d = ParseNumber(s)) return Json(*d);
        return Json(s);
      }
      case YAML::NodeType::Sequence: {
        Json out = Json::array();
        for (auto it = n.begin(); it != n.end(); ++it) {
          ASSIGN_OR_RETURN(Json item, YamlToJson(*it, path));
          out.push_back(std::move(item));
        }
        return out;
      }
      case YAML::NodeType::Map: {
        Json out = Json::object();
        for (auto it = n.begin(); it != n.end(); ++it) {
          if (!it->first.IsScalar()) return Err(it->first, path + ": keys must be plain strings");
          const std::string& k = it->first.Scalar();
          if (out.contains(k)) return Err(it->first, path + ": duplicate key " + Quote(k));
          ASSIGN_OR_RETURN(out[k], YamlToJson(it->second, path));
        }
        return out;
      }
      default:
        return Err(n, path + ": expected a value, got " + Describe(n));
    }
  }

  Result<Risk> GetRisk(const Field& f) const {
    ASSIGN_OR_RETURN(std::string name, GetString(f));
    std::optional<Risk> risk = ParseRisk(name);
    if (!risk) {
      return ValueErr(f, "unknown risk " + Quote(name) + " (allowed: read, low, high, critical)");
    }
    return *risk;
  }

  // `"/to": {count_gt: 1}`: one JSON pointer and the checks on what it names.
  Status LoadArgCheck(const YAML::Node& key, const YAML::Node& value, const std::string& path,
                      std::vector<ArgPredicate>* out) {
    ArgPredicate p;
    p.pointer = key.Scalar();
    p.loc = LocOf(key);
    if (std::string problem = policy_internal::JsonPointerProblem(p.pointer); !problem.empty()) {
      return Err(key, path + ": bad JSON pointer " + Quote(p.pointer) + ": " + problem);
    }
    const std::string check_path = path + "[" + Quote(p.pointer) + "]";
    const std::string hint = ": name at least one check (" + Join(kArgCheckKeys) + ")";
    if (value.IsNull()) return Err(key, check_path + hint);
    ASSIGN_OR_RETURN(Fields fields, ReadMap(value, check_path, kArgCheckKeys));
    if (const Field* f = fields.Find("count_gt")) {
      ASSIGN_OR_RETURN(p.count_gt, GetInt(*f, 0, INT64_MAX));
    }
    if (const Field* f = fields.Find("matches")) {
      ASSIGN_OR_RETURN(std::string pattern, GetString(*f));
      if (std::string problem = policy_internal::RegexProblem(pattern); !problem.empty()) {
        return ValueErr(*f, "bad regular expression " + Quote(pattern) + ": " + problem);
      }
      p.matches = std::move(pattern);
    }
    if (const Field* f = fields.Find("equals")) {
      ASSIGN_OR_RETURN(p.equals, YamlToJson(f->value, f->path));
    }
    if (const Field* f = fields.Find("gt")) {
      ASSIGN_OR_RETURN(p.gt, GetNumber(*f));
    }
    if (!p.count_gt && !p.matches && !p.equals && !p.gt) return Err(value, check_path + hint);
    out->push_back(std::move(p));
    return Status::Ok();
  }

  Status LoadArgChecks(const Field& f, std::vector<ArgPredicate>* out) {
    if (f.value.IsNull()) return Status::Ok();  // `args:` alone: the tool alone matches
    if (!f.value.IsMap()) {
      return ValueErr(f,
                      "expected a mapping of JSON pointers to checks, e.g. "
                      "{\"/to\": {count_gt: 1}}, got " +
                          Describe(f.value));
    }
    for (auto it = f.value.begin(); it != f.value.end(); ++it) {
      if (!it->first.IsScalar()) return Err(it->first, f.path + ": keys must be JSON pointers");
      for (const ArgPredicate& prev : *out) {
        if (prev.pointer == it->first.Scalar()) {
          return Err(it->first, f.path + ": duplicate key " + Quote(prev.pointer) +
                                    " (first at line " + std::to_string(prev.loc.line) + ")");
        }
      }
      RETURN_IF_ERROR(LoadArgCheck(it->first, it->second, f.path, out));
    }
    return Status::Ok();
  }

  Status LoadToolRules(const Field& section, McpServerSpec* s) {
    ASSIGN_OR_RETURN(std::vector<YAML::Node> items, GetList(section));
    for (size_t i = 0; i < items.size(); ++i) {
      McpToolRule r;
      r.loc = LocOf(items[i]);
      const std::string path = section.path + "[" + std::to_string(i) + "]";
      ASSIGN_OR_RETURN(Fields fields, ReadMap(items[i], path, kMcpToolKeys));
      const Field* tool = fields.Find("tool");
      if (tool == nullptr) {
        return Missing(fields, path, "tool", " (a tool name, or a glob such as read_*)");
      }
      ASSIGN_OR_RETURN(r.tool, GetString(*tool));
      std::string why;
      if (!GlobValid(r.tool, &why))
        return ValueErr(*tool, "bad pattern " + Quote(r.tool) + ": " + why);
      const Field* risk = fields.Find("risk");
      if (risk == nullptr) {
        return Missing(fields, path, "risk", " (one of read, low, high, critical)");
      }
      ASSIGN_OR_RETURN(r.risk, GetRisk(*risk));
      if (const Field* f = fields.Find("args")) RETURN_IF_ERROR(LoadArgChecks(*f, &r.args));
      r.reason = "rule at " + rule_file_ + ":" + std::to_string(r.loc.line);
      if (const Field* f = fields.Find("reason")) {
        ASSIGN_OR_RETURN(std::string reason, GetString(*f));
        if (!reason.empty()) r.reason = std::move(reason);
      }
      s->tools.push_back(std::move(r));
    }
    return Status::Ok();
  }

  // The upstream's argv. Its arguments often hold credentials (connection strings, keys):
  // no error here quotes them.
  Status LoadMcpCommand(const Field& f, McpServerSpec* s) {
    if (f.value.IsScalar()) {
      return ValueErr(f,
                      "expected a list of the program and its arguments, e.g. "
                      "[npx, -y, @modelcontextprotocol/server-filesystem, /data] (a string is "
                      "not split)");
    }
    ASSIGN_OR_RETURN(auto argv, GetStringList(f));
    if (argv.empty()) return ValueErr(f, "name at least the program to run");
    for (auto& [arg, node] : argv) {
      if (arg.find('\0') != std::string::npos) {
        return Err(node, f.path + ": an argument contains a NUL byte");
      }
      s->command.push_back(arg);
    }
    if (s->command[0].empty())
      return Err(argv[0].second, f.path + ": the program must not be empty");
    return Status::Ok();
  }

  static bool IsEnvName(const std::string& s) {
    if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    });
  }

  // The upstream's environment. Values are credentials more often than not: no error quotes
  // one.
  Status LoadMcpEnv(const Field& f, McpServerSpec* s) {
    if (f.value.IsNull()) return Status::Ok();
    if (!f.value.IsMap()) {
      return ValueErr(f, "expected a mapping of variable names to values, got " +
                             std::string(f.value.IsSequence() ? "a list" : "a string"));
    }
    for (auto it = f.value.begin(); it != f.value.end(); ++it) {
      const YAML::Node key = it->first;
      if (!key.IsScalar() || !IsEnvName(key.Scalar())) {
        return Err(key, f.path + ": bad variable name " +
                            (key.IsScalar() ? Quote(key.Scalar()) : Describe(key)) +
                            ": use letters, digits and '_', not starting with a digit");
      }
      const std::string& name = key.Scalar();
      if (s->env.count(name) != 0) return Err(key, f.path + ": duplicate variable " + Quote(name));
      Field value{name, f.path + "." + name, key, it->second};
      if (!it->second.IsScalar()) {
        return ValueErr(value, std::string("expected a string, got ") +
                                   (it->second.IsNull() ? "nothing" : "a list or mapping"));
      }
      if (it->second.Scalar().find('\0') != std::string::npos) {
        return ValueErr(value, "the value contains a NUL byte");
      }
      s->env.emplace(name, it->second.Scalar());
    }
    return Status::Ok();
  }

  Result<std::string> GetSandbox(const Field& f) const {
    ASSIGN_OR_RETURN(std::string name, GetString(f));
    const TargetSpec* t = policy_.FindTarget(name);
    if (t == nullptr || t->kind != "shell") {
      const std::string what =
          t == nullptr ? "unknown target " + Quote(name)
          : t->kind == "mcp"
              ? Quote(name) + " is an MCP server, not a shell target"
              : "target " + Quote(name) + " is a " + t->kind + " target, not a shell target";
      return ValueErr(f, what +
                             ": `sandbox` names the shell target whose sandbox the server runs "
                             "in" +
                             KnownShellTargets());
    }
    return name;
  }

  // How to reach the upstream: exactly one of `command` (stdio) and `url` (streamable HTTP);
  // env and sandbox belong to a command.
  Status LoadMcpTransport(const Fields& fields, const std::string& path, McpServerSpec* s) {
    const Field* command = fields.Find("command");
    const Field* url = fields.Find("url");
    if (command != nullptr && url != nullptr) {
      const Field* later = command->key.Mark().pos > url->key.Mark().pos ? command : url;
      return Err(later->key, path +
                                 ": set `command` (a stdio server) or `url` (a streamable HTTP "
                                 "server), not both");
    }
    if (command == nullptr && url == nullptr) {
      return Err(fields.map(), path +
                                   ": missing required key \"command\" or \"url\" (a stdio "
                                   "server's argv, or a streamable HTTP server's URL)");
    }
    if (url != nullptr) {
      for (const char* key : {"env", "sandbox", "read_paths"}) {
        if (const Field* f = fields.Find(key)) {
          return Err(f->key, f->path +
                                 ": applies only to a stdio server (`command`), not to a "
                                 "`url`");
        }
      }
      ASSIGN_OR_RETURN(s->url, GetWebhookUrl(*url));
      if (const Field* f = fields.Find("headers")) {
        // What the streamable HTTP transport sets itself stays airlock's.
        ASSIGN_OR_RETURN(s->headers, GetHeaders(*f, {"accept", "content-type", "mcp-session-id",
                                                     "mcp-protocol-version", "last-event-id"}));
      }
      return Status::Ok();
    }
    if (const Field* f = fields.Find("headers")) {
      return Err(f->key, f->path +
                             ": applies only to a streamable HTTP server (`url`); a stdio "
                             "server's credentials go in its `env`");
    }
    RETURN_IF_ERROR(LoadMcpCommand(*command, s));
    if (const Field* f = fields.Find("env")) RETURN_IF_ERROR(LoadMcpEnv(*f, s));
    if (const Field* f = fields.Find("sandbox")) {
      ASSIGN_OR_RETURN(s->sandbox, GetSandbox(*f));
    }
    if (const Field* f = fields.Find("read_paths")) {
      if (s->sandbox.empty()) {
        return Err(f->key, f->path + ": applies only to a server run in a `sandbox`");
      }
      ASSIGN_OR_RETURN(auto items, GetStringList(*f));
      for (auto& [p, node] : items) {
        if (p.empty() || p.find('\0') != std::string::npos) {
          return Err(node, f->path + ": bad path " + Quote(p));
        }
        s->read_paths.push_back(Resolve(p));
      }
    }
    return Status::Ok();
  }

  // The server as a target of kind "mcp", so that scopes, rules, limits and breakers name it
  // like any target.
  TargetSpec McpTarget(const McpServerSpec& s) const {
    TargetSpec t;
    t.name = s.name;
    t.kind = "mcp";
    t.loc = s.loc;
    Json& j = t.fields;
    j = Json::object();
    j["kind"] = t.kind;
    if (s.url.empty()) {
      j["command"] = s.command;
      j["env"] = s.env;
      j["sandbox"] = s.sandbox;
      if (!s.read_paths.empty()) j["read_paths"] = s.read_paths;
    } else {
      j["url"] = s.url;
      for (const auto& [name, value] : s.headers) j["headers"][name] = value;
    }
    j["trust_annotations"] = s.trust_annotations;
    j["approval_wait_ms"] = s.approval_wait_ms;
    j["max_message_bytes"] = s.max_message_bytes;
    j["sync_reads"] = s.sync_reads;
    return t;
  }

  Status LoadMcpServer(const std::string& name, const YAML::Node& key, const YAML::Node& entry) {
    const std::string path = "mcp_servers." + name;
    if (!entry.IsMap()) {
      return Err(entry.IsNull() ? key : entry,
                 path + ": expected a mapping with `command` or `url`, got " + Describe(entry));
    }
    ASSIGN_OR_RETURN(Fields fields, ReadMap(entry, path, kMcpServerKeys));
    McpServerSpec s;
    s.name = name;
    s.loc = LocOf(key);
    RETURN_IF_ERROR(LoadMcpTransport(fields, path, &s));
    if (const Field* f = fields.Find("tools")) RETURN_IF_ERROR(LoadToolRules(*f, &s));
    if (const Field* f = fields.Find("trust_annotations")) {
      ASSIGN_OR_RETURN(s.trust_annotations, GetBool(*f));
    }
    if (const Field* f = fields.Find("sync_reads")) {
      ASSIGN_OR_RETURN(s.sync_reads, GetBool(*f));
    }
    if (const Field* f = fields.Find("approval_wait")) {
      ASSIGN_OR_RETURN(s.approval_wait_ms, GetDuration(*f, /*allow_zero=*/true));
      if (s.approval_wait_ms > kMaxApprovalWaitMs) return ValueErr(*f, "must be at most 1h");
    }
    if (const Field* f = fields.Find("max_message_size")) {
      ASSIGN_OR_RETURN(s.max_message_bytes, GetSize(*f, 1024, 64LL << 20));
    }
    policy_.targets.emplace(name, McpTarget(s));
    policy_.mcp_servers.emplace(name, std::move(s));
    return Status::Ok();
  }

  Status LoadMcpServers(const Field& section) {
    if (section.value.IsNull()) return Status::Ok();
    if (!section.value.IsMap()) {
      return ValueErr(
          section, "expected a mapping of server names to servers, got " + Describe(section.value));
    }
    for (auto it = section.value.begin(); it != section.value.end(); ++it) {
      const YAML::Node key = it->first;
      if (!key.IsScalar()) return Err(key, "mcp_servers: server names must be plain strings");
      Field name_field{"", "mcp_servers", key, key};
      ASSIGN_OR_RETURN(std::string name, GetName(name_field));
      if (name.find_first_not_of('.') == std::string::npos) {
        // The name is a path segment of /mcp/NAME.
        return Err(key, "mcp_servers: bad name " + Quote(name) + ": not only dots");
      }
      if (name == kBuiltinMcpServer) {
        return Err(key,
                   "mcp_servers: the name \"airlock\" is reserved for the built-in MCP "
                   "server (`airlock mcp stdio --server airlock`)");
      }
      if (policy_.mcp_servers.count(name) != 0) {
        return Err(key, "mcp_servers: duplicate server " + Quote(name));
      }
      if (const TargetSpec* t = policy_.FindTarget(name)) {
        return Err(
            key, "mcp_servers: " + Quote(name) + " is already the name of the target at line " +
                     std::to_string(t->loc.line) + " (a server and a target cannot share a name)");
      }
      RETURN_IF_ERROR(LoadMcpServer(name, key, it->second));
    }
    return Status::Ok();
  }

  std::string file_;       // as the caller named it, for error messages
  fs::path dir_;           // relative paths in the policy are resolved against it
  std::string rule_file_;  // basename, for default rule reasons
  Policy policy_;
  std::map<std::string, std::string> names_;   // agent/approver name -> who has it
  std::map<std::string, std::string> tokens_;  // token_sha256 -> who has it
};

fs::path AbsolutePath(const std::string& p) {
  std::error_code ec;
  fs::path abs = fs::absolute(p.empty() ? fs::path(".") : fs::path(p), ec);
  if (ec) abs = fs::path(p);
  return abs.lexically_normal();
}

Result<std::shared_ptr<const Policy>> LoadWithSource(const std::string& text,
                                                     const std::string& file_for_errors,
                                                     const fs::path& source, const fs::path& dir) {
  try {
    Loader loader(file_for_errors, source, dir);
    return loader.Load(text);
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(Where(file_for_errors, e.mark.line, e.mark.column) +
                                   "malformed YAML: " + e.msg);
  } catch (const std::exception& e) {
    return Status::InvalidArgument(Where(file_for_errors, 0, 0) +
                                   "cannot load the policy: " + e.what());
  }
}

}  // namespace

Result<std::shared_ptr<const Policy>> LoadPolicyText(const std::string& text,
                                                     const std::string& path_for_errors) {
  std::string file = path_for_errors.empty() ? "<policy>" : path_for_errors;
  fs::path source =
      path_for_errors.empty() ? AbsolutePath("airlock.yaml") : AbsolutePath(path_for_errors);
  return LoadWithSource(text, file, source, source.parent_path());
}

Result<std::shared_ptr<const Policy>> LoadPolicyFile(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    return Status::InvalidArgument(Where(path, 0, 0) + "is a directory, not a policy file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::NotFound(path + ": cannot open the policy file: " + std::strerror(errno));
  }
  // Read at most one byte past the limit: a huge (or endless, e.g. /dev/zero) file must
  // not be slurped into memory just to be refused. Read in 16 KiB steps rather than into a
  // zeroed 1 MiB buffer: every CLI command loads the policy, and touching 256 fresh pages
  // costs milliseconds on small VMs.
  std::string text;
  char chunk[16384];
  while (text.size() <= policy_internal::kMaxPolicyBytes) {
    in.read(chunk, sizeof chunk);
    if (in.bad()) return Status::IoError(path + ": cannot read the policy file");
    text.append(chunk, static_cast<size_t>(in.gcount()));
    if (in.eof()) break;
  }
  if (text.size() > policy_internal::kMaxPolicyBytes + 1) text.resize(policy_internal::kMaxPolicyBytes + 1);
  fs::path source = AbsolutePath(path);
  return LoadWithSource(text, path, source, source.parent_path());
}

}  // namespace airlock
