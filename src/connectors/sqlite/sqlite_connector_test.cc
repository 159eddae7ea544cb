#include "connectors/sqlite/sqlite_connector.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "connectors/sqlite/authorizer.h"
#include "connectors/sqlite/db.h"
#include "connectors/sqlite/observe.h"
#include "connectors/sqlite/undo.h"
#include "core/hash.h"

namespace airlock {
namespace {

using sqlite::DbHandle;

constexpr const char* kFixture = R"sql(
CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE,
                   status TEXT, score REAL, avatar BLOB);
CREATE INDEX users_status ON users(status);
CREATE INDEX users_name ON users(name);
CREATE TABLE audit(id INTEGER PRIMARY KEY, user_id INTEGER, what TEXT);
CREATE TRIGGER users_audit AFTER DELETE ON users
  BEGIN INSERT INTO audit(user_id, what) VALUES (old.id, 'delete'); END;
CREATE TABLE logs(msg TEXT, n INTEGER);
INSERT INTO logs VALUES ('a', 1), ('b', 2), ('c', 3);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 1204)
INSERT INTO users SELECT i, 'user' || i, 'u' || i || '@x',
  CASE WHEN i % 10 = 0 THEN 'inactive' ELSE 'active' END,
  CASE WHEN i % 7 = 0 THEN NULL ELSE i * 1.1 END,
  CASE WHEN i % 3 = 0 THEN CAST(x'00ff10' || randomblob(5) AS BLOB) ELSE NULL END FROM c;
)sql";

class SqliteConnectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/airlock_sqlite_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/prod.db";
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
    DbHandle db(raw);
    ASSERT_EQ(sqlite3_exec(db.get(), kFixture, nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db.get());
    ConnectorConfig config{"app-db", "sqlite", {{"path", path_}, {"max_preview_rows", 5}}};
    auto c = CreateSqliteConnector(config);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    conn_ = std::move(*c);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs SQL directly, outside airlock (a person changing the database by hand).
  void Direct(const std::string& sql) {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
    DbHandle db(raw);
    ASSERT_EQ(sqlite3_exec(db.get(), sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db.get());
  }

  // Every row of a query, values type-tagged, one line per row.
  std::string Dump(const std::string& sql) {
    sqlite3* raw = nullptr;
    EXPECT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
    DbHandle db(raw);
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db.get(), sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
      return "error: " + std::string(sqlite3_errmsg(db.get()));
    }
    sqlite::StmtHandle stmt(s);
    std::string out;
    while (sqlite3_step(s) == SQLITE_ROW) {
      for (int i = 0; i < sqlite3_column_count(s); ++i) {
        out += HexEncode(sqlite::CanonicalValue(sqlite::ColumnValue(s, i))) + ",";
      }
      out += "\n";
    }
    return out;
  }
  std::string Schema() {
    return Dump("SELECT type, name, tbl_name, sql FROM sqlite_schema "
                "WHERE tbl_name NOT LIKE 'airlock%' ORDER BY name");
  }
  std::string AllData() {
    // Hashed: a failing comparison stays readable.
    return Schema() + "users:" + Sha256Hex(Dump("SELECT * FROM users ORDER BY id")) +
           " audit:" + Sha256Hex(Dump("SELECT * FROM audit ORDER BY id")) +
           " logs:" + Sha256Hex(Dump("SELECT rowid, * FROM logs"));
  }
  std::string FileHash() {
    std::ifstream in(path_, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return Sha256Hex(ss.str());
  }

  DryRunResult MustDryRun(const std::string& sql) {
    auto r = conn_->DryRun({{"sql", sql}});
    EXPECT_TRUE(r.ok()) << sql << ": " << r.status().ToString();
    return r.ok() ? *r : DryRunResult{};
  }

  Result<ApplyOutcome> ApplyAs(const std::string& id, const std::string& sql,
                               const Effect& expected, UndoRecord* saved = nullptr) {
    return conn_->Apply(id, {{"sql", sql}}, expected, [saved](const UndoRecord& u) {
      if (saved) *saved = u;
      return Status::Ok();
    });
  }

  // DryRun, Apply with that effect, expect success; returns the undo record.
  UndoRecord DryRunAndApply(const std::string& id, const std::string& sql) {
    DryRunResult d = MustDryRun(sql);
    auto out = ApplyAs(id, sql, d.effect);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    if (!out.ok()) return {};
    EXPECT_TRUE(out->effect_matched);
    EXPECT_EQ(out->effect.effect_hash, d.effect.effect_hash);
    return out->undo;
  }

  const TableChange* FindTable(const Effect& e, const std::string& name) {
    for (const TableChange& t : e.tables) {
      if (t.table == name) return &t;
    }
    return nullptr;
  }

  std::string dir_, path_;
  std::unique_ptr<Connector> conn_;
};

TEST_F(SqliteConnectorTest, ConfigRequiresExistingAbsolutePath) {
  EXPECT_FALSE(CreateSqliteConnector({"t", "sqlite", {{"path", "rel.db"}}}).ok());
  EXPECT_FALSE(CreateSqliteConnector({"t", "sqlite", Json::object()}).ok());
  auto c = CreateSqliteConnector({"t", "sqlite", {{"path", dir_ + "/missing.db"}}});
  ASSERT_TRUE(c.ok());
  auto r = (*c)->DryRun({{"sql", "SELECT 1"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find(dir_ + "/missing.db"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/missing.db"));  // never created
}

TEST_F(SqliteConnectorTest, SelectIsReadAndReturnsRows) {
  DryRunResult d = MustDryRun("SELECT id, name, score, avatar, status FROM users WHERE id IN (3, 7) ORDER BY id");
  EXPECT_TRUE(d.effect.IsRead());
  ASSERT_TRUE(d.result.is_object());
  EXPECT_EQ(d.result["columns"], Json({"id", "name", "score", "avatar", "status"}));
  ASSERT_EQ(d.result["rows"].size(), 2u);
  EXPECT_EQ(d.result["rows"][0][0], 3);
  EXPECT_EQ(d.result["rows"][0][1], "user3");
  EXPECT_TRUE(d.result["rows"][0][3].contains("blob_hex"));
  EXPECT_TRUE(d.result["rows"][1][2].is_null());
  EXPECT_EQ(d.result["truncated"], false);
  DryRunResult big = MustDryRun("SELECT * FROM users");
  EXPECT_EQ(big.result["rows"].size(), 1000u);
  EXPECT_EQ(big.result["truncated"], true);
}

TEST_F(SqliteConnectorTest, MalformedSqlIsInvalidArgumentWithSqliteMessage) {
  auto r = conn_->DryRun({{"sql", "SELEC * FROM users"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("near \"SELEC\": syntax error"), std::string::npos);
  auto missing = conn_->DryRun({{"sql", "DELETE FROM nosuch"}});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("no such table: nosuch"), std::string::npos);
}

TEST_F(SqliteConnectorTest, TransactionControlAndReservedTableRefused) {
  std::string before = FileHash();
  for (const char* sql : {"BEGIN; DELETE FROM users; COMMIT;", "UPDATE users SET name='x'; COMMIT",
                          "END", "ROLLBACK"}) {
    auto r = conn_->DryRun({{"sql", sql}});
    ASSERT_FALSE(r.ok()) << sql;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("transaction"), std::string::npos) << r.status().message();
  }
  (void)DryRunAndApply("act_seed", "UPDATE users SET name='z' WHERE id=1");
  for (const char* sql : {"INSERT INTO airlock_applied VALUES('x','apply',1)",
                          "DELETE FROM airlock_applied", "DROP TABLE airlock_applied",
                          "CREATE INDEX i ON airlock_applied(kind)",
                          "CREATE TRIGGER t AFTER INSERT ON airlock_applied BEGIN "
                          "SELECT 1; END",
                          "ALTER TABLE airlock_applied ADD COLUMN x"}) {
    auto r = conn_->DryRun({{"sql", sql}});
    ASSERT_FALSE(r.ok()) << sql;
    EXPECT_NE(r.status().message().find("airlock_applied"), std::string::npos);
  }
  DryRunResult read = MustDryRun("SELECT action_id FROM airlock_applied");
  EXPECT_TRUE(read.effect.IsRead());
  EXPECT_EQ(read.result["rows"].size(), 1u);
  (void)before;
}

TEST_F(SqliteConnectorTest, OneRowUpdatePreviewAndNothingCommitted) {
  std::string before_hash = FileHash();
  std::string before = AllData();
  DryRunResult d = MustDryRun("UPDATE users SET status = 'banned' WHERE id = 5");
  ASSERT_EQ(d.effect.tables.size(), 1u);
  const TableChange& t = d.effect.tables[0];
  EXPECT_EQ(t.table, "users");
  EXPECT_EQ(t.updated, 1);
  EXPECT_EQ(t.inserted + t.deleted, 0);
  EXPECT_FALSE(t.all_rows_updated);
  EXPECT_TRUE(t.has_primary_key);
  ASSERT_EQ(d.effect.preview.size(), 1u);
  EXPECT_EQ(d.effect.preview[0].op, "update");
  EXPECT_EQ(d.effect.preview[0].before, Json({{"id", 5}, {"status", "active"}}));
  EXPECT_EQ(d.effect.preview[0].after, Json({{"id", 5}, {"status", "banned"}}));
  EXPECT_EQ(d.effect.preview_omitted, 0);
  EXPECT_EQ(d.effect.effect_hash.size(), 64u);
  EXPECT_EQ(AllData(), before);
  EXPECT_EQ(FileHash(), before_hash);
}

TEST_F(SqliteConnectorTest, DeleteAllAndUpdateAll) {
  std::string before = AllData();
  DryRunResult d = MustDryRun("DELETE FROM users");
  const TableChange* users = FindTable(d.effect, "users");
  ASSERT_NE(users, nullptr);
  EXPECT_EQ(users->deleted, 1204);
  EXPECT_TRUE(users->all_rows_deleted);
  EXPECT_EQ(users->rows_after, 0);
  const TableChange* audit = FindTable(d.effect, "audit");  // the trigger's inserts
  ASSERT_NE(audit, nullptr);
  EXPECT_EQ(audit->inserted, 1204);
  EXPECT_EQ(d.effect.preview.size(), 5u);
  EXPECT_EQ(d.effect.preview_omitted, 2 * 1204 - 5);
  EXPECT_EQ(AllData(), before);

  DryRunResult some = MustDryRun("DELETE FROM users WHERE id > 10");
  EXPECT_FALSE(FindTable(some.effect, "users")->all_rows_deleted);

  DryRunResult u = MustDryRun("UPDATE users SET status = 'x' || id WHERE 1=1");
  EXPECT_TRUE(FindTable(u.effect, "users")->all_rows_updated);
  EXPECT_EQ(FindTable(u.effect, "users")->updated, 1204);
  DryRunResult most = MustDryRun("UPDATE users SET status = 'x' WHERE id > 1");
  EXPECT_FALSE(FindTable(most.effect, "users")->all_rows_updated);
  EXPECT_EQ(AllData(), before);
}

TEST_F(SqliteConnectorTest, DropTableReportsRowsIndexesTriggers) {
  std::string before = AllData();
  DryRunResult d = MustDryRun("DROP TABLE users");
  ASSERT_EQ(d.effect.ddl.size(), 1u);
  const DdlOp& op = d.effect.ddl[0];
  EXPECT_EQ(op.op, "drop_table");
  EXPECT_EQ(op.object, "users");
  EXPECT_EQ(op.rows, 1204);
  EXPECT_EQ(op.indexes, std::vector<std::string>({"users_status", "users_name"}));
  EXPECT_EQ(op.triggers, std::vector<std::string>({"users_audit"}));
  EXPECT_FALSE(d.effect.IsRead());
  EXPECT_EQ(AllData(), before);
}

TEST_F(SqliteConnectorTest, MultiStatementInsertCreateAlter) {
  std::string before = AllData();
  DryRunResult d = MustDryRun(
      "-- set up\nCREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);\n"
      "INSERT INTO notes(body) VALUES ('hi'), ('there');\n"
      "INSERT INTO users(id, name) VALUES (5000, 'new');\n"
      "ALTER TABLE users ADD COLUMN age INTEGER;\n"
      "CREATE INDEX notes_body ON notes(body); /* trailing comment */ ");
  ASSERT_EQ(d.effect.ddl.size(), 3u);
  EXPECT_EQ(d.effect.ddl[0].op, "create_table");
  EXPECT_EQ(d.effect.ddl[0].object, "notes");
  EXPECT_EQ(d.effect.ddl[1].op, "alter_table");
  EXPECT_EQ(d.effect.ddl[1].object, "users");
  EXPECT_EQ(d.effect.ddl[1].rows, 1205);
  EXPECT_EQ(d.effect.ddl[2].op, "create_index");
  EXPECT_EQ(d.effect.ddl[2].table, "notes");
  EXPECT_EQ(FindTable(d.effect, "notes")->inserted, 2);
  EXPECT_EQ(FindTable(d.effect, "users")->inserted, 1);
  EXPECT_EQ(d.effect.extra["statements"], 5);
  EXPECT_EQ(AllData(), before);
}

TEST_F(SqliteConnectorTest, SameStateSameHashDifferentDataDifferentHash) {
  const std::string sql = "DELETE FROM users WHERE status = 'inactive'";
  DryRunResult a = MustDryRun(sql);
  DryRunResult b = MustDryRun(sql);
  EXPECT_EQ(a.effect.effect_hash, b.effect.effect_hash);
  DryRunResult c = MustDryRun("DELETE FROM users WHERE status = 'inactive' AND id < 1200");
  EXPECT_NE(a.effect.effect_hash, c.effect.effect_hash);
  // Same row, same "value" in four SQLite types: four different effects.
  std::set<std::string> hashes;
  for (const char* v : {"1", "1.0", "'1'", "x'31'"}) {
    hashes.insert(MustDryRun(std::string("UPDATE users SET avatar = ") + v + " WHERE id = 1")
                      .effect.effect_hash);
  }
  EXPECT_EQ(hashes.size(), 4u);
}

TEST_F(SqliteConnectorTest, ApplyMatchesAndEffectChangedAppliesNothing) {
  const std::string sql = "DELETE FROM users WHERE status = 'inactive'";
  DryRunResult d = MustDryRun(sql);
  EXPECT_EQ(FindTable(d.effect, "users")->deleted, 120);
  Direct("UPDATE users SET status = 'inactive' WHERE id = 1");
  std::string before = AllData();
  bool called = false;
  auto out = conn_->Apply("act_1", {{"sql", sql}}, d.effect, [&](const UndoRecord&) {
    called = true;
    return Status::Ok();
  });
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_FALSE(out->effect_matched);
  EXPECT_FALSE(called);
  EXPECT_EQ(FindTable(out->effect, "users")->deleted, 121);
  EXPECT_EQ(AllData(), before);
  EXPECT_FALSE(*conn_->IsApplied("act_1"));

  UndoRecord undo = DryRunAndApply("act_2", sql);
  EXPECT_EQ(undo.kind, "sqlite");
  EXPECT_TRUE(undo.reversible);
  EXPECT_EQ(Dump("SELECT count(*) FROM users WHERE status='inactive'"),
            Dump("SELECT 0"));
  EXPECT_TRUE(*conn_->IsApplied("act_2"));
  EXPECT_FALSE(*conn_->IsRolledBack("act_2"));
}

TEST_F(SqliteConnectorTest, ApplyRefusesSecondApplyOfSameAction) {
  const std::string sql = "UPDATE users SET name = 'q' WHERE id = 9";
  DryRunResult d = MustDryRun(sql);
  ASSERT_TRUE(ApplyAs("act_x", sql, d.effect).ok());
  auto again = ApplyAs("act_x", sql, d.effect);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(SqliteConnectorTest, BeforeCommitFailureCommitsNothing) {
  const std::string sql = "DELETE FROM users WHERE id < 100";
  DryRunResult d = MustDryRun(sql);
  std::string before = AllData();
  auto out = conn_->Apply("act_f", {{"sql", sql}}, d.effect,
                          [](const UndoRecord&) { return Status::IoError("store is down"); });
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("store is down"), std::string::npos);
  EXPECT_EQ(AllData(), before);
  EXPECT_FALSE(*conn_->IsApplied("act_f"));
}

TEST_F(SqliteConnectorTest, ApplyFailureReturnsSqliteMessage) {
  const std::string sql = "INSERT INTO users(id, name) VALUES (1, 'dup')";
  auto d = conn_->DryRun({{"sql", sql}});
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("UNIQUE constraint failed"), std::string::npos);
}

TEST_F(SqliteConnectorTest, RollbackOfDmlRestoresExactly) {
  std::string before = AllData();
  UndoRecord undo = DryRunAndApply(
      "act_dml", "UPDATE users SET score = score * 2, avatar = x'0102' WHERE id % 2 = 0; "
                 "DELETE FROM users WHERE id > 1100; INSERT INTO users(id, name) VALUES (9999, 'n');");
  EXPECT_NE(AllData(), before);
  Json report;
  Status st = conn_->Rollback("act_dml", undo, &report);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(AllData(), before);
  EXPECT_TRUE(*conn_->IsRolledBack("act_dml"));
  Status again = conn_->Rollback("act_dml", undo, &report);
  EXPECT_EQ(again.code(), StatusCode::kFailedPrecondition);
}

TEST_F(SqliteConnectorTest, RollbackOfDropTableRestoresRowsIndexesTriggers) {
  std::string before = AllData();
  UndoRecord undo = DryRunAndApply("act_drop", "DROP TABLE users");
  EXPECT_NE(Dump("SELECT count(*) FROM sqlite_schema WHERE name='users'"), Dump("SELECT 1"));
  Json report;
  Status st = conn_->Rollback("act_drop", undo, &report);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(AllData(), before);  // schema SQL of table, indexes, trigger + every value
  // The trigger works again.
  Direct("DELETE FROM users WHERE id = 1");
  EXPECT_EQ(Dump("SELECT what FROM audit WHERE user_id = 1"), Dump("SELECT 'delete'"));
}

TEST_F(SqliteConnectorTest, RollbackOfAlterTableAndRename) {
  std::string before = AllData();
  UndoRecord undo = DryRunAndApply(
      "act_alter", "ALTER TABLE users ADD COLUMN age INTEGER DEFAULT 7; "
                   "UPDATE users SET age = 3 WHERE id = 2; UPDATE audit SET what = 'x';"
                   "CREATE TABLE extra(a INTEGER PRIMARY KEY); INSERT INTO extra VALUES (1);");
  ASSERT_TRUE(conn_->Rollback("act_alter", undo, nullptr).ok());
  EXPECT_EQ(AllData(), before);
  EXPECT_EQ(Dump("SELECT name FROM sqlite_schema WHERE name='extra'"), "");

  UndoRecord rename = DryRunAndApply("act_rename", "ALTER TABLE users RENAME TO people");
  EXPECT_NE(AllData(), before);
  Status st = conn_->Rollback("act_rename", rename, nullptr);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(AllData(), before);
}

TEST_F(SqliteConnectorTest, RollbackConflictOnRowChangedSince) {
  UndoRecord undo = DryRunAndApply("act_u", "UPDATE users SET name = 'x' WHERE id = 5");
  Direct("UPDATE users SET name = 'changed by hand' WHERE id = 5");
  std::string before = AllData();
  Json report;
  Status st = conn_->Rollback("act_u", undo, &report);
  ASSERT_EQ(st.code(), StatusCode::kConflict) << st.ToString();
  EXPECT_NE(st.message().find("rollback would overwrite changes made since"), std::string::npos);
  ASSERT_EQ(report["conflicts"].size(), 1u);
  EXPECT_EQ(report["conflicts"][0]["table"], "users");
  EXPECT_EQ(report["conflicts"][0]["pk"], Json({{"id", 5}}));
  EXPECT_EQ(report["conflicts"][0]["conflict"], "data");
  EXPECT_EQ(AllData(), before);
  EXPECT_FALSE(*conn_->IsRolledBack("act_u"));
}

TEST_F(SqliteConnectorTest, RollbackIsAllOrNothingAcrossTables) {
  UndoRecord undo = DryRunAndApply(
      "act_two", "UPDATE audit SET what = 'a'; UPDATE users SET name = 'x' WHERE id = 5");
  Direct("INSERT INTO audit(id, what) VALUES (4242, 'new'); DELETE FROM users WHERE id = 5");
  std::string before = AllData();
  Json report;
  EXPECT_EQ(conn_->Rollback("act_two", undo, &report).code(), StatusCode::kConflict);
  EXPECT_EQ(AllData(), before);
}

TEST_F(SqliteConnectorTest, RollbackConflictWhenDroppedTableRecreated) {
  UndoRecord undo = DryRunAndApply("act_d", "DROP TABLE logs");
  Direct("CREATE TABLE logs(other TEXT)");
  std::string before = AllData();
  Json report;
  Status st = conn_->Rollback("act_d", undo, &report);
  ASSERT_EQ(st.code(), StatusCode::kConflict) << st.ToString();
  EXPECT_EQ(report["conflicts"][0]["object"], "logs");
  EXPECT_EQ(AllData(), before);
}

TEST_F(SqliteConnectorTest, RollbackConflictWhenTableReshaped) {
  UndoRecord undo = DryRunAndApply("act_s", "UPDATE audit SET what = 'q'; INSERT INTO audit VALUES (7, 1, 'z')");
  Direct("ALTER TABLE audit ADD COLUMN more TEXT");
  Json report;
  EXPECT_EQ(conn_->Rollback("act_s", undo, &report).code(), StatusCode::kConflict);
  EXPECT_EQ(report["conflicts"][0]["conflict"], "schema_changed");
}

TEST_F(SqliteConnectorTest, NoPrimaryKeyTableCountedAndIrreversible) {
  DryRunResult d = MustDryRun("DELETE FROM logs WHERE n >= 2; INSERT INTO logs VALUES ('d', 4)");
  const TableChange* logs = FindTable(d.effect, "logs");
  ASSERT_NE(logs, nullptr);
  EXPECT_FALSE(logs->has_primary_key);
  EXPECT_EQ(logs->deleted, 2);
  EXPECT_EQ(logs->inserted, 1);
  DryRunResult other = MustDryRun("DELETE FROM logs WHERE n >= 1");
  EXPECT_TRUE(FindTable(other.effect, "logs")->all_rows_deleted);
  EXPECT_NE(d.effect.effect_hash, other.effect.effect_hash);
  auto out = ApplyAs("act_np", "DELETE FROM logs WHERE n >= 2; INSERT INTO logs VALUES ('d', 4)",
                     d.effect);
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->effect_matched);
  EXPECT_FALSE(out->undo.reversible);
  EXPECT_FALSE(out->undo.note.empty());
}

TEST_F(SqliteConnectorTest, NotExecutableStatementsRecordedNotRun) {
  std::string before = FileHash();
  struct Case {
    std::string sql, op;
  };
  for (const Case& c : {Case{"ATTACH '" + dir_ + "/other.db' AS other", "attach"},
                        Case{"PRAGMA user_version = 5", "pragma_write"},
                        Case{"VACUUM", "vacuum"},
                        Case{"VACUUM INTO '" + dir_ + "/copy.db'", "vacuum_into"},
                        Case{"UPDATE users SET name='a' WHERE id=1; PRAGMA journal_mode=WAL; "
                             "DELETE FROM users",
                             "pragma_write"}}) {
    DryRunResult d = MustDryRun(c.sql);
    ASSERT_FALSE(d.effect.ddl.empty()) << c.sql;
    EXPECT_EQ(d.effect.ddl.back().op, c.op) << c.sql;
    EXPECT_TRUE(d.effect.extra.contains("not_executed")) << c.sql;
    auto out = ApplyAs("act_ne", c.sql, d.effect);
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(out.status().message().find("cannot be applied through airlock"), std::string::npos);
  }
  DryRunResult p = MustDryRun("PRAGMA user_version = 5");
  EXPECT_EQ(p.effect.ddl[0].detail, "user_version=5");
  DryRunResult mixed = MustDryRun("UPDATE users SET name='a' WHERE id=1; PRAGMA journal_mode=WAL; "
                                  "DELETE FROM users");
  EXPECT_EQ(FindTable(mixed.effect, "users")->updated, 1);
  EXPECT_EQ(FindTable(mixed.effect, "users")->deleted, 0);  // stopped at the pragma
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/other.db"));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/copy.db"));
  EXPECT_EQ(FileHash(), before);
  DryRunResult info = MustDryRun("PRAGMA table_info(users)");
  EXPECT_TRUE(info.effect.IsRead());
  EXPECT_EQ(info.result["rows"].size(), 6u);
}

TEST_F(SqliteConnectorTest, TempObjectsRecordedWithDetail) {
  DryRunResult d = MustDryRun("CREATE TEMP TABLE scratch(a); INSERT INTO scratch VALUES (1)");
  ASSERT_EQ(d.effect.ddl.size(), 1u);
  EXPECT_EQ(d.effect.ddl[0].op, "create_table");
  EXPECT_EQ(d.effect.ddl[0].detail, "temp");
}

TEST_F(SqliteConnectorTest, CorruptUndoRecordIsRefused) {
  (void)DryRunAndApply("act_c", "UPDATE users SET name='x' WHERE id=1");
  UndoRecord bad{"sqlite", "{\"v\":1,\"changeset_hex\":\"54zz\"}", true, ""};
  EXPECT_EQ(conn_->Rollback("act_c", bad, nullptr).code(), StatusCode::kCorruption);
  UndoRecord garbage{"sqlite", "\x01\x02", true, ""};
  EXPECT_EQ(conn_->Rollback("act_c", garbage, nullptr).code(), StatusCode::kCorruption);
}

}  // namespace
}  // namespace airlock

