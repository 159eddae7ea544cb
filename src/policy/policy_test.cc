// Loader tests: every validation error names FILE:LINE:COLUMN and says what is wrong;
// hostile input is refused without crashing or hanging.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "policy/policy.h"

namespace airlock {
namespace {

const std::string kFile = "/etc/airlock/airlock.yaml";
const std::string kTokA(64, 'a');
const std::string kTokB(64, 'b');
const std::string kTokC(64, 'c');

// A valid policy that error tests extend; lines are numbered in the comments.
std::string Base() {
  return "version: 1\n"                                 // 1
         "targets:\n"                                   // 2
         "  app-db: {kind: sqlite, path: ./prod.db}\n"  // 3
         "agents:\n"                                    // 4
         "  - {name: bot, token_sha256: \"" +
         kTokA +
         "\", scopes: [app-db]}\n"  // 5
         "approvers:\n"             // 6
         "  - {name: alice, token_sha256: \"" +
         kTokB +
         "\"}\n"  // 7
         "  - {name: bob, token_sha256: \"" +
         kTokC + "\"}\n";  // 8
}

std::shared_ptr<const Policy> MustLoad(const std::string& text) {
  auto r = LoadPolicyText(text, kFile);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : nullptr;
}

// "LINE:COLUMN" (1-based) of the nth occurrence of `needle` in `text`: where an error
// must point, computed from the text itself rather than counted by hand.
std::string At(const std::string& text, const std::string& needle, int nth = 1) {
  size_t pos = std::string::npos;
  for (int i = 0; i < nth; ++i) pos = text.find(needle, pos == std::string::npos ? 0 : pos + 1);
  if (pos == std::string::npos) return "needle-not-found";
  size_t line_start = text.rfind('\n', pos);
  line_start = line_start == std::string::npos ? 0 : line_start + 1;
  int line =
      1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(pos), '\n'));
  return std::to_string(line) + ":" + std::to_string(pos - line_start + 1);
}

// Asserts the load fails with InvalidArgument, the message starts with FILE:where and
// contains every word.
void ExpectError(const std::string& text, const std::string& where,
                 const std::vector<std::string>& words) {
  auto r = LoadPolicyText(text, kFile);
  ASSERT_FALSE(r.ok()) << "loaded, expected an error at " << where;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  const std::string& msg = r.status().message();
  EXPECT_EQ(msg.rfind(kFile + ":" + where + ": ", 0), 0u) << msg;
  for (const std::string& w : words)
    EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' not in: " << msg;
}

void ExpectErrorAt(const std::string& text, const std::string& needle,
                   const std::vector<std::string>& words, int nth = 1) {
  ExpectError(text, At(text, needle, nth), words);
}

// ---- valid policies -------------------------------------------------------------------

TEST(PolicyLoad, FullExample) {
  std::string text =
      "version: 1\n"
      "mode: dry-run\n"
      "store: state/a.db\n"
      "agents:\n"
      "  - {name: support-bot, token_sha256: \"" +
      std::string(64, 'A') +
      "\", scopes: [app-db]}\n"
      "approvers:\n"
      "  - {name: alice, token_sha256: \"" +
      kTokB +
      "\", roles: [dba]}\n"
      "  - {name: bob, token_sha256: \"" +
      kTokC +
      "\"}\n"
      "targets:\n"
      "  app-db: {kind: sqlite, path: ./prod.db, environment: production, "
      "max_low_rows: 50, max_preview_rows: 7, busy_timeout: 5s, timeout: 2m}\n"
      "rules:\n"
      "  - {match: {target: app-db, table: payments}, risk: high, reason: \"payments are money\"}\n"
      "  - {match: {op: delete, rows_gt: 10, agent: support-bot, kind: sql}, risk: critical}\n"
      "approvals: {read: 0, low: 0, high: 1, critical: 2, timeout: 30m}\n"
      "limits:\n"
      "  - {match: {target: app-db, agent: support-bot}, rate: 20/min, max_rows: 1000, on_exceed: "
      "trip}\n"
      "  - {rate: 5/s}\n";
  auto p = MustLoad(text);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->source_path, kFile);
  EXPECT_EQ(p->version, 1);
  EXPECT_EQ(p->mode, PolicyMode::kDryRun);
  EXPECT_EQ(p->store_path, "/etc/airlock/state/a.db");
  ASSERT_EQ(p->agents.size(), 1u);
  EXPECT_EQ(p->agents[0].name, "support-bot");
  EXPECT_EQ(p->agents[0].token_sha256, std::string(64, 'a'));  // upper case stored lower
  EXPECT_EQ(p->agents[0].scopes, std::vector<std::string>{"app-db"});
  EXPECT_EQ(p->agents[0].loc.line, 5);
  EXPECT_EQ(p->agents[0].loc.column, 5);
  ASSERT_EQ(p->approvers.size(), 2u);
  EXPECT_EQ(p->approvers[0].roles, std::vector<std::string>{"dba"});
  EXPECT_TRUE(p->approvers[1].roles.empty());
  const TargetSpec* t = p->FindTarget("app-db");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(p->FindTarget("nope"), nullptr);
  EXPECT_EQ(t->kind, "sqlite");
  EXPECT_EQ(t->environment, "production");
  EXPECT_EQ(t->max_low_rows, 50);
  EXPECT_EQ(t->max_preview_rows, 7);
  EXPECT_EQ(t->fields["path"], "/etc/airlock/prod.db");
  EXPECT_EQ(t->fields["busy_timeout_ms"], 5000);
  EXPECT_EQ(t->fields["timeout_ms"], 120000);
  EXPECT_EQ(t->fields["max_preview_rows"], 7);
  EXPECT_EQ(t->fields["kind"], "sqlite");
  EXPECT_FALSE(t->fields.contains("busy_timeout"));
  ASSERT_EQ(p->rules.size(), 2u);
  EXPECT_EQ(*p->rules[0].match.target, "app-db");
  EXPECT_EQ(*p->rules[0].match.table, "payments");
  EXPECT_EQ(p->rules[0].risk, Risk::kHigh);
  EXPECT_EQ(p->rules[0].reason, "payments are money");
  EXPECT_EQ(p->rules[0].loc.line, 12);
  EXPECT_EQ(*p->rules[1].match.op, "delete");
  EXPECT_EQ(*p->rules[1].match.rows_gt, 10);
  EXPECT_EQ(*p->rules[1].match.kind, "sql");
  EXPECT_EQ(p->rules[1].reason, "rule at airlock.yaml:13");
  EXPECT_EQ(p->approvals.timeout_ms, 30 * 60 * 1000);
  EXPECT_EQ(p->approvals.QuorumFor(Risk::kCritical), 2);
  EXPECT_EQ(p->approvals.QuorumFor(Risk::kHigh), 1);
  EXPECT_EQ(p->approvals.QuorumFor(Risk::kLow), 0);
  ASSERT_EQ(p->limits.size(), 2u);
  EXPECT_EQ(*p->limits[0].match_target, "app-db");
  EXPECT_EQ(*p->limits[0].match_agent, "support-bot");
  EXPECT_EQ(p->limits[0].rate_count, 20);
  EXPECT_EQ(p->limits[0].rate_window_ms, 60000);
  EXPECT_EQ(*p->limits[0].max_rows, 1000);
  EXPECT_EQ(p->limits[0].on_exceed, OnExceed::kTrip);
  EXPECT_FALSE(p->limits[1].match_target.has_value());
  EXPECT_EQ(p->limits[1].rate_window_ms, 1000);
  EXPECT_EQ(p->limits[1].on_exceed, OnExceed::kDeny);
}

TEST(PolicyLoad, Defaults) {
  auto p = MustLoad("version: 1\n");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->mode, PolicyMode::kEnforce);
  EXPECT_EQ(p->store_path, "/etc/airlock/airlock-state/airlock.db");
  EXPECT_EQ(p->approvals.read, 0);
  EXPECT_EQ(p->approvals.low, 0);
  EXPECT_EQ(p->approvals.high, 1);
  EXPECT_EQ(p->approvals.critical, 2);
  EXPECT_EQ(p->approvals.timeout_ms, 3600000);
  auto b = MustLoad(Base());
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->FindTarget("app-db")->max_low_rows, 100);
  EXPECT_EQ(b->FindTarget("app-db")->max_preview_rows, 20);
}

TEST(PolicyLoad, BlockStyleAndEmptySections) {
  auto p = MustLoad(
      "version: 1\nagents:\nrules:\ntargets:\n  db:\n    kind: sqlite\n    path: /abs/x.db\n");
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(p->agents.empty());
  EXPECT_EQ(p->FindTarget("db")->fields["path"], "/abs/x.db");
  EXPECT_EQ(p->FindTarget("db")->loc.line, 5);
}

TEST(PolicyLoad, TextWithoutPathResolvesAgainstCwd) {
  auto r = LoadPolicyText("version: 1\nstore: s.db\n", "");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)->store_path, (std::filesystem::current_path() / "s.db").string());
}

TEST(PolicyLoad, FileResolvesAgainstItsDirectory) {
  auto dir = std::filesystem::temp_directory_path() / "airlock_policy_test";
  std::filesystem::create_directories(dir);
  auto file = dir / "p.yaml";
  std::ofstream(file) << "version: 1\ntargets:\n  db: {kind: sqlite, path: data/x.db}\n";
  auto r = LoadPolicyFile(file.string());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)->source_path, file.string());
  EXPECT_EQ((*r)->FindTarget("db")->fields["path"], (dir / "data/x.db").string());
  EXPECT_EQ((*r)->store_path, (dir / "airlock-state/airlock.db").string());
  std::ofstream(file) << "version: 2\n";
  auto bad = LoadPolicyFile(file.string());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().rfind(file.string() + ":1:10: ", 0), 0u)
      << bad.status().message();
  std::filesystem::remove_all(dir);
  auto missing = LoadPolicyFile((dir / "nope.yaml").string());
  EXPECT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("nope.yaml"), std::string::npos);
}

