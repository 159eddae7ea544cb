// airlock doctor: secret recognition and redaction, the four detectors, the client formats,
// --fix (copies and policy YAML) and the whole run on real files in a temporary home.
#include "doctor/doctor.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "core/json.h"
#include "doctor/config.h"
#include "doctor/detect.h"
#include "doctor/fix.h"
#include "doctor/redact.h"

namespace airlock::doctor {
namespace {

namespace fs = std::filesystem;

// Secrets of the fixtures below; no output may contain one.
const std::string kOpenAi = "sk-proj-Q7b9XkP2mN4vR8sT1wY6zA3cE5fG0hJ";
const std::string kGitHub = "ghp_aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA2bC4";
const std::string kDbPass = "Tr0ub4dor&3xyz";
const std::string kSlack = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp";
const std::string kAws = "AKIAIOSFODNN7EXAMPLE";
const std::string kBearer = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLXZhbHVl";

bool HasFinding(const std::vector<SecretSpan>& spans) {
  for (const auto& s : spans) {
    if (s.finding) return true;
  }
  return false;
}

// ---- redaction ------------------------------------------------------------------------------

TEST(DoctorRedact, ConnectionStringKeepsUserAndHost) {
  EXPECT_EQ(RedactText("postgres://app:hunter2@db.prod.example.com/app"),
            "postgres://app:****@db.prod.example.com/app");
  EXPECT_EQ(RedactText("mysql://root:" + kDbPass + "@10.0.0.5:3306/shop?ssl=true"),
            "mysql://root:****@10.0.0.5:3306/shop?ssl=true");
  auto spans = FindSecrets("postgres://app:hunter2@db.prod.example.com/app");
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0].host, "db.prod.example.com");
  EXPECT_EQ(spans[0].kind, "password in a connection string");
}

TEST(DoctorRedact, KnownKeyFormatsKeepTheirPrefix) {
  EXPECT_EQ(RedactText(kOpenAi), "sk-proj-****");
  EXPECT_EQ(RedactText("sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345"), "sk-ant-****");
  EXPECT_EQ(RedactText(kGitHub), "ghp_****");
  EXPECT_EQ(RedactText("github_pat_11ABCDEFG0123456789_abcdefghijklmnop"), "github_pat_****");
  EXPECT_EQ(RedactText(kSlack), "xoxb-****");
  EXPECT_EQ(RedactText(kAws), "AKIA****");
  EXPECT_EQ(RedactText(kBearer), "eyJ****");
  EXPECT_EQ(RedactText("token is " + kGitHub + " ok"), "token is ghp_**** ok");
}

TEST(DoctorRedact, NamedValuesFlagsAndHeaders) {
  EXPECT_EQ(RedactText("--password=hunter2"), "--password=****");
  EXPECT_EQ(RedactText("https://api.example.com/v1?api_key=abc123def456&x=1"),
            "https://api.example.com/v1?api_key=****&x=1");
  EXPECT_EQ(RedactText("host=db user=app password=" + kDbPass + " dbname=x"),
            "host=db user=app password=**** dbname=x");
  EXPECT_EQ(RedactText("Authorization: Bearer abcdefgh12345678"), "Authorization: Bearer ****");
  EXPECT_EQ(RedactText("X-API-Key: 0123456789abcdef0123"), "X-API-Key: ****");
  EXPECT_EQ(RedactText("GITHUB_TOKEN=" + kGitHub), "GITHUB_TOKEN=ghp_****");
  EXPECT_EQ(RedactNamedValue("OPENAI_API_KEY", kOpenAi), "sk-proj-****");
  EXPECT_EQ(RedactNamedValue("DB_PASSWORD", "hunter2"), "****");
  EXPECT_EQ(RedactNamedValue("Authorization", "Bearer " + kBearer), "Bearer eyJ****");
  EXPECT_EQ(RedactNamedValue("LOG_LEVEL", "debug"), "debug");
  EXPECT_EQ(RedactArg({"--api-key", "abcdef123456"}, 1), "****");
  EXPECT_EQ(RedactArg({"--api-key", "${API_KEY}"}, 1), "${API_KEY}");
  EXPECT_EQ(RedactArg({"--root", "/work"}, 1), "/work");
  EXPECT_TRUE(SecretFlagValue({"--password", "hunter2"}, 1));
  EXPECT_FALSE(SecretFlagValue({"--token-file", "/run/secrets/token"}, 1));
}