namespace airlock {
namespace {

TEST_F(SqliteConnectorTest, RunawayQueryIsStoppedAtTheTimeout) {
  ConnectorConfig config{"app-db", "sqlite", {{"path", path_}, {"timeout_ms", 200}}};
  auto c = CreateSqliteConnector(config);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const std::string before = AllData();
  auto r = (*c)->DryRun(
      {{"sql", "UPDATE users SET name = 'x' WHERE id = 1; "
               "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
               "SELECT count(*) FROM n"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("timeout"), std::string::npos) << r.status().message();
  EXPECT_EQ(AllData(), before);
  // The connection is usable afterwards.
  auto ok = (*c)->DryRun({{"sql", "SELECT count(*) FROM users"}});
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
}

}  // namespace
}  // namespace airlock

namespace airlock {
namespace {

// Found by fuzz/sql_fuzz.cc: SQLite stops reading at a NUL byte, and the statement loop
// never advanced past it.
TEST_F(SqliteConnectorTest, NulBytesAndHugeTextAreRefused) {
  auto r = conn_->DryRun({{"sql", std::string("DELETE FROM users\0\0\0", 20)}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("NUL"), std::string::npos);
  r = conn_->DryRun({{"sql", "SELECT 1 -- " + std::string(2 << 20, 'x')}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace airlock

namespace airlock {
namespace {

// The read fast path gives what DryRun gives for a read, and nothing for anything else.
TEST_F(SqliteConnectorTest, TryReadMatchesDryRunForReads) {
  const std::string sql = "SELECT id, name, avatar FROM users WHERE id IN (3, 7) ORDER BY id";
  std::optional<DryRunResult> fast = conn_->TryRead({{"sql", sql}});
  ASSERT_TRUE(fast.has_value());
  DryRunResult full = MustDryRun(sql);
  EXPECT_TRUE(fast->effect.IsRead());
  EXPECT_EQ(fast->effect.effect_hash, full.effect.effect_hash);
  EXPECT_EQ(fast->effect.extra, full.effect.extra);
  EXPECT_EQ(fast->result, full.result);
  // Several statements, read pragmas and CTEs are reads too.
  EXPECT_TRUE(conn_->TryRead({{"sql", "SELECT 1; PRAGMA table_info(users); "
                                      "WITH c(x) AS (SELECT 2) SELECT x FROM c"}}));
}

TEST_F(SqliteConnectorTest, TryReadDeclinesAnythingButAPlainRead) {
  const std::string before = Dump("SELECT * FROM users ORDER BY id");
  for (const char* sql : {
           "UPDATE users SET name = 'x' WHERE id = 1",
           "SELECT 1; DELETE FROM users",             // a write after a read
           "DELETE FROM logs",                         // a table without a primary key
           "CREATE TEMP TABLE t(x); INSERT INTO t VALUES (1)",
           "PRAGMA user_version = 7",                  // a pragma that sets
           "ATTACH DATABASE ':memory:' AS other",
           "VACUUM",
           "BEGIN",
           "SELEC * FROM users",                       // malformed: DryRun reports it
           "SELECT * FROM no_such_table",
           "INSERT INTO users(id, name) VALUES (5000, 'n') RETURNING id",
       }) {
    EXPECT_FALSE(conn_->TryRead({{"sql", sql}}).has_value()) << sql;
  }
  EXPECT_FALSE(conn_->TryRead({{"nosql", 1}}).has_value());
  EXPECT_EQ(Dump("SELECT * FROM users ORDER BY id"), before);
  EXPECT_EQ(Dump("PRAGMA user_version"), Dump("SELECT 0"));
}

TEST_F(SqliteConnectorTest, TryReadSeesAReplacedFileAndAMissingOne) {
  ASSERT_TRUE(conn_->TryRead({{"sql", "SELECT count(*) FROM users"}}));  // pools a reader
  // Replace the file (a new inode) with one holding a single user.
  const std::string fresh = dir_ + "/fresh.db";
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(fresh.c_str(), &raw), SQLITE_OK);
    DbHandle db(raw);
    ASSERT_EQ(sqlite3_exec(db.get(), "CREATE TABLE users(id INTEGER PRIMARY KEY); "
                                     "INSERT INTO users VALUES (42)",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
  }
  std::filesystem::rename(fresh, path_);
  std::optional<DryRunResult> r = conn_->TryRead({{"sql", "SELECT count(*) FROM users"}});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->result["rows"][0][0], 1);
  std::filesystem::remove(path_);
  EXPECT_FALSE(conn_->TryRead({{"sql", "SELECT 1"}}).has_value());  // DryRun says NotFound
}

// A pooled reader's transaction ends with each read (its BEGIN and ROLLBACK are prepared once
// and reused): the next read sees what was committed meanwhile, also after a declined write
// and after a failed statement.
TEST_F(SqliteConnectorTest, APooledReaderSeesWhatWasCommittedSince) {
  auto count = [&]() -> int64_t {
    std::optional<DryRunResult> r = conn_->TryRead({{"sql", "SELECT count(*) FROM users"}});
    EXPECT_TRUE(r.has_value());
    return r ? r->result["rows"][0][0].get<int64_t>() : -1;
  };
  const int64_t before = count();
  Direct("INSERT INTO users(id, name) VALUES (9001, 'new')");
  EXPECT_EQ(count(), before + 1);
  EXPECT_FALSE(conn_->TryRead({{"sql", "DELETE FROM users WHERE id = 9001"}}).has_value());
  Direct("INSERT INTO users(id, name) VALUES (9002, 'newer')");
  EXPECT_EQ(count(), before + 2);
  EXPECT_FALSE(conn_->TryRead({{"sql", "SELECT * FROM no_such_table"}}).has_value());
  Direct("DELETE FROM users WHERE id >= 9001");
  EXPECT_EQ(count(), before);
  // The reader's authorizer stays installed between reads: one that refused the caller's
  // transaction control still lets the reader's own BEGIN and ROLLBACK through next time.
  EXPECT_FALSE(conn_->TryRead({{"sql", "BEGIN; SELECT 1"}}).has_value());
  EXPECT_FALSE(conn_->TryRead({{"sql", "SELECT 1; COMMIT"}}).has_value());
  EXPECT_EQ(count(), before);
}

// A read sent again runs its kept statement: the same observation as a fresh prepare, and
// the schema's changes seen (SQLite prepares a kept statement again). Only a text that is one
// plain read that ran is kept.
TEST(ExecuteObserved, AReadSentAgainRunsItsKeptStatement) {
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(":memory:", &raw), SQLITE_OK);
  sqlite::DbHandle db(raw);
  ASSERT_EQ(sqlite3_exec(raw, "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2)", nullptr, nullptr,
                         nullptr),
            SQLITE_OK);
  sqlite::Authorizer installed(raw);
  sqlite::ReadStatementCache cache;
  auto read = [&](const std::string& sql, sqlite::ReadStatementCache* with) {
    sqlite::ObserveOptions options;
    options.read_probe = true;
    options.cache = with;
    Result<sqlite::Observation> obs = sqlite::ExecuteObserved(raw, sql, options, &installed);
    EXPECT_TRUE(obs.ok()) << obs.status().ToString();
    return obs.ok() ? std::move(*obs) : sqlite::Observation{};
  };
  const std::string sql = "SELECT * FROM t ORDER BY x";
  sqlite::Observation fresh = read(sql, nullptr);
  sqlite::Observation first = read(sql, &cache);
  EXPECT_EQ(cache.size(), 1u);
  sqlite::Observation again = read(sql, &cache);
  EXPECT_EQ(cache.size(), 1u);
  for (const sqlite::Observation* o : {&first, &again}) {
    EXPECT_FALSE(o->not_a_read);
    EXPECT_EQ(o->result, fresh.result);
    EXPECT_EQ(EffectToJson(o->effect), EffectToJson(fresh.effect));
  }
  ASSERT_EQ(sqlite3_exec(raw, "ALTER TABLE t ADD COLUMN y DEFAULT 7", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite::Observation altered = read(sql, &cache);
  EXPECT_EQ(altered.result["columns"], Json::array({"x", "y"})) << altered.result.dump();
  EXPECT_EQ(altered.result["rows"][0], Json::array({1, 7}));

  // Not kept: two statements, a write, an error.
  read("SELECT 1; SELECT 2", &cache);
  sqlite::ObserveOptions probe;
  probe.read_probe = true;
  probe.cache = &cache;
  Result<sqlite::Observation> write =
      sqlite::ExecuteObserved(raw, "DELETE FROM t", probe, &installed);
  EXPECT_TRUE(!write.ok() || write->not_a_read);
  Result<sqlite::Observation> error =
      sqlite::ExecuteObserved(raw, "SELECT * FROM nope", probe, &installed);
  EXPECT_TRUE(!error.ok() || error->not_a_read);
  EXPECT_EQ(cache.size(), 1u);
  // Nor a text over the bound (an agent's text may be up to 1 MiB).
  const std::string long_read =
      "SELECT '" + std::string(sqlite::ReadStatementCache::kMaxTextBytes, 'x') + "' AS long";
  EXPECT_FALSE(read(long_read, &cache).not_a_read);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.Find(long_read), nullptr);
  // The least recently used goes beyond the capacity.
  for (size_t i = 0; i < sqlite::ReadStatementCache::kCapacity + 3; ++i) {
    read("SELECT " + std::to_string(i), &cache);
  }
  EXPECT_EQ(cache.size(), sqlite::ReadStatementCache::kCapacity);
  EXPECT_EQ(cache.Find(sql), nullptr);
}

// Installing an authorizer expires every statement prepared on the connection, so SQLite
// parses them again at their next step: a connection that keeps statements (a pooled
// reader's BEGIN and ROLLBACK) keeps one authorizer installed and hands it to each run.
TEST(ExecuteObserved, AnInstalledAuthorizerLeavesPreparedStatementsPrepared) {
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(":memory:", &raw), SQLITE_OK);
  sqlite::DbHandle db(raw);
  ASSERT_EQ(
      sqlite3_exec(raw, "CREATE TABLE t(x); INSERT INTO t VALUES (1)", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_stmt* kept_raw = nullptr;
  ASSERT_EQ(sqlite3_prepare_v3(raw, "SELECT 1", -1, SQLITE_PREPARE_PERSISTENT, &kept_raw, nullptr),
            SQLITE_OK);
  sqlite::StmtHandle kept(kept_raw);
  auto reprepares_after_reads = [&](sqlite::Authorizer* installed) {
    sqlite3_stmt_status(kept.get(), SQLITE_STMTSTATUS_REPREPARE, 1);  // reset
    for (int i = 0; i < 3; ++i) {
      sqlite::ObserveOptions options;
      options.read_probe = true;
      Result<sqlite::Observation> obs =
          sqlite::ExecuteObserved(raw, "SELECT x FROM t", options, installed);
      EXPECT_TRUE(obs.ok() && !obs->not_a_read);
      EXPECT_EQ(sqlite3_step(kept.get()), SQLITE_ROW);
      sqlite3_reset(kept.get());
    }
    return sqlite3_stmt_status(kept.get(), SQLITE_STMTSTATUS_REPREPARE, 0);
  };
  EXPECT_EQ(reprepares_after_reads(nullptr), 3) << "one authorizer installed per run";
  {
    sqlite::Authorizer installed(raw);
    EXPECT_EQ(reprepares_after_reads(&installed), 1) << "only the installation itself";
    // Still policed: a write is no read, and transaction control is refused.
    sqlite::ObserveOptions options;
    options.read_probe = true;
    Result<sqlite::Observation> write =
        sqlite::ExecuteObserved(raw, "DELETE FROM t", options, &installed);
    EXPECT_TRUE(!write.ok() || write->not_a_read);
    Result<sqlite::Observation> begin = sqlite::ExecuteObserved(raw, "BEGIN", {}, &installed);
    EXPECT_FALSE(begin.ok());
  }
}

// A pooled reader keeps the statements of the reads it ran; a schema changed by another
// connection since is seen all the same.
TEST_F(SqliteConnectorTest, AReadSentAgainSeesTheSchemaChangedSince) {
  const Json read = {{"sql", "SELECT * FROM users WHERE id = 1"}};
  std::optional<DryRunResult> first = conn_->TryRead(read);
  std::optional<DryRunResult> second = conn_->TryRead(read);
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->result, second->result);
  EXPECT_EQ(first->effect.effect_hash, second->effect.effect_hash);
  Direct("ALTER TABLE users ADD COLUMN extra TEXT DEFAULT 'e'");
  std::optional<DryRunResult> third = conn_->TryRead(read);
  ASSERT_TRUE(third.has_value());
  const Json& columns = third->result["columns"];
  EXPECT_EQ(columns.size(), first->result["columns"].size() + 1) << columns.dump();
  EXPECT_EQ(columns.back(), "extra") << columns.dump();
  EXPECT_EQ(third->result["rows"][0].back(), "e") << third->result.dump();
}

// A kept statement stopped at the timeout is reset and runs whole the next time.
TEST_F(SqliteConnectorTest, AKeptReadStoppedAtTheTimeoutRunsAgain) {
  ConnectorConfig config{"app-db", "sqlite", {{"path", path_}, {"timeout_ms", 200}}};
  auto c = CreateSqliteConnector(config);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  Direct("CREATE TABLE cfg(n INTEGER); INSERT INTO cfg VALUES (10)");
  const Json read = {{"sql",
                      "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
                      "WHERE i < (SELECT n FROM cfg)) SELECT count(*) FROM c"}};
  auto count = [&]() -> int64_t {
    std::optional<DryRunResult> r = (*c)->TryRead(read);
    return r ? r->result["rows"][0][0].get<int64_t>() : -1;
  };
  EXPECT_EQ(count(), 10);
  EXPECT_EQ(count(), 10);  // the kept statement
  Direct("UPDATE cfg SET n = 4000000000");
  EXPECT_EQ(count(), -1) << "stopped at the timeout: the full path reports it";
  Direct("UPDATE cfg SET n = 25");
  EXPECT_EQ(count(), 25);
  EXPECT_EQ(count(), 25);
}

TEST_F(SqliteConnectorTest, TryReadsRunInParallelWithAWriter) {
  std::atomic<int> reads{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        auto r = conn_->TryRead({{"sql", "SELECT name FROM users WHERE id = 1"}});
        if (r && r->result["rows"].size() == 1) ++reads;
      }
    });
  }
  for (int i = 0; i < 20; ++i) {
    DryRunResult d = MustDryRun("UPDATE users SET score = " + std::to_string(i) + " WHERE id = 2");
    auto out = conn_->Apply("act-par-" + std::to_string(i), {{"sql", "UPDATE users SET score = " +
                                                                         std::to_string(i) +
                                                                         " WHERE id = 2"}},
                            d.effect, [](const UndoRecord&) { return Status::Ok(); });
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_TRUE(out->effect_matched);
  }
  for (auto& t : threads) t.join();
  // A reader that met the writer's lock past the busy timeout would decline (and the
  // caller would take the full path); with a 5 s timeout none does here.
  EXPECT_EQ(reads.load(), 200);
}

}  // namespace
}  // namespace airlock
