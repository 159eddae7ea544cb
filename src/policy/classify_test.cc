// Classifier tests: each default of DESIGN.md's sql row, rules that raise (never lower) the
// risk, the reason strings people read, and the speed budget.
#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

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
  Classifier c(Load(""));
  Effect e;
  e.kind = "mail";
  Classification r = c.Classify("bot", "app-db", e);
  EXPECT_EQ(r.risk, Risk::kRead);
  e.extra = {{"recipients", 3}};
  r = c.Classify("bot", "app-db", e);
  EXPECT_EQ(r.risk, Risk::kHigh);
  EXPECT_EQ(r.reasons, Reasons{"no default for kind mail: high (fail closed)"});
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
