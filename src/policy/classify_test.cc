// Classifier tests: each default of DESIGN.md's sql row, rules that raise (never lower) the
// risk, the reason strings people read, and the speed budget.
#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "policy/mcp_rules.h"
#include "policy/policy.h"

namespace airlock {
namespace {

const std::string kTok(64, 'a');

std::shared_ptr<const Policy> Load(const std::string& extra) {
  std::string text =
      "version: 1\n"                                            // 1
      "targets:\n"                                              // 2
      "  app-db: {kind: sqlite, path: a.db}\n"                  // 3
      "  other: {kind: sqlite, path: b.db, max_low_rows: 5}\n"  // 4
      "agents:\n"                                               // 5
      "  - {name: bot, token_sha256: \"" +
      kTok +
      "\"}\n"  // 6
      "  - {name: etl, token_sha256: \"" +
      std::string(64, 'b') + "\"}\n" +  // 7
      extra;                            // 8+
  auto r = LoadPolicyText(text, "/srv/airlock.yaml");
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : nullptr;
}

Effect Sql() {
  Effect e;
  e.kind = "sql";
  return e;
}

TableChange Change(const std::string& table, int64_t ins, int64_t upd, int64_t del) {
  TableChange t;
  t.table = table;
  t.inserted = ins;
  t.updated = upd;
  t.deleted = del;
  return t;
}

DdlOp Ddl(const std::string& op, const std::string& object, const std::string& table = "") {
  DdlOp d;
  d.op = op;
  d.object = object;
  d.table = table;
  return d;
}

using Reasons = std::vector<std::string>;

TEST(Classify, ReadOnly) {
  Classifier c(Load(""));
  Classification r = c.Classify("bot", "app-db", Sql());
  EXPECT_EQ(r.risk, Risk::kRead);
  EXPECT_EQ(r.reasons, Reasons{"reads only: no row or schema change"});
}

TEST(Classify, SmallDmlIsLow) {
  Classifier c(Load(""));
  Effect e = Sql();
  e.tables = {Change("users", 0, 1, 0)};
  Classification r = c.Classify("bot", "app-db", e);
  EXPECT_EQ(r.risk, Risk::kLow);
  EXPECT_EQ(r.reasons, Reasons{"changes 1 row in users (at most 100) is low"});
  e.tables = {Change("orders", 50, 0, 0), Change("users", 0, 0, 50)};
  r = c.Classify("bot", "app-db", e);
  EXPECT_EQ(r.risk, Risk::kLow);  // exactly max_low_rows is still low
  EXPECT_EQ(r.reasons, Reasons{"changes 100 rows in orders, users (at most 100) is low"});
}

TEST(Classify, ManyRowsIsHighAndUsesTargetLimit) {
  Classifier c(Load(""));
  Effect e = Sql();
  e.tables = {Change("orders", 200, 0, 0), Change("skipped", 0, 0, 0), Change("users", 0, 50, 0)};
  Classification r = c.Classify("bot", "app-db", e);
  EXPECT_EQ(r.risk, Risk::kHigh);
  EXPECT_EQ(r.reasons, Reasons{"changes 250 rows (more than 100) in orders, users is high"});
  e.tables = {Change("t", 6, 0, 0)};
  r = c.Classify("bot", "other", e);  // max_low_rows: 5
  EXPECT_EQ(r.risk, Risk::kHigh);
  EXPECT_EQ(r.reasons, Reasons{"changes 6 rows (more than 5) in t is high"});
  e.tables = {Change("t", 1204, 0, 0)};
  r = c.Classify("bot", "unknown-target", e);  // default 100
  EXPECT_EQ(r.reasons, Reasons{"changes 1,204 rows (more than 100) in t is high"});
}

TEST(Classify, DropTableIsCritical) {
  Classifier c(Load(""));
  Effect e = Sql();
  DdlOp d = Ddl("drop_table", "users");
  d.rows = 1204;
  d.indexes = {"a", "b"};
  e.ddl = {d};
  Classification r = c.Classify("bot", "app-db", e);
  EXPECT_EQ(r.risk, Risk::kCritical);
  EXPECT_EQ(r.reasons, Reasons{"DROP TABLE users (1,204 rows, 2 indexes) is critical"});
  d.rows = 1;
  d.indexes = {"a"};
  d.triggers = {"t1", "t2", "t3"};
  e.ddl = {d};
  EXPECT_EQ(c.Classify("bot", "app-db", e).reasons,
            Reasons{"DROP TABLE users (1 row, 1 index, 3 triggers) is critical"});
  d.triggers = {"t1"};
  d.indexes.clear();
  d.rows = 0;
  e.ddl = {d};
  EXPECT_EQ(c.Classify("bot", "app-db", e).reasons,
            Reasons{"DROP TABLE users (0 rows, 0 indexes, 1 trigger) is critical"});
}

TEST(Classify, OtherCriticalDdl) {
  Classifier c(Load(""));
  auto one = [&](const DdlOp& d) {
    Effect e = Sql();
    e.ddl = {d};
    Classification r = c.Classify("bot", "app-db", e);
    EXPECT_EQ(r.risk, Risk::kCritical) << d.op;
    return r.reasons.empty() ? std::string() : r.reasons[0];
  };
  DdlOp alter = Ddl("alter_table", "users");
  alter.rows = 1204;
  EXPECT_EQ(one(alter), "ALTER TABLE users (1,204 rows) is critical");
  DdlOp attach = Ddl("attach", "aux");
  attach.detail = "/tmp/x.db";
  EXPECT_EQ(one(attach), "ATTACH '/tmp/x.db' is critical");
  DdlOp pragma = Ddl("pragma_write", "writable_schema");
  pragma.detail = "writable_schema=1";
  EXPECT_EQ(one(pragma), "PRAGMA writable_schema=1 is critical");
  DdlOp vac = Ddl("vacuum_into", "main");
  vac.detail = "/tmp/copy.db";
  EXPECT_EQ(one(vac), "VACUUM INTO '/tmp/copy.db' is critical");
  EXPECT_EQ(one(Ddl("drop_index", "idx_x", "users")), "DROP INDEX idx_x on users is critical");
  EXPECT_EQ(one(Ddl("drop_view", "v")), "DROP VIEW v is critical");
  EXPECT_EQ(one(Ddl("drop_trigger", "trg", "users")), "DROP TRIGGER trg on users is critical");
}

TEST(Classify, LowDdl) {
  Classifier c(Load(""));
  for (const auto& [d, want] : std::vector<std::pair<DdlOp, std::string>>{
           {Ddl("create_index", "idx_x", "users"),
            "CREATE INDEX idx_x on users is a schema change (low)"},
           {Ddl("create_table", "t"), "CREATE TABLE t is a schema change (low)"},
           {Ddl("vacuum", ""), "VACUUM is a schema change (low)"},
           {Ddl("analyze", "users"), "ANALYZE users is a schema change (low)"},
           {Ddl("reindex", "idx_x"), "REINDEX idx_x is a schema change (low)"},
           {Ddl("detach", "aux"), "DETACH aux is a schema change (low)"}}) {
    Effect e = Sql();
    e.ddl = {d};
    Classification r = c.Classify("bot", "app-db", e);
    EXPECT_EQ(r.risk, Risk::kLow) << d.op;
    EXPECT_EQ(r.reasons, Reasons{want});
  }
  // An operation this build does not know fails closed.
  Effect e = Sql();
  e.ddl = {Ddl("frobnicate", "x")};
  EXPECT_EQ(c.Classify("bot", "app-db", e).risk, Risk::kHigh);
}

TEST(Classify, EveryRowDeletedOrUpdated) {
  Classifier c(Load(""));
  Effect e = Sql();
  TableChange del = Change("users", 0, 0, 1204);
  del.all_rows_deleted = true;
  e.tables = {del};
  Classification r = c.Classify("bot", "app-db", e);
  EXPECT_EQ(r.risk, Risk::kCritical);
  EXPECT_EQ(r.reasons, (Reasons{"DELETE of every row of users (1,204 rows) is critical",
                                "changes 1,204 rows (more than 100) in users is high"}));
  TableChange upd = Change("users", 0, 3, 0);
  upd.all_rows_updated = true;
  e.tables = {upd};
  r = c.Classify("bot", "app-db", e);
  EXPECT_EQ(r.risk, Risk::kHigh);  // few rows, but every one of them
  EXPECT_EQ(r.reasons, (Reasons{"UPDATE of every row of users (3 rows) is high",
                                "changes 3 rows in users (at most 100) is low"}));
}

TEST(Classify, NoPrimaryKeyIsHigh) {
  Classifier c(Load(""));
  Effect e = Sql();
  TableChange t = Change("logs", 1, 0, 0);
  t.has_primary_key = false;
  e.tables = {t};
  Classification r = c.Classify("bot", "app-db", e);
  EXPECT_EQ(r.risk, Risk::kHigh);
  EXPECT_EQ(r.reasons[0],
            "table logs has no PRIMARY KEY: airlock cannot preview or undo its rows (high)");
}

TEST(Classify, OtherKinds) {
  // Every kind airlock makes has its own defaults (mail: smtp_policy_test.cc, http, mcp); a
  // kind with none fails closed.
  Classifier c(Load(""));
  Effect e;
  e.kind = "ftp";
  Classification r = c.Classify("bot", "app-db", e);
  EXPECT_EQ(r.risk, Risk::kRead);
  e.extra = {{"files", 3}};
  r = c.Classify("bot", "app-db", e);
  EXPECT_EQ(r.risk, Risk::kHigh);
  EXPECT_EQ(r.reasons, Reasons{"no default for kind ftp: high (fail closed)"});
}

Effect Shell(int64_t added, int64_t changed, int64_t deleted) {
  Effect e;
  e.kind = "shell";
  e.files_changed = added + changed + deleted;
  e.extra = {{"added", added}, {"changed", changed}, {"deleted", deleted},
             {"command", {"sh", "-c", "x"}}};
  for (int64_t i = 0; i < e.files_changed && i < 5; ++i) {
    FileChange f;
    f.path = "src/f" + std::to_string(i);
    f.op = i < added ? "added" : i < added + changed ? "changed" : "deleted";
    e.files.push_back(f);
  }
  return e;
}

TEST(Classify, ShellDefaults) {
  Classifier c(Load(""));
  Classification r = c.Classify("bot", "app-db", Shell(0, 0, 0));
  EXPECT_EQ(r.risk, Risk::kRead);
  EXPECT_EQ(r.reasons, Reasons{"reads only: no file change and no network attempt"});
  r = c.Classify("bot", "app-db", Shell(1, 1, 0));
  EXPECT_EQ(r.risk, Risk::kLow);
  EXPECT_EQ(r.reasons, Reasons{"changes 2 paths inside the workspace (1 added, 1 changed, 0 "
                               "deleted) is low"});
  r = c.Classify("bot", "app-db", Shell(0, 0, 20));
  EXPECT_EQ(r.risk, Risk::kLow) << "20 deletions is the default limit, still low";
  r = c.Classify("bot", "app-db", Shell(0, 0, 21));
  EXPECT_EQ(r.risk, Risk::kHigh);
  EXPECT_EQ(r.reasons, (Reasons{"changes 21 paths inside the workspace (0 added, 0 changed, 21 "
                                "deleted)",
                                "deletes 21 paths (more than 20) is high"}));

  Effect e = Shell(0, 1, 0);
  e.extra["protected"] = {".git/config"};
  e.extra["protected_count"] = 1;
  r = c.Classify("bot", "app-db", e);
  EXPECT_EQ(r.risk, Risk::kHigh);
  EXPECT_EQ(r.reasons.back(), "changes protected path .git/config (high)");

  e = Shell(0, 0, 0);
  e.extra["network_attempt"] = true;
  e.extra["network_detail"] = "1 TCP connection attempt";
  r = c.Classify("bot", "app-db", e);
  EXPECT_EQ(r.risk, Risk::kHigh) << "a network attempt alone is not a read";
  EXPECT_EQ(r.reasons, Reasons{"tried to use the network (1 TCP connection attempt), which the "
                               "sandbox blocked (high)"});

  e = Shell(0, 0, 0);
  e.extra["killed_by"] = "timeout";
  EXPECT_EQ(c.Classify("bot", "app-db", e).risk, Risk::kHigh);
  e = Shell(1, 0, 0);
  e.extra["upper_full"] = "files";
  EXPECT_EQ(c.Classify("bot", "app-db", e).risk, Risk::kHigh);
  e = Shell(1, 0, 0);
  e.extra["refused"] = {"rootsh: setuid/setgid bits"};
  e.extra["refused_count"] = 1;
  r = c.Classify("bot", "app-db", e);
  EXPECT_EQ(r.risk, Risk::kCritical);
  EXPECT_EQ(r.reasons.back(),
            "made what airlock never commits (rootsh: setuid/setgid bits) is critical");
}

TEST(Classify, ShellTargetLimitAndRules) {
  auto q = LoadPolicyText(
      "version: 1\n"
      "targets:\n"
      "  repo: {kind: shell, workspace: /w, max_low_deletes: 2}\n"
      "rules:\n"
      "  - {match: {command: \"rm\"}, risk: high, reason: rm is never low}\n"      // 5
      "  - {match: {path: \"migrations/**\"}, risk: critical}\n"                   // 6
      "  - {match: {deletes_gt: 3}, risk: critical, reason: many deletions}\n"     // 7
      "  - {match: {files_gt: 100}, risk: high, reason: big change}\n",            // 8
      "/srv/airlock.yaml");
  ASSERT_TRUE(q.ok()) << q.status().message();
  Classifier c(*q);
  Effect e = Shell(0, 0, 3);
  Classification r = c.Classify("bot", "repo", e);
  EXPECT_EQ(r.risk, Risk::kHigh) << "3 deletions over the target's max_low_deletes of 2";
  e.extra["command"] = {"/usr/bin/rm", "-rf", "x"};
  r = c.Classify("bot", "repo", e);
  EXPECT_EQ(r.reasons.back(), "rm is never low (rule at airlock.yaml:5 → high)");
  e = Shell(1, 0, 0);
  e.files[0].path = "migrations/001.sql";
  EXPECT_EQ(c.Classify("bot", "repo", e).risk, Risk::kCritical);
  e.files[0].path = "src/migrations/001.sql";
  EXPECT_EQ(c.Classify("bot", "repo", e).risk, Risk::kLow);
  // Only part of the changes listed: a path rule matches (fail closed).
  e.files_changed = 10;
  EXPECT_EQ(c.Classify("bot", "repo", e).risk, Risk::kCritical);
  e = Shell(0, 0, 4);
  EXPECT_EQ(c.Classify("bot", "repo", e).risk, Risk::kCritical);
  e = Shell(101, 0, 0);
  EXPECT_EQ(c.Classify("bot", "repo", e).reasons.back(),
            "big change (rule at airlock.yaml:8 → high)");
  // Shell fields never match another kind's effect.
  Effect sql = Sql();
  sql.tables.push_back(Change("t", 0, 0, 5));
  for (const auto& reason : c.Classify("bot", "repo", sql).reasons) {
    EXPECT_EQ(reason.find("rule at"), std::string::npos) << reason;
  }
}

TEST(Classify, RulesRaiseInFileOrder) {
  auto p = Load(
      "rules:\n"  // 8
      "  - {match: {target: app-db, table: payments}, risk: high, reason: \"payments are "
      "money\"}\n"                                                                // 9
      "  - {match: {op: delete}, risk: critical}\n"                               // 10
      "  - {match: {target: app-db, agent: etl}, risk: critical, reason: etl}\n"  // 11
      "  - {match: {kind: sql, rows_gt: 2}, risk: high, reason: many}\n"          // 12
      "  - {match: {target: other}, risk: critical, reason: other}\n");           // 13
  ASSERT_NE(p, nullptr);
  Classifier c(p);
  Effect e = Sql();
  e.tables = {Change("payments", 0, 1, 0)};
  Classification r = c.Classify("bot", "app-db", e);
  EXPECT_EQ(r.risk, Risk::kHigh);
  EXPECT_EQ(r.reasons, (Reasons{"changes 1 row in payments (at most 100) is low",
                                "payments are money (rule at airlock.yaml:9 \u2192 high)"}));
  // Table matched through DDL too; the any-target rule (line 10) sorts between.
  e.tables = {Change("payments", 0, 0, 3)};
  r = c.Classify("bot", "app-db", e);
  EXPECT_EQ(r.risk, Risk::kCritical);
  EXPECT_EQ(r.reasons, (Reasons{"changes 3 rows in payments (at most 100) is low",
                                "payments are money (rule at airlock.yaml:9 \u2192 high)",
                                "rule at airlock.yaml:10 \u2192 critical",
                                "many (rule at airlock.yaml:12 \u2192 high)"}));
  // Agent and target must both match; the other target's rule does not apply.
  e.tables = {Change("users", 1, 0, 0)};
  EXPECT_EQ(c.Classify("bot", "app-db", e).risk, Risk::kLow);
  EXPECT_EQ(c.Classify("etl", "app-db", e).risk, Risk::kCritical);
  EXPECT_EQ(c.Classify("bot", "other", e).risk, Risk::kCritical);
  // A DDL op and a DDL object match op and table.
  Effect ddl = Sql();
  ddl.ddl = {Ddl("create_index", "idx", "payments")};
  r = c.Classify("bot", "app-db", ddl);
  EXPECT_EQ(r.risk, Risk::kHigh);
  EXPECT_EQ(r.reasons.size(), 2u);
}

TEST(Classify, RulesNeverLower) {
  auto p = Load(
      "rules:\n  - {risk: read, reason: everything is fine}\n  - {match: {op: drop_table}, risk: "
      "low}\n");
  ASSERT_NE(p, nullptr);
  Classifier c(p);
  Effect e = Sql();
  DdlOp d = Ddl("drop_table", "users");
  d.rows = 5;
  e.ddl = {d};
  Classification r = c.Classify("bot", "app-db", e);
  EXPECT_EQ(r.risk, Risk::kCritical);
  ASSERT_EQ(r.reasons.size(), 3u);
  EXPECT_EQ(r.reasons[0], "DROP TABLE users (5 rows, 0 indexes) is critical");
}

// Speed is measured by `make bench` (docs/BENCHMARKS.md), not asserted here; this checks that
// the target index picks exactly the matching rules among 1,001.
TEST(Classify, ThousandRulesOnlyMatchingOnesApply) {
  std::string rules = "rules:\n";
  for (int i = 0; i < 1000; ++i) {
    const char* target = i % 2 ? "app-db" : "other";
    rules += "  - {match: {target: " + std::string(target) + ", table: t" + std::to_string(i) +
             ", op: update, agent: etl}, risk: high}\n";
  }
  rules += "  - {match: {table: users}, risk: high, reason: users}\n";
  auto p = Load(rules);
  ASSERT_NE(p, nullptr);
  Classifier c(p);
  Effect e = Sql();
  e.tables = {Change("orders", 0, 3, 0), Change("users", 0, 2, 0)};
  Classification r = c.Classify("etl", "app-db", e);
  EXPECT_EQ(r.risk, Risk::kHigh);
  ASSERT_EQ(r.reasons.size(), 2u);
  EXPECT_NE(r.reasons[1].find("users"), std::string::npos);
  // t999 is an app-db rule (odd index); t998 is for "other" and must not apply here.
  e.tables = {Change("t998", 0, 1, 0)};
  EXPECT_EQ(c.Classify("etl", "app-db", e).risk, Risk::kLow);
  e.tables = {Change("t999", 0, 1, 0)};
  EXPECT_EQ(c.Classify("etl", "app-db", e).risk, Risk::kHigh);
  EXPECT_EQ(c.Classify("someone-else", "app-db", e).risk, Risk::kLow);
}

}  // namespace
}  // namespace airlock

