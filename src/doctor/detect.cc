#include "doctor/detect.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>

#include "doctor/redact.h"

namespace airlock::doctor {
namespace {

constexpr size_t kMaxEvidence = 200;

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool StartsWith(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}
bool EndsWith(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

// Cuts at a character boundary, after redaction (so a cut can never reveal anything).
std::string Clip(std::string s) {
  if (s.size() <= kMaxEvidence) return s;
  size_t n = kMaxEvidence;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0) == 0x80) --n;
  s.resize(n);
  return s + "...";
}

class Reporter {
 public:
  Reporter(const ServerEntry& s, const CheckContext& ctx, std::vector<Finding>* out)
      : s_(s), ctx_(ctx), out_(out) {}

  void Add(Severity sev, const char* kind, std::string title, std::string evidence,
           std::string fix) {
    Finding f;
    f.severity = sev;
    f.kind = kind;
    f.server = s_.name;
    f.project = s_.project;
    f.file = ctx_.file;
    f.pointer = s_.pointer;
    // Names and values from the file may hold control characters or bidi overrides. The
    // pieces are redacted already; redacting the joined text as well guarantees that no
    // secret survives however they combine (a name that is itself a key, say).
    f.title = DisplaySafe(RedactText(title));
    f.evidence = Clip(DisplaySafe(RedactText(evidence)));
    f.fix = std::move(fix);
    out_->push_back(std::move(f));
  }