// ---- validation errors ------------------------------------------------------------------

TEST(PolicyErrors, UnknownKeysAtEveryLevel) {
  ExpectError("version: 1\nmodee: enforce\n", "2:1",
              {"unknown key \"modee\"", "allowed: version, mode, store"});
  ExpectError(Base() + "approvals: {hihg: 1}\n", "9:13",
              {"unknown key \"hihg\"", "approvals", "allowed: read, low, high, critical, timeout"});
  ExpectErrorAt("version: 1\nagents:\n  - {name: x, token: y}\n", "token:",
                {"unknown key \"token\"", "agents[0]", "allowed: name, token_sha256, scopes"});
  ExpectErrorAt("version: 1\ntargets:\n  db: {kind: sqlite, path: x, colour: red}\n", "colour",
                {"unknown key \"colour\"", "targets.db", "busy_timeout"});
  ExpectErrorAt(Base() + "rules:\n  - {match: {tabel: x}, risk: high}\n", "tabel",
                {"unknown key \"tabel\"", "rules[0].match",
                 "allowed: target, agent, kind, table, op, rows_gt"});
  ExpectErrorAt(Base() + "rules:\n  - {risk: high, why: x}\n", "why",
                {"unknown key \"why\"", "rules[0]"});
  ExpectErrorAt(Base() + "limits:\n  - {rate: 1/s, burst: 3}\n", "burst",
                {"unknown key \"burst\"", "limits[0]"});
  ExpectErrorAt(Base() + "limits:\n  - {match: {table: x}, rate: 1/s}\n", "table",
                {"unknown key \"table\"", "allowed: target, agent"});
  ExpectError(
      Base() + "approvers:\n  - {name: z, token_sha256: \"" + std::string(64, 'd') + "\"}\n", "9:1",
      {"duplicate key \"approvers\"", "first at line 6"});
}

TEST(PolicyErrors, WrongTypes) {
  ExpectError("version: \"x\"\n", "1:10", {"version", "expected an integer", "\"x\""});
  ExpectError("version: \"1\"\n", "1:10", {"expected an integer, got the string \"1\""});
  ExpectError("version: [1]\n", "1:10", {"expected an integer, got a list"});
  ExpectError("version: 1\nagents: bot\n", "2:9", {"agents: expected a list, got \"bot\""});
  ExpectError("version: 1\nagents: {name: bot}\n", "2:9", {"expected a list, got a mapping"});
  ExpectErrorAt(Base() + "rules:\n  - {risk: high, match: {table: [a, b]}}\n", "[a, b]",
                {"rules[0].match.table: expected a string, got a list"});
  ExpectError(
      "version: 1\ntargets:\n  db: {kind: sqlite, path: x}\nagents:\n  - {name: a, token_sha256: "
      "\"" +
          kTokA + "\", scopes: db}\n",
      "5:" + std::to_string(43 + 64 - 2), {"scopes: expected a list, got \"db\""});
  ExpectError("version: 1\ntargets: [a]\n", "2:10", {"targets: expected a mapping"});
  ExpectError("version: 1\ntargets:\n  db: sqlite\n", "3:7", {"targets.db: expected a mapping"});
  ExpectError(Base() + "rules:\n  - high\n", "10:5", {"rules[0]: expected a mapping"});
  ExpectError("version: 1\nmode:\n", "2:1", {"mode: expected a string, got nothing"});
}

TEST(PolicyErrors, MissingRequiredFields) {
  ExpectError("mode: enforce\n", "1:1", {"missing required key \"version\""});
  ExpectError("version: 1\nagents:\n  - {token_sha256: \"" + kTokA + "\"}\n", "3:5",
              {"agents[0]: missing required key \"name\""});
  ExpectError("version: 1\nagents:\n  - {name: bot}\n", "3:5",
              {"agents[0]: missing required key \"token_sha256\""});
  ExpectError("version: 1\napprovers:\n  - name: al\n", "3:5",
              {"approvers[0]: missing required key \"token_sha256\""});
  ExpectError("version: 1\ntargets:\n  db: {path: x}\n", "3:7",
              {"targets.db: missing required key \"kind\"", "supported: sqlite"});
  ExpectError("version: 1\ntargets:\n  db: {kind: sqlite}\n", "3:7",
              {"targets.db: missing required key \"path\""});
  ExpectError(Base() + "rules:\n  - {match: {table: x}}\n", "10:5",
              {"rules[0]: missing required key \"risk\""});
  ExpectError(Base() + "limits:\n  - {match: {target: app-db}}\n", "10:5",
              {"must set rate, max_rows, max_recipients or max_recipients_per_hour"});
}

TEST(PolicyErrors, BadEnumValues) {
  ExpectErrorAt("version: 1\ntargets:\n  db: {kind: oracle, path: x}\n", "oracle",
                {"unknown target kind \"oracle\"", "supported: sqlite, shell, smtp, postgres, http"});
  ExpectErrorAt(Base() + "rules:\n  - {risk: hgih}\n", "hgih",
                {"unknown risk \"hgih\"", "read, low, high, critical"});
  ExpectError("version: 1\nmode: yolo\n", "2:7", {"unknown mode \"yolo\"", "enforce, dry-run"});
  ExpectErrorAt(Base() + "rules:\n  - {risk: high, match: {op: truncate}}\n", "truncate",
                {"unknown op \"truncate\"", "drop_table"});
  ExpectErrorAt(Base() + "rules:\n  - {risk: high, match: {kind: ftp}}\n", "ftp",
                {"unknown kind \"ftp\""});
  ExpectErrorAt(Base() + "limits:\n  - {rate: 1/s, on_exceed: panic}\n", "panic",
                {"unknown on_exceed \"panic\"", "deny, approve, trip"});
  ExpectError("version: 2\n", "1:10", {"unsupported version 2"});
  ExpectError("version: 0\n", "1:10", {"unsupported version 0"});
}

TEST(PolicyLoad, PostgresTarget) {
  auto p = MustLoad(
      "version: 1\ntargets:\n"
      "  pg: {kind: postgres, dsn_env: APP_DSN, schemas: [public, billing], lock_timeout: 1s,\n"
      "       statement_timeout: 2m, max_low_rows: 5}\n"
      "  pg2: {kind: postgres, dsn_file: /etc/airlock/pg.dsn}\n");
  ASSERT_TRUE(p);
  const Json& f = p->FindTarget("pg")->fields;
  EXPECT_EQ(f["dsn_env"], "APP_DSN");
  EXPECT_EQ(f["schemas"], Json::array({"public", "billing"}));
  EXPECT_EQ(f["lock_timeout_ms"], 1000);
  EXPECT_EQ(f["statement_timeout_ms"], 120000);
  EXPECT_EQ(p->FindTarget("pg")->max_low_rows, 5);
  const Json& g = p->FindTarget("pg2")->fields;
  EXPECT_EQ(g["dsn_file"], "/etc/airlock/pg.dsn");
  EXPECT_EQ(g["schemas"], Json::array({"public"}));  // defaults
  EXPECT_EQ(g["lock_timeout_ms"], 2000);
  EXPECT_EQ(g["statement_timeout_ms"], 30000);
}

TEST(PolicyErrors, PostgresTarget) {
  const std::string head = "version: 1\ntargets:\n  pg: ";
  ExpectErrorAt(head + "{kind: postgres, schemas: [public]}\n", "{kind",
                {"targets.pg", "dsn_env", "dsn_file"});
  ExpectErrorAt(head + "{kind: postgres, dsn_env: A, dsn_file: b}\n", "b}",
                {"not both"});
  ExpectErrorAt(head + "{kind: postgres, dsn_env: \"postgres://u:pw@h/db\"}\n", "\"postgres:",
                {"environment variable name"});
  ExpectErrorAt(head + "{kind: postgres, dsn_env: A, schemas: [public, airlock]}\n", "airlock]",
                {"cannot be captured"});
  ExpectErrorAt(head + "{kind: postgres, dsn_env: A, schemas: []}\n", "[]", {"at least one"});
  ExpectErrorAt(head + "{kind: postgres, dsn_env: A, lock_timeout: soon}\n", "soon", {"lock_timeout"});
  ExpectErrorAt(head + "{kind: postgres, dsn_env: A, path: x}\n", "path", {"unknown key \"path\""});
}

TEST(PolicyErrors, BadDurationsSizesRates) {
  ExpectError(Base() + "approvals: {timeout: 5 parsecs}\n", "9:22",
              {"approvals.timeout", "5 parsecs"});
  ExpectError(Base() + "approvals: {timeout: -5m}\n", "9:22", {"must not be negative"});
  ExpectError(Base() + "approvals: {timeout: 0s}\n", "9:22", {"greater than zero"});
  ExpectError(Base() + "approvals: {timeout: 60}\n", "9:22", {"needs a unit"});
  ExpectError(Base() + "approvals: {timeout: 99999999999999999999d}\n", "9:22", {"too large"});
  ExpectErrorAt("version: 1\ntargets:\n  db: {kind: sqlite, path: x, busy_timeout: soon}\n", "soon",
                {"targets.db.busy_timeout", "bad duration"});
  ExpectErrorAt(Base() + "limits:\n  - {rate: 20/fortnight}\n", "20/f",
                {"bad rate \"20/fortnight\"", "N/min"});
  ExpectErrorAt(Base() + "limits:\n  - {rate: 0/min}\n", "0/min", {"at least 1"});
  ExpectErrorAt(Base() + "limits:\n  - {rate: lots}\n", "lots", {"bad rate"});
  ExpectErrorAt(Base() + "limits:\n  - {max_rows: -1}\n", "-1", {"must be at least 0"});
  ExpectErrorAt(Base() + "limits:\n  - {max_recipients: 1e3}\n", "1e3", {"expected an integer"});
}

