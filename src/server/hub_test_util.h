// Test fixture shared by the event hub and metrics tests: a real gateway on a real SQLite
// store and a real SQLite target in a temporary directory, and a store wrapper whose reads
// can be made to fail (STYLE.md: fault injection through an injectable layer).
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "core/hash.h"
#include "gateway/gateway.h"
#include "policy/policy.h"
#include "store/store.h"

namespace airlock::server::testing {

// Forwards to a real store; while `fail_reads` is set, every read (Read, ScanAudit,
// RecordedHead) fails as a disk error would. Writes go through.
class ReadFailingStore : public Store {
 public:
  explicit ReadFailingStore(std::unique_ptr<Store> real) : real_(std::move(real)) {}
  std::atomic<bool> fail_reads{false};
  std::atomic<int> failed_reads{0};

  Status Transact(const std::function<Status(StoreTxn&)>& fn) override {
    return real_->Transact(fn);
  }
  std::future<Status> TransactGrouped(std::function<Status(StoreTxn&)> fn) override {
    return real_->TransactGrouped(std::move(fn));
  }
  Status Read(const std::function<Status(StoreTxn&)>& fn) override {
    if (Failing()) return Status::IoError("injected: read failed");
    return real_->Read(fn);
  }
  Status ScanAudit(int64_t after, const std::string& id,
                   const std::function<bool(const AuditEvent&)>& fn) override {
    if (Failing()) return Status::IoError("injected: scan failed");
    return real_->ScanAudit(after, id, fn);
  }
  Result<AuditHead> RecordedHead() override {
    if (Failing()) return Status::IoError("injected: head unreadable");
    return real_->RecordedHead();
  }

 private:
  bool Failing() {
    if (!fail_reads.load()) return false;
    ++failed_reads;
    return true;
  }
  std::unique_ptr<Store> real_;
};

class GatewayFixture : public ::testing::Test {
 protected:
  // Agents bot and bot2 on the sqlite target db (a table users of 50 rows); approvers dba
  // and sec. `extra_yaml` is appended to the policy (limits, say).
  void SetUpPolicy(const std::string& extra_yaml = "") {
    dir_ = std::filesystem::temp_directory_path() / ("airlock-srv-" + RandomHex(6));
    std::filesystem::create_directories(dir_);
    Exec(
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, status TEXT);"
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 50) "
        "INSERT INTO users SELECT i, 'u' || i, 'active' FROM n;");
    std::string yaml =
        "version: 1\n"
        "store: ./state/airlock.db\n"
        "agents:\n"
        "  - {name: bot, token_sha256: \"" +
        Sha256Hex("bot-token") + "\", scopes: [db]}\n" + "  - {name: bot2, token_sha256: \"" +
        Sha256Hex("bot2-token") + "\", scopes: [db]}\n" +
        "approvers:\n"
        "  - {name: dba, token_sha256: \"" +
        Sha256Hex("dba-token") + "\"}\n" + "  - {name: sec, token_sha256: \"" +
        Sha256Hex("sec-token") + "\"}\n" + "targets:\n  db: {kind: sqlite, path: ./prod.db}\n" +
        extra_yaml;
    auto policy = LoadPolicyText(yaml, (dir_ / "airlock.yaml").string());
    ASSERT_TRUE(policy.ok()) << policy.status().ToString();
    policy_ = *policy;
  }
  void SetUp() override { SetUpPolicy(); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A gateway of its own on the shared store: what another process would have.
  std::unique_ptr<Gateway> OpenGateway() {
    auto g = Gateway::Open(policy_);
    EXPECT_TRUE(g.ok()) << g.status().ToString();
    return g.ok() ? std::move(*g) : nullptr;
  }
  // The same over a store whose reads can be made to fail.
  std::unique_ptr<Gateway> OpenFailingGateway(ReadFailingStore** store) {
    auto real = OpenSqliteStore(policy_->store_path);
    EXPECT_TRUE(real.ok()) << real.status().ToString();
    if (!real.ok()) return nullptr;
    auto wrapped = std::make_unique<ReadFailingStore>(std::move(*real));
    *store = wrapped.get();
    auto g = Gateway::OpenWithStore(policy_, std::move(wrapped));
    EXPECT_TRUE(g.ok()) << g.status().ToString();
    return g.ok() ? std::move(*g) : nullptr;
  }

  static Outcome Sql(Gateway& g, const std::string& token, const std::string& sql) {
    return g.Submit(token, {"db", "sql", {{"sql", sql}}});
  }
  // A submission that must be recorded; returns its id.
  static std::string Submit(Gateway& g, const std::string& token, const std::string& sql,
                            ActionStatus expect) {
    Outcome out = Sql(g, token, sql);
    EXPECT_TRUE(out.status.ok()) << out.status.ToString();
    if (!out.action) {
      ADD_FAILURE() << "no action recorded for " << sql;
      return "";
    }
    EXPECT_EQ(out.action->status, expect) << sql;
    return out.action->id;
  }

  static int64_t Head(Gateway& g) {
    auto head = g.AuditHeadNow();
    EXPECT_TRUE(head.ok()) << head.status().ToString();
    return head.ok() ? head->seq : -1;
  }

  // Polls `cond` until it holds or a generous deadline passes (no timing assertions: the
  // deadline only keeps a broken build from hanging).
  static bool Eventually(const std::function<bool()>& cond, int deadline_ms = 20000) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(deadline_ms);
    while (std::chrono::steady_clock::now() < until) {
      if (cond()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return cond();
  }

  void Exec(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "prod.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }

  std::filesystem::path dir_;
  std::shared_ptr<const Policy> policy_;
};

}  // namespace airlock::server::testing