TEST(DoctorRedact, PlaceholdersAndOrdinaryTextStayAsTheyAre) {
  for (std::string s :
       {"${input:github-token}", "Bearer ${env:TOKEN}",
        "postgres://app:${DB_PASSWORD}@localhost/app", "@modelcontextprotocol/server-filesystem",
        "/Users/me/projects/site", "task-runner-with-a-rather-long-name",
        "https://mcp.example.com/mcp", "--port=8080", "op://vault/github/token", "<your api key>",
        "npx -y mcp-remote"}) {
    EXPECT_EQ(RedactText(s), s) << s;
    EXPECT_FALSE(HasFinding(FindSecrets(s))) << s;
  }
  EXPECT_TRUE(IsPlaceholder("${input:x}"));
  EXPECT_TRUE(IsPlaceholder("$GITHUB_TOKEN"));
  EXPECT_TRUE(IsPlaceholder("%API_KEY%"));
  EXPECT_TRUE(IsPlaceholder("YOUR_API_KEY_HERE"));
  EXPECT_TRUE(IsPlaceholder("xxxxxxxx"));
  EXPECT_FALSE(IsPlaceholder("hunter2"));
}

TEST(DoctorRedact, RandomRunsAreMaskedButNotReported) {
  const std::string id = "a8f5f167f44f4964e6c998dee827110c9d1a2b3c";
  auto spans = FindSecrets("--session " + id);
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_FALSE(spans[0].finding);
  EXPECT_EQ(RedactText("--session " + id), "--session ****");
}

TEST(DoctorRedact, RedactedTextHoldsNoSecret) {
  for (std::string s :
       {"postgres://a:b@h/x password=" + kDbPass + " " + kOpenAi,
        "xx" + kGitHub + "--password=" + kGitHub, "Authorization: Bearer Bearer " + kBearer,
        "https://" + kGitHub + "@github.com/o/r.git", "a=" + kAws + "&token=" + kSlack}) {
    const std::string r = RedactText(s);
    EXPECT_FALSE(HasFinding(FindSecrets(r))) << r;
    for (const std::string& secret : {kOpenAi, kGitHub, kDbPass, kBearer, kAws, kSlack}) {
      EXPECT_EQ(r.find(secret), std::string::npos) << r;
    }
  }
}

TEST(DoctorRedact, SecretNames) {
  EXPECT_EQ(ClassifySecretName("OPENAI_API_KEY"), SecretName::kWeak);
  EXPECT_EQ(ClassifySecretName("GITHUB_PERSONAL_ACCESS_TOKEN"), SecretName::kWeak);
  EXPECT_EQ(ClassifySecretName("--auth-token"), SecretName::kWeak);
  EXPECT_EQ(ClassifySecretName("X-API-Key"), SecretName::kWeak);
  EXPECT_EQ(ClassifySecretName("PGPASSWORD"), SecretName::kStrong);
  EXPECT_EQ(ClassifySecretName("DB_PASS"), SecretName::kStrong);
  EXPECT_EQ(ClassifySecretName("CLIENT_SECRET"), SecretName::kStrong);
  EXPECT_EQ(ClassifySecretName("Authorization"), SecretName::kStrong);
  EXPECT_EQ(ClassifySecretName("GOOGLE_APPLICATION_CREDENTIALS"), SecretName::kStrong);
  EXPECT_EQ(ClassifySecretName("BYPASS_CACHE"), SecretName::kNo);
  EXPECT_EQ(ClassifySecretName("KEYBOARD_LAYOUT"), SecretName::kNo);
  EXPECT_EQ(ClassifySecretName("LOG_LEVEL"), SecretName::kNo);
}

TEST(DoctorRedact, NamedSecretKindNeedsAValueThatLooksLikeOne) {
  EXPECT_EQ(NamedSecretKind("OPENAI_API_KEY", kOpenAi), "OpenAI API key");
  EXPECT_EQ(NamedSecretKind("MY_SERVICE_TOKEN", "Zx8vQ2mL9pR4tY7wK1nB"), "API key or token");
  EXPECT_EQ(NamedSecretKind("DB_PASSWORD", "hunter2"), "password or secret");
  EXPECT_EQ(NamedSecretKind("DATABASE_URL", "postgres://a:hunter2@h/db"),
            "password in a connection string");
  EXPECT_EQ(NamedSecretKind("MAX_TOKENS", "4096"), std::nullopt);
  EXPECT_EQ(NamedSecretKind("API_KEY", "${input:key}"), std::nullopt);
  EXPECT_EQ(NamedSecretKind("GOOGLE_APPLICATION_CREDENTIALS", "/home/me/sa.json"), std::nullopt);
  EXPECT_EQ(NamedSecretKind("FEATURE_SECRET_MODE", "true"), std::nullopt);
  EXPECT_EQ(NamedSecretKind("LOG_LEVEL", "debug"), std::nullopt);
}

TEST(DoctorRedact, DisplaySafeDefusesTerminalTricks) {
  EXPECT_EQ(DisplaySafe("a\x1b[31mb\nc"), "a?[31mb?c");
  EXPECT_EQ(DisplaySafe("x\u202Ey"), "x?y");
  EXPECT_EQ(DisplaySafe("caf\u00e9"), "caf\u00e9");
  EXPECT_EQ(DisplaySafe(std::string("\xff\xfe", 2)), "??");
}