TEST(PolicyErrors, DuplicateNamesAndTokens) {
  ExpectError(Base() + "  - {name: alice, token_sha256: \"" + std::string(64, 'e') + "\"}\n",
              "9:12", {"duplicate name \"alice\"", "approver \"alice\" at " + kFile + ":7:12"});
  ExpectError("version: 1\nagents:\n  - {name: x, token_sha256: \"" + kTokA +
                  "\"}\napprovers:\n  - {name: x, token_sha256: \"" + kTokB + "\"}\n",
              "5:12", {"duplicate name \"x\"", "agent \"x\""});
  ExpectError("version: 1\nagents:\n  - {name: x, token_sha256: \"" + kTokA +
                  "\"}\n  - {name: x, token_sha256: \"" + kTokB + "\"}\n",
              "4:12", {"duplicate name \"x\"", "agent \"x\" at " + kFile + ":3:12"});
  ExpectError("version: 1\nagents:\n  - {name: x, token_sha256: \"" + kTokA +
                  "\"}\n  - {name: y, token_sha256: \"" + kTokA + "\"}\n",
              "4:29", {"token_sha256 is already used by the agent \"x\""});
  // The same token in a different case is the same token.
  ExpectError("version: 1\nagents:\n  - {name: x, token_sha256: \"" + kTokA +
                  "\"}\napprovers:\n  - {name: y, token_sha256: \"" + std::string(64, 'A') +
                  "\"}\n",
              "5:29", {"already used"});
  ExpectError(
      "version: 1\ntargets:\n  db: {kind: sqlite, path: x}\n  db: {kind: sqlite, path: y}\n", "4:3",
      {"duplicate target \"db\""});
}

TEST(PolicyErrors, BadTokensAndNames) {
  ExpectError("version: 1\nagents:\n  - {name: x, token_sha256: abc}\n", "3:29",
              {"64 hexadecimal", "got 3 characters"});
  ExpectError(
      "version: 1\nagents:\n  - {name: x, token_sha256: \"" + std::string(63, 'a') + "g\"}\n",
      "3:29", {"64 hexadecimal"});
  ExpectError("version: 1\nagents:\n  - {name: \"a b\", token_sha256: \"" + kTokA + "\"}\n", "3:12",
              {"bad name \"a b\""});
}

TEST(PolicyErrors, DanglingReferences) {
  ExpectError(
      "version: 1\ntargets:\n  db: {kind: sqlite, path: x}\nagents:\n  - {name: a, token_sha256: "
      "\"" +
          kTokA + "\", scopes: [db, nope]}\n",
      "5:" + std::to_string(43 + 64 + 3), {"unknown target \"nope\"", "defined targets: db"});
  ExpectError(Base() + "rules:\n  - {match: {target: prod}, risk: high}\n", "10:22",
              {"rules[0].match.target: unknown target \"prod\""});
  ExpectError(Base() + "rules:\n  - {match: {agent: mallory}, risk: high}\n", "10:21",
              {"unknown agent \"mallory\"", "defined agents: bot"});
  ExpectError(Base() + "limits:\n  - {match: {target: x}, rate: 1/s}\n", "10:22",
              {"unknown target \"x\""});
  ExpectError(Base() + "limits:\n  - {match: {agent: x}, rate: 1/s}\n", "10:21",
              {"unknown agent \"x\""});
}

TEST(PolicyErrors, Quorums) {
  std::string one_approver =
      "version: 1\napprovers:\n  - {name: alice, token_sha256: \"" + kTokB + "\"}\n";
  ExpectError(one_approver + "approvals: {critical: 2}\n", "4:23",
              {"approvals.critical", "needs 2 approvals but only 1 approver is defined"});
  ExpectError(one_approver + "approvals: {high: -1}\n", "4:19", {"must be at least 0"});
  ExpectError(one_approver + "approvals: {high: 1, critical: 0}\n", "4:32",
              {"critical needs 0 approvals, fewer than high (1)"});
  ExpectError(one_approver + "approvals: {low: 99999999999999999999}\n", "4:18", {"out of range"});
  auto ok = MustLoad(one_approver + "approvals: {high: 1, critical: 1}\n");
  ASSERT_NE(ok, nullptr);
  EXPECT_EQ(ok->approvals.critical, 1);
}

TEST(PolicyErrors, HugeNumbers) {
  ExpectErrorAt(
      "version: 1\ntargets:\n  db: {kind: sqlite, path: x, max_low_rows: "
      "99999999999999999999999}\n",
      "9999", {"max_low_rows", "out of range"});
  ExpectError("version: 99999999999999999999999\n", "1:10", {"out of range"});
  ExpectErrorAt("version: 1\ntargets:\n  db: {kind: sqlite, path: x, max_preview_rows: 1000000}\n",
                "1000000", {"at most 10,000"});
  ExpectError(Base() + "rules:\n  - {match: {rows_gt: 0x10}, risk: high}\n", "10:23",
              {"expected an integer"});
}

// ---- structure and hostile input --------------------------------------------------------

TEST(PolicyHostile, EmptyScalarListAndMalformed) {
  ExpectError("", "1:1", {"empty"});
  ExpectError("# just a comment\n", "1:1", {"empty"});
  ExpectError("hello\n", "1:1", {"must be a mapping", "got \"hello\""});
  ExpectError("- version: 1\n", "1:1", {"must be a mapping", "got a list"});
  ExpectError("version: 1\nagents: [\n", "3:1", {"malformed YAML"});
  ExpectError("version: 1\n  bad: indent\n", "2:6", {"malformed YAML"});
  ExpectError("version: 1\n---\nversion: 1\n", "2:1", {"one YAML document"});
}

TEST(PolicyHostile, BillionLaughs) {
  std::string text =
      "version: 1\nrules: []\na: &a "
      "[\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n";
  const char* prev = "a";
  const char* names[] = {"b", "c", "d", "e", "f", "g", "h", "i"};
  for (const char* n : names) {
    text += std::string(n) + ": &" + n + " [";
    for (int i = 0; i < 9; ++i) text += std::string(i ? "," : "") + "*" + prev;
    text += "]\n";
    prev = n;
  }
  auto start = std::chrono::steady_clock::now();
  ExpectError(text, "4:8", {"aliases", "not allowed"});
  // Expanding the aliases would take minutes and gigabytes; the refusal is immediate.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  // An alias that names nothing is malformed YAML, with its location.
  ExpectError("version: 1\nmode: *nope\n", "2:7", {"malformed YAML"});
}

TEST(PolicyHostile, DeepNesting) {
  std::string flow = "version: 1\nx: " + std::string(100000, '[') + std::string(100000, ']') + "\n";
  ExpectError(flow, "2:" + std::to_string(4 + 31), {"nesting deeper than 32"});
  std::string maps = "version: 1\nx: ";
  for (int i = 0; i < 50000; ++i) maps += "{a: ";
  // The top-level mapping is level 1, so the 32nd '{' is level 33.
  ExpectError(maps, "2:" + std::to_string(4 + 31 * 4), {"nesting deeper than 32"});
  std::string block = "version: 1\n";
  for (int i = 0; i < 40; ++i) block += std::string(i, ' ') + "k:\n";
  ExpectError(block, "34:33", {"nesting deeper than 32"});
}

TEST(PolicyHostile, TooLarge) {
  std::string big = "version: 1\n# " + std::string(2 * 1024 * 1024, 'x') + "\n";
  ExpectError(big, "1:1", {"larger than 1 MiB"});
  auto file = std::filesystem::temp_directory_path() / "airlock_policy_big.yaml";
  std::ofstream(file) << big;
  auto r = LoadPolicyFile(file.string());
  std::filesystem::remove(file);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("larger than 1 MiB"), std::string::npos)
      << r.status().message();
}

TEST(PolicyHostile, InvalidUtf8) {
  ExpectError(
      "version: 1\nmode: enf\xff"
      "orce\n",
      "2:10", {"invalid UTF-8", "0xff"});
  ExpectError("version: 1\n# caf\xc3\n", "2:6", {"invalid UTF-8", "0xc3"});
  ExpectError("version: 1\nx: \xc0\xaf\n", "2:4", {"invalid UTF-8"});      // overlong '/'
  ExpectError("version: 1\nx: \xed\xa0\x80\n", "2:4", {"invalid UTF-8"});  // surrogate
  ExpectError(std::string("version: 1\nx: a\0b\n", 17), "2:5", {"control character 0x00"});
  // Valid multi-byte UTF-8 is fine, in values and comments.
  auto p = MustLoad(
      Base() + "rules:\n  - {risk: high, reason: \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\xb0\"}\n");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->rules[0].reason, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\xb0");
}

// ---- units ------------------------------------------------------------------------------

