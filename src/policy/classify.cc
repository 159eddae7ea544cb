// Classification: the default risk of an observed Effect (DESIGN.md "Risk from effects"),
// raised by every matching rule. Rules never lower a risk: the result is the maximum.
//
// Hot path: called for every action. Rules are indexed by target in the constructor and the
// matching loop compares strings in place; only reasons (for people) allocate.
#include <algorithm>
#include <cctype>
#include <string_view>

#include "core/glob.h"
#include "policy/mcp_rules.h"
#include "policy/policy.h"

namespace airlock {
namespace {

constexpr int64_t kDefaultMaxLowRows = 100;
constexpr int64_t kDefaultMaxLowDeletes = 20;

std::string Plural(int64_t n, std::string_view one, std::string_view many) {
  return FormatCount(n) + " " + std::string(n == 1 ? one : many);
}

// "drop_table" -> "DROP TABLE".
std::string OpTitle(std::string_view op) {
  if (op == "pragma_write") return "PRAGMA";
  std::string out(op);
  for (char& c : out)
    c = c == '_' ? ' ' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// "DROP INDEX idx_x on users", "VACUUM".
std::string OpPhrase(const DdlOp& d) {
  std::string s = OpTitle(d.op);
  if (!d.object.empty()) s += " " + d.object;
  if (!d.table.empty() && d.table != d.object) s += " on " + d.table;
  return s;
}

std::string Parenthesised(const std::vector<std::string>& parts) {
  if (parts.empty()) return "";
  std::string s = " (";
  for (size_t i = 0; i < parts.size(); ++i) s += (i ? ", " : "") + parts[i];
  return s + ")";
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool IsCriticalDdl(std::string_view op) {
  return StartsWith(op, "drop_") || op == "alter_table" || op == "attach" || op == "pragma_write" ||
         op == "vacuum_into";
}

bool IsLowDdl(std::string_view op) {
  return StartsWith(op, "create_") || op == "reindex" || op == "analyze" || op == "detach" ||
         op == "vacuum";
}

// One DDL operation's risk and its reason.
void ClassifyDdl(const DdlOp& d, Classification* c) {
  if (IsCriticalDdl(d.op)) {
    std::string what;
    if (d.op == "drop_table") {
      std::vector<std::string> parts;
      if (d.rows >= 0) parts.push_back(Plural(d.rows, "row", "rows"));
      parts.push_back(Plural(static_cast<int64_t>(d.indexes.size()), "index", "indexes"));
      if (!d.triggers.empty()) {
        parts.push_back(Plural(static_cast<int64_t>(d.triggers.size()), "trigger", "triggers"));
      }
      what = "DROP TABLE " + d.object + Parenthesised(parts);
    } else if (d.op == "alter_table") {
      std::vector<std::string> parts;
      if (d.rows >= 0) parts.push_back(Plural(d.rows, "row", "rows"));
      what = "ALTER TABLE " + d.object + Parenthesised(parts);
    } else if (d.op == "attach" || d.op == "vacuum_into") {
      const std::string& file = d.detail.empty() ? d.object : d.detail;
      what = OpTitle(d.op) + " '" + file + "'";
    } else if (d.op == "pragma_write") {
      what = "PRAGMA " + (d.detail.empty() ? d.object : d.detail);
    } else {
      what = OpPhrase(d);
    }
    c->risk = MaxRisk(c->risk, Risk::kCritical);
    c->reasons.push_back(what + " is critical");
  } else if (IsLowDdl(d.op)) {
    c->risk = MaxRisk(c->risk, Risk::kLow);
    c->reasons.push_back(OpPhrase(d) + " is a schema change (low)");
  } else {
    // An operation this build does not know: fail closed.
    c->risk = MaxRisk(c->risk, Risk::kHigh);
    c->reasons.push_back("unknown schema operation \"" + d.op + "\"" +
                         (d.object.empty() ? "" : " on " + d.object) + ": high (fail closed)");
  }
}

int64_t RowsOf(const TableChange& t) {
  return t.inserted + t.updated + t.deleted;
}

void ClassifySql(const Effect& e, int64_t max_low_rows, Classification* c) {
  if (e.IsRead()) {
    c->risk = Risk::kRead;
    c->reasons.push_back("reads only: no row or schema change");
    return;
  }
  for (const DdlOp& d : e.ddl) ClassifyDdl(d, c);
  for (const TableChange& t : e.tables) {
    if (t.all_rows_deleted) {
      c->risk = MaxRisk(c->risk, Risk::kCritical);
      c->reasons.push_back("DELETE of every row of " + t.table + " (" +
                           Plural(t.deleted, "row", "rows") + ") is critical");
    }
    if (t.all_rows_updated) {
      c->risk = MaxRisk(c->risk, Risk::kHigh);
      c->reasons.push_back("UPDATE of every row of " + t.table + " (" +
                           Plural(t.updated, "row", "rows") + ") is high");
    }
    if (!t.has_primary_key && RowsOf(t) > 0) {
      c->risk = MaxRisk(c->risk, Risk::kHigh);
      c->reasons.push_back("table " + t.table +
                           " has no PRIMARY KEY: airlock cannot preview or undo its rows (high)");
    }
  }
  const int64_t rows = e.RowsChanged();
  if (rows <= 0) return;
  std::string tables;
  for (const TableChange& t : e.tables) {
    if (RowsOf(t) > 0) tables += (tables.empty() ? "" : ", ") + t.table;
  }
  if (rows > max_low_rows) {
    c->risk = MaxRisk(c->risk, Risk::kHigh);
    c->reasons.push_back("changes " + Plural(rows, "row", "rows") + " (more than " +
                         FormatCount(max_low_rows) + ") in " + tables + " is high");
  } else {
    c->risk = MaxRisk(c->risk, Risk::kLow);
    c->reasons.push_back("changes " + Plural(rows, "row", "rows") + " in " + tables + " (at most " +
                         FormatCount(max_low_rows) + ") is low");
  }
}

// Kinds without a default table yet: only an effect with nothing in it is a read; anything
// else is high until a connector teaches the classifier better (fail closed).
void ClassifyOther(const Effect& e, Classification* c) {
  bool extra_empty = e.extra.is_null() || (e.extra.is_object() && e.extra.empty());
  if (e.IsRead() && extra_empty) {
    c->risk = Risk::kRead;
    c->reasons.push_back("reads only: no change observed");
    return;
  }
  c->risk = MaxRisk(c->risk, Risk::kHigh);
  c->reasons.push_back("no default for kind " + (e.kind.empty() ? std::string("(none)") : e.kind) +
                       ": high (fail closed)");
}

int64_t ExtraInt(const Effect& e, const char* key) {
  auto it = e.extra.find(key);
  return it != e.extra.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

// A message: one recipient is low; more is a batch, high. Bcc recipients count like the
// others (they are in extra.recipients). The hard cap (the target's max_recipients) is a
// denial in the gateway's limits, not a risk. A message whose count is missing or not
// positive is high (fail closed).
void ClassifyMail(const Effect& e, Classification* c) {
  const int64_t n = ExtraInt(e, "recipient_count");
  if (n == 1) {
    c->risk = MaxRisk(c->risk, Risk::kLow);
    c->reasons.push_back("one message to one recipient (irreversible once sent)");
    return;
  }
  c->risk = MaxRisk(c->risk, Risk::kHigh);
  c->reasons.push_back(n > 1 ? "one message to " + FormatCount(n) + " recipients: a batch"
                             : "a message without a known recipient count: high (fail closed)");
}

std::string ExtraString(const Effect& e, const char* key) {
  auto it = e.extra.find(key);
  return it != e.extra.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// "a, b and 3 more" from a JSON list of strings and its full count.
std::string Listed(const Json& list, int64_t total) {
  std::string out;
  int64_t shown = 0;
  if (list.is_array()) {
    for (const auto& p : list) {
      if (!p.is_string() || shown == 3) continue;
      out += (shown++ ? ", " : "") + p.get<std::string>();
    }
  }
  if (total > shown) out += " and " + FormatCount(total - shown) + " more";
  return out;
}

// DESIGN.md, shell row: read = no file change and no network attempt; low = changes inside
// the workspace; high = deletions over max_low_deletes, protected paths, a network attempt,
// a limit that ended the command; critical = what the sandbox and the commit refuse.
void ClassifyShell(const Effect& e, int64_t max_low_deletes, Classification* c) {
  const int64_t added = ExtraInt(e, "added"), changed = ExtraInt(e, "changed"),
                deleted = ExtraInt(e, "deleted");
  const std::string killed_by = ExtraString(e, "killed_by");
  const std::string upper_full = ExtraString(e, "upper_full");
  const bool network = e.extra.value("network_attempt", false) == true;
  const std::string summary = "changes " + Plural(e.files_changed, "path", "paths") +
                              " inside the workspace (" + FormatCount(added) + " added, " +
                              FormatCount(changed) + " changed, " + FormatCount(deleted) +
                              " deleted)";
  if (e.files_changed > 0) c->risk = MaxRisk(c->risk, Risk::kLow);
  if (deleted > max_low_deletes) {
    c->risk = MaxRisk(c->risk, Risk::kHigh);
    c->reasons.push_back("deletes " + Plural(deleted, "path", "paths") + " (more than " +
                         FormatCount(max_low_deletes) + ") is high");
  }
  if (int64_t n = ExtraInt(e, "protected_count"); n > 0) {
    c->risk = MaxRisk(c->risk, Risk::kHigh);
    c->reasons.push_back("changes protected " + std::string(n == 1 ? "path " : "paths ") +
                         Listed(e.extra.value("protected", Json::array()), n) + " (high)");
  }
  if (int64_t n = ExtraInt(e, "outside_symlinks_count"); n > 0) {
    c->risk = MaxRisk(c->risk, Risk::kHigh);
    c->reasons.push_back("creates " + Plural(n, "symlink", "symlinks") +
                         " pointing outside the workspace: " +
                         Listed(e.extra.value("outside_symlinks", Json::array()), n) + " (high)");
  }
  if (network) {
    c->risk = MaxRisk(c->risk, Risk::kHigh);
    std::string detail = ExtraString(e, "network_detail");
    c->reasons.push_back("tried to use the network" + (detail.empty() ? "" : " (" + detail + ")") +
                         ", which the sandbox blocked (high)");
  }
  if (!killed_by.empty()) {
    c->risk = MaxRisk(c->risk, Risk::kHigh);
    c->reasons.push_back("the " + killed_by + " limit killed the command: its effect may be "
                         "incomplete (high)");
  }
  if (!upper_full.empty()) {
    c->risk = MaxRisk(c->risk, Risk::kHigh);
    c->reasons.push_back("the command filled the sandbox's " +
                         std::string(upper_full == "files" ? "file-count" : "size") +
                         " cap: its effect may be incomplete (high)");
  }
  if (int64_t n = ExtraInt(e, "refused_count"); n > 0) {
    c->risk = MaxRisk(c->risk, Risk::kCritical);
    c->reasons.push_back("made what airlock never commits (" +
                         Listed(e.extra.value("refused", Json::array()), n) + ") is critical");
  }
  if (c->risk == Risk::kRead) {
    c->reasons.push_back("reads only: no file change and no network attempt");
  } else if (e.files_changed > 0) {
    // What changed comes first; "is low" only when nothing above raised it.
    c->reasons.insert(c->reasons.begin(), c->risk == Risk::kLow ? summary + " is low" : summary);
  }
}

std::string_view Basename(std::string_view path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

bool MatchesCommand(const std::string& glob, const Effect& e) {
  auto it = e.extra.find("command");
  if (it == e.extra.end() || !it->is_array() || it->empty() || !(*it)[0].is_string()) return false;
  return GlobMatch(glob, Basename((*it)[0].get<std::string>()));
}

// An MCP call into a sandboxed upstream has a file effect too (see ClassifyMcp).
bool HasFileEffect(const Effect& e) {
  return e.kind == "shell" || e.kind == "mcp";
}

// An HTTP request's path ("/v1/items?x=1", already canonical) against a rule glob that
// starts with '/'.
bool MatchesHttpPath(const std::string& glob, const Effect& e) {
  if (e.kind != "http") return false;
  std::string path = ExtraString(e, "path");
  path = path.substr(0, path.find('?'));
  if (path.empty() || path[0] != '/') return false;
  std::string_view p = std::string_view(path).substr(1), g = std::string_view(glob).substr(1);
  return g.empty() ? p.empty() : GlobMatch(g, p);
}

bool MatchesPath(const std::string& glob, const Effect& e) {
  if (!glob.empty() && glob[0] == '/') return MatchesHttpPath(glob, e);
  if (!HasFileEffect(e)) return false;
  for (const FileChange& f : e.files) {
    if (GlobMatch(glob, f.path)) return true;
  }
  // Only part of the changes is listed: an unlisted one might match (fail closed).
  return e.files_changed > static_cast<int64_t>(e.files.size());
}

bool MatchesTable(const std::string& table, const Effect& e) {
  for (const TableChange& t : e.tables) {
    if (t.table == table) return true;
  }
  for (const DdlOp& d : e.ddl) {
    if (d.object == table || d.table == table) return true;
  }
  return false;
}

bool MatchesOp(const std::string& op, const Effect& e) {
  if (op == "insert" || op == "update" || op == "delete") {
    for (const TableChange& t : e.tables) {
      int64_t n = op[0] == 'i' ? t.inserted : op[0] == 'u' ? t.updated : t.deleted;
      if (n > 0) return true;
    }
  }
  for (const DdlOp& d : e.ddl) {
    if (d.op == op) return true;
  }
  return false;
}

// An HTTP request's body against a rule's `body:` predicates. Undecided (a string too long
// for its pattern) counts as a match, and *undecided says why (fail closed).
bool MatchesBody(const std::vector<ArgPredicate>& body, const Effect& e, std::string* undecided) {
  if (e.kind != "http") return false;
  static const Json kNoBody = nullptr;
  auto it = e.extra.find("body");
  const Json& doc = it == e.extra.end() ? kNoBody : *it;
  std::string why;
  switch (policy_internal::EvaluatePredicates(body, doc, &why)) {
    case policy_internal::PredicateVerdict::kHolds:
      return true;
    case policy_internal::PredicateVerdict::kFails:
      return false;
    case policy_internal::PredicateVerdict::kUndecided:
      break;
  }
  *undecided = why.empty() ? "a body check could not be decided" : why;
  return true;
}

// Cheapest tests first: most rules fail on agent or kind.
bool Matches(const RuleMatch& m, const std::string& agent, const std::string& target,
             const Effect& e, int64_t rows, std::string* undecided) {
  if (m.agent && *m.agent != agent) return false;
  if (m.kind && *m.kind != e.kind) return false;
  if (m.target && *m.target != target) return false;
  if (m.rows_gt && !(rows > *m.rows_gt)) return false;
  if (m.table && !MatchesTable(*m.table, e)) return false;
  if (m.op && !MatchesOp(*m.op, e)) return false;
  if (m.command && !MatchesCommand(*m.command, e)) return false;
  if (m.deletes_gt && !(HasFileEffect(e) && ExtraInt(e, "deleted") > *m.deletes_gt)) return false;
  if (m.files_gt && !(HasFileEffect(e) && e.files_changed > *m.files_gt)) return false;
  if (m.path && !MatchesPath(*m.path, e)) return false;
  if (m.method && !(e.kind == "http" && ExtraString(e, "method") == *m.method)) return false;
  if (!m.body.empty() && !MatchesBody(m.body, e, undecided)) return false;
  return true;
}

std::string RuleReason(const Rule& r, std::string_view file) {
  std::string at = "rule at " + std::string(file) + ":" + std::to_string(r.loc.line);
  std::string arrow = at + " \u2192 " + RiskName(r.risk);
  // A rule without its own reason already reads "rule at FILE:LINE"; do not say it twice.
  if (r.reason.empty() || r.reason == at) return arrow;
  return r.reason + " (" + arrow + ")";
}

// What the gateway observed in the upstream's sandbox during the call, in the keys a shell
// effect uses; none of them for an upstream without a sandbox.
bool ObservedInSandbox(const Effect& e) {
  if (e.files_changed > 0) return true;
  if (!e.extra.is_object()) return false;
  for (const char* key : {"deleted", "protected_count", "outside_symlinks_count", "network_attempt",
                          "killed_by", "upper_full", "refused_count"}) {
    if (e.extra.contains(key)) return true;
  }
  return false;
}

// An MCP tools/call: the server's tool rules decide the base risk (an effect of kind "mcp"
// has no tables or files, so the read default of other kinds must not apply); a file effect
// observed in the sandbox raises it like `airlock exec` would.
void ClassifyMcp(const Policy* policy, const std::string& target, const Effect& e,
                 Classification* c) {
  const McpServerSpec* server = policy ? policy->FindMcpServer(target) : nullptr;
  if (server == nullptr) {
    c->risk = MaxRisk(c->risk, Risk::kHigh);
    c->reasons.push_back("'" + target + "' is not an MCP server of the policy: high (fail closed)");
    return;
  }
  static const Json kNoArguments = Json::object();
  static const Json kNoAnnotations = nullptr;
  const bool has_extra = e.extra.is_object();
  auto field = [&](const char* key) -> const Json* {
    if (!has_extra) return nullptr;
    auto it = e.extra.find(key);
    return it == e.extra.end() ? nullptr : &*it;
  };
  const Json* tool = field("tool");
  const Json* arguments = field("arguments");
  const Json* annotations = field("annotations");
  *c = ClassifyMcpCall(*server, tool && tool->is_string() ? tool->get<std::string>() : "",
                       arguments ? *arguments : kNoArguments,
                       annotations ? *annotations : kNoAnnotations, Basename(policy->source_path));
  if (!ObservedInSandbox(e)) return;
  const TargetSpec* sandbox = policy->FindTarget(server->sandbox);
  Classification files;
  ClassifyShell(e, sandbox ? sandbox->max_low_deletes : kDefaultMaxLowDeletes, &files);
  if (files.risk == Risk::kRead) return;
  c->risk = MaxRisk(c->risk, files.risk);
  c->reasons.insert(c->reasons.end(), files.reasons.begin(), files.reasons.end());
}

// DESIGN.md, http row: GET and HEAD are reads (made at once); any other method is low and
// cannot be undone. What the allow list refuses never reaches the classifier (denied).
void ClassifyHttp(const Effect& e, Classification* c) {
  const std::string method = ExtraString(e, "method");
  const std::string request = method + " " + ExtraString(e, "url");
  if (method == "GET" || method == "HEAD") {
    c->reasons.push_back(request + " is a read");
    return;
  }
  if (method.empty()) {
    c->risk = MaxRisk(c->risk, Risk::kHigh);
    c->reasons.push_back("an HTTP request without a method: high (fail closed)");
    return;
  }
  c->risk = MaxRisk(c->risk, Risk::kLow);
  c->reasons.push_back(request + " is low (an HTTP request airlock cannot undo)");
}

}  // namespace

Classifier::Classifier(std::shared_ptr<const Policy> policy) : policy_(std::move(policy)) {
  if (!policy_) return;
  for (const Rule& r : policy_->rules) {
    if (r.match.target) {
      by_target_[*r.match.target].push_back(&r);
    } else {
      any_target_.push_back(&r);
    }
  }
}

Classification Classifier::Classify(const std::string& agent, const std::string& target,
                                    const Effect& effect) const {
  Classification c;
  const TargetSpec* spec = policy_ ? policy_->FindTarget(target) : nullptr;
  if (effect.kind == "sql") {
    ClassifySql(effect, spec ? spec->max_low_rows : kDefaultMaxLowRows, &c);
  } else if (effect.kind == "shell") {
    ClassifyShell(effect, spec ? spec->max_low_deletes : kDefaultMaxLowDeletes, &c);
  } else if (effect.kind == "mcp") {
    ClassifyMcp(policy_.get(), target, effect, &c);
  } else if (effect.kind == "mail") {
    ClassifyMail(effect, &c);
  } else if (effect.kind == "http") {
    ClassifyHttp(effect, &c);
  } else {
    ClassifyOther(effect, &c);
  }
  if (!policy_) return c;

  static const std::vector<const Rule*> kNone;
  auto it = by_target_.find(target);
  const std::vector<const Rule*>& specific = it == by_target_.end() ? kNone : it->second;
  const std::string_view file = Basename(policy_->source_path);
  const int64_t rows = effect.RowsChanged();

  // Both lists point into policy_->rules, so pointer order is file order: merging them
  // keeps the reasons in the order the rules were written.
  size_t i = 0, j = 0;
  while (i < specific.size() || j < any_target_.size()) {
    const Rule* r;
    if (j == any_target_.size() || (i < specific.size() && specific[i] < any_target_[j])) {
      r = specific[i++];
    } else {
      r = any_target_[j++];
    }
    std::string undecided;
    if (!Matches(r->match, agent, target, effect, rows, &undecided)) continue;
    if (!undecided.empty()) {
      // The rule might apply; airlock cannot tell, so it applies at least at high.
      Rule raised = *r;
      raised.risk = MaxRisk(r->risk, Risk::kHigh);
      c.risk = MaxRisk(c.risk, raised.risk);
      c.reasons.push_back(RuleReason(raised, file) + ": " + undecided +
                          ", so it applies (fail closed)");
      continue;
    }
    c.risk = MaxRisk(c.risk, r->risk);
    c.reasons.push_back(RuleReason(*r, file));
  }
  return c;
}

}  // namespace airlock