TEST(DoctorRedact, ParseUrl) {
  auto u = ParseUrl("https://user:pw@[::1]:8443/mcp/github?x=1#f");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->user, "user");
  EXPECT_EQ(u->password, "pw");
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, "8443");
  EXPECT_EQ(u->path, "/mcp/github");
  EXPECT_EQ(u->query, "x=1");
  EXPECT_FALSE(ParseUrl("not a url"));
}

// ---- detectors ------------------------------------------------------------------------------

ServerEntry Stdio(std::string command, std::vector<std::string> args,
                  std::map<std::string, std::string> env = {}) {
  ServerEntry s;
  s.name = "srv";
  s.pointer = "/mcpServers/srv";
  s.command = std::move(command);
  s.args = std::move(args);
  s.env = std::move(env);
  return s;
}

ServerEntry Remote(std::string url, std::map<std::string, std::string> headers = {}) {
  ServerEntry s;
  s.name = "remote";
  s.pointer = "/mcpServers/remote";
  s.type = "http";
  s.url = std::move(url);
  s.headers = std::move(headers);
  return s;
}

std::vector<Finding> Check(const ServerEntry& s) {
  return CheckServer(s, CheckContext{"cfg.json", "Claude Desktop", "/home/me"});
}

std::vector<Finding> OfKind(const std::vector<Finding>& all, const std::string& kind) {
  std::vector<Finding> out;
  for (const auto& f : all) {
    if (f.kind == kind) out.push_back(f);
  }
  return out;
}

void ExpectNoSecretIn(const std::vector<Finding>& findings) {
  for (const auto& f : findings) {
    for (const std::string& secret :
         {kOpenAi, kGitHub, kDbPass, kBearer, kAws, kSlack, std::string("hunter2")}) {
      EXPECT_EQ(f.evidence.find(secret), std::string::npos) << f.evidence;
      EXPECT_EQ(f.title.find(secret), std::string::npos) << f.title;
    }
  }
}

TEST(DoctorDetect, ConnectionStringToProductionIsCritical) {
  auto all = Check(Stdio("npx", {"-y", "@modelcontextprotocol/server-postgres",
                                 "postgres://app:" + kDbPass + "@db.prod.example.com/app"}));
  auto creds = OfKind(all, "credential");
  ASSERT_EQ(creds.size(), 1u);
  EXPECT_EQ(creds[0].severity, Severity::kCritical);
  EXPECT_EQ(creds[0].evidence, "args[2]: postgres://app:****@db.prod.example.com/app");
  EXPECT_FALSE(creds[0].fix.empty());
  auto hosts = OfKind(all, "production_host");
  ASSERT_EQ(hosts.size(), 1u);
  EXPECT_EQ(hosts[0].severity, Severity::kHigh);
  EXPECT_NE(hosts[0].evidence.find("db.prod.example.com"), std::string::npos);
  ASSERT_EQ(OfKind(all, "not_behind_airlock").size(), 1u);
  EXPECT_NE(OfKind(all, "not_behind_airlock")[0].evidence.find("app:****@"), std::string::npos);
  ExpectNoSecretIn(all);
}

TEST(DoctorDetect, CredentialsInEnvArgsAndHeaders) {
  auto all = Check(Stdio("node", {"server.js", "--api-key", "Zx8vQ2mL9pR4tY7wK1nB"},
                         {{"OPENAI_API_KEY", kOpenAi},
                          {"SLACK_BOT_TOKEN", kSlack},
                          {"DB_PASSWORD", "hunter2"},
                          {"LOG_LEVEL", "debug"},
                          {"GITHUB_TOKEN", "${input:gh}"}}));
  auto creds = OfKind(all, "credential");
  ASSERT_EQ(creds.size(), 4u);
  for (const auto& f : creds) EXPECT_EQ(f.severity, Severity::kHigh);
  EXPECT_EQ(creds[0].evidence, "args[2]: --api-key ****");
  EXPECT_EQ(creds[1].evidence, "env DB_PASSWORD=****");
  EXPECT_EQ(creds[2].evidence, "env OPENAI_API_KEY=sk-proj-****");
  EXPECT_EQ(creds[3].evidence, "env SLACK_BOT_TOKEN=xoxb-****");
  ExpectNoSecretIn(all);

  auto remote = Check(Remote("https://mcp.example.com/mcp?token=" + kGitHub,
                             {{"Authorization", "Bearer " + kBearer}, {"X-Trace", "on"}}));
  auto rc = OfKind(remote, "credential");
  ASSERT_EQ(rc.size(), 2u);
  EXPECT_EQ(rc[0].evidence, "url: https://mcp.example.com/mcp?token=ghp_****");
  EXPECT_EQ(rc[1].evidence, "header Authorization: Bearer eyJ****");
  ExpectNoSecretIn(remote);

  EXPECT_TRUE(OfKind(Check(Remote("https://mcp.example.com/mcp",
                                  {{"Authorization", "Bearer ${input:token}"}})),
                     "credential")
                  .empty());
}