TEST(PolicyUnits, Durations) {
  EXPECT_EQ(*ParseDurationMs("500ms"), 500);
  EXPECT_EQ(*ParseDurationMs("90s"), 90000);
  EXPECT_EQ(*ParseDurationMs("15m"), 900000);
  EXPECT_EQ(*ParseDurationMs("1h"), 3600000);
  EXPECT_EQ(*ParseDurationMs("2d"), 172800000);
  EXPECT_EQ(*ParseDurationMs("0s"), 0);
  for (const char* bad : {"", "90", "s", "-1s", "1.5h", "5 parsecs", "1w", "10ms ", "h1",
                          "9223372036854775807d", "99999999999999999999s"}) {
    auto r = ParseDurationMs(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    }
  }
}

TEST(PolicyUnits, Sizes) {
  EXPECT_EQ(*ParseSizeBytes("1000"), 1000);
  EXPECT_EQ(*ParseSizeBytes("64KiB"), 65536);
  EXPECT_EQ(*ParseSizeBytes("64k"), 65536);
  EXPECT_EQ(*ParseSizeBytes("512MiB"), 512LL * 1024 * 1024);
  EXPECT_EQ(*ParseSizeBytes("1GiB"), 1LL << 30);
  EXPECT_EQ(*ParseSizeBytes("10MB"), 10000000);
  for (const char* bad :
       {"", "MiB", "-1", "1.5GiB", "12 bytes", "99999999999999999999", "9999999999TiB"}) {
    EXPECT_FALSE(ParseSizeBytes(bad).ok()) << bad;
  }
}

TEST(PolicyUnits, FormatCount) {
  EXPECT_EQ(FormatCount(0), "0");
  EXPECT_EQ(FormatCount(999), "999");
  EXPECT_EQ(FormatCount(1000), "1,000");
  EXPECT_EQ(FormatCount(1204), "1,204");
  EXPECT_EQ(FormatCount(1234567), "1,234,567");
  EXPECT_EQ(FormatCount(-1204), "-1,204");
  EXPECT_EQ(FormatCount(-999), "-999");
  EXPECT_EQ(FormatCount(INT64_MIN), "-9,223,372,036,854,775,808");
}

}  // namespace
}  // namespace airlock

namespace airlock {
namespace {

TEST(PolicyShell, DefaultsAndFields) {
  auto p = MustLoad("version: 1\ntargets:\n  repo: {kind: shell, workspace: ./repo}\n");
  ASSERT_TRUE(p);
  const TargetSpec* t = p->FindTarget("repo");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->max_low_deletes, 20);
  EXPECT_EQ(t->protect, (std::vector<std::string>{".git/**", ".env*", "**/*.pem", "**/id_*"}));
  EXPECT_EQ(t->fields["workspace"], "/etc/airlock/repo");
  EXPECT_EQ(t->fields["network"], "off");
  EXPECT_EQ(t->fields["memory_bytes"], 512LL << 20);
  EXPECT_EQ(t->fields["pids"], 128);
  EXPECT_EQ(t->fields["timeout_ms"], 60000);
  EXPECT_EQ(t->fields["hide"],
            (Json{"/root", "/home", "/var/lib/postgresql", "/etc/shadow", "/etc/gshadow",
                  "/etc/ssh", "/etc/sudoers", "/etc/sudoers.d", "/var/lib/airlock"}));

  p = MustLoad(
      "version: 1\ntargets:\n  repo: {kind: shell, workspace: /w, network: on, memory: 64MiB, "
      "pids: 32, cpu: 0.5, timeout: 5s, hide: [/opt/secrets, rel], protect: [\"db/**\"], "
      "max_low_deletes: 3, max_upper_size: 8MiB, max_upper_files: 2000, max_output: 64KiB, "
      "max_preview_files: 10}\n");
  ASSERT_TRUE(p);
  t = p->FindTarget("repo");
  EXPECT_EQ(t->fields["network"], "on");
  EXPECT_EQ(t->fields["memory_bytes"], 64LL << 20);
  EXPECT_EQ(t->fields["cpu"], 0.5);
  EXPECT_EQ(t->fields["timeout_ms"], 5000);
  EXPECT_EQ(t->fields["hide"], (Json{"/opt/secrets", "/etc/airlock/rel"}));
  EXPECT_EQ(t->protect, std::vector<std::string>{"db/**"});
  EXPECT_EQ(t->max_low_deletes, 3);
  EXPECT_EQ(t->fields["max_upper_files"], 2000);
  EXPECT_EQ(t->fields["max_output_bytes"], 64 << 10);
}

TEST(PolicyShell, Errors) {
  const std::string head = "version: 1\ntargets:\n  repo: {kind: shell";
  ExpectErrorAt(head + "}\n", "{kind", {"missing required key \"workspace\""});
  ExpectErrorAt(head + ", workspace: /}\n", "/}", {"whole file system"});
  ExpectErrorAt(head + ", workspace: /w, path: x}\n", "path", {"unknown key"});
  ExpectErrorAt(head + ", workspace: /w, network: maybe}\n", "maybe",
                {"unknown network mode \"maybe\"", "off, on"});
  ExpectErrorAt(head + ", workspace: /w, memory: lots}\n", "lots", {});
  ExpectErrorAt(head + ", workspace: /w, memory: 1KiB}\n", "1KiB", {"must be between"});
  ExpectErrorAt(head + ", workspace: /w, pids: 1}\n", "1}", {"at least 2"});
  ExpectErrorAt(head + ", workspace: /w, cpu: fast}\n", "fast", {"number of CPUs"});
  ExpectErrorAt(head + ", workspace: /w, timeout: 0s}\n", "0s", {"greater than zero"});
  ExpectErrorAt(head + ", workspace: /w, protect: [\"/etc/**\"]}\n", "\"/etc", {"no leading '/'"});
  ExpectErrorAt(head + ", workspace: /w, protect: [\"../x\"]}\n", "\"../x", {"'..'"});
  ExpectErrorAt(head + ", workspace: /w, protect: [\"[ab\"]}\n", "\"[ab", {"unclosed"});
  const std::string rule = "version: 1\nrules:\n  - {risk: high, match: {";
  ExpectErrorAt(rule + "command: /bin/rm}}\n", "/bin/rm", {"command name"});
  // "/abs" is an HTTP path glob now (rules on http targets); ".." stays refused.
  ExpectErrorAt(rule + "path: \"../abs\"}}\n", "\"../abs", {"bad pattern"});
  ExpectErrorAt(rule + "deletes_gt: -1}}\n", "-1", {"at least 0"});
}

}  // namespace
}  // namespace airlock