 private:
  const ServerEntry& s_;
  const CheckContext& ctx_;
  std::vector<Finding>* out_;
};

std::string CredentialFix(const ServerEntry& s, const CheckContext& ctx) {
  std::string fix =
      "rotate it (it sat in plain text where anything that reads this file has it), then keep "
      "it out of the client's config: ";
  if (s.stdio()) {
    fix +=
        "`airlock doctor --fix` moves the server behind airlock and the secret into the "
        "policy's mcp_servers env, which the agent never sees";
  } else {
    fix += "let the client expand it from the environment at start";
  }
  if (ctx.client == "VS Code") {
    fix += ", or prompt for it with an \"inputs\" entry (password: true) and ${input:ID}";
  } else if (ctx.client == "Claude Code") {
    fix += ", or reference an environment variable (${VAR})";
  } else if (ctx.client == "Cursor") {
    fix += ", or reference an environment variable (${env:VAR})";
  }
  return fix;
}

Severity CredentialSeverity(const std::vector<SecretSpan>& spans) {
  for (const SecretSpan& sp : spans) {
    if (sp.finding && !sp.host.empty() && ProductionHostReason(sp.host)) return Severity::kCritical;
  }
  return Severity::kHigh;
}

const SecretSpan* FirstFinding(const std::vector<SecretSpan>& spans) {
  for (const SecretSpan& sp : spans) {
    if (sp.finding) return &sp;
  }
  return nullptr;
}

void CheckCredentials(const ServerEntry& s, const CheckContext& ctx, bool behind, Reporter& r) {
  const std::string fix = CredentialFix(s, ctx);
  for (size_t i = 0; i < s.args.size(); ++i) {
    const std::string where = "args[" + std::to_string(i) + "]: ";
    if (SecretFlagValue(s.args, i)) {
      r.Add(Severity::kHigh, "credential", "plain-text secret after " + s.args[i - 1],
            where + RedactArg(s.args, i - 1) + " " + RedactArg(s.args, i), fix);
      continue;
    }
    const auto spans = FindSecrets(s.args[i]);
    if (const SecretSpan* sp = FirstFinding(spans)) {
      r.Add(CredentialSeverity(spans), "credential", "plain-text " + sp->kind,
            where + RedactArg(s.args, i), fix);
    }
  }
  for (const auto& [name, value] : s.env) {
    // The agent's own airlock token is meant to be here: the client presents it to airlock.
    if (behind && name == "AIRLOCK_TOKEN") continue;
    if (auto kind = NamedSecretKind(name, value)) {
      r.Add(CredentialSeverity(FindSecrets(value)), "credential", "plain-text " + *kind,
            "env " + DisplaySafe(name) + "=" + RedactNamedValue(name, value), fix);
    }
  }
  if (!s.url.empty()) {
    const auto spans = FindSecrets(s.url);
    if (const SecretSpan* sp = FirstFinding(spans)) {
      r.Add(CredentialSeverity(spans), "credential", "plain-text " + sp->kind,
            "url: " + RedactText(s.url), fix);
    }
  }
  for (const auto& [name, value] : s.headers) {
    if (behind && ToLower(name) == "authorization") continue;  // the agent's airlock token
    if (auto kind = NamedSecretKind(name, value)) {
      r.Add(Severity::kHigh, "credential", "plain-text " + *kind + " in a header",
            "header " + DisplaySafe(name) + ": " + RedactNamedValue(name, value), fix);
    }
  }
}

// The path-like parts of one argument: itself, the value of --flag=VALUE, the source of a
// container mount (SRC:DST, type=bind,source=SRC).
std::vector<std::string> PathCandidates(const std::string& arg) {
  std::vector<std::string> out{arg};
  const size_t eq = arg.find('=');
  if (StartsWith(arg, "-") && eq != std::string::npos) out.push_back(arg.substr(eq + 1));
  if ((StartsWith(arg, "/") || StartsWith(arg, "~") || StartsWith(arg, "$")) &&
      arg.find(':') != std::string::npos) {
    out.push_back(arg.substr(0, arg.find(':')));
  }
  size_t start = 0;
  while (start <= arg.size()) {
    size_t comma = arg.find(',', start);
    if (comma == std::string::npos) comma = arg.size();
    std::string_view item(arg.data() + start, comma - start);
    for (std::string_view key : {"source=", "src="}) {
      if (StartsWith(item, key)) out.emplace_back(item.substr(key.size()));
    }
    start = comma + 1;
  }
  return out;
}

void CheckRoots(const ServerEntry& s, const CheckContext& ctx, Reporter& r) {
  const std::string fix =
      "give the server only the directory its task needs (a project folder), and run it "
      "through airlock in a shell target's sandbox (mcp_servers: NAME: sandbox: TARGET), so its "
      "writes are staged and gated";
  auto report = [&](RootKind kind, const std::string& where, const std::string& shown) {
    switch (kind) {
      case RootKind::kNone:
        return;
      case RootKind::kWholeFileSystem:
        r.Add(Severity::kCritical, "filesystem_root", "the whole file system is open to it",
              where + shown, fix);
        return;
      case RootKind::kAllHomes:
        r.Add(Severity::kCritical, "filesystem_root", "every home directory is open to it",
              where + shown, fix);
        return;
      case RootKind::kHome:
        r.Add(Severity::kHigh, "filesystem_root", "a home directory is open to it", where + shown,
              fix);
        return;
    }
  };
  for (size_t i = 0; i < s.args.size(); ++i) {
    RootKind worst = RootKind::kNone;
    for (const std::string& c : PathCandidates(s.args[i])) {
      worst = std::max(worst, ClassifyRoot(c, ctx.home));
    }
    report(worst, "args[" + std::to_string(i) + "]: ", RedactArg(s.args, i));
  }
  for (const auto& [name, value] : s.env) {
    if (ClassifySecretName(name) != SecretName::kNo) continue;
    report(ClassifyRoot(value, ctx.home), "env " + DisplaySafe(name) + "=", RedactText(value));
  }
}

bool IsHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

// A bare host name from a value such as "db.prod.example.com:5432".
std::string BareHost(std::string_view v) {
  std::string h = ToLower(v.substr(0, v.find_first_of(":/")));
  if (h.empty() || !std::all_of(h.begin(), h.end(), IsHostChar)) return "";
  return h;
}

bool IsHostFlag(std::string_view flag) {
  static const std::set<std::string, std::less<>> kFlags = {
      "--host", "-h", "--hostname", "--server", "--db-host", "--endpoint", "--address"};
  return kFlags.count(flag) > 0;
}

bool IsHostName(std::string_view name) {
  const std::string l = ToLower(name);
  return l.find("host") != std::string::npos || l.find("server") != std::string::npos ||
         l.find("endpoint") != std::string::npos || l.find("url") != std::string::npos ||
         l.find("uri") != std::string::npos || l.find("dsn") != std::string::npos;
}

void HostsInText(std::string_view text, std::vector<std::string>* hosts) {
  for (std::string_view u : FindUrls(text)) {
    if (auto p = ParseUrl(u)) {
      // A multi-host connection string: postgres://u@h1:5432,h2:5432/db
      size_t start = 0;
      while (start <= p->host.size()) {
        size_t comma = p->host.find(',', start);
        if (comma == std::string::npos) comma = p->host.size();
        std::string h = BareHost(std::string_view(p->host).substr(start, comma - start));
        if (!h.empty()) hosts->push_back(h);
        start = comma + 1;
      }
    }
  }
  // libpq / ODBC key=value strings: "host=db.prod.example.com port=5432", "Server=...;"
  const std::string lower = ToLower(text);
  for (std::string_view key : {"host=", "hostaddr=", "server=", "data source="}) {
    size_t pos = 0;
    while ((pos = lower.find(key, pos)) != std::string::npos) {
      const bool word_start = pos == 0 || !IsHostChar(lower[pos - 1]);
      pos += key.size();
      if (!word_start) continue;
      std::string h =
          BareHost(std::string_view(lower).substr(pos, lower.find_first_of(" ;,&", pos) - pos));
      if (!h.empty()) hosts->push_back(h);
    }
  }
}

void CheckProductionHosts(const ServerEntry& s, bool behind, Reporter& r) {
  if (behind) return;  // its URL is airlock's; the upstream is the policy's business
  struct Seen {
    std::string host, where;
  };
  std::vector<Seen> seen;
  auto add = [&](const std::vector<std::string>& hosts, const std::string& where) {
    for (const std::string& h : hosts) {
      if (std::none_of(seen.begin(), seen.end(), [&](const Seen& x) { return x.host == h; })) {
        seen.push_back({h, where});
      }
    }
  };
  if (!s.url.empty()) {
    std::vector<std::string> hosts;
    HostsInText(s.url, &hosts);
    add(hosts, "url");
  }
  for (size_t i = 0; i < s.args.size(); ++i) {
    std::vector<std::string> hosts;
    HostsInText(s.args[i], &hosts);
    const std::string& a = s.args[i];
    if (i > 0 && IsHostFlag(s.args[i - 1])) hosts.push_back(BareHost(a));
    const size_t eq = a.find('=');
    if (StartsWith(a, "--") && eq != std::string::npos && IsHostFlag(a.substr(0, eq))) {
      hosts.push_back(BareHost(std::string_view(a).substr(eq + 1)));
    }
    hosts.erase(std::remove(hosts.begin(), hosts.end(), ""), hosts.end());
    add(hosts, "args[" + std::to_string(i) + "]");
  }
  for (const auto& [name, value] : s.env) {
    std::vector<std::string> hosts;
    HostsInText(value, &hosts);
    if (hosts.empty() && IsHostName(name)) {
      // A dot, so that SERVER_MODE=production is not taken for a host called "production".
      std::string h = BareHost(value);
      if (h.find('.') != std::string::npos) hosts.push_back(h);
    }
    add(hosts, "env " + DisplaySafe(name));
  }
  for (const Seen& x : seen) {
    auto why = ProductionHostReason(x.host);
    if (!why) continue;
    r.Add(Severity::kHigh, "production_host", "production-looking host " + DisplaySafe(x.host),
          x.where + ": " + DisplaySafe(x.host) + " (" + *why + ")",
          "do not hand an agent production directly: give it a staging copy or a read-only "
          "account, or put airlock in front (an airlock SQL target, or mcp_servers with tool "
          "rules) so that writes wait for a human");
  }
}

void CheckBehindAirlock(const ServerEntry& s, Reporter& r) {
  if (s.stdio()) {
    r.Add(Severity::kMedium, "not_behind_airlock",
          "not behind airlock: runs with your rights, tool calls unchecked",
          "command: " + RedactedCommandLine(s),
          "run it through airlock: `airlock doctor --fix` writes a copy of this config that "
          "starts `airlock mcp stdio --server NAME` instead, and prints the mcp_servers entry "
          "to add to the policy");
  } else {
    r.Add(Severity::kMedium, "not_behind_airlock",
          "not behind airlock: the client reaches it directly", "url: " + RedactText(s.url),
          "add it to the policy (mcp_servers: NAME: url: URL) and point the client at airlock "
          "serve's /mcp/NAME with the agent's token as its bearer token");
  }
}

std::string Basename(std::string_view path) {
  const size_t slash = path.find_last_of("/\\");
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

}  // namespace

const char* SeverityName(Severity s) {
  switch (s) {
    case Severity::kLow:
      return "low";
    case Severity::kMedium:
      return "medium";
    case Severity::kHigh:
      return "high";
    case Severity::kCritical:
      return "critical";
  }
  return "low";
}

bool IsAirlockUrl(std::string_view url) {
  auto u = ParseUrl(url);
  if (!u || (u->scheme != "http" && u->scheme != "https")) return false;
  std::string_view path = u->path;
  if (!StartsWith(path, "/mcp/")) return false;
  path.remove_prefix(5);
  if (EndsWith(path, "/")) path.remove_suffix(1);
  return !path.empty() && std::all_of(path.begin(), path.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

bool IsBehindAirlock(const ServerEntry& s) {
  if (s.stdio()) {
    const std::string base = ToLower(Basename(s.command));
    if (base != "airlock" && base != "airlock.exe") return false;
    for (size_t i = 0; i + 1 < s.args.size(); ++i) {
      if (s.args[i] == "mcp" && s.args[i + 1] == "stdio") return true;
    }
    return false;
  }
  return IsAirlockUrl(s.url);
}

std::optional<std::string> ProductionHostReason(std::string_view host_in) {
  std::string host = ToLower(host_in);
  while (!host.empty() && host.back() == '.') host.pop_back();
  if (host.empty() || host == "localhost" || EndsWith(host, ".localhost") ||
      StartsWith(host, "127.") || host == "::1" || host == "0.0.0.0") {
    return std::nullopt;
  }
  size_t start = 0;
  while (start <= host.size()) {
    size_t end = host.find_first_of(".-_", start);
    if (end == std::string::npos) end = host.size();
    const std::string token = host.substr(start, end - start);
    for (std::string_view word : {"production", "prod", "prd", "live"}) {
      if (!StartsWith(token, word)) continue;
      std::string_view rest = std::string_view(token).substr(word.size());
      if (std::all_of(rest.begin(), rest.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return "name contains \"" + std::string(word) + "\"";
      }
    }
    start = end + 1;
  }
  static const std::pair<std::string_view, std::string_view> kManaged[] = {
      {".rds.amazonaws.com", "an Amazon RDS host"},
      {".cache.amazonaws.com", "an Amazon ElastiCache host"},
      {".redshift.amazonaws.com", "an Amazon Redshift host"},
      {".database.azure.com", "an Azure database host"},
      {".database.windows.net", "an Azure SQL host"},
      {".documents.azure.com", "an Azure Cosmos DB host"},
      {".mongodb.net", "a MongoDB Atlas host"},
      {".supabase.co", "a Supabase host"},
      {".supabase.com", "a Supabase host"},
      {".neon.tech", "a Neon host"},
      {".psdb.cloud", "a PlanetScale host"},
      {".snowflakecomputing.com", "a Snowflake host"},
      {".redis-cloud.com", "a Redis Cloud host"},
  };
  for (const auto& [suffix, why] : kManaged) {
    if (EndsWith(host, suffix)) return std::string(why);
  }
  if (StartsWith(host, "db.") || StartsWith(host, "database.")) return "a database host name";
  return std::nullopt;
}

RootKind ClassifyRoot(std::string_view path_in, std::string_view home) {
  std::string p(path_in);
  while (p.size() >= 2 && (p.front() == '"' || p.front() == '\'') && p.back() == p.front()) {
    p = p.substr(1, p.size() - 2);
  }
  if (p.empty()) return RootKind::kNone;
  std::replace(p.begin(), p.end(), '\\', '/');
  // Windows: C:/ is the whole drive, C:/Users/NAME a home.
  if (p.size() >= 2 && p[1] == ':' && std::isalpha(static_cast<unsigned char>(p[0]))) {
    p = p.substr(2);
    if (p.empty()) p = "/";
    if (p[0] != '/') return RootKind::kNone;
    if (StartsWith(ToLower(p), "/users")) p = "/Users" + p.substr(6);
  }
  for (std::string_view h : {"~", "$HOME", "${HOME}", "%USERPROFILE%", "$env:USERPROFILE"}) {
    if (StartsWith(p, h) && (p.size() == h.size() || p[h.size()] == '/')) {
      p = "/home/~" + p.substr(h.size());
      break;
    }
  }
  if (p[0] != '/') return RootKind::kNone;
  std::string norm = std::filesystem::path(p).lexically_normal().generic_string();
  while (norm.size() > 1 && norm.back() == '/') norm.pop_back();
  if (norm == "/") return RootKind::kWholeFileSystem;
  if (norm == "/home" || norm == "/Users") return RootKind::kAllHomes;
  if (norm == "/root") return RootKind::kHome;
  if (!home.empty()) {
    std::string h = std::filesystem::path(std::string(home)).lexically_normal().generic_string();
    while (h.size() > 1 && h.back() == '/') h.pop_back();
    if (norm == h && h != "/") return RootKind::kHome;
  }
  for (std::string_view base : {"/home/", "/Users/"}) {
    if (StartsWith(norm, base) && norm.size() > base.size() &&
        norm.find('/', base.size()) == std::string::npos) {
      return RootKind::kHome;
    }
  }
  return RootKind::kNone;
}

std::string RedactedCommandLine(const ServerEntry& s) {
  std::string line = RedactText(s.command);
  for (size_t i = 0; i < s.args.size(); ++i) {
    std::string a = RedactArg(s.args, i);
    const bool plain = !a.empty() && a.find_first_of(" \t\"'\\") == std::string::npos;
    line += " " + (plain ? a : Json(a).dump(-1, ' ', false, Json::error_handler_t::replace));
    if (line.size() > kMaxEvidence) break;  // Clip() will cut it; no need to build more
  }
  return DisplaySafe(line);
}

std::vector<Finding> CheckServer(const ServerEntry& s, const CheckContext& ctx) {
  std::vector<Finding> out;
  Reporter r(s, ctx, &out);
  const bool behind = IsBehindAirlock(s);
  CheckCredentials(s, ctx, behind, r);
  if (s.stdio() && !behind) CheckRoots(s, ctx, r);
  CheckProductionHosts(s, behind, r);
  if (!behind) CheckBehindAirlock(s, r);
  return out;
}

}  // namespace airlock::doctor