TEST(DoctorDetect, FileSystemRoots) {
  auto sev = [](std::vector<std::string> args) {
    auto f = OfKind(Check(Stdio("npx", std::move(args))), "filesystem_root");
    return f.empty() ? std::string("none") : SeverityName(f[0].severity);
  };
  EXPECT_EQ(sev({"-y", "@modelcontextprotocol/server-filesystem", "/"}), "critical");
  EXPECT_EQ(sev({"-y", "@modelcontextprotocol/server-filesystem", "~"}), "high");
  EXPECT_EQ(sev({"-y", "@modelcontextprotocol/server-filesystem", "$HOME"}), "high");
  EXPECT_EQ(sev({"-y", "@modelcontextprotocol/server-filesystem", "/home/alice/"}), "high");
  EXPECT_EQ(sev({"-y", "@modelcontextprotocol/server-filesystem", "/Users/bob"}), "high");
  EXPECT_EQ(sev({"-y", "@modelcontextprotocol/server-filesystem", "/root"}), "high");
  EXPECT_EQ(sev({"-y", "@modelcontextprotocol/server-filesystem", "/home"}), "critical");
  EXPECT_EQ(sev({"-y", "@modelcontextprotocol/server-filesystem", "/home/alice/work"}), "none");
  EXPECT_EQ(sev({"-y", "@modelcontextprotocol/server-filesystem", "/srv/repo/../.."}), "critical");
  EXPECT_EQ(sev({"run", "-v", "/:/host", "mcp/filesystem"}), "critical");
  EXPECT_EQ(sev({"run", "--mount", "type=bind,src=/home/me,dst=/data", "img"}), "high");
  EXPECT_EQ(sev({"--root=/"}), "critical");
  EXPECT_EQ(ClassifyRoot("C:\\", ""), RootKind::kWholeFileSystem);
  EXPECT_EQ(ClassifyRoot("C:\\Users\\bob", ""), RootKind::kHome);
  EXPECT_EQ(ClassifyRoot("/home/me", "/home/me"), RootKind::kHome);
  EXPECT_EQ(ClassifyRoot("/opt/me", "/opt/me"), RootKind::kHome);
  EXPECT_EQ(ClassifyRoot("~/code", "/home/me"), RootKind::kNone);
}

TEST(DoctorDetect, BehindAirlockOrNot) {
  auto medium = [](const ServerEntry& s) {
    auto f = OfKind(Check(s), "not_behind_airlock");
    return !f.empty() && f[0].severity == Severity::kMedium;
  };
  EXPECT_TRUE(medium(Stdio("npx", {"-y", "@modelcontextprotocol/server-everything"})));
  EXPECT_TRUE(medium(Remote("https://mcp.linear.app/mcp")));
  auto wrapped = Stdio("airlock", {"mcp", "stdio", "--server", "fs"},
                       {{"AIRLOCK_TOKEN", "alk_Zx8vQ2mL9pR4tY7wK1nBq3"}});
  EXPECT_TRUE(Check(wrapped).empty()) << "the agent's own token belongs in a wrapped entry";
  EXPECT_TRUE(Check(Stdio("/usr/local/bin/airlock",
                          {"--config", "/etc/airlock.yaml", "mcp", "stdio", "--server", "fs"}))
                  .empty());
  EXPECT_TRUE(
      Check(Remote("http://127.0.0.1:7070/mcp/github", {{"Authorization", "Bearer " + kBearer}}))
          .empty());
  EXPECT_FALSE(IsAirlockUrl("https://mcp.example.com/mcp"));
  EXPECT_FALSE(IsAirlockUrl("https://mcp.example.com/mcp/Bad Name"));
  // Another secret in a wrapped entry is still a finding.
  wrapped.env["OPENAI_API_KEY"] = kOpenAi;
  EXPECT_EQ(OfKind(Check(wrapped), "credential").size(), 1u);
}

TEST(DoctorDetect, ProductionHosts) {
  EXPECT_TRUE(ProductionHostReason("db.prod.example.com"));
  EXPECT_TRUE(ProductionHostReason("api-live.example.com"));
  EXPECT_TRUE(ProductionHostReason("PRD1.corp.example"));
  EXPECT_TRUE(ProductionHostReason("production"));
  EXPECT_TRUE(ProductionHostReason("shop.abc123.us-east-1.rds.amazonaws.com"));
  EXPECT_TRUE(ProductionHostReason("cluster0.ab1cd.mongodb.net"));
  EXPECT_TRUE(ProductionHostReason("db.example.com"));
  EXPECT_FALSE(ProductionHostReason("products.example.com"));
  EXPECT_FALSE(ProductionHostReason("staging.example.com"));
  EXPECT_FALSE(ProductionHostReason("localhost"));
  EXPECT_FALSE(ProductionHostReason("127.0.0.1"));
  EXPECT_FALSE(ProductionHostReason("deliver.example.com"));

  auto hosts = [](const ServerEntry& s) { return OfKind(Check(s), "production_host"); };
  EXPECT_EQ(hosts(Remote("https://mcp.prod.example.com/mcp")).size(), 1u);
  EXPECT_EQ(
      hosts(Stdio("uvx", {"mcp-server-mysql"}, {{"MYSQL_HOST", "mysql.prod.internal"}})).size(),
      1u);
  EXPECT_EQ(hosts(Stdio("uvx", {"pg-mcp", "--host", "live-db.example.com"})).size(), 1u);
  EXPECT_EQ(hosts(Stdio("uvx", {"pg-mcp", "host=db.example.com port=5432"})).size(), 1u);
  EXPECT_EQ(
      hosts(Stdio("uvx", {"pg", "postgres://a@db.prod.x/d", "postgres://b@db.prod.x/e"})).size(),
      1u)
      << "one finding per host";
  EXPECT_TRUE(hosts(Stdio("node", {"x.js"}, {{"SERVER_MODE", "production"}})).empty());
  EXPECT_TRUE(hosts(Stdio("node", {"x.js", "http://localhost:5432"})).empty());
}