namespace airlock {
namespace {

// ---- notify: webhooks -------------------------------------------------------------------

const std::vector<std::string> kAllNotifyEvents = {"pending", "applied", "denied",      "rejected",
                                                   "expired", "failed",  "rolled_back", "breaker"};

TEST(PolicyNotify, HooksAndDefaults) {
  auto p = MustLoad(
      "version: 1\n"
      "notify:\n"
      "  - {url: \"https://hooks.slack.com/services/T0/B0/s3cret\"}\n"  // 3
      "  - url: http://127.0.0.1:8080/hook?x=1\n"                       // 4
      "    on: [pending, breaker]\n"
      "  - {url: \"http://[::1]:9000/x\", on: [applied]}\n"
      "  - {url: \"https://user:pw@example.com\", on: [failed, rolled_back]}\n");
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(p->notify.size(), 4u);
  EXPECT_EQ(p->notify[0].url, "https://hooks.slack.com/services/T0/B0/s3cret");
  EXPECT_EQ(p->notify[0].on, kAllNotifyEvents);  // `on` left out: every event
  EXPECT_EQ(p->notify[0].loc.line, 3);
  EXPECT_EQ(p->notify[0].loc.column, 5);
  EXPECT_EQ(p->notify[1].url, "http://127.0.0.1:8080/hook?x=1");
  EXPECT_EQ(p->notify[1].on, (std::vector<std::string>{"pending", "breaker"}));
  EXPECT_EQ(p->notify[1].loc.line, 4);
  EXPECT_EQ(p->notify[2].on, std::vector<std::string>{"applied"});
  EXPECT_EQ(p->notify[3].on, (std::vector<std::string>{"failed", "rolled_back"}));
  EXPECT_TRUE(MustLoad("version: 1\n")->notify.empty());
  EXPECT_TRUE(MustLoad("version: 1\nnotify:\n")->notify.empty());
  EXPECT_TRUE(MustLoad("version: 1\nnotify: []\n")->notify.empty());
}

TEST(PolicyNotify, StructureErrors) {
  const std::string head = "version: 1\nnotify:\n  - ";
  ExpectErrorAt("version: 1\nnotify: {url: \"http://a\"}\n", "{url",
                {"notify: expected a list, got a mapping"});
  ExpectErrorAt("version: 1\nnotify: http://a\n", "http", {"notify: expected a list"});
  ExpectErrorAt(head + "http://a\n", "http", {"notify[0]: expected a mapping"});
  ExpectErrorAt(head + "{on: [pending]}\n", "{on",
                {"notify[0]: missing required key \"url\"", "webhook"});
  ExpectErrorAt(head + "{url: \"http://a\", secret: x}\n", "secret",
                {"unknown key \"secret\" in notify[0]", "allowed: url, on"});
  ExpectErrorAt(head + "{url: \"http://a\", url: \"http://b\"}\n", "url", {"duplicate key \"url\""},
                2);
  ExpectErrorAt(head + "{url: [\"http://a\"]}\n", "[\"http",
                {"notify[0].url: expected a string, got a list"});
  ExpectErrorAt(head + "{url: }\n", "url", {"notify[0].url: expected a string, got nothing"});
  ExpectErrorAt(head + "{url: \"http://a\"}\n  - {url: \"http://b\", on: pending}\n", "pending",
                {"notify[1].on: expected a list, got \"pending\""});
  ExpectErrorAt(head + "{url: \"http://a\", on: [[pending]]}\n", "[pending]",
                {"notify[0].on: expected a list of strings"});
  // The unknown top-level key error names notify among the allowed ones.
  ExpectError("version: 1\nnotfy: []\n", "2:1", {"unknown key \"notfy\"", "notify"});
}

TEST(PolicyNotify, UrlErrors) {
  const std::string head = "version: 1\nnotify:\n  - {url: ";
  auto bad = [&](const std::string& url, const std::vector<std::string>& words) {
    ExpectErrorAt(head + url + "}\n", url, words);
  };
  bad("\"ftp://files.example.com/x\"", {"notify[0].url", "http:// or https://", "\"ftp\""});
  bad("\"file:///etc/passwd\"", {"http:// or https://", "\"file\""});
  bad("\"javascript://alert(1)\"", {"http:// or https://"});
  bad("hooks.example.com/x", {"http:// or https://", "no scheme"});
  bad("\"\"", {"http:// or https://"});
  bad("\"http://\"", {"no host"});
  bad("\"http:///path\"", {"no host"});
  bad("\"https://:443/x\"", {"no host"});
  bad("\"https://user@/x\"", {"no host"});
  bad("\"http://[]:80/\"", {"no host"});
  bad("\"http://[::1/\"", {"unclosed '['"});
  bad("\"http://[::1]x/\"", {"junk after its host"});
  bad("\"http://a.example:0/\"", {"bad port", "http://a.example", "1 to 65535"});
  bad("\"http://a.example:65536/\"", {"bad port"});
  bad("\"http://a.example:99999999999999999999/\"", {"bad port"});
  bad("\"http://a.example:http/\"", {"bad port"});
  bad("\"http://a.example:/\"", {"bad port"});
  bad("\"http://a:b:c/\"", {"not allowed in a host"});
  bad("\"http://evil.example\\\\@good.example/\"", {"backslash"});
  bad("\"http://a<b.example/\"", {"not allowed in a host"});
  bad("\"http://a.example/x y\"", {"a space, a control character", "percent-encode"});
  bad("\"http://a.example/\\tx\"", {"a space, a control character", "percent-encode"});
  bad("\"http://a.example/\\r\\nX-Injected: 1\"",
      {"a space, a control character", "percent-encode"});
  // Schemes are case-insensitive.
  auto p = MustLoad(head + "\"HTTPS://Example.COM/Hook\"}\n");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->notify[0].url, "HTTPS://Example.COM/Hook");
}

TEST(PolicyNotify, EventErrors) {
  const std::string head = "version: 1\nnotify:\n  - {url: \"http://a.example\", on: ";
  ExpectErrorAt(head + "[pending, approved]}\n", "approved",
                {"notify[0].on: unknown event \"approved\"",
                 "allowed: pending, applied, denied, rejected, expired, failed, rolled_back, "
                 "breaker"});
  ExpectErrorAt(head + "[effect_changed]}\n", "effect_changed", {"unknown event"});
  ExpectErrorAt(head + "[Pending]}\n", "Pending", {"unknown event \"Pending\""});
  ExpectErrorAt(head + "[pending, applied, pending]}\n", "pending",
                {"notify[0].on: \"pending\" is listed twice"}, 2);
  ExpectErrorAt(head + "[]}\n", "[]", {"notify[0].on", "at least one event", "leave out `on`"});
  // `on:` with nothing after it: at the key (there is no value to point at).
  ExpectError("version: 1\nnotify:\n  - url: http://a.example\n    on:\n", "4:5",
              {"notify[0].on", "at least one event"});
}

TEST(PolicyNotify, DuplicateUrl) {
  ExpectErrorAt(
      "version: 1\nnotify:\n  - {url: \"http://a.example/h\", on: [pending]}\n"
      "  - {url: \"http://b.example/h\"}\n"
      "  - {url: \"http://a.example/h\", on: [applied]}\n",
      "\"http://a", {"notify[2].url", "same url as the webhook at line 3", "one `on`"}, 2);
}

// A webhook URL's path is a secret (Slack puts its token there): no error quotes it.
TEST(PolicyNotify, ErrorsDoNotQuoteTheUrl) {
  const std::string secret = "T0000/B0000/XXXXsecretXXXX";
  for (const std::string& url :
       {"http://a.example:0/" + secret, "http://a.example/" + secret + " x", "http://:1/" + secret,
        "gopher://a.example/" + secret}) {
    auto r = LoadPolicyText("version: 1\nnotify:\n  - {url: \"" + url + "\"}\n", kFile);
    ASSERT_FALSE(r.ok()) << url;
    EXPECT_EQ(r.status().message().find(secret), std::string::npos) << r.status().message();
  }
  auto r = LoadPolicyText("version: 1\nnotify:\n  - {url: \"http://a.example/" + secret +
                              "\"}\n  - {url: \"http://a.example/" + secret + "\"}\n",
                          kFile);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().find(secret), std::string::npos) << r.status().message();
}

TEST(PolicyNotify, Hostile) {
  // Every event is queued once per hook: a policy cannot multiply one action into thousands
  // of POSTs.
  std::string many = "version: 1\nnotify:\n";
  for (int i = 0; i < 65; ++i) many += "  - {url: \"http://h" + std::to_string(i) + ".example\"}\n";
  ExpectError(many, "67:5", {"notify: at most 64 webhooks"});
  std::string sixty_four = "version: 1\nnotify:\n";
  for (int i = 0; i < 64; ++i) {
    sixty_four += "  - {url: \"http://h" + std::to_string(i) + ".example\"}\n";
  }
  auto p = MustLoad(sixty_four);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->notify.size(), 64u);
  std::string huge = "http://a.example/" + std::string(3000, 'x');
  ExpectErrorAt("version: 1\nnotify:\n  - {url: \"" + huge + "\"}\n", "\"http",
                {"longer than 2,048 bytes"});
  // A long `on` list is refused at its first repeat.
  std::string events = "version: 1\nnotify:\n  - {url: \"http://a.example\", on: [pending";
  for (int i = 0; i < 10000; ++i) events += ", applied";
  ExpectErrorAt(events + "]}\n", "applied", {"\"applied\" is listed twice"}, 2);
  // Aliases are refused before the notify section is looked at.
  ExpectErrorAt("version: 1\nnotify:\n  - {url: &u \"http://a.example\"}\n  - {url: *u}\n", "*u",
                {"aliases"});
}

}  // namespace
}  // namespace airlock