namespace airlock {
namespace {

// ---- MCP tool calls -----------------------------------------------------------------------

// One server "mail" with the given tool rules (from line 9) and what follows them.
std::shared_ptr<const Policy> LoadMcp(const std::string& tools, const std::string& more = "") {
  std::string text =
      "version: 1\n"                                                // 1
      "targets:\n"                                                  // 2
      "  repo: {kind: shell, workspace: /w, max_low_deletes: 3}\n"  // 3
      "mcp_servers:\n"                                              // 4
      "  mail:\n"                                                   // 5
      "    command: [mailer]\n"                                     // 6
      "    sandbox: repo\n"                                         // 7
      "    tools:\n" +                                              // 8
      tools +                                                       // 9+
      more;
  auto r = LoadPolicyText(text, "/srv/airlock.yaml");
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : nullptr;
}

Classification Call(const std::shared_ptr<const Policy>& p, const std::string& tool,
                    const std::string& arguments, const std::string& annotations = "null") {
  return ClassifyMcpCall(*p->FindMcpServer("mail"), tool, Json::parse(arguments),
                         Json::parse(annotations), "airlock.yaml");
}

// Lines 9 and 10 of the policy LoadMcp makes.
const std::string kSendRules =
    "      - {tool: send_email, risk: low}\n"
    "      - {tool: send_email, args: {\"/to\": {count_gt: 1}}, risk: high, reason: batch send}\n";

TEST(ClassifyMcp, CountGt) {
  auto p = LoadMcp(kSendRules);
  ASSERT_NE(p, nullptr);
  Classification r = Call(p, "send_email", R"({"to": ["a@x"], "subject": "hi"})");
  EXPECT_EQ(r.risk, Risk::kLow);
  EXPECT_EQ(r.reasons, Reasons{"rule at airlock.yaml:9 \u2192 low"});
  r = Call(p, "send_email", R"({"to": ["a@x", "b@x"]})");
  EXPECT_EQ(r.risk, Risk::kHigh);
  EXPECT_EQ(r.reasons, (Reasons{"rule at airlock.yaml:9 \u2192 low",
                                "batch send (rule at airlock.yaml:10 \u2192 high)"}));
  // A string is one recipient; an object counts its members; null and missing count 0.
  EXPECT_EQ(Call(p, "send_email", R"({"to": "a@x, b@x"})").risk, Risk::kLow);
  EXPECT_EQ(Call(p, "send_email", R"({"to": {"a": 1, "b": 2}})").risk, Risk::kHigh);
  EXPECT_EQ(Call(p, "send_email", R"({"to": {"a": 1}})").risk, Risk::kLow);
  EXPECT_EQ(Call(p, "send_email", R"({"to": null})").risk, Risk::kLow);
  EXPECT_EQ(Call(p, "send_email", R"({})").risk, Risk::kLow);
  EXPECT_EQ(Call(p, "send_email", R"([1, 2, 3])").risk, Risk::kLow);
  EXPECT_EQ(Call(p, "send_email", "null").risk, Risk::kLow);
  // A huge list is counted, not walked.
  Json many = {{"to", Json::array()}};
  for (int i = 0; i < 100000; ++i) many["to"].push_back("r" + std::to_string(i) + "@x");
  EXPECT_EQ(ClassifyMcpCall(*p->FindMcpServer("mail"), "send_email", many, nullptr, "a").risk,
            Risk::kHigh);
}

TEST(ClassifyMcp, CountGtOnWholeArgumentsAndMissingValue) {
  auto p = LoadMcp(
      "      - {tool: t, risk: read}\n"
      "      - {tool: t, args: {\"\": {count_gt: 2}}, risk: high}\n"
      "      - {tool: t, args: {\"/none\": {count_gt: 0}}, risk: critical}\n");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(Call(p, "t", R"({"a": 1, "b": 2})").risk, Risk::kRead);
  EXPECT_EQ(Call(p, "t", R"({"a": 1, "b": 2, "c": 3})").risk, Risk::kHigh);
  EXPECT_EQ(Call(p, "t", R"({"none": [1]})").risk, Risk::kCritical);
}

TEST(ClassifyMcp, Matches) {
  auto p = LoadMcp(
      "      - {tool: query, risk: low}\n"  // 9
      "      - {tool: query, args: {\"/sql\": {matches: \"^[[:space:]]*(DROP|DELETE)\"}}, "
      "risk: critical, reason: destructive SQL}\n"                                       // 10
      "      - {tool: query, args: {\"/note\": {matches: \"secret\"}}, risk: high}\n");  // 11
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(Call(p, "query", R"({"sql": "SELECT 1"})").risk, Risk::kLow);
  Classification r = Call(p, "query", R"({"sql": "  DROP TABLE users"})");
  EXPECT_EQ(r.risk, Risk::kCritical);
  EXPECT_EQ(r.reasons.back(), "destructive SQL (rule at airlock.yaml:10 \u2192 critical)");
  EXPECT_EQ(Call(p, "query", R"({"sql": "select 1; DROP TABLE users"})").risk, Risk::kLow);
  // A non-string never matches.
  EXPECT_EQ(Call(p, "query", R"({"sql": ["DROP TABLE users"]})").risk, Risk::kLow);
  EXPECT_EQ(Call(p, "query", R"({"sql": 5})").risk, Risk::kLow);
  // A NUL byte does not hide what follows it.
  EXPECT_EQ(Call(p, "query", R"({"note": "fine\u0000secret"})").risk, Risk::kHigh);
  // Too long to search: the rule applies, at least at high (fail closed).
  Json args = {{"sql", "SELECT " + std::string(20000, 'x')}};
  r = ClassifyMcpCall(*p->FindMcpServer("mail"), "query", args, nullptr, "airlock.yaml");
  EXPECT_EQ(r.risk, Risk::kCritical);
  args = {{"note", std::string(20000, 'x')}};
  r = ClassifyMcpCall(*p->FindMcpServer("mail"), "query", args, nullptr, "airlock.yaml");
  EXPECT_EQ(r.risk, Risk::kHigh);
  ASSERT_EQ(r.reasons.size(), 2u);
  EXPECT_NE(r.reasons[1].find("rule at airlock.yaml:11 \u2192 high"), std::string::npos)
      << r.reasons[1];
  EXPECT_NE(r.reasons[1].find("\"/note\" (20,000 bytes) is too long"), std::string::npos);
  EXPECT_NE(r.reasons[1].find("fail closed"), std::string::npos);
  // Just under the limit is searched.
  args = {{"note", std::string(16 * 1024, 'x')}};
  EXPECT_EQ(ClassifyMcpCall(*p->FindMcpServer("mail"), "query", args, nullptr, "a").risk,
            Risk::kLow);
}

TEST(ClassifyMcp, EqualsAndGt) {
  auto p = LoadMcp(
      "      - {tool: pay, risk: low}\n"
      "      - {tool: pay, args: {\"/amount\": {equals: 100}}, risk: high, reason: hundred}\n"
      "      - {tool: pay, args: {\"/currency\": {equals: \"USD\"}, \"/amount\": {gt: 1000}}, "
      "risk: critical, reason: big dollars}\n"
      "      - {tool: pay, args: {\"/meta\": {equals: {tags: [a, 1], ok: true}}}, risk: high, "
      "reason: tagged}\n"
      "      - {tool: pay, args: {\"/x\": {equals: null}}, risk: high, reason: null x}\n");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(Call(p, "pay", R"({"amount": 5})").risk, Risk::kLow);
  EXPECT_EQ(Call(p, "pay", R"({"amount": 100})").risk, Risk::kHigh);
  EXPECT_EQ(Call(p, "pay", R"({"amount": 100.0})").risk, Risk::kHigh);  // 1 equals 1.0
  EXPECT_EQ(Call(p, "pay", R"({"amount": "100"})").risk, Risk::kLow);   // a string is not
  EXPECT_EQ(Call(p, "pay", R"({"amount": 1000.5, "currency": "USD"})").risk, Risk::kCritical);
  EXPECT_EQ(Call(p, "pay", R"({"amount": 1000, "currency": "USD"})").risk, Risk::kLow);
  EXPECT_EQ(Call(p, "pay", R"({"amount": 5000, "currency": "EUR"})").risk, Risk::kLow);
  EXPECT_EQ(Call(p, "pay", R"({"amount": "5000", "currency": "USD"})").risk, Risk::kLow);
  EXPECT_EQ(Call(p, "pay", R"({"meta": {"ok": true, "tags": ["a", 1.0]}})").risk, Risk::kHigh);
  EXPECT_EQ(Call(p, "pay", R"({"meta": {"ok": true, "tags": ["a", 1], "more": 1}})").risk,
            Risk::kLow);
  EXPECT_EQ(Call(p, "pay", R"({"x": null})").risk, Risk::kHigh);
  EXPECT_EQ(Call(p, "pay", R"({})").risk, Risk::kLow);  // missing is not null
}

TEST(ClassifyMcp, JsonPointers) {
  auto p = LoadMcp(
      "      - {tool: t, risk: read}\n"
      "      - {tool: t, args: {\"/a/0/b\": {equals: 1}}, risk: low, reason: nested}\n"
      "      - {tool: t, args: {\"/c~1d\": {equals: 1}}, risk: low, reason: slash}\n"
      "      - {tool: t, args: {\"/e~0f\": {equals: 1}}, risk: low, reason: tilde}\n"
      "      - {tool: t, args: {\"/list/1\": {equals: 1}}, risk: low, reason: index}\n"
      "      - {tool: t, args: {\"/\": {equals: 1}}, risk: low, reason: empty name}\n");
  ASSERT_NE(p, nullptr);
  auto reasons = [&](const std::string& args) {
    Classification c = Call(p, "t", args);
    std::string out;
    for (size_t i = 1; i < c.reasons.size(); ++i)
      out += c.reasons[i].substr(0, c.reasons[i].find(' ')) + ";";
    return out;
  };
  EXPECT_EQ(reasons(R"({"a": [{"b": 1}]})"), "nested;");
  EXPECT_EQ(reasons(R"({"a": {"0": {"b": 1}}})"), "nested;");  // "0" names a member too
  EXPECT_EQ(reasons(R"({"c/d": 1, "e~f": 1, "": 1})"), "slash;tilde;empty;");
  EXPECT_EQ(reasons(R"({"list": [0, 1]})"), "index;");
  EXPECT_EQ(reasons(R"({"list": [0]})"), "");
  EXPECT_EQ(reasons(R"({"list": {"01": 1}})"), "");  // "1" names member "1", not "01"
  EXPECT_EQ(reasons(R"({"a": "string"})"), "");
}

TEST(ClassifyMcp, PointerResolver) {
  using policy_internal::ResolveJsonPointer;
  Json doc = Json::parse(R"({"a": [10, 20, {"b~/": true}], "": 5, "x": {"": 7}})");
  EXPECT_EQ(ResolveJsonPointer(doc, ""), &doc);
  ASSERT_NE(ResolveJsonPointer(doc, "/a/1"), nullptr);
  EXPECT_EQ(*ResolveJsonPointer(doc, "/a/1"), 20);
  EXPECT_EQ(*ResolveJsonPointer(doc, "/a/2/b~0~1"), true);
  EXPECT_EQ(*ResolveJsonPointer(doc, "/"), 5);
  EXPECT_EQ(*ResolveJsonPointer(doc, "/x/"), 7);
  for (const char* missing :
       {"/a/01", "/a/3", "/a/-", "/a/+1", "/a/1e0", "/a/ 1", "/a/", "/a/99999999999999999999999",
        "/a/1/x", "/nope", "a", "/a/2/b~2", "/a/2/b~"}) {
    EXPECT_EQ(ResolveJsonPointer(doc, missing), nullptr) << missing;
  }
  EXPECT_EQ(ResolveJsonPointer(Json(nullptr), "/a"), nullptr);
  EXPECT_EQ(ResolveJsonPointer(Json("s"), "/0"), nullptr);
  // Deep documents resolve without recursion.
  Json deep = Json::array();
  std::string pointer;
  for (int i = 0; i < 1000; ++i) {
    deep = Json::array({std::move(deep)});
    pointer += "/0";
  }
  EXPECT_NE(ResolveJsonPointer(deep, pointer), nullptr);
  EXPECT_EQ(ResolveJsonPointer(deep, pointer + "/0"), nullptr);
}

TEST(ClassifyMcp, GlobsAndNoRule) {
  auto p = LoadMcp(
      "      - {tool: \"read_*\", risk: read}\n"
      "      - {tool: \"write_[a-z]*\", risk: low}\n"
      "      - {tool: \"write_secret*\", risk: high, reason: secrets}\n"
      "      - {tool: send, args: {\"/to\": {count_gt: 1}}, risk: high}\n");
  ASSERT_NE(p, nullptr);
  Classification r = Call(p, "read_file", "{}");
  EXPECT_EQ(r.risk, Risk::kRead);
  EXPECT_EQ(r.reasons, Reasons{"rule at airlock.yaml:9 \u2192 read"});
  EXPECT_EQ(Call(p, "write_file", "{}").risk, Risk::kLow);
  r = Call(p, "write_secrets", "{}");
  EXPECT_EQ(r.risk, Risk::kHigh);
  EXPECT_EQ(r.reasons.size(), 2u);
  r = Call(p, "delete_everything", R"({"path": "/"})");
  EXPECT_EQ(r.risk, Risk::kHigh);
  EXPECT_EQ(r.reasons, Reasons{"tool 'delete_everything' on server 'mail' has no rule: high "
                               "(fail closed)"});
  EXPECT_EQ(Call(p, "read", "{}").risk, Risk::kHigh);      // "read_*" needs the underscore
  EXPECT_EQ(Call(p, "read_a/b", "{}").risk, Risk::kHigh);  // '*' stops at '/'
  EXPECT_EQ(Call(p, "", "{}").risk, Risk::kHigh);
  // A rule names the tool but its arguments do not hold: still no matching rule.
  r = Call(p, "send", R"({"to": ["a"]})");
  EXPECT_EQ(r.risk, Risk::kHigh);
  EXPECT_EQ(r.reasons, Reasons{"no rule for tool 'send' on server 'mail' matches these "
                               "arguments: high (fail closed)"});
}

TEST(ClassifyMcp, RulesRaiseNeverLower) {
  auto p = LoadMcp(
      "      - {tool: \"*\", risk: high, reason: everything}\n"
      "      - {tool: ls, risk: read}\n");
  ASSERT_NE(p, nullptr);
  Classification r = Call(p, "ls", "{}");
  EXPECT_EQ(r.risk, Risk::kHigh);
  EXPECT_EQ(r.reasons, (Reasons{"everything (rule at airlock.yaml:9 \u2192 high)",
                                "rule at airlock.yaml:10 \u2192 read"}));
}

TEST(ClassifyMcp, Annotations) {
  const std::string rules = "      - {tool: ruled, risk: high}\n";
  auto trusted = LoadMcp(rules, "    trust_annotations: true\n");
  auto untrusted = LoadMcp(rules);
  ASSERT_NE(trusted, nullptr);
  ASSERT_NE(untrusted, nullptr);
  const std::string ro = R"({"readOnlyHint": true})";
  Classification r = Call(trusted, "list", "{}", ro);
  EXPECT_EQ(r.risk, Risk::kRead);
  ASSERT_EQ(r.reasons.size(), 1u);
  EXPECT_NE(r.reasons[0].find("the upstream says read-only (readOnlyHint), trusted by "
                              "trust_annotations"),
            std::string::npos)
      << r.reasons[0];
  EXPECT_EQ(Call(trusted, "edit", "{}", R"({"destructiveHint": false})").risk, Risk::kLow);
  // destructiveHint: true never lowers, not even with readOnlyHint.
  r = Call(trusted, "rm", "{}", R"({"readOnlyHint": true, "destructiveHint": true})");
  EXPECT_EQ(r.risk, Risk::kHigh);
  EXPECT_NE(r.reasons[0].find("destructiveHint"), std::string::npos);
  EXPECT_EQ(Call(trusted, "rm", "{}", R"({"destructiveHint": true})").risk, Risk::kHigh);
  // Only real booleans in an object count.
  EXPECT_EQ(Call(trusted, "list", "{}", R"({"readOnlyHint": "true"})").risk, Risk::kHigh);
  EXPECT_EQ(Call(trusted, "list", "{}", R"([true])").risk, Risk::kHigh);
  EXPECT_EQ(Call(trusted, "list", "{}", "null").risk, Risk::kHigh);
  // Untrusted: hints are ignored.
  EXPECT_EQ(Call(untrusted, "list", "{}", ro).risk, Risk::kHigh);
  EXPECT_EQ(Call(untrusted, "edit", "{}", R"({"destructiveHint": false})").risk, Risk::kHigh);
  // A rule wins over the hints.
  EXPECT_EQ(Call(trusted, "ruled", "{}", ro).risk, Risk::kHigh);
}

TEST(ClassifyMcp, ClassifierHook) {
  auto p = LoadMcp(kSendRules,
                   "rules:\n  - {match: {target: mail, kind: mcp}, risk: low}\n"
                   "  - {match: {target: mail, agent: bot}, risk: critical}\n"
                   "agents:\n  - {name: bot, token_sha256: \"" +
                       kTok + "\", scopes: [mail]}\n");
  ASSERT_NE(p, nullptr);
  Classifier c(p);
  Effect e;
  e.kind = "mcp";
  e.extra = {{"server", "mail"}, {"tool", "send_email"}, {"arguments", {{"to", {"a", "b"}}}}};
  ASSERT_TRUE(e.IsRead());  // no tables or files: the read default must not leak
  Classification r = c.Classify("etl", "mail", e);
  EXPECT_EQ(r.risk, Risk::kHigh);
  EXPECT_EQ(r.reasons, (Reasons{"rule at airlock.yaml:9 \u2192 low",
                                "batch send (rule at airlock.yaml:10 \u2192 high)",
                                "rule at airlock.yaml:12 \u2192 low"}));
  EXPECT_EQ(c.Classify("bot", "mail", e).risk, Risk::kCritical);
  // Missing tool, arguments and annotations.
  e.extra = Json::object();
  r = c.Classify("etl", "mail", e);
  EXPECT_EQ(r.risk, Risk::kHigh);
  EXPECT_EQ(r.reasons[0], "tool '' on server 'mail' has no rule: high (fail closed)");
  e.extra = {{"tool", "send_email"}};
  EXPECT_EQ(c.Classify("etl", "mail", e).risk, Risk::kLow);
  e.extra = nullptr;
  EXPECT_EQ(c.Classify("etl", "mail", e).risk, Risk::kHigh);
  // Not a server of the policy.
  e.extra = {{"tool", "send_email"}};
  r = c.Classify("etl", "repo", e);
  EXPECT_EQ(r.risk, Risk::kHigh);
  EXPECT_EQ(r.reasons[0], "'repo' is not an MCP server of the policy: high (fail closed)");
  EXPECT_EQ(Classifier(nullptr).Classify("etl", "mail", e).risk, Risk::kHigh);
}

// The upstream's file effect in its sandbox raises the tool rule's risk like `airlock exec`.
TEST(ClassifyMcp, FileEffectInTheSandbox) {
  auto p = LoadMcp(
      "      - {tool: write_file, risk: read}\n"
      "rules:\n  - {match: {kind: mcp, path: \"secrets/**\"}, risk: critical}\n");
  ASSERT_NE(p, nullptr);
  Classifier c(p);
  Effect e;
  e.kind = "mcp";
  e.extra = {{"tool", "write_file"}, {"network_attempt", false}};
  EXPECT_EQ(c.Classify("bot", "mail", e).risk, Risk::kRead);
  FileChange f;
  f.path = "notes.txt";
  e.files = {f};
  e.files_changed = 1;
  e.extra["added"] = 1;
  Classification r = c.Classify("bot", "mail", e);
  EXPECT_EQ(r.risk, Risk::kLow);
  EXPECT_EQ(r.reasons.back(),
            "changes 1 path inside the workspace (1 added, 0 changed, 0 deleted) is low");
  e.extra["deleted"] = 4;  // more than the sandbox target's max_low_deletes: 3
  EXPECT_EQ(c.Classify("bot", "mail", e).risk, Risk::kHigh);
  e.files[0].path = "secrets/key";
  EXPECT_EQ(c.Classify("bot", "mail", e).risk, Risk::kCritical);
}

TEST(ClassifyMcp, Scopes) {
  AgentSpec a;
  a.scopes = {"db", "fs", "mail/read_*", "mail/list"};
  EXPECT_TRUE(AgentSeesMcpServer(a, "fs"));
  EXPECT_TRUE(AgentSeesMcpServer(a, "mail"));
  EXPECT_FALSE(AgentSeesMcpServer(a, "other"));
  EXPECT_FALSE(AgentSeesMcpServer(a, "mai"));
  EXPECT_FALSE(AgentSeesMcpServer(a, "f"));
  EXPECT_FALSE(AgentSeesMcpServer(a, ""));
  EXPECT_TRUE(AgentMayCallTool(a, "fs", "anything"));
  EXPECT_TRUE(AgentMayCallTool(a, "mail", "read_inbox"));
  EXPECT_TRUE(AgentMayCallTool(a, "mail", "list"));
  EXPECT_FALSE(AgentMayCallTool(a, "mail", "send"));
  EXPECT_FALSE(AgentMayCallTool(a, "mail", "listing"));
  EXPECT_FALSE(AgentMayCallTool(a, "mail", "read_x/y"));
  EXPECT_FALSE(AgentMayCallTool(a, "other", "read_inbox"));
  EXPECT_FALSE(AgentMayCallTool(a, "mai", "l/read_x"));
  AgentSpec none;
  EXPECT_FALSE(AgentSeesMcpServer(none, "fs"));
  EXPECT_FALSE(AgentMayCallTool(none, "fs", "x"));
}

TEST(ClassifyMcp, RegexProblems) {
  using policy_internal::RegexProblem;
  EXPECT_EQ(RegexProblem("^[[:alpha:]]+@(example|test)\\.com$"), "");
  EXPECT_EQ(RegexProblem("a{255}"), "");
  EXPECT_EQ(RegexProblem("(x?){0,255}"), "");
  EXPECT_EQ(RegexProblem("[]a]|[^]b]|[[:digit:]]x"), "");
  EXPECT_NE(RegexProblem("a{256}"), "");
  EXPECT_NE(RegexProblem("(((x?){0,9}){0,9}){0,9}"), "");
  EXPECT_NE(RegexProblem("(a)\\1"), "");
  EXPECT_NE(RegexProblem("[abc"), "");
  EXPECT_NE(RegexProblem(std::string(1025, 'a')), "");
}

// ---- HTTP requests ---------------------------------------------------------------------------

Effect HttpRequest(const std::string& method, const std::string& path, Json body = nullptr) {
  Effect e;
  e.kind = "http";
  e.extra = {{"method", method},
             {"url", "https://api.example.com" + path},
             {"path", path},
             {"body", std::move(body)}};
  return e;
}

std::shared_ptr<const Policy> LoadHttp(const std::string& rules) {
  return Load("rules:\n"  // 8
              + rules);
}

TEST(ClassifyHttp, DefaultsReadAndLow) {
  Classifier c(Load(""));
  auto get = c.Classify("bot", "api", HttpRequest("GET", "/v1/items"));
  EXPECT_EQ(get.risk, Risk::kRead);
  EXPECT_NE(get.reasons.at(0).find("GET https://api.example.com/v1/items is a read"),
            std::string::npos);
  EXPECT_EQ(c.Classify("bot", "api", HttpRequest("HEAD", "/")).risk, Risk::kRead);
  auto post = c.Classify("bot", "api", HttpRequest("POST", "/v1/messages", {{"a", 1}}));
  EXPECT_EQ(post.risk, Risk::kLow);
  EXPECT_NE(post.reasons.at(0).find("cannot undo"), std::string::npos);
  EXPECT_EQ(c.Classify("bot", "api", HttpRequest("DELETE", "/v1/x")).risk, Risk::kLow);
  EXPECT_EQ(c.Classify("bot", "api", HttpRequest("", "/v1/x")).risk, Risk::kHigh);
}

TEST(ClassifyHttp, RulesOnMethodPathAndBody) {
  Classifier c(LoadHttp(
      "  - {match: {method: POST, body: {\"/recipients\": {count_gt: 1}}}, risk: high, reason: "
      "batch}\n"
      "  - {match: {kind: http, body: {\"/amount\": {gt: 1000}}}, risk: critical}\n"
      "  - {match: {path: \"/v1/admin/**\"}, risk: high, reason: admin}\n"
      "  - {match: {path: \"v1/**\"}, risk: critical, reason: shell paths never match http}\n"
      "  - {match: {method: DELETE, path: /v1/items/*}, risk: high, reason: deletes}\n"
      "  - {match: {body: {\"/note\": {matches: \"^(a|b)+$\"}}}, risk: low, reason: note}\n"));
  auto one = c.Classify("bot", "api", HttpRequest("POST", "/v1/m", {{"recipients", {"a"}}}));
  EXPECT_EQ(one.risk, Risk::kLow);
  auto two = c.Classify("bot", "api", HttpRequest("POST", "/v1/m", {{"recipients", {"a", "b"}}}));
  EXPECT_EQ(two.risk, Risk::kHigh);
  EXPECT_NE(two.reasons.back().find("batch"), std::string::npos);
  // The same body on a PUT: the rule names POST only.
  EXPECT_EQ(
      c.Classify("bot", "api", HttpRequest("PUT", "/v1/m", {{"recipients", {"a", "b"}}})).risk,
      Risk::kLow);
  EXPECT_EQ(c.Classify("bot", "api", HttpRequest("POST", "/v1/pay", {{"amount", 5000}})).risk,
            Risk::kCritical);
  EXPECT_EQ(c.Classify("bot", "api", HttpRequest("POST", "/v1/pay", {{"amount", 10}})).risk,
            Risk::kLow);
  // A path rule applies to reads too, and the query is not part of the path.
  EXPECT_EQ(c.Classify("bot", "api", HttpRequest("GET", "/v1/admin/users?x=1")).risk, Risk::kHigh);
  EXPECT_EQ(c.Classify("bot", "api", HttpRequest("GET", "/v1/users")).risk, Risk::kRead);
  EXPECT_EQ(c.Classify("bot", "api", HttpRequest("DELETE", "/v1/items/3")).risk, Risk::kHigh);
  EXPECT_EQ(c.Classify("bot", "api", HttpRequest("DELETE", "/v1/items/3/x")).risk, Risk::kLow);
  // No body: the body rules do not apply (count_gt on nothing is 0).
  EXPECT_EQ(c.Classify("bot", "api", HttpRequest("POST", "/v1/m")).risk, Risk::kLow);
  // A string too long for its pattern cannot be decided: the rule applies at high.
  auto undecided =
      c.Classify("bot", "api", HttpRequest("POST", "/v1/m", {{"note", std::string(20000, 'a')}}));
  EXPECT_EQ(undecided.risk, Risk::kHigh);
  EXPECT_NE(undecided.reasons.back().find("fail closed"), std::string::npos);
  // Body and method rules never match other kinds.
  Effect sql = Sql();
  sql.extra = {{"body", {{"amount", 5000}}}, {"method", "POST"}};
  EXPECT_EQ(c.Classify("bot", "app-db", sql).risk, Risk::kRead);
}

}  // namespace
}  // namespace airlock