TEST(DoctorDetect, EvidenceIsClippedAndTerminalSafe) {
  auto s = Stdio("npx", {std::string(5000, 'a'), "\x1b]0;pwned\x07"});
  for (const auto& f : Check(s)) {
    EXPECT_LE(f.evidence.size(), 210u);
    EXPECT_EQ(f.evidence.find('\x1b'), std::string::npos);
  }
}

// ---- client formats -------------------------------------------------------------------------

TEST(DoctorConfig, ClaudeDesktop) {
  auto c = ParseClientConfig(R"({"mcpServers": {"fs": {"command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-filesystem", "/"], "env": {"N": 1}}},
      "globalShortcut": "Ctrl+Space"})",
                             "/h/.config/Claude/claude_desktop_config.json", true);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->client, "Claude Desktop");
  ASSERT_EQ(c->servers.size(), 1u);
  EXPECT_EQ(c->servers[0].pointer, "/mcpServers/fs");
  EXPECT_EQ(c->servers[0].args.size(), 3u);
  EXPECT_EQ(c->servers[0].env.at("N"), "1");
}

TEST(DoctorConfig, VsCodeWithCommentsAndTrailingCommas) {
  auto c = ParseClientConfig(R"(// VS Code
{
  "inputs": [{"type": "promptString", "id": "gh", "password": true,}],
  /* servers */
  "servers": {
    "github": {"type": "http", "url": "https://api.githubcopilot.com/mcp/",
               "headers": {"Authorization": "Bearer ${input:gh}"}},
    "fetch": {"type": "stdio", "command": "uvx", "args": ["mcp-server-fetch", "http://x//y"],},
  },
})",
                             "/p/.vscode/mcp.json", true);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->client, "VS Code");
  ASSERT_EQ(c->servers.size(), 2u);
  EXPECT_EQ(c->servers[0].name, "fetch");
  EXPECT_EQ(c->servers[0].args[1], "http://x//y");
  EXPECT_EQ(c->servers[1].url, "https://api.githubcopilot.com/mcp/");
  EXPECT_EQ(StripJsonComments(R"({"a": "//x", "b": [1,],} // c)"),
            R"({"a": "//x", "b": [1 ] }     )");
}

TEST(DoctorConfig, ClaudeCodeUserFileWithProjects) {
  auto c = ParseClientConfig(R"({"numStartups": 3, "mcpServers": {"a": {"command": "x"}},
      "projects": {"/home/me/app": {"mcpServers": {"db": {"type": "stdio", "command": "y"}},
                                    "history": []},
                   "/home/me/other": {"allowedTools": []}}})",
                             "/home/me/.claude.json", false);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->client, "Claude Code");
  ASSERT_EQ(c->servers.size(), 2u);
  EXPECT_EQ(c->servers[1].project, "/home/me/app");
  EXPECT_EQ(c->servers[1].pointer, "/projects/~1home~1me~1app/mcpServers/db");
  auto none = ParseClientConfig(R"({"numStartups": 3})", "/home/me/.claude.json", false);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->servers.empty());
}