namespace airlock {
namespace {

// ---- mcp_servers ------------------------------------------------------------------------

// A shell target, a sqlite target and an agent; MCP tests add `mcp_servers:` and more.
std::string McpBase() {
  return "version: 1\n"                                  // 1
         "targets:\n"                                    // 2
         "  repo: {kind: shell, workspace: ./repo}\n"    // 3
         "  app-db: {kind: sqlite, path: ./prod.db}\n";  // 4
}

std::string McpAgent(const std::string& scopes) {
  return "agents:\n  - {name: bot, token_sha256: \"" + kTokA + "\", scopes: [" + scopes + "]}\n";
}

TEST(PolicyMcp, FullConfig) {
  const std::string text = McpBase() +
                           "mcp_servers:\n"  // 5
                           "  fs:\n"         // 6
                           "    command: [npx, -y, \"@modelcontextprotocol/server-filesystem\", "
                           "/data]\n"                                                  // 7
                           "    env: {NODE_ENV: production, DEBUG: 1, EMPTY: \"\"}\n"  // 8
                           "    sandbox: repo\n"                                       // 9
                           "    trust_annotations: true\n"                             // 10
                           "    approval_wait: 30s\n"                                  // 11
                           "    max_message_size: 1MiB\n"                              // 12
                           "    tools:\n"                                              // 13
                           "      - {tool: \"read_*\", risk: read}\n"                  // 14
                           "      - tool: move_file\n"                                 // 15
                           "        args:\n"                                           // 16
                           "          \"/source\": {matches: \"^\\\\.git/\"}\n"        // 17
                           "          \"\": {count_gt: 3}\n"                           // 18
                           "          /a~1b/0: {equals: {k: [1, \"1\", null, true, 2.5]}, gt: "
                           "1e3}\n"                                              // 19
                           "        risk: high\n"                                // 20
                           "        reason: moves\n"                             // 21
                           "  remote: {url: \"https://mcp.example.com/mcp\"}\n"  // 22
                           "  bare:\n"                                           // 23
                           "    command: [srv]\n"                                // 24
                           "    sync_reads: true\n"
                           "    tools:\n" +  // 25
                           McpAgent("repo, fs, \"remote/get_*\", airlock, \"airlock/sql_*\"") +
                           "rules:\n"
                           "  - {match: {target: fs, kind: mcp}, risk: low}\n"
                           "limits:\n"
                           "  - {match: {target: remote}, rate: 10/min}\n";
  auto p = MustLoad(text);
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(p->mcp_servers.size(), 3u);
  const McpServerSpec* fs = p->FindMcpServer("fs");
  ASSERT_NE(fs, nullptr);
  EXPECT_EQ(fs->name, "fs");
  EXPECT_EQ(fs->command, (std::vector<std::string>{
                             "npx", "-y", "@modelcontextprotocol/server-filesystem", "/data"}));
  EXPECT_EQ(fs->env, (std::map<std::string, std::string>{
                         {"NODE_ENV", "production"}, {"DEBUG", "1"}, {"EMPTY", ""}}));
  EXPECT_EQ(fs->sandbox, "repo");
  EXPECT_TRUE(fs->url.empty());
  EXPECT_TRUE(fs->trust_annotations);
  EXPECT_EQ(fs->approval_wait_ms, 30000);
  EXPECT_EQ(fs->max_message_bytes, 1 << 20);
  EXPECT_EQ(fs->loc.line, 6);
  ASSERT_EQ(fs->tools.size(), 2u);
  EXPECT_EQ(fs->tools[0].tool, "read_*");
  EXPECT_EQ(fs->tools[0].risk, Risk::kRead);
  EXPECT_TRUE(fs->tools[0].args.empty());
  EXPECT_EQ(fs->tools[0].reason, "rule at airlock.yaml:14");
  const McpToolRule& move = fs->tools[1];
  EXPECT_EQ(move.tool, "move_file");
  EXPECT_EQ(move.risk, Risk::kHigh);
  EXPECT_EQ(move.reason, "moves");
  EXPECT_EQ(move.loc.line, 15);
  ASSERT_EQ(move.args.size(), 3u);
  EXPECT_EQ(move.args[0].pointer, "/source");
  EXPECT_EQ(move.args[0].matches, "^\\.git/");
  EXPECT_FALSE(move.args[0].count_gt);
  EXPECT_EQ(move.args[0].loc.line, 17);
  EXPECT_EQ(move.args[1].pointer, "");
  EXPECT_EQ(move.args[1].count_gt, 3);
  EXPECT_EQ(move.args[2].pointer, "/a~1b/0");
  ASSERT_TRUE(move.args[2].equals.has_value());
  EXPECT_EQ(*move.args[2].equals, Json::parse(R"({"k": [1, "1", null, true, 2.5]})"));
  EXPECT_TRUE((*move.args[2].equals)["k"][0].is_number_integer());
  EXPECT_EQ(move.args[2].gt, 1000.0);

  const McpServerSpec* remote = p->FindMcpServer("remote");
  ASSERT_NE(remote, nullptr);
  EXPECT_EQ(remote->url, "https://mcp.example.com/mcp");
  EXPECT_TRUE(remote->command.empty());
  EXPECT_FALSE(remote->trust_annotations);
  EXPECT_EQ(remote->approval_wait_ms, 60000);            // default
  EXPECT_EQ(remote->max_message_bytes, 4 << 20);         // default
  EXPECT_FALSE(remote->sync_reads);                      // default
  EXPECT_TRUE(p->FindMcpServer("bare")->sync_reads);
  EXPECT_TRUE(p->FindMcpServer("bare")->tools.empty());  // `tools:` alone: none
  EXPECT_EQ(p->FindMcpServer("repo"), nullptr);
  EXPECT_EQ(p->FindMcpServer("airlock"), nullptr);  // built in, not in the policy

  // Each server is also a target of kind "mcp", described by its fields.
  EXPECT_EQ(p->targets.size(), 5u);
  const TargetSpec* t = p->FindTarget("fs");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->kind, "mcp");
  EXPECT_EQ(t->loc.line, 6);
  EXPECT_EQ(t->fields, Json::parse(R"({
      "kind": "mcp",
      "command": ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/data"],
      "env": {"NODE_ENV": "production", "DEBUG": "1", "EMPTY": ""},
      "sandbox": "repo", "trust_annotations": true,
      "approval_wait_ms": 30000, "max_message_bytes": 1048576, "sync_reads": false})"));
  EXPECT_EQ(p->FindTarget("remote")->fields, Json::parse(R"({
      "kind": "mcp", "url": "https://mcp.example.com/mcp", "trust_annotations": false,
      "approval_wait_ms": 60000, "max_message_bytes": 4194304, "sync_reads": false})"));

  EXPECT_EQ(p->agents[0].scopes,
            (std::vector<std::string>{"repo", "fs", "remote/get_*", "airlock", "airlock/sql_*"}));
  EXPECT_EQ(p->rules[0].match.target, "fs");
  EXPECT_EQ(p->limits[0].match_target, "remote");
}

TEST(PolicyMcp, EmptySection) {
  auto p = MustLoad("version: 1\nmcp_servers:\n");
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(p->mcp_servers.empty());
  EXPECT_TRUE(MustLoad("version: 1\nmcp_servers: {}\n")->mcp_servers.empty());
}

TEST(PolicyMcp, StructureErrors) {
  const std::string head = McpBase() + "mcp_servers:\n  fs: ";
  ExpectErrorAt("version: 1\nmcp_servers: [fs]\n", "[fs]",
                {"mcp_servers: expected a mapping of server names"});
  ExpectErrorAt(head + "npx\n", "npx",
                {"mcp_servers.fs: expected a mapping with `command` or `url`"});
  ExpectErrorAt(
      head + "{command: [x], colour: red}\n", "colour",
      {"unknown key \"colour\" in mcp_servers.fs", "allowed: command, env, sandbox, url"});
  ExpectErrorAt(head + "{command: [x], url: \"http://a.example\"}\n", "url",
                {"mcp_servers.fs: set `command`", "or `url`", "not both"});
  ExpectErrorAt(head + "{url: \"http://a.example\", command: [x]}\n", "command", {"not both"});
  ExpectErrorAt(head + "{trust_annotations: true}\n", "{trust",
                {"mcp_servers.fs: missing required key \"command\" or \"url\""});
  ExpectErrorAt(
      head + "{command: [x], tools: [{tool: a, risk: high, why: y}]}\n", "why",
      {"unknown key \"why\" in mcp_servers.fs.tools[0]", "allowed: tool, args, risk, reason"});
  ExpectErrorAt(head + "{command: [x], tools: [{risk: high}]}\n", "{risk",
                {"mcp_servers.fs.tools[0]: missing required key \"tool\""});
  ExpectErrorAt(head + "{command: [x], tools: [{tool: a}]}\n", "{tool",
                {"mcp_servers.fs.tools[0]: missing required key \"risk\""});
  ExpectErrorAt(
      head + "{command: [x], tools: [{tool: a, risk: hgih}]}\n", "hgih",
      {"mcp_servers.fs.tools[0].risk: unknown risk \"hgih\"", "read, low, high, critical"});
  ExpectErrorAt(head + "{command: [x], tools: [{tool: \"[ab\", risk: high}]}\n", "\"[ab",
                {"mcp_servers.fs.tools[0].tool: bad pattern", "unclosed '['"});
  ExpectErrorAt(head + "{command: [x], tools: {tool: a, risk: high}}\n", "{tool",
                {"mcp_servers.fs.tools: expected a list"});
  ExpectErrorAt(head + "{command: [x], trust_annotations: yes}\n", "yes",
                {"trust_annotations: expected true or false, got \"yes\""});
  ExpectErrorAt(head + "{command: [x], trust_annotations: \"true\"}\n", "\"true\"",
                {"expected true or false, got the string"});
  ExpectErrorAt(head + "{command: [x], sync_reads: maybe}\n", "maybe",
                {"sync_reads: expected true or false"});
  ExpectErrorAt(head + "{command: [x], approval_wait: 2h}\n", "2h",
                {"mcp_servers.fs.approval_wait: must be at most 1h"});
  ExpectErrorAt(head + "{command: [x], approval_wait: soon}\n", "soon", {"bad duration"});
  ExpectErrorAt(head + "{command: [x], max_message_size: 100}\n", "100",
                {"mcp_servers.fs.max_message_size: must be between 1,024 and 67,108,864"});
  ExpectErrorAt(head + "{command: [x], max_message_size: 1GiB}\n", "1GiB", {"must be between"});
  ExpectErrorAt(McpBase() + "mcp_servers:\n  fs: {command: [x]}\n  fs: {command: [y]}\n", "fs",
                {"mcp_servers: duplicate server \"fs\""}, 2);
  ExpectErrorAt("version: 1\nmcp_servers:\n  \"a b\": {command: [x]}\n", "\"a b\"",
                {"bad name \"a b\""});
  ExpectErrorAt("version: 1\nmcp_servers:\n  \"..\": {command: [x]}\n", "\"..\"",
                {"bad name \"..\""});
  ExpectError("version: 1\nmcp_server: {}\n", "2:1", {"unknown key \"mcp_server\"", "mcp_servers"});
}

TEST(PolicyMcp, TransportErrors) {
  const std::string head = McpBase() + "mcp_servers:\n  fs: ";
  ExpectErrorAt(head + "{command: []}\n", "[]",
                {"mcp_servers.fs.command: name at least the program to run"});
  ExpectErrorAt(head + "{command: }\n", "command", {"name at least the program"});
  ExpectErrorAt(head + "{command: [\"\", x]}\n", "\"\"", {"the program must not be empty"});
  ExpectErrorAt(head + "{command: [x, [y]]}\n", "[y]", {"expected a list of strings"});
  ExpectErrorAt(head + "{command: [x, \"a\\0b\"]}\n", "\"a\\0b\"", {"contains a NUL byte"});
  ExpectErrorAt(head + "{command: [x], env: [A=1]}\n", "[A=1]",
                {"mcp_servers.fs.env: expected a mapping of variable names to values"});
  ExpectErrorAt(head + "{command: [x], env: {1X: a}}\n", "1X", {"bad variable name \"1X\""});
  ExpectErrorAt(head + "{command: [x], env: {\"A=B\": a}}\n", "\"A=B\"", {"bad variable name"});
  ExpectErrorAt(head + "{command: [x], env: {A: [a]}}\n", "[a]",
                {"mcp_servers.fs.env.A: expected a string, got a list or mapping"});
  ExpectErrorAt(head + "{command: [x], env: {A: 1, A: 2}}\n", "A", {"duplicate variable \"A\""}, 2);
  ExpectErrorAt(head + "{command: [x], sandbox: app-db}\n", "app-db",
                {"mcp_servers.fs.sandbox: target \"app-db\" is a sqlite target, not a shell target",
                 "shell targets: repo"},
                2);
  ExpectErrorAt(head + "{command: [x], sandbox: nope}\n", "nope",
                {"unknown target \"nope\"", "shell targets: repo"});
  ExpectErrorAt(head + "{url: \"http://a.example\", sandbox: repo}\n", "sandbox",
                {"mcp_servers.fs.sandbox: applies only to a stdio server"});
  ExpectErrorAt(head + "{url: \"http://a.example\", env: {A: b}}\n", "env",
                {"mcp_servers.fs.env: applies only to a stdio server"});
  ExpectErrorAt(head + "{url: \"ftp://a.example\"}\n", "\"ftp",
                {"mcp_servers.fs.url", "http:// or https://"});
  ExpectErrorAt(head + "{url: \"http://\"}\n", "\"http", {"no host"});
  // A second server may use the first one as nothing: sandbox names a shell target only.
  ExpectErrorAt(McpBase() + "mcp_servers:\n  a: {command: [x]}\n  b: {command: [y], sandbox: a}\n",
                "a}", {"\"a\" is an MCP server, not a shell target"});
  // read_paths: the sandboxed server's own code; nothing to bind without a sandbox.
  ExpectErrorAt(head + "{command: [x], read_paths: [/opt/srv]}\n", "read_paths",
                {"mcp_servers.fs.read_paths: applies only to a server run in a `sandbox`"});
  ExpectErrorAt(head + "{url: \"http://a.example\", read_paths: [/opt]}\n", "read_paths",
                {"mcp_servers.fs.read_paths: applies only to a stdio server"});
  ExpectErrorAt(head + "{command: [x], sandbox: repo, read_paths: [\"\"]}\n", "\"\"",
                {"mcp_servers.fs.read_paths: bad path \"\""});
  ExpectErrorAt(head + "{command: [x], sandbox: repo, read_paths: {a: b}}\n", "{a: b}",
                {"read_paths"});
}

// headers: a url: server's credentials, as an HTTP target's: references or literals, never
// quoted in an error; the transport's own headers stay airlock's.
TEST(PolicyMcp, UrlHeaders) {
  auto p = MustLoad(McpBase() +
                    "mcp_servers:\n"
                    "  fs: {url: \"https://mcp.example/mcp\", headers: {Authorization: "
                    "\"env:FS_AUTH\", X-Key: \"file:./fs.key\", X-Plain: v1}}\n" +
                    McpAgent("fs"));
  ASSERT_NE(p, nullptr);
  const McpServerSpec* fs = p->FindMcpServer("fs");
  ASSERT_NE(fs, nullptr);
  ASSERT_EQ(fs->headers.size(), 3u);
  EXPECT_EQ(fs->headers[0],
            std::make_pair(std::string("Authorization"), std::string("env:FS_AUTH")));
  EXPECT_EQ(fs->headers[1].second.rfind("file:/", 0), 0u)
      << "made absolute: " << fs->headers[1].second;
  EXPECT_NE(fs->headers[1].second.find("/fs.key"), std::string::npos);
  EXPECT_EQ(fs->headers[2].second, "v1");
  // The connector's one-shot sessions (approvals made later) get them with the entry.
  const TargetSpec* t = p->FindTarget("fs");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->fields["headers"]["Authorization"], "env:FS_AUTH");