TEST(DoctorConfig, ErrorsNameTheFileAndThePlace) {
  auto err = [](std::string_view text, bool require = true) {
    auto c = ParseClientConfig(text, "cfg.json", require);
    return c.ok() ? std::string("ok") : c.status().message();
  };
  EXPECT_EQ(err("{not json"), "cfg.json: not valid JSON (malformed JSON)");
  EXPECT_EQ(err(""), "cfg.json: empty file, not a JSON configuration");
  EXPECT_EQ(err("[1]"), "cfg.json: expected a JSON object at the top, found an array");
  EXPECT_EQ(err(R"({"mcpServers": []})"),
            "cfg.json: /mcpServers: expected an object of servers, found an array");
  EXPECT_EQ(err(R"({"mcpServers": {"a": {"command": "x", "args": "y"}}})"),
            "cfg.json: /mcpServers/a/args: expected an array of strings, found a string");
  EXPECT_EQ(err(R"({"mcpServers": {"a": {"args": []}}})"),
            "cfg.json: /mcpServers/a: a server needs \"command\" (stdio) or \"url\" (http)");
  EXPECT_EQ(err(R"({"other": 1})"),
            "cfg.json: not an MCP client configuration: no \"mcpServers\" (Claude, Cursor) or "
            "\"servers\" (VS Code) object");
  EXPECT_EQ(err(R"({"other": 1})", false), "ok");
  EXPECT_EQ(err(std::string("{\"a\": \"\xff\"}")),
            "cfg.json: not UTF-8 text (byte 0xFF at offset 7)");
  EXPECT_NE(err(std::string(100000, '[')).find("nested deeper than"), std::string::npos);
  EXPECT_EQ(FirstInvalidUtf8("\xc0\x80"), 0u) << "overlong";
  EXPECT_EQ(FirstInvalidUtf8("ok \xed\xa0\x80"), 3u) << "surrogate";
  EXPECT_EQ(FirstInvalidUtf8("caf\xc3\xa9"), std::string_view::npos);
}

TEST(DoctorConfig, DefaultPaths) {
  auto p = DefaultConfigPaths("/home/me", "/work/app", "");
  auto has = [&](const std::string& x) { return std::find(p.begin(), p.end(), x) != p.end(); };
  EXPECT_TRUE(has("/home/me/.config/Claude/claude_desktop_config.json"));
  EXPECT_TRUE(has("/home/me/Library/Application Support/Claude/claude_desktop_config.json"));
  EXPECT_TRUE(has("/work/app/.mcp.json"));
  EXPECT_TRUE(has("/home/me/.claude.json"));
  EXPECT_TRUE(has("/work/app/.cursor/mcp.json"));
  EXPECT_TRUE(has("/home/me/.cursor/mcp.json"));
  EXPECT_TRUE(has("/work/app/.vscode/mcp.json"));
  auto no_home = DefaultConfigPaths("", "", "");
  EXPECT_EQ(no_home,
            (std::vector<std::string>{".mcp.json", ".cursor/mcp.json", ".vscode/mcp.json"}));
}

// ---- --fix ------------------------------------------------------------------------------------

TEST(DoctorFix, SanitizeServerName) {
  EXPECT_EQ(SanitizeServerName("My Server!"), "my-server");
  EXPECT_EQ(SanitizeServerName("github_mcp-2"), "github_mcp-2");
  EXPECT_EQ(SanitizeServerName(""), "server");
  EXPECT_EQ(SanitizeServerName("\xc3\xa9\xc3\xa9"), "server");
  EXPECT_EQ(SanitizeServerName("airlock"), "airlock-upstream");
  EXPECT_EQ(SanitizeServerName("a\nb\x1b[0m"), "a-b-0m");
  EXPECT_EQ(SanitizeServerName(std::string(200, 'x')).size(), 64u);
}

ClientConfig Parse(const std::string& text, const std::string& path) {
  auto c = ParseClientConfig(text, path, true);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(*c) : ClientConfig{};
}

TEST(DoctorFix, WrapsStdioServersAndPrintsPolicyEntries) {
  const std::string text = R"({"mcpServers": {
    "Postgres DB": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-postgres",
                    "postgres://app:)" +
                           kDbPass + R"(@db.prod.example.com/app"],
                    "env": {"OPENAI_API_KEY": ")" +
                           kOpenAi + R"(", "LOG_LEVEL": "debug"},
                    "cwd": "/srv/app", "disabled": false},
    "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/work"]},
    "gated": {"command": "airlock", "args": ["mcp", "stdio", "--server", "gated"]},
    "linear": {"url": "https://mcp.linear.app/sse?token=)" +
                           kGitHub + R"("}}})";
  ClientConfig c = Parse(text, "/cfg/claude_desktop_config.json");
  const Json original = c.doc;
  FixOptions o;
  o.policy_path = "/etc/airlock.yaml";
  FixPlan plan = PlanFix({c}, o);
  EXPECT_EQ(c.doc, original) << "the parsed original is not touched";
  ASSERT_EQ(plan.copies.size(), 1u);
  const FixedCopy& copy = plan.copies[0];
  EXPECT_EQ(copy.to, "/cfg/claude_desktop_config.airlock.json");
  ASSERT_EQ(copy.wrapped.size(), 2u);
  const Json& pg = copy.doc["mcpServers"]["Postgres DB"];
  EXPECT_EQ(pg["command"], "airlock");
  EXPECT_EQ(pg["args"], Json::array({"mcp", "stdio", "--server", "postgres-db"}));
  EXPECT_EQ(pg["env"],
            (Json{{"AIRLOCK_TOKEN", "<agent token>"}, {"AIRLOCK_CONFIG", "/etc/airlock.yaml"}}));
  EXPECT_FALSE(pg.contains("cwd"));
  EXPECT_EQ(pg["disabled"], false) << "other keys stay";
  EXPECT_EQ(copy.doc["mcpServers"]["gated"], original["mcpServers"]["gated"]);
  EXPECT_EQ(copy.doc["mcpServers"]["linear"], original["mcpServers"]["linear"]);
  const std::string dumped = copy.doc["mcpServers"]["Postgres DB"].dump();
  EXPECT_EQ(dumped.find(kDbPass), std::string::npos);
  EXPECT_EQ(dumped.find(kOpenAi), std::string::npos);

  const std::string yaml = PolicyYaml(plan, o);
  for (const std::string& secret : {kDbPass, kOpenAi, kGitHub}) {
    EXPECT_EQ(yaml.find(secret), std::string::npos) << yaml;
  }
  YAML::Node root = YAML::Load(yaml);
  YAML::Node servers = root["mcp_servers"];
  ASSERT_TRUE(servers.IsMap()) << yaml;
  ASSERT_EQ(servers.size(), 2u) << yaml;
  YAML::Node p = servers["postgres-db"];
  ASSERT_TRUE(p["command"].IsSequence());
  EXPECT_EQ(p["command"][0].as<std::string>(), "npx");
  EXPECT_EQ(p["command"][1].as<std::string>(), "-y");
  EXPECT_EQ(p["command"][2].as<std::string>(), "@modelcontextprotocol/server-postgres");
  EXPECT_EQ(p["command"][3].as<std::string>(), "postgres://app:****@db.prod.example.com/app");
  EXPECT_EQ(p["env"]["OPENAI_API_KEY"].as<std::string>(), "sk-proj-****");
  EXPECT_EQ(p["env"]["LOG_LEVEL"].as<std::string>(), "debug");
  EXPECT_EQ(p["sandbox"].as<std::string>(), "repo");
  EXPECT_EQ(servers["files"]["command"][3].as<std::string>(), "/work");
  EXPECT_NE(yaml.find("linear"), std::string::npos) << "remote servers are named in a comment";
  EXPECT_NE(yaml.find("it ran in /srv/app"), std::string::npos);
}

TEST(DoctorFix, NamesStayUniqueAcrossFiles) {
  ClientConfig a = Parse(R"({"mcpServers": {"fs": {"command": "npx", "args": ["a"]},
                                            "FS": {"command": "npx", "args": ["b"]}}})",
                         "/x/.mcp.json");
  ClientConfig b =
      Parse(R"({"servers": {"fs": {"command": "npx", "args": ["a"]}}})", "/y/.vscode/mcp.json");
  ClientConfig d =
      Parse(R"({"mcpServers": {"fs": {"command": "npx", "args": ["a"]}}})", "/z/.cursor/mcp.json");
  FixOptions o;
  o.out_dir = "/out";
  FixPlan plan = PlanFix({a, b, d}, o);
  ASSERT_EQ(plan.entries.size(), 2u) << "the same server in two files is one entry";
  EXPECT_EQ(plan.entries[0].name, "fs");  // "FS" sorts before "fs" and takes the name
  EXPECT_EQ(plan.entries[0].from_name, "FS");
  EXPECT_EQ(plan.entries[1].name, "fs-2");
  ASSERT_EQ(plan.copies.size(), 3u);
  EXPECT_EQ(plan.copies[0].to, "/out/.mcp.airlock.json");
  EXPECT_EQ(plan.copies[1].to, "/out/mcp.airlock.json");
  EXPECT_EQ(plan.copies[2].to, "/out/mcp-2.airlock.json");
  EXPECT_EQ(plan.copies[1].doc["servers"]["fs"]["args"][3], "fs-2");
}

TEST(DoctorFix, YamlScalarsSurviveHostileText) {
  for (std::string s :
       {"plain", "-y", "@scope/pkg", "yes", "123", "a: b", "#x", "[1]", "{a}", "line\nbreak",
        "quote\"s", "tab\t", "", "-", "*", "&a", "!tag", "%x", "\xc3\xa9t\xc3\xa9"}) {
    YAML::Node n = YAML::Load("k: [" + YamlScalar(s) + "]");
    ASSERT_TRUE(n["k"].IsSequence()) << s;
    EXPECT_EQ(n["k"][0].as<std::string>(), s) << YamlScalar(s);
  }
}

// ---- the whole run on real files ------------------------------------------------------------

class DoctorRun : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "airlock_doctor_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ + "/home/.cursor");
    fs::create_directories(dir_ + "/home/.config/Claude");
    fs::create_directories(dir_ + "/proj/.vscode");
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& rel, const std::string& text) {
    std::ofstream(dir_ + "/" + rel, std::ios::binary) << text;
  }
  std::string Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  Options Defaults() {
    Options o;
    o.home = dir_ + "/home";
    o.cwd = dir_ + "/proj";
    return o;
  }
  std::string dir_;
};