  const std::string head = McpBase() + "mcp_servers:\n  fs: ";
  ExpectErrorAt(head + "{command: [x], headers: {A: b}}\n", "headers",
                {"mcp_servers.fs.headers: applies only to a streamable HTTP server"});
  for (const char* own :
       {"Accept", "content-type", "Mcp-Session-Id", "MCP-Protocol-Version", "Last-Event-ID"}) {
    ExpectErrorAt(head + "{url: \"http://a.example\", headers: {" + own + ": x}}\n", own,
                  {"set by airlock itself"});
  }
  ExpectErrorAt(head + "{url: \"http://a.example\", headers: {A: x, a: y}}\n", "a: y",
                {"duplicate header \"a\""});
  ExpectErrorAt(head + "{url: \"http://a.example\", headers: [A]}\n", "[A]",
                {"expected a mapping of header names to values"});
  ExpectErrorAt(head + "{url: \"http://a.example\", headers: {A: \"env:1X\"}}\n", "\"env:1X\"",
                {"env: needs a variable name"});
  // A literal with a line break would inject a header; the error does not quote it.
  const std::string secret = "s3cretPassw0rd";
  auto bad = LoadPolicyText(head + "{url: \"http://a.example\", headers: {A: \"" + secret +
                                "\\r\\nX: y\"}}\n" + McpAgent("fs"),
                            kFile);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line break"), std::string::npos) << bad.status().message();
  EXPECT_EQ(bad.status().message().find(secret), std::string::npos) << bad.status().message();
}

TEST(PolicyMcp, ReadPathsResolveAgainstThePolicyDirectory) {
  auto p = MustLoad(McpBase() +
                    "mcp_servers:\n"
                    "  fs: {command: [node, srv.js], sandbox: repo, read_paths: [./node_modules, "
                    "/opt/srv]}\n" +
                    McpAgent("fs"));
  ASSERT_NE(p, nullptr);
  const McpServerSpec* fs = p->FindMcpServer("fs");
  ASSERT_NE(fs, nullptr);
  ASSERT_EQ(fs->read_paths.size(), 2u);
  EXPECT_EQ(fs->read_paths[0][0], '/') << fs->read_paths[0];
  EXPECT_NE(fs->read_paths[0].find("node_modules"), std::string::npos);
  EXPECT_EQ(fs->read_paths[1], "/opt/srv");
  // The connector (and the session's sandbox) get them with the server's entry.
  const TargetSpec* t = p->FindTarget("fs");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->fields["read_paths"], Json(fs->read_paths));
}

// Commands and env values hold credentials: errors never quote them.
TEST(PolicyMcp, ErrorsDoNotQuoteSecrets) {
  const std::string secret = "s3cretPassw0rd";
  for (const std::string& entry :
       {"{command: \"psql postgres://u:" + secret + "@db/x\"}",
        "{command: [psql, \"postgres://u:" + secret + "@db/x\", \"a\\0\"]}",
        "{command: [x], env: {DB: [\"" + secret + "\"]}}",
        "{command: [x], env: {DB: \"" + secret + "\\0\"}}",
        "{url: \"https://u:" + secret + "@a.example:0/x\"}"}) {
    auto r = LoadPolicyText("version: 1\nmcp_servers:\n  db: " + entry + "\n", kFile);
    ASSERT_FALSE(r.ok()) << entry;
    EXPECT_EQ(r.status().message().find(secret), std::string::npos) << r.status().message();
  }
}

TEST(PolicyMcp, ArgCheckErrors) {
  const std::string head = McpBase() +
                           "mcp_servers:\n  fs: {command: [x], tools: [{tool: t, "
                           "risk: high, args: ";
  auto bad = [&](const std::string& args, const std::string& needle,
                 const std::vector<std::string>& words,
                 int nth = 1) { ExpectErrorAt(head + args + "}]}\n", needle, words, nth); };
  bad("{to: {count_gt: 1}}",
      "to:", {"mcp_servers.fs.tools[0].args: bad JSON pointer \"to\"", "starts with '/'"});
  bad("{\"/a~2\": {count_gt: 1}}", "\"/a~2\"", {"bad JSON pointer \"/a~2\"", "~0", "~1"});
  bad("{\"/a~\": {count_gt: 1}}", "\"/a~\"", {"bad JSON pointer"});
  bad("{\"/to\": {}}", "{}}",
      {"args[\"/to\"]: name at least one check", "count_gt, matches, equals, gt"});
  bad("{\"/to\": }", "\"/to\"", {"name at least one check"});
  bad("{\"/to\": 1}", "1}", {"args[\"/to\"]: expected a mapping"});
  bad("[\"/to\"]", "[\"/to\"]", {"args: expected a mapping of JSON pointers"});
  bad("{\"/to\": {count_ge: 1}}", "count_ge",
      {"unknown key \"count_ge\" in mcp_servers.fs.tools[0].args[\"/to\"]",
       "allowed: count_gt, matches, equals, gt"});
  bad("{\"/to\": {count_gt: -1}}", "-1", {"count_gt: must be at least 0"});
  bad("{\"/to\": {count_gt: many}}", "many", {"expected an integer"});
  bad("{\"/to\": {matches: \"(ab\"}}", "\"(ab\"",
      {"args[\"/to\"].matches: bad regular expression \"(ab\"", "Unmatched ( or \\("});
  bad("{\"/to\": {matches: \"a{2,1}\"}}", "\"a{2", {"bad regular expression", "\\{\\}"});
  bad("{\"/to\": {matches: \"(a)\\\\1\"}}", "\"(a)", {"back-references"});
  bad("{\"/to\": {matches: \"x{0,10000}\"}}", "\"x{", {"repetition count over 255"});
  bad("{\"/to\": {matches: \"((x?){0,30}){0,30}\"}}", "\"((x", {"expand too far"});
  // Found by fuzz/policy_fuzz.cc: regcomp reads "{,n}" as "{0,n}".
  bad("{\"/to\": {matches: \"((x?){0,30}){,718}\"}}", "\"((x", {"repetition count over 255"});
  bad("{\"/to\": {matches: \"((x?){0,9}){,40}\"}}", "\"((x", {"expand too far"});
  // Found by fuzz/policy_fuzz.cc: each stacked `+` doubles what regcomp builds.
  bad("{\"/to\": {matches: \"(x" + std::string(40, '+') + ")\"}}", "\"(x", {"expand too far"});
  bad("{\"/to\": {matches: \"((x" + std::string(38, '+') + "{0}\"}}", "\"((x", {"expand too far"});
  bad("{\"/to\": {matches: \"" + std::string(1025, 'a') + "\"}}", "\"aaa",
      {"longer than 1024 bytes"});
  bad("{\"/to\": {matches: [a]}}", "[a]", {"matches: expected a string"});
  bad("{\"/n\": {gt: lots}}", "lots", {"args[\"/n\"].gt: expected a number, got \"lots\""});
  bad("{\"/n\": {gt: \"5\"}}", "\"5\"", {"expected a number, got the string"});
  bad("{\"/n\": {gt: .inf}}", ".inf", {"expected a number"});
  bad("{\"/n\": {gt: 1e999}}", "1e999", {"expected a number"});
  bad("{\"/n\": {equals: 99999999999999999999}}", "9999", {"equals", "out of range"});
  bad("{\"/n\": {equals: {[a]: 1}}}", "[a]", {"keys must be plain strings"});
  bad("{\"/n\": {count_gt: 1}, \"/n\": {gt: 1}}", "\"/n\"", {"duplicate key \"/n\""}, 2);
}