TEST_F(DoctorRun, FindsTheUsualPlacesAndSkipsMissingOnes) {
  Write("home/.config/Claude/claude_desktop_config.json",
        R"({"mcpServers": {"fs": {"command": "npx", "args": ["-y", "server-filesystem", "/"]}}})");
  Write("home/.cursor/mcp.json", R"({"mcpServers": {"gh": {"command": "docker",
        "args": ["run", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server"],
        "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": ")" +
                                     kGitHub + R"("}}}})");
  Write("proj/.vscode/mcp.json", "{ broken");
  Report r = RunDoctor(Defaults());
  ASSERT_EQ(r.files.size(), 3u);
  EXPECT_FALSE(r.NamedFileFailed()) << "a broken file found by looking is reported, not fatal";
  EXPECT_FALSE(r.files[2].status.ok());
  EXPECT_EQ(r.servers, 2u);
  ASSERT_FALSE(r.findings.empty());
  EXPECT_EQ(r.findings[0].severity, Severity::kCritical) << "most severe first";
  Json j = ReportToJson(r);
  EXPECT_EQ(j["summary"]["files"], 2);
  EXPECT_EQ(j["summary"]["errors"], 1);
  EXPECT_EQ(j["summary"]["critical"], 1);
  EXPECT_EQ(j["summary"]["high"], 1);
  EXPECT_EQ(j["summary"]["medium"], 2);
  EXPECT_EQ(j["files"][0]["found"], "default");
  EXPECT_TRUE(j.contains("searched"));
  const std::string table = FormatReport(r);
  EXPECT_NE(table.find("SEVERITY"), std::string::npos);
  EXPECT_NE(table.find("~/.cursor/mcp.json"), std::string::npos) << table;
  EXPECT_NE(table.find("How to fix:"), std::string::npos);
  EXPECT_EQ(table.find(kGitHub), std::string::npos);
  EXPECT_EQ(j.dump().find(kGitHub), std::string::npos);
}

TEST_F(DoctorRun, NothingFoundAndNamedFiles) {
  Report none = RunDoctor(Defaults());
  EXPECT_TRUE(none.files.empty());
  EXPECT_NE(FormatReport(none).find("No MCP client configuration found"), std::string::npos);

  Options o = Defaults();
  o.files = {dir_ + "/missing.json", dir_ + "/proj"};
  Report r = RunDoctor(o);
  ASSERT_EQ(r.files.size(), 2u);
  EXPECT_TRUE(r.NamedFileFailed());
  EXPECT_EQ(r.files[0].status.code(), StatusCode::kNotFound);
  EXPECT_NE(r.files[1].status.message().find("is a directory"), std::string::npos);
}

TEST_F(DoctorRun, TooLargeFileIsRefused) {
  Write("big.json", "{\"mcpServers\": {}, \"pad\": \"" + std::string(kMaxConfigBytes, 'a') + "\"}");
  Options o = Defaults();
  o.files = {dir_ + "/big.json"};
  Report r = RunDoctor(o);
  ASSERT_EQ(r.files.size(), 1u);
  EXPECT_NE(r.files[0].status.message().find("too large"), std::string::npos);
}

TEST_F(DoctorRun, FixWritesCopiesAndNeverTheOriginal) {
  const std::string text =
      R"({"mcpServers": {"pg": {"command": "npx", "args": ["server-postgres",
      "postgres://u:)" +
      kDbPass + R"(@db.prod.example.com/d"]}}})";
  Write("proj/.mcp.json", text);
  Options o = Defaults();
  o.fix = true;
  Report r = RunDoctor(o);
  ASSERT_TRUE(r.fix);
  ASSERT_EQ(r.fix->copies.size(), 1u);
  ASSERT_TRUE(r.fix->copies[0].status.ok()) << r.fix->copies[0].status.ToString();
  EXPECT_EQ(Read(dir_ + "/proj/.mcp.json"), text);
  const std::string copy_path = dir_ + "/proj/.mcp.airlock.json";
  EXPECT_EQ(r.fix->copies[0].to, copy_path);
  auto copy = ParseJson(Read(copy_path));
  ASSERT_TRUE(copy.ok());
  EXPECT_EQ((*copy)["mcpServers"]["pg"]["command"], "airlock");
  EXPECT_EQ(Read(copy_path).find(kDbPass), std::string::npos);
  struct stat st {};
  ASSERT_EQ(stat(copy_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(ReportToJson(r).dump().find(kDbPass), std::string::npos);
  EXPECT_EQ(FormatReport(r).find(kDbPass), std::string::npos);

  FixedCopy over = {dir_ + "/proj/.mcp.json", dir_ + "/proj/./.mcp.json", {}, Json::object()};
  EXPECT_FALSE(WriteFixedCopy(over, {dir_ + "/proj/.mcp.json"}).ok());
  EXPECT_EQ(Read(dir_ + "/proj/.mcp.json"), text);
}

}  // namespace
}  // namespace airlock::doctor