TEST(PolicyMcp, NamesAndScopes) {
  // A server and a target cannot share a name, and "airlock" is the built-in server's.
  ExpectErrorAt(McpBase() + "mcp_servers:\n  repo: {command: [x]}\n", "repo: {command",
                {"mcp_servers: \"repo\" is already the name of the target at line 3"});
  ExpectErrorAt("version: 1\nmcp_servers:\n  airlock: {command: [x]}\n", "airlock",
                {"\"airlock\" is reserved for the built-in MCP server"});
  ExpectErrorAt("version: 1\ntargets:\n  airlock: {kind: sqlite, path: x}\n", "airlock",
                {"targets: the name \"airlock\" is reserved"});
  ExpectErrorAt("version: 1\ntargets:\n  x: {kind: mcp, command: [x]}\n", "mcp",
                {"targets.x.kind: MCP servers are defined under `mcp_servers:`"});

  const std::string servers = McpBase() + "mcp_servers:\n  fs: {command: [x]}\n";
  ExpectErrorAt(servers + McpAgent("\"nope/read_*\""), "\"nope/",
                {"agents[0].scopes: unknown MCP server \"nope\" in scope \"nope/read_*\"",
                 "defined targets: app-db, repo; MCP servers: fs"});
  ExpectErrorAt(servers + McpAgent("\"repo/x\""), "\"repo/", {"unknown MCP server \"repo\""});
  ExpectErrorAt(servers + McpAgent("\"fs/[\""), "\"fs/[",
                {"bad tool pattern \"[\" in scope \"fs/[\"", "unclosed '['"});
  ExpectErrorAt(servers + McpAgent("\"fs/\""), "\"fs/", {"bad tool pattern \"\""});
  ExpectErrorAt(servers + McpAgent("nope"), "nope", {"unknown target \"nope\"", "MCP servers: fs"});
  auto p = MustLoad(servers + McpAgent("fs, \"fs/read_*\", \"airlock/exec\", airlock"));
  ASSERT_NE(p, nullptr);
  // Rules and limits name a server like a target; errors list servers apart.
  EXPECT_NE(MustLoad(servers + "rules:\n  - {match: {target: fs}, risk: high}\n"), nullptr);
  ExpectErrorAt(servers + "limits:\n  - {match: {target: fss}, rate: 1/s}\n", "fss",
                {"unknown target \"fss\" (defined targets: app-db, repo; MCP servers: fs)"});
  // Servers load before agents, wherever the sections are in the file.
  std::string agents_first = McpBase() + McpAgent("fs") + "mcp_servers:\n  fs: {command: [x]}\n";
  EXPECT_NE(MustLoad(agents_first), nullptr);
}

TEST(PolicyMcp, Hostile) {
  // Deep `equals:` values are refused by the nesting guard before they are converted.
  std::string deep =
      "version: 1\nmcp_servers:\n  fs: {command: [x], tools: [{tool: t, risk: high, "
      "args: {\"/a\": {equals: " +
      std::string(40, '[') + std::string(40, ']') + "}}}]}\n";
  auto r = LoadPolicyText(deep, kFile);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nest"), std::string::npos) << r.status().message();
  // Many rules and checks load (the file-size cap bounds them).
  std::string many = "version: 1\nmcp_servers:\n  fs:\n    command: [x]\n    tools:\n";
  for (int i = 0; i < 2000; ++i) {
    many += "      - {tool: t" + std::to_string(i) +
            ", risk: low, args: {\"/a\": {matches: \"^x\"}}}\n";
  }
  auto p = MustLoad(many);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->FindMcpServer("fs")->tools.size(), 2000u);
}

// ---- HTTP targets ----------------------------------------------------------------------------

TEST(PolicyHttp, LoadsTargetAndRules) {
  auto p = MustLoad(
      "version: 1\n"
      "targets:\n"
      "  api:\n"
      "    kind: http\n"
      "    base_url: https://api.example.com/v2\n"
      "    allow: [\"GET /items/**\", \"POST /messages\"]\n"
      "    headers: {Authorization: \"env:API_TOKEN\", X-Key: \"file:key.txt\", Accept: "
      "application/json}\n"
      "    timeout: 5s\n"
      "    max_response_bytes: 64KiB\n"
      "rules:\n"
      "  - {match: {target: api, method: post, path: /messages, body: {\"/to\": {count_gt: 1}}}, "
      "risk: high}\n");
  ASSERT_TRUE(p);
  const TargetSpec* t = p->FindTarget("api");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->kind, "http");
  EXPECT_EQ(t->fields["base_url"], "https://api.example.com/v2");
  EXPECT_EQ(t->fields["allow"].size(), 2u);
  EXPECT_EQ(t->fields["headers"]["Authorization"], "env:API_TOKEN");
  EXPECT_EQ(t->fields["headers"]["X-Key"], "file:/etc/airlock/key.txt");  // resolved
  EXPECT_EQ(t->fields["timeout_ms"], 5000);
  EXPECT_EQ(t->fields["max_response_bytes"], 65536);
  ASSERT_EQ(p->rules.size(), 1u);
  EXPECT_EQ(p->rules[0].match.method, "POST");
  EXPECT_EQ(p->rules[0].match.path, "/messages");
  ASSERT_EQ(p->rules[0].match.body.size(), 1u);
  EXPECT_EQ(p->rules[0].match.body[0].count_gt, 1);
}

TEST(PolicyHttp, ErrorsPointAtTheValue) {
  const std::string head = "version: 1\ntargets:\n  api: {kind: http, ";
  ExpectErrorAt(head + "allow: []}\n", "{kind", {"missing required key \"base_url\""});
  ExpectErrorAt(head + "base_url: \"ftp://x\"}\n", "\"ftp", {"targets.api.base_url", "http://"});
  ExpectErrorAt(head + "base_url: \"http://u:secretpw@x\"}\n", "\"http", {"user:password@"});
  auto r = LoadPolicyText(head + "base_url: \"http://u:secretpw@x\"}\n", kFile);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().find("secretpw"), std::string::npos);
  ExpectErrorAt(head + "base_url: \"http://x\", allow: [\"GET /a\", \"FETCH /x\"]}\n", "\"FETCH",
                {"targets.api.allow", "bad entry", "unsupported HTTP method"});
  ExpectErrorAt(head + "base_url: \"http://x\", allow: [\"GET /../x\"]}\n", "\"GET", {"bad entry"});
  ExpectErrorAt(head + "base_url: \"http://x\", headers: {Host: evil}}\n", "evil",
                {"set by airlock itself"});
  ExpectErrorAt(head + "base_url: \"http://x\", headers: {A: \"env:1\"}}\n", "\"env",
                {"env: needs a variable name"});
  ExpectErrorAt(head + "base_url: \"http://x\", headers: {A: x, a: y}}\n", "a: y",
                {"duplicate header"});
  ExpectErrorAt(head + "base_url: \"http://x\", colour: red}\n", "colour",
                {"unknown key \"colour\"", "base_url, allow, headers"});
  ExpectErrorAt(head + "base_url: \"http://x\", timeout: 2h}\n", "2h", {"longer than an hour"});
  ExpectErrorAt("version: 1\nrules:\n  - {match: {method: FETCH}, risk: high}\n", "FETCH",
                {"rules[0].match.method", "unsupported HTTP method"});
  ExpectErrorAt("version: 1\nrules:\n  - {match: {path: \"/a/[\"}, risk: high}\n", "\"/a",
                {"bad pattern"});
  ExpectErrorAt("version: 1\nrules:\n  - {match: {body: {\"to\": {count_gt: 1}}}, risk: high}\n",
                "\"to\"", {"bad JSON pointer"});
  ExpectErrorAt("version: 1\nrules:\n  - {match: {body: {\"/to\": {}}}, risk: high}\n", "{}",
                {"name at least one check"});
}

}  // namespace
}  // namespace airlock
