// The gateway over a real SQLite target and a real store, with faults injected into the
// store (STYLE.md: LevelDB's Env, SQLite's test_vfs): a failed audit write must deny, and a
// failure after the target committed must be resolved by recovery, never lost.
#include "gateway/gateway.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "connectors/mcp/mcp_connector.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/types_test_util.h"
#include "gateway/read_journal.h"

namespace airlock {
namespace {

namespace fs = std::filesystem;

// Forwards to a real transaction, failing AppendAudit when told to.
class FaultyTxn : public StoreTxn {
 public:
  FaultyTxn(StoreTxn& real, std::atomic<int>& fail_audit_in, std::atomic<bool>& fail_every_audit)
      : real_(real), fail_(fail_audit_in), fail_every_(fail_every_audit) {}
  Status InsertAction(const Action& a, const std::string& body) override {
    return real_.InsertAction(a, body);
  }
  Status UpdateAction(const Action& a) override { return real_.UpdateAction(a); }
  Result<std::optional<Action>> GetAction(const std::string& id) override {
    return real_.GetAction(id);
  }
  Result<std::vector<Action>> ListActions(const ActionFilter& f) override {
    return real_.ListActions(f);
  }
  Status AddVote(const std::string& id, const Vote& v) override { return real_.AddVote(id, v); }
  Status PutUndo(const std::string& id, const UndoRecord& u) override {
    return real_.PutUndo(id, u);
  }
  Result<std::optional<UndoRecord>> GetUndo(const std::string& id) override {
    return real_.GetUndo(id);
  }
  Result<std::vector<ActionCount>> CountActions() override { return real_.CountActions(); }
  Result<int64_t> CountWritesSince(const std::string& a, const std::string& t,
                                   int64_t since) override {
    return real_.CountWritesSince(a, t, since);
  }
  Result<std::optional<Breaker>> GetBreaker(const std::string& t, const std::string& a) override {
    return real_.GetBreaker(t, a);
  }
  Status PutBreaker(const Breaker& b) override { return real_.PutBreaker(b); }
  Result<std::vector<Breaker>> ListBreakers() override { return real_.ListBreakers(); }
  Result<AuditEvent> AppendAudit(AuditEvent e) override {
    // fail_ counts down: at 1 this append fails; 0 means never.
    if (fail_every_) return Status::IoError("injected: disk gone");
    int n = fail_.load();
    if (n > 0 && fail_.fetch_sub(1) == 1) return Status::IoError("injected: disk full");
    return real_.AppendAudit(std::move(e));
  }
  // A staged record is an audit write too: it fails like an append.
  Status StageRecord(const Action& a, AuditEvent e) override {
    if (fail_every_) return Status::IoError("injected: disk gone");
    int n = fail_.load();
    if (n > 0 && fail_.fetch_sub(1) == 1) return Status::IoError("injected: disk full");
    return real_.StageRecord(a, std::move(e));
  }
  Result<int64_t> IngestStaged() override { return real_.IngestStaged(); }
  Result<bool> AnyStaged() override { return real_.AnyStaged(); }

 private:
  StoreTxn& real_;
  std::atomic<int>& fail_;
  std::atomic<bool>& fail_every_;
};

class FaultyStore : public Store {
 public:
  explicit FaultyStore(std::unique_ptr<Store> real) : real_(std::move(real)) {}
  std::atomic<int> fail_audit{0};  // the Nth AppendAudit from now fails
  // Every AppendAudit fails (a grouped batch retries a failed closure once: a one-off fault
  // would pass on the retry).
  std::atomic<bool> fail_every_audit{false};

  std::atomic<int> commits{0};  // Transact calls (synced)
  Status Transact(const std::function<Status(StoreTxn&)>& fn) override {
    commits.fetch_add(1);
    return real_->Transact([&](StoreTxn& t) {
      FaultyTxn f(t, fail_audit, fail_every_audit);
      return fn(f);
    });
  }
  std::atomic<int> unsynced_commits{0};  // TransactUnsynced calls
  Status TransactUnsynced(const std::function<Status(StoreTxn&)>& fn) override {
    unsynced_commits.fetch_add(1);
    return real_->TransactUnsynced([&](StoreTxn& t) {
      FaultyTxn f(t, fail_audit, fail_every_audit);
      return fn(f);
    });
  }
  std::atomic<int> sync_starts{0};  // StartSync calls
  void StartSync() override {
    sync_starts.fetch_add(1);
    real_->StartSync();
  }
  // Through the real store's cache, so that the gateway's limits use it.
  Result<std::optional<Breaker>> LookupBreaker(const std::string& target,
                                               const std::string& agent) override {
    return real_->LookupBreaker(target, agent);
  }
  Status SyncUnsynced() override { return real_->SyncUnsynced(); }
  std::future<Status> TransactGrouped(std::function<Status(StoreTxn&)> fn) override {
    return real_->TransactGrouped(Faulty(std::move(fn)));
  }
  // Through the real store's committer, so that the asynchronous path is the real one.
  void TransactGroupedAsync(std::function<Status(StoreTxn&)> fn,
                            std::function<void(Status)> done) override {
    real_->TransactGroupedAsync(Faulty(std::move(fn)), std::move(done));
  }
  Status Read(const std::function<Status(StoreTxn&)>& fn) override { return real_->Read(fn); }
  Status ScanAudit(int64_t after, const std::string& id,
                   const std::function<bool(const AuditEvent&)>& fn) override {
    return real_->ScanAudit(after, id, fn);
  }
  Result<AuditHead> RecordedHead() override { return real_->RecordedHead(); }

 private:
  std::function<Status(StoreTxn&)> Faulty(std::function<Status(StoreTxn&)> fn) {
    return [this, fn = std::move(fn)](StoreTxn& t) {
      FaultyTxn f(t, fail_audit, fail_every_audit);
      return fn(f);
    };
  }

  std::unique_ptr<Store> real_;
};

// The read fast path with one callback: `done` gets the action with its rows once the record
// is durable, or the error and no rows.
bool SubmitReadAsync(Gateway& gateway, const std::optional<std::string>& token,
                     const SubmitRequest& request, std::function<void(Outcome)> done) {
  return gateway.SubmitReadPrepared(
      token, request, [&done](const Outcome& as_recorded, std::string reply) {
        Outcome ok = as_recorded;
        Json json = Json::parse(reply);
        ok.action->result = std::move(json["result"]);  // the rows in place of their summary
        return Gateway::ReadFinish(
            [done = std::move(done), ok = std::move(ok)](const Status& recorded,
                                                         std::shared_ptr<const void>) mutable {
              if (!recorded.ok()) {
                done({recorded, std::nullopt});
              } else {
                done(std::move(ok));
              }
            });
      });
}

// The payload the read fast path writes as text is byte for byte the canonical form of the
// one every other decision records, whatever the action holds (dry-run, errors, votes, any
// effect): the audit chain hashes these bytes.
TEST(DecisionPayloadTest, TheTextIsTheCanonicalFormOfTheTree) {
  std::mt19937 rng(1201);
  for (int i = 0; i < 2000; ++i) {
    Action a = RandomAction(rng);
    if (i % 4 == 0) a.dry_run = !a.dry_run;
    ASSERT_EQ(CanonicalDecisionPayload(a), CanonicalJson(DecisionPayload(a)))
        << "action " << i << ": " << CanonicalJson(ActionToJson(a));
  }
}

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("airlock-gw-" + RandomHex(6));
    fs::create_directories(dir_);
    Exec("CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, status TEXT);"
         "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 50) "
         "INSERT INTO users SELECT i, 'u' || i, 'active' FROM n;");
    std::string yaml =
        "version: 1\n"
        "store: ./state/airlock.db\n"
        "agents:\n  - {name: bot, token_sha256: \"" + Sha256Hex("agent-token") +
        "\", scopes: [db]}\n"
        "approvers:\n  - {name: dba, token_sha256: \"" + Sha256Hex("dba-token") + "\"}\n" +
        "  - {name: sec, token_sha256: \"" + Sha256Hex("sec-token") + "\"}\n" +
        "targets:\n  db: {kind: sqlite, path: ./prod.db}\n";
    auto policy = LoadPolicyText(yaml, (dir_ / "airlock.yaml").string());
    ASSERT_TRUE(policy.ok()) << policy.status().ToString();
    policy_ = *policy;
    Reopen();
  }
  void TearDown() override {
    gateway_.reset();
    fs::remove_all(dir_);
  }

  void Reopen(GatewayOptions options = {}) {
    gateway_.reset();
    auto store = OpenSqliteStore(policy_->store_path);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto faulty = std::make_unique<FaultyStore>(std::move(*store));
    store_ = faulty.get();
    auto g = Gateway::OpenWithStore(policy_, std::move(faulty), options);
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    gateway_ = std::move(*g);
  }

  void Exec(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "prod.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  std::string Name(int id) {
    sqlite3* db = nullptr;
    sqlite3_open((dir_ / "prod.db").c_str(), &db);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, ("SELECT name FROM users WHERE id = " + std::to_string(id)).c_str(), -1,
                       &st, nullptr);
    std::string out = sqlite3_step(st) == SQLITE_ROW
                          ? reinterpret_cast<const char*>(sqlite3_column_text(st, 0))
                          : "<none>";
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
  }
  Outcome Sql(const std::string& sql) {
    return gateway_->Submit(std::string("agent-token"), {"db", "sql", {{"sql", sql}}});
  }

  // Submits `n` reads through SubmitReadAsync from `threads` threads and waits for every
  // answer; each must be taken by the fast path.
  std::vector<Outcome> AsyncReads(int threads, int per_thread, const std::string& sql) {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<Outcome> outcomes;
    std::atomic<int> declined{0};
    std::vector<std::thread> submitters;
    for (int t = 0; t < threads; ++t) {
      submitters.emplace_back([&] {
        for (int i = 0; i < per_thread; ++i) {
          const bool taken = SubmitReadAsync(*gateway_, std::string("agent-token"),
                                             {"db", "sql", {{"sql", sql}}}, [&](Outcome out) {
                                               std::lock_guard lock(mu);
                                               outcomes.push_back(std::move(out));
                                               cv.notify_all();
                                             });
          if (!taken) ++declined;
        }
      });
    }
    for (auto& th : submitters) th.join();
    EXPECT_EQ(declined.load(), 0);
    std::unique_lock lock(mu);
    const size_t want = static_cast<size_t>(threads * per_thread - declined.load());
    // A generous bound only so that a lost answer fails the test instead of hanging it.
    EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return outcomes.size() == want; }))
        << outcomes.size() << " of " << want << " answered";
    return outcomes;
  }
  int64_t AuditLength() {
    auto head = gateway_->AuditHeadNow();
    EXPECT_TRUE(head.ok());
    return head.ok() ? head->seq : -1;
  }

  fs::path dir_;
  std::shared_ptr<const Policy> policy_;
  FaultyStore* store_ = nullptr;
  std::unique_ptr<Gateway> gateway_;
};

TEST_F(GatewayTest, LowWriteAppliesAtOnce) {
  Outcome out = Sql("UPDATE users SET name = 'x' WHERE id = 5");
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.action->status, ActionStatus::kApplied) << out.action->error;
  EXPECT_EQ(out.action->risk, Risk::kLow);
  EXPECT_EQ(Name(5), "x");
}

// Ids sort by the time they were made (so that a store's indexes keyed by them grow at one
// end), and stay distinct within a millisecond.
TEST_F(GatewayTest, ActionIdsSortByTimeAndAreDistinct) {
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    Outcome out = Sql("SELECT name FROM users WHERE id = 1");
    ASSERT_TRUE(out.status.ok()) << out.status.ToString();
    ids.push_back(out.action->id);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (const std::string& id : ids) {
    ASSERT_EQ(id.size(), 4u + 24u) << id;
    EXPECT_EQ(id.rfind("act_", 0), 0u) << id;
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef", 4), std::string::npos) << id;
  }
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end())) << ids.front() << " ... " << ids.back();
  // Many in the same millisecond: the random part keeps them apart.
  std::set<std::string> burst;
  std::map<std::string, int> per_ms;  // ids per time prefix
  for (int i = 0; i < 10000; ++i) {
    const std::string id = NewActionId();
    burst.insert(id);
    ++per_ms[id.substr(0, 4 + 11)];
  }
  EXPECT_EQ(burst.size(), 10000u);
  int most = 0;
  for (const auto& [prefix, n] : per_ms) most = std::max(most, n);
  EXPECT_GT(most, 1) << "10,000 ids never shared a millisecond: the burst tested nothing";
}

TEST_F(GatewayTest, FailedAuditWriteDeniesTheWrite) {
  store_->fail_audit = 1;  // the very next audit append fails
  Outcome out = Sql("UPDATE users SET name = 'x' WHERE id = 5");
  EXPECT_FALSE(out.status.ok());
  EXPECT_EQ(Name(5), "u5") << "a write whose audit event could not be written must not run";
  auto pending = gateway_->Pending(std::nullopt);
  ASSERT_TRUE(pending.ok());
  EXPECT_TRUE(pending->empty());
}

TEST_F(GatewayTest, FailedAuditWriteWithholdsARead) {
  store_->fail_audit = 1;
  Outcome out = Sql("SELECT name FROM users WHERE id = 1");
  EXPECT_FALSE(out.status.ok());
  EXPECT_FALSE(out.action.has_value()) << "an unaudited read must not return its rows";
}

TEST_F(GatewayTest, FailedAuditOfAuthFailureIsAnError) {
  store_->fail_audit = 1;
  Outcome out = gateway_->Submit(std::string("wrong"), {"db", "sql", {{"sql", "SELECT 1"}}});
  EXPECT_FALSE(out.status.ok());
  EXPECT_FALSE(out.action.has_value());
}

TEST_F(GatewayTest, FailureAfterTargetCommitIsRecoveredAsApplied) {
  // submitted (1st append) succeeds; applied (2nd) fails after the target committed.
  store_->fail_audit = 2;
  Outcome out = Sql("UPDATE users SET name = 'y' WHERE id = 7");
  EXPECT_FALSE(out.status.ok());
  EXPECT_EQ(Name(7), "y");
  const std::string id = out.action->id;
  Reopen();  // recovery runs on open
  Outcome shown = gateway_->Show(std::nullopt, id);
  ASSERT_TRUE(shown.status.ok());
  EXPECT_EQ(shown.action->status, ActionStatus::kApplied);
  auto report = gateway_->VerifyAudit();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok) << report->problem;
  // And it can still be undone.
  Outcome rb = gateway_->Rollback(std::string("dba-token"), id);
  ASSERT_TRUE(rb.status.ok()) << rb.status.ToString();
  EXPECT_EQ(Name(7), "u7");
}

TEST_F(GatewayTest, FailedVoteAuditCountsNoVote) {
  Outcome out = Sql("DELETE FROM users");
  ASSERT_EQ(out.action->status, ActionStatus::kPending);
  ASSERT_EQ(out.action->risk, Risk::kCritical);
  store_->fail_audit = 1;
  Outcome v = gateway_->Vote(std::string("dba-token"), out.action->id, true, "");
  EXPECT_FALSE(v.status.ok());
  Outcome shown = gateway_->Show(std::nullopt, out.action->id);
  EXPECT_TRUE(shown.action->votes.empty()) << "the vote and its audit event are one transaction";
}

TEST_F(GatewayTest, QuorumIsReachedOnceAndRequesterNeverVotes) {
  Outcome out = Sql("DROP TABLE users");
  ASSERT_EQ(out.action->status, ActionStatus::kPending);
  const std::string id = out.action->id;
  EXPECT_EQ(gateway_->Vote(std::string("agent-token"), id, true, "").status.code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(gateway_->Vote(std::string("dba-token"), id, true, "").action->status,
            ActionStatus::kPending);
  Outcome second = gateway_->Vote(std::string("sec-token"), id, true, "");
  ASSERT_TRUE(second.status.ok()) << second.status.ToString();
  EXPECT_EQ(second.action->status, ActionStatus::kApplied);
  EXPECT_EQ(Name(1), "<none>");
}

TEST_F(GatewayTest, AsyncReadsFromManyThreadsAllAnswerWithRowsAndOneChain) {
  Reopen(GatewayOptions::WithGroupCommit());
  const int64_t before = AuditLength();
  std::vector<Outcome> outs = AsyncReads(8, 40, "SELECT name FROM users WHERE id = 3");
  ASSERT_EQ(outs.size(), 320u);
  std::set<std::string> ids;
  for (const Outcome& out : outs) {
    ASSERT_TRUE(out.status.ok()) << out.status.ToString();
    ASSERT_TRUE(out.action.has_value());
    EXPECT_EQ(out.action->status, ActionStatus::kApplied);
    EXPECT_EQ(out.action->risk, Risk::kRead);
    EXPECT_NE(out.action->result.dump().find("\"u3\""), std::string::npos)
        << out.action->result.dump();
    ids.insert(out.action->id);
  }
  EXPECT_EQ(ids.size(), 320u) << "every read is its own action";
  EXPECT_EQ(AuditLength(), before + 320);
  auto report = gateway_->VerifyAudit();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok) << report->problem;
  // The record keeps what was read, not the rows.
  Outcome shown = gateway_->Show(std::nullopt, *ids.begin());
  ASSERT_TRUE(shown.status.ok());
  EXPECT_EQ(shown.action->result.dump().find("\"u3\""), std::string::npos)
      << shown.action->result.dump();
}

// A read on the fast path makes its record and its reply from one JSON form of the action:
// the reply is that action's JSON form with its rows, the audit payload is byte for byte the
// one Submit records for the same read, and the row's body is what the store writes for the
// action as recorded (what was read, not the rows).
TEST_F(GatewayTest, AFastReadIsRecordedAsSubmitRecordsIt) {
  Reopen(GatewayOptions::WithGroupCommit());
  const std::string sql = "SELECT name, 'caf\u00e9 \"<x>' AS odd FROM users WHERE id = 4";
  std::mutex mu;
  std::condition_variable cv;
  std::optional<Outcome> fast;
  Json reply_rows;
  std::string reply_rest;
  std::string expected_rest;
  bool reply_canonical = false;
  long hold_refs = 0;  // the finish gets the record's last reference, to let go of
  std::optional<Status> recorded;
  ASSERT_TRUE(gateway_->SubmitReadPrepared(
      std::string("agent-token"), {"db", "sql", {{"sql", sql}}},
      [&](const Outcome& as_recorded, std::string reply) -> Gateway::ReadFinish {
        fast = as_recorded;
        Json json = Json::parse(reply);
        reply_canonical = reply == CanonicalJson(json);
        reply_rows = json["result"];
        json.erase("result");
        reply_rest = CanonicalJson(json);
        Json expected = ActionToJson(*as_recorded.action);
        expected.erase("result");
        expected_rest = CanonicalJson(expected);
        return [&](const Status& st, std::shared_ptr<const void> hold) {
          std::lock_guard lock(mu);
          hold_refs = hold.use_count();
          recorded = st;
          cv.notify_all();
        };
      }));
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return recorded.has_value(); }));
  }
  ASSERT_TRUE(recorded->ok()) << recorded->ToString();
  ASSERT_TRUE(fast && fast->action);
  EXPECT_EQ(hold_refs, 1) << "the store drops its closure first; the finish holds the last one";
  EXPECT_EQ(reply_rest, expected_rest);
  EXPECT_TRUE(reply_canonical) << "the reply is written as CanonicalJson writes it";
  EXPECT_NE(reply_rows.dump().find("u4"), std::string::npos) << reply_rows.dump();
  EXPECT_EQ(fast->action->result.dump().find("u4"), std::string::npos)
      << "recorded: what was read, not the rows: " << fast->action->result.dump();

  SubmitRequest keyed{"db", "sql", {{"sql", sql}}};
  keyed.idempotency_key = "not-the-fast-path";
  Outcome slow = gateway_->Submit(std::string("agent-token"), keyed);
  ASSERT_TRUE(slow.status.ok()) << slow.status.ToString();
  ASSERT_EQ(slow.action->status, ActionStatus::kApplied);

  // The stored text itself, not a parse of it: the chain's hashes are over these bytes.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(policy_->store_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  auto column = [&](const char* query, const std::string& id) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, query, -1, &st, nullptr);
    sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
    std::string out = sqlite3_step(st) == SQLITE_ROW
                          ? reinterpret_cast<const char*>(sqlite3_column_text(st, 0))
                          : "<none>";
    sqlite3_finalize(st);
    return out;
  };
  const char* kPayload = "SELECT payload FROM audit WHERE action_id = ?1 AND event = 'read'";
  EXPECT_EQ(column(kPayload, fast->action->id), column(kPayload, slow.action->id));
  // The body as the JSON tree gives it, not through the writer that made it.
  EXPECT_EQ(column("SELECT body FROM actions WHERE id = ?1", fast->action->id),
            CanonicalJsonOfKept(ActionToJson(*fast->action), [](std::string_view key) {
              return key != "votes" && key != "approvals";
            }));
  sqlite3_close(db);
  auto report = gateway_->VerifyAudit();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok) << report->problem;
}

TEST_F(GatewayTest, AsyncReadWhoseAuditFailsIsAnErrorWithoutRows) {
  Reopen(GatewayOptions::WithGroupCommit());
  store_->fail_every_audit = true;
  std::vector<Outcome> outs = AsyncReads(4, 10, "SELECT name FROM users WHERE id = 1");
  ASSERT_EQ(outs.size(), 40u);
  for (const Outcome& out : outs) {
    EXPECT_FALSE(out.status.ok());
    EXPECT_FALSE(out.action.has_value()) << "an unaudited read must not return its rows";
  }
  store_->fail_every_audit = false;
  auto report = gateway_->VerifyAudit();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok) << report->problem;
}

TEST_F(GatewayTest, AsyncReadDeclinesAllButAPlainReadAndRecordsNothing) {
  Reopen(GatewayOptions::WithGroupCommit());
  const int64_t before = AuditLength();
  bool called = false;
  auto done = [&](Outcome) { called = true; };
  const std::string read = "SELECT name FROM users WHERE id = 1";
  // A write, a wrong token, an approver, a target out of scope, an idempotency key.
  EXPECT_FALSE(SubmitReadAsync(*gateway_, std::string("agent-token"),
                               {"db", "sql", {{"sql", "UPDATE users SET name = 'z'"}}}, done));
  EXPECT_FALSE(
      SubmitReadAsync(*gateway_, std::string("wrong"), {"db", "sql", {{"sql", read}}}, done));
  EXPECT_FALSE(SubmitReadAsync(*gateway_, std::nullopt, {"db", "sql", {{"sql", read}}}, done));
  EXPECT_FALSE(
      SubmitReadAsync(*gateway_, std::string("dba-token"), {"db", "sql", {{"sql", read}}}, done));
  EXPECT_FALSE(SubmitReadAsync(*gateway_, std::string("agent-token"),
                               {"other", "sql", {{"sql", read}}}, done));
  SubmitRequest keyed{"db", "sql", {{"sql", read}}};
  keyed.idempotency_key = "k1";
  EXPECT_FALSE(SubmitReadAsync(*gateway_, std::string("agent-token"), keyed, done));
  EXPECT_FALSE(called);
  EXPECT_EQ(AuditLength(), before) << "a declined request is left to Submit, which audits it";
  EXPECT_EQ(Name(1), "u1");
  // Without group commit there is no committer to answer from.
  Reopen();
  EXPECT_FALSE(
      SubmitReadAsync(*gateway_, std::string("agent-token"), {"db", "sql", {{"sql", read}}}, done));
  EXPECT_FALSE(called);
}

// The three steps of a read tool call for a session with its own reader (mcp stdio):
// BeginMcpRead only looks, RecordMcpRead makes the durable record, FinishMcpRead hands the
// answer back only when that record was made.
class McpReadTest : public GatewayTest {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("airlock-gw-mcp-" + RandomHex(6));
    fs::create_directories(dir_ / "ws");
    LoadPolicy("");
  }
  void LoadPolicy(const std::string& extra, const std::string& srv_extra = "") {
    std::string yaml =
        "version: 1\n"
        "store: ./state/airlock.db\n" +
        extra + "agents:\n  - {name: bot, token_sha256: \"" + Sha256Hex("agent-token") +
        "\", scopes: [srv, boxed]}\n"
        "approvers:\n  - {name: dba, token_sha256: \"" +
        Sha256Hex("dba-token") +
        "\"}\n"
        "targets:\n  box: {kind: shell, workspace: ./ws}\n"
        "mcp_servers:\n"
        "  srv:\n"
        "    command: [\"true\"]\n" +
        srv_extra +
        "    tools:\n"
        "      - {tool: echo, risk: read}\n"
        "      - {tool: wipe, risk: high, reason: wipes}\n"
        "  boxed:\n"
        "    command: [\"true\"]\n"
        "    sandbox: box\n"
        "    tools:\n"
        "      - {tool: echo, risk: read}\n";
    auto policy = LoadPolicyText(yaml, (dir_ / "airlock.yaml").string());
    ASSERT_TRUE(policy.ok()) << policy.status().ToString();
    policy_ = *policy;
    Reopen();
  }
  static SubmitRequest Call(const std::string& server, const std::string& tool) {
    return {server, "mcp", {{"tool", tool}, {"arguments", {{"message", "hi"}}}}};
  }
  std::vector<fs::path> JournalFiles() {
    std::vector<fs::path> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(policy_->store_path + ".journal", ec)) {
      if (e.path().extension() == ".jnl") out.push_back(e.path());
    }
    return out;
  }
  std::vector<std::string> JournalLines() {
    std::vector<std::string> out;
    for (const fs::path& f : JournalFiles()) {
      std::ifstream in(f);
      for (std::string line; std::getline(in, line);) out.push_back(line);
    }
    return out;
  }
  std::vector<std::string> Events(const std::string& id) {
    std::vector<std::string> out;
    EXPECT_TRUE(gateway_
                    ->ScanAudit(std::nullopt, id,
                                [&](const AuditEvent& e) {
                                  out.push_back(e.event);
                                  return true;
                                })
                    .ok());
    return out;
  }
};

// The record is a line in the session's journal unless the server says `sync_reads: true`:
// the reply then waits for a synced commit. A journaled record is committed to the store
// with the next batch of reads, after the reply.
TEST_F(McpReadTest, AReadRecordIsSyncedBeforeTheReplyOnlyWithSyncReads) {
  for (bool sync : {false, true}) {
    SCOPED_TRACE(sync ? "sync_reads: true" : "default");
    if (sync) LoadPolicy("", "    sync_reads: true\n");
    const int before = store_->unsynced_commits.load();
    const int starts = store_->sync_starts.load();
    const int commits = store_->commits.load();
    const size_t lines = JournalLines().size();
    auto ticket = gateway_->BeginMcpRead(std::string("agent-token"), Call("srv", "echo"));
    ASSERT_TRUE(ticket.has_value());
    EXPECT_EQ(ticket->sync_record, sync);
    const std::string id = ticket->action.id;
    const int64_t length = AuditLength();
    ASSERT_TRUE(gateway_->RecordMcpRead(*ticket).ok());
    EXPECT_EQ(store_->unsynced_commits.load(), before) << "no store commit before the reply";
    EXPECT_EQ(store_->sync_starts.load(), starts) << "no sync before the reply";
    EXPECT_EQ(ticket->journaled, !sync);
    EXPECT_EQ(JournalLines().size() - lines, sync ? 0u : 1u);
    if (!sync) {
      EXPECT_NE(JournalLines().back().find(id), std::string::npos);
      EXPECT_EQ(AuditLength(), length);
    }
    EXPECT_EQ(store_->commits.load() - commits, sync ? 1 : 0) << "synced before the reply";
    Outcome o = gateway_->FinishMcpRead(std::move(*ticket), Status::Ok(), Json::object());
    ASSERT_TRUE(o.status.ok()) << o.status.ToString();
    // After the reply: a journaled read waits for the next batch, one synced commit.
    EXPECT_EQ(store_->unsynced_commits.load(), before);
    EXPECT_EQ(store_->commits.load() - commits, sync ? 1 : 0);
    ASSERT_TRUE(gateway_->FlushReadResults().ok());
    EXPECT_EQ(store_->commits.load() - commits, sync ? 2 : 1);
    EXPECT_EQ(Events(id), (std::vector<std::string>{"read", "read_result"}));
  }
}

// A session that ends (a crash, a kill) between a read's journal line and its record in the
// store: the next airlock process to start writes the record from the line, once, in the
// chain, marked as recovered; a torn last line is skipped; the journal is then removed.
TEST_F(McpReadTest, ADeadSessionsJournaledReadsReachTheChainAtTheNextStart) {
  const int64_t before = AuditLength();
  auto done = gateway_->BeginMcpRead(std::string("agent-token"), Call("srv", "echo"));
  ASSERT_TRUE(done.has_value());
  const std::string done_id = done->action.id;
  ASSERT_TRUE(gateway_->RecordMcpRead(*done).ok());
  ASSERT_TRUE(
      gateway_->FinishMcpRead(std::move(*done), Status::Ok(), Json{{"content", "x"}}).status.ok());
  auto lost = gateway_->BeginMcpRead(std::string("agent-token"), Call("srv", "echo"));
  ASSERT_TRUE(lost.has_value());
  const std::string lost_id = lost->action.id;
  const Json lost_args = lost->action.args;
  ASSERT_TRUE(gateway_->RecordMcpRead(*lost).ok());
  const std::string lost_hash = lost->action.effect.effect_hash;
  ASSERT_EQ(JournalLines().size(), 2u);

  // While the session lives, another process leaves its journal alone.
  {
    auto other = Gateway::Open(policy_);
    ASSERT_TRUE(other.ok()) << other.status().ToString();
    EXPECT_EQ(JournalLines().size(), 2u);
    EXPECT_FALSE((*other)->Show(std::string("dba-token"), lost_id).action.has_value());
  }
  // The session ends with its second read unfinished: its lock goes, its journal stays.
  gateway_.reset();
  std::vector<fs::path> files = JournalFiles();
  ASSERT_EQ(files.size(), 1u);
  {
    std::ofstream torn(files[0], std::ios::app);
    torn << "{\"v\":1,\"id\":\"act_";  // a crash mid-write: no newline
  }
  Reopen();
  EXPECT_TRUE(JournalFiles().empty()) << "written, then removed";
  Outcome shown = gateway_->Show(std::string("dba-token"), lost_id);
  ASSERT_TRUE(shown.action.has_value()) << shown.status.ToString();
  EXPECT_EQ(shown.action->status, ActionStatus::kApplied);
  EXPECT_EQ(shown.action->risk, Risk::kRead);
  EXPECT_TRUE(shown.action->result.is_null()) << "its answer's size is unknown";
  EXPECT_EQ(shown.action->args, lost_args);
  EXPECT_EQ(shown.action->effect.effect_hash, lost_hash) << "derived again from the arguments";
  std::vector<AuditEvent> events;
  ASSERT_TRUE(gateway_
                  ->ScanAudit(std::nullopt, lost_id,
                              [&](const AuditEvent& e) {
                                events.push_back(e);
                                return true;
                              })
                  .ok());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event, "read");
  EXPECT_EQ(events[0].principal, "agent:bot");
  EXPECT_TRUE(events[0].payload.contains("recovered")) << events[0].payload.dump();
  EXPECT_EQ(events[0].payload["args"], lost_args);
  EXPECT_FALSE(events[0].payload.contains("journaled_effect_hash"));
  EXPECT_EQ(Events(done_id), (std::vector<std::string>{"read", "read_result"}))
      << "a line already in the store is not written twice";
  EXPECT_EQ(AuditLength(), before + 3) << "the finished read and its result, the lost read";
  EXPECT_TRUE(gateway_->VerifyAudit()->ok);
}

// A shell sandbox never shows a command the read journals (every read's arguments), as it
// hides the store beside them.
TEST_F(McpReadTest, TheJournalsAreHiddenFromTheShellSandbox) {
  auto config = gateway_->ConnectorConfigFor("box");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const Json& hidden = config->fields["hide_always"];
  EXPECT_NE(std::find(hidden.begin(), hidden.end(), Json(policy_->store_path + ".journal")),
            hidden.end())
      << hidden.dump();
}

// Recovery writes only what a journal line can be: an applied read tool call. A line that
// says otherwise (a pending shell command, say) is skipped, not turned into an action.
TEST_F(McpReadTest, RecoveryTakesOnlyReadCallsFromAJournal) {
  const fs::path dir = policy_->store_path + ".journal";
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::owner_all);
  Action forged;
  forged.id = "act_" + RandomHex(8);
  forged.created_ms = 1;
  forged.agent = "bot";
  forged.target = "box";
  forged.kind = "shell";
  forged.args = {{"argv", {"rm", "-rf", "/"}}};
  forged.status = ActionStatus::kPending;
  forged.risk = Risk::kHigh;
  forged.quorum = 1;
  Action read = forged;
  read.id = "act_" + RandomHex(8);
  read.target = "srv";
  read.kind = "mcp";
  read.args = {{"tool", "echo"}, {"arguments", {{"message", "hi"}}}};
  read.status = ActionStatus::kApplied;
  read.risk = Risk::kRead;
  read.quorum = 0;
  std::ofstream(dir / "1-dead.jnl") << JournalLine(forged, "agent:bot", 5) << "\n"
                                    << JournalLine(read, "agent:bot", 6) << "\n";
  Reopen();
  EXPECT_FALSE(gateway_->Show(std::string("dba-token"), forged.id).action.has_value());
  EXPECT_EQ(Events(read.id), std::vector<std::string>{"read"});
  EXPECT_TRUE(JournalFiles().empty());
}

// A queued record the store refuses every time (its action id is taken) is dropped from the
// batch, its journal line kept; the other reads of the batch reach the chain.
TEST_F(McpReadTest, AWriteTheStoreAlwaysRefusesDoesNotHoldBackTheBatch) {
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto ticket = gateway_->BeginMcpRead(std::string("agent-token"), Call("srv", "echo"));
    ASSERT_TRUE(ticket.has_value());
    ASSERT_TRUE(gateway_->RecordMcpRead(*ticket).ok());
    ids.push_back(ticket->action.id);
    ASSERT_TRUE(gateway_->FinishMcpRead(std::move(*ticket), Status::Ok(), Json{{"content", "x"}})
                    .status.ok());
  }
  // Another writer took the second id meanwhile.
  Action taken;
  taken.id = ids[1];
  taken.agent = "someone";
  taken.target = "srv";
  taken.kind = "mcp";
  ASSERT_TRUE(store_->Transact([&](StoreTxn& t) { return t.InsertAction(taken); }).ok());
  ASSERT_TRUE(gateway_->FlushReadResults().ok());
  EXPECT_EQ(Events(ids[0]), (std::vector<std::string>{"read", "read_result"}));
  EXPECT_TRUE(Events(ids[1]).empty()) << "dropped";
  EXPECT_EQ(Events(ids[2]), (std::vector<std::string>{"read", "read_result"}));
  EXPECT_EQ(JournalLines().size(), 3u) << "the dropped read's line is kept";
  ASSERT_TRUE(gateway_->FlushReadResults().ok()) << "nothing poisoned is left queued";
  EXPECT_TRUE(gateway_->VerifyAudit()->ok);
}

// A store that takes no batch (failing): once kMaxQueuedReads (256) records wait, new reads
// are committed before their answers again, so that the failing store withholds them.
TEST_F(McpReadTest, AStoreThatTakesNoBatchWithholdsAnswersOnceTheQueueIsFull) {
  GatewayOptions options;
  options.quiet_flush_ms = 3600 * 1000;
  Reopen(options);
  const int64_t before = AuditLength();
  store_->fail_every_audit = true;
  for (int i = 0; i < 256; ++i) {
    auto ticket = gateway_->BeginMcpRead(std::string("agent-token"), Call("srv", "echo"));
    ASSERT_TRUE(ticket.has_value());
    ASSERT_TRUE(gateway_->RecordMcpRead(*ticket).ok()) << i;
    EXPECT_TRUE(ticket->journaled);
    Outcome o = gateway_->FinishMcpRead(std::move(*ticket), Status::Ok(), Json{{"content", "x"}});
    ASSERT_TRUE(o.status.ok()) << o.status.ToString();  // answered: the journal holds it
  }
  auto ticket = gateway_->BeginMcpRead(std::string("agent-token"), Call("srv", "echo"));
  ASSERT_TRUE(ticket.has_value());
  Status recorded = gateway_->RecordMcpRead(*ticket);
  EXPECT_FALSE(ticket->journaled) << "the store's own record, before the answer";
  EXPECT_FALSE(recorded.ok());
  EXPECT_FALSE(gateway_->FinishMcpRead(std::move(*ticket), recorded, Json{{"content", "x"}})
                   .action.has_value());
  // The store recovers: every answered read reaches the chain.
  store_->fail_every_audit = false;
  ASSERT_TRUE(gateway_->FlushReadResults().ok());
  EXPECT_EQ(AuditLength(), before + 2 * 256);
  EXPECT_TRUE(gateway_->VerifyAudit()->ok);
}

// The journal cannot be written (here: its file system is full): the call has no record,
// so its answer is withheld, and nothing claims it was recorded.
TEST_F(McpReadTest, AJournalThatCannotBeWrittenWithholdsTheAnswer) {
  if (geteuid() != 0) GTEST_SKIP() << "mounts a tmpfs: needs root";
  const fs::path journal = fs::path(policy_->store_path + ".journal");
  fs::create_directories(journal);
  ASSERT_EQ(mount("tmpfs", journal.c_str(), "tmpfs", 0, "size=4k,mode=0700"), 0) << strerror(errno);
  struct Unmount {
    fs::path p;
    ~Unmount() { umount2(p.c_str(), MNT_DETACH); }
  } unmount{journal};
  {
    std::ofstream fill(journal / "fill", std::ios::binary);
    fill << std::string(4096, 'x');
  }
  const int64_t before = AuditLength();
  auto ticket = gateway_->BeginMcpRead(std::string("agent-token"), Call("srv", "echo"));
  ASSERT_TRUE(ticket.has_value());
  const std::string id = ticket->action.id;
  Status recorded = gateway_->RecordMcpRead(*ticket);
  EXPECT_FALSE(recorded.ok());
  EXPECT_NE(recorded.message().find("journal"), std::string::npos) << recorded.ToString();
  Outcome o = gateway_->FinishMcpRead(std::move(*ticket), recorded, Json{{"content", "secret"}});
  EXPECT_FALSE(o.status.ok());
  EXPECT_FALSE(o.action.has_value()) << "no answer without its record";
  ASSERT_TRUE(gateway_->FlushReadResults().ok());
  EXPECT_EQ(AuditLength(), before);
  EXPECT_FALSE(gateway_->Show(std::string("dba-token"), id).action.has_value());
}

TEST_F(McpReadTest, AReadIsRecordedThenAnswered) {
  const int64_t before = AuditLength();
  auto ticket = gateway_->BeginMcpRead(std::string("agent-token"), Call("srv", "echo"));
  ASSERT_TRUE(ticket.has_value());
  EXPECT_EQ(AuditLength(), before) << "BeginMcpRead records nothing";
  EXPECT_EQ(ticket->action.risk, Risk::kRead);
  EXPECT_TRUE(ticket->action.effect.effect_hash.empty()) << "hashed once the request has left";
  const std::string id = ticket->action.id;
  ASSERT_TRUE(gateway_->RecordMcpRead(*ticket).ok());
  EXPECT_EQ(AuditLength(), before) << "staged: durable, not yet in the chain";
  Json answer = {{"content", Json::array({{{"type", "text"}, {"text", "Echo: hi"}}})}};
  Outcome o = gateway_->FinishMcpRead(std::move(*ticket), Status::Ok(), answer);
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  ASSERT_TRUE(o.action.has_value());
  EXPECT_EQ(o.action->status, ActionStatus::kApplied);
  EXPECT_EQ(o.action->result["tool_result"], answer);
  EXPECT_EQ(o.action->result["summary"]["content_items"], 1);
  ASSERT_TRUE(gateway_->FlushReadResults().ok());
  EXPECT_EQ(Events(id), (std::vector<std::string>{"read", "read_result"}));
  Outcome shown = gateway_->Show(std::string("dba-token"), id);
  ASSERT_TRUE(shown.action.has_value()) << shown.status.ToString();
  EXPECT_EQ(shown.action->status, ActionStatus::kApplied);
  EXPECT_EQ(shown.action->result["summary"]["content_items"], 1);
  // The effect's hash, left out of the decision, is in the record, as DryRun gives it.
  EXPECT_EQ(shown.action->effect.effect_hash,
            McpCallEffect("srv", "echo", {{"message", "hi"}}, nullptr).effect_hash);
  EXPECT_TRUE(gateway_->VerifyAudit()->ok);
}

// A session's staged reads (sync_reads: true) reach the chain when any other airlock process
// starts (Recover), the session still running or crashed; the session's own results follow.
TEST_F(McpReadTest, StagedReadsReachTheChainWhenAnotherProcessStarts) {
  LoadPolicy("", "    sync_reads: true\n");  // staged before the reply, not journaled
  const int64_t before = AuditLength();
  std::vector<std::string> ids;
  std::vector<Gateway::McpReadTicket> tickets;
  for (int i = 0; i < 3; ++i) {
    auto ticket = gateway_->BeginMcpRead(std::string("agent-token"), Call("srv", "echo"));
    ASSERT_TRUE(ticket.has_value());
    ASSERT_TRUE(gateway_->RecordMcpRead(*ticket).ok());
    ids.push_back(ticket->action.id);
    tickets.push_back(std::move(*ticket));
  }
  EXPECT_EQ(AuditLength(), before);
  auto other = Gateway::Open(policy_);
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  std::vector<std::string> order;
  ASSERT_TRUE((*other)
                  ->ScanAudit(std::nullopt, before, "",
                              [&](const AuditEvent& e) {
                                order.push_back(e.action_id + " " + e.event);
                                return true;
                              })
                  .ok());
  EXPECT_EQ(order, (std::vector<std::string>{ids[0] + " read", ids[1] + " read", ids[2] + " read"}))
      << "in the order they were staged";
  Outcome shown = (*other)->Show(std::string("dba-token"), ids[1]);
  ASSERT_TRUE(shown.action.has_value()) << shown.status.ToString();
  EXPECT_EQ(shown.action->status, ActionStatus::kApplied);
  // The first session goes on: its results land on the actions the other process moved.
  for (auto& t : tickets) {
    Outcome o = gateway_->FinishMcpRead(std::move(t), Status::Ok(), Json{{"content", "x"}});
    ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  }
  ASSERT_TRUE(gateway_->FlushReadResults().ok());
  EXPECT_EQ(Events(ids[2]), (std::vector<std::string>{"read", "read_result"}));
  EXPECT_EQ(AuditLength(), before + 6);
  EXPECT_TRUE((*other)->VerifyAudit()->ok);
}

// A result record that cannot be written costs neither the staged reads nor the change
// being committed, even when that change concerns a read that was only staged.
TEST_F(McpReadTest, AFailedResultRecordCostsNeitherTheStagedReadsNorTheNextRecord) {
  LoadPolicy("", "    sync_reads: true\n");  // staged before the reply, not journaled
  auto first = gateway_->BeginMcpRead(std::string("agent-token"), Call("srv", "echo"));
  ASSERT_TRUE(first.has_value());
  const std::string first_id = first->action.id;
  ASSERT_TRUE(gateway_->RecordMcpRead(*first).ok());
  ASSERT_TRUE(gateway_->FinishMcpRead(std::move(*first), Status::Ok(), Json{{"content", "x"}})
                  .status.ok());  // its read_result is queued
  auto second = gateway_->BeginMcpRead(std::string("agent-token"), Call("srv", "echo"));
  ASSERT_TRUE(second.has_value());
  const std::string second_id = second->action.id;
  ASSERT_TRUE(gateway_->RecordMcpRead(*second).ok());
  // The next audit append through the gateway is the queued read_result's: it fails.
  store_->fail_audit = 1;
  Outcome o = gateway_->FinishMcpRead(std::move(*second), Status::Ok(),
                                      Status::IoError("the MCP server answered: boom"));
  ASSERT_TRUE(o.action.has_value()) << o.status.ToString();
  EXPECT_EQ(o.action->status, ActionStatus::kFailed);
  EXPECT_EQ(Events(first_id), std::vector<std::string>{"read"}) << "its result was dropped";
  EXPECT_EQ(Events(second_id), (std::vector<std::string>{"read", "failed"}));
  EXPECT_TRUE(gateway_->VerifyAudit()->ok);
}

// The same with journaled reads: a queued record that cannot be written costs neither the
// change being committed nor the read, whose journal line is kept for the next start.
TEST_F(McpReadTest, AJournaledReadWhoseBatchFailsIsWrittenFromItsJournalAtTheNextStart) {
  auto first = gateway_->BeginMcpRead(std::string("agent-token"), Call("srv", "echo"));
  ASSERT_TRUE(first.has_value());
  const std::string first_id = first->action.id;
  ASSERT_TRUE(gateway_->RecordMcpRead(*first).ok());
  ASSERT_TRUE(gateway_->FinishMcpRead(std::move(*first), Status::Ok(), Json{{"content", "x"}})
                  .status.ok());  // its whole record is queued
  auto second = gateway_->BeginMcpRead(std::string("agent-token"), Call("srv", "echo"));
  ASSERT_TRUE(second.has_value());
  const std::string second_id = second->action.id;
  ASSERT_TRUE(gateway_->RecordMcpRead(*second).ok());
  // The first audit write is the second read's staged record (its answer is an error); the
  // second is the first read's queued `read` event: it fails.
  store_->fail_audit = 2;
  Outcome o = gateway_->FinishMcpRead(std::move(*second), Status::Ok(),
                                      Status::IoError("the MCP server answered: boom"));
  ASSERT_TRUE(o.action.has_value()) << o.status.ToString();
  EXPECT_EQ(o.action->status, ActionStatus::kFailed);
  EXPECT_EQ(Events(second_id), (std::vector<std::string>{"read", "failed"}));
  EXPECT_TRUE(Events(first_id).empty()) << "dropped from the batch";
  EXPECT_EQ(JournalLines().size(), 2u) << "and kept in the journal";
  gateway_.reset();
  Reopen();
  EXPECT_EQ(Events(first_id), std::vector<std::string>{"read"}) << "written from the journal";
  EXPECT_EQ(Events(second_id), (std::vector<std::string>{"read", "failed"})) << "not twice";
  EXPECT_TRUE(JournalFiles().empty());
  EXPECT_TRUE(gateway_->VerifyAudit()->ok);
}

// A session that goes quiet: its queued reads reach the chain within about a second, where
// other processes see them, with no 32nd read to carry them.
TEST_F(McpReadTest, AQuietSessionsJournaledReadsReachTheChainWithinASecond) {
  const int64_t before = AuditLength();
  auto ticket = gateway_->BeginMcpRead(std::string("agent-token"), Call("srv", "echo"));
  ASSERT_TRUE(ticket.has_value());
  const std::string id = ticket->action.id;
  ASSERT_TRUE(gateway_->RecordMcpRead(*ticket).ok());
  ASSERT_TRUE(gateway_->FinishMcpRead(std::move(*ticket), Status::Ok(), Json{{"content", "x"}})
                  .status.ok());
  EXPECT_EQ(AuditLength(), before) << "queued";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (AuditLength() == before && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(Events(id), (std::vector<std::string>{"read", "read_result"}));
  EXPECT_TRUE(gateway_->VerifyAudit()->ok);
}

// Without a commit of its own to ride along with, a session's reads reach the chain in
// batches: every kReadResultBatch (32) results, one commit moves the staged reads and writes
// the results.
TEST_F(McpReadTest, ReadsReachTheChainInBatchesOfThirtyTwo) {
  GatewayOptions options;
  options.quiet_flush_ms = 3600 * 1000;  // only a full batch flushes
  Reopen(options);
  const int64_t before = AuditLength();
  for (int i = 0; i < 31; ++i) {
    auto ticket = gateway_->BeginMcpRead(std::string("agent-token"), Call("srv", "echo"));
    ASSERT_TRUE(ticket.has_value());
    ASSERT_TRUE(gateway_->RecordMcpRead(*ticket).ok());
    ASSERT_TRUE(gateway_->FinishMcpRead(std::move(*ticket), Status::Ok(), Json{{"content", "x"}})
                    .status.ok());
  }
  EXPECT_EQ(AuditLength(), before) << "31 reads wait, staged and queued";
  auto ticket = gateway_->BeginMcpRead(std::string("agent-token"), Call("srv", "echo"));
  ASSERT_TRUE(ticket.has_value());
  ASSERT_TRUE(gateway_->RecordMcpRead(*ticket).ok());
  ASSERT_TRUE(gateway_->FinishMcpRead(std::move(*ticket), Status::Ok(), Json{{"content", "x"}})
                  .status.ok());
  // The 32nd wakes the flusher thread, which writes the batch.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (AuditLength() < before + 64 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(AuditLength(), before + 64) << "the 32nd read flushes the batch";
  EXPECT_TRUE(gateway_->VerifyAudit()->ok);
}

// Without a journal (its directory cannot be made), the record is committed before the
// answer, and a failed commit withholds it.
TEST_F(McpReadTest, AFailedRecordWithholdsTheAnswer) {
  fs::create_directories(fs::path(policy_->store_path).parent_path());
  std::ofstream(policy_->store_path + ".journal") << "not a directory";
  auto ticket = gateway_->BeginMcpRead(std::string("agent-token"), Call("srv", "echo"));
  ASSERT_TRUE(ticket.has_value());
  store_->fail_audit = 1;
  Status recorded = gateway_->RecordMcpRead(*ticket);
  EXPECT_FALSE(recorded.ok());
  Outcome o = gateway_->FinishMcpRead(std::move(*ticket), recorded, Json{{"content", "secret"}});
  EXPECT_FALSE(o.status.ok());
  EXPECT_FALSE(o.action.has_value()) << "no answer without its record";
}

TEST_F(McpReadTest, AnUpstreamErrorFailsTheRecordedRead) {
  auto ticket = gateway_->BeginMcpRead(std::string("agent-token"), Call("srv", "echo"));
  ASSERT_TRUE(ticket.has_value());
  const std::string id = ticket->action.id;
  Status recorded = gateway_->RecordMcpRead(*ticket);
  ASSERT_TRUE(recorded.ok());
  Outcome o = gateway_->FinishMcpRead(std::move(*ticket), recorded,
                                      Status::IoError("the MCP server answered: boom"));
  ASSERT_TRUE(o.action.has_value());
  EXPECT_EQ(o.action->status, ActionStatus::kFailed);
  EXPECT_EQ(Events(id), (std::vector<std::string>{"read", "failed"}));
}

TEST_F(McpReadTest, AnythingButAPlainReadIsLeftToSubmit) {
  const int64_t before = AuditLength();
  auto begin = [&](const std::optional<std::string>& token, SubmitRequest r) {
    return gateway_->BeginMcpRead(token, r).has_value();
  };
  EXPECT_FALSE(begin(std::string("agent-token"), Call("srv", "wipe"))) << "a high tool";
  EXPECT_FALSE(begin(std::string("agent-token"), Call("srv", "unlisted"))) << "no rule: high";
  EXPECT_FALSE(begin(std::string("agent-token"), Call("boxed", "echo"))) << "sandboxed server";
  EXPECT_FALSE(begin(std::string("wrong"), Call("srv", "echo")));
  EXPECT_FALSE(begin(std::nullopt, Call("srv", "echo")));
  EXPECT_FALSE(begin(std::string("dba-token"), Call("srv", "echo"))) << "an approver";
  EXPECT_FALSE(begin(std::string("agent-token"), Call("nope", "echo")));
  SubmitRequest keyed = Call("srv", "echo");
  keyed.idempotency_key = "k1";
  EXPECT_FALSE(begin(std::string("agent-token"), keyed));
  EXPECT_EQ(AuditLength(), before) << "a declined call is left to Submit, which audits it";
  // mode: dry-run calls nothing, so nothing may be sent ahead of its decision.
  gateway_.reset();
  LoadPolicy("mode: dry-run\n");
  EXPECT_FALSE(begin(std::string("agent-token"), Call("srv", "echo")));
}

// `airlock exec` (GatewayOptions::journal_reads): a command's read is one synced line in a
// journal, its full effect and result; the store takes it in when enough wait, or at the
// start of any other command, as the same record a store commit would have made.
class CommandJournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "the shell sandbox needs root";
    dir_ = fs::temp_directory_path() / ("airlock-gw-cmd-" + RandomHex(6));
    fs::create_directories(dir_ / "ws");
    std::ofstream(dir_ / "ws" / "a.txt") << "alpha\n";
    const std::string yaml =
        "version: 1\n"
        "store: ./state/airlock.db\n"
        "agents:\n  - {name: bot, token_sha256: \"" +
        Sha256Hex("agent-token") +
        "\", scopes: [box]}\n"
        "approvers:\n  - {name: dba, token_sha256: \"" +
        Sha256Hex("dba-token") +
        "\"}\n"
        "targets:\n  box: {kind: shell, workspace: ./ws}\n";
    auto policy = LoadPolicyText(yaml, (dir_ / "airlock.yaml").string());
    ASSERT_TRUE(policy.ok()) << policy.status().ToString();
    policy_ = *policy;
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  // One command as `airlock exec` runs it: its own gateway, opened and closed, its sandbox
  // built (forked) before the store opens.
  Action Exec(std::vector<std::string> argv, bool journal = true) {
    GatewayOptions o;
    o.journal_reads = journal;
    o.prestart_target = "box";
    o.prestart_args = {{"argv", argv}};
    auto g = Gateway::Open(policy_, o);
    EXPECT_TRUE(g.ok()) << g.status().ToString();
    if (!g.ok()) return {};
    Outcome out = (*g)->Submit(std::string("agent-token"), {"box", "shell", o.prestart_args});
    EXPECT_TRUE(out.status.ok()) << out.status.ToString();
    return out.action.value_or(Action{});
  }
  // The lines waiting in the command journal (up to its first NUL).
  size_t JournalLines() {
    std::ifstream in(policy_->store_path + ".journal/" + CommandJournal::kFileName,
                     std::ios::binary);
    std::string data(std::istreambuf_iterator<char>(in), {});
    data.resize(std::min(data.size(), data.find('\0')));
    return static_cast<size_t>(std::count(data.begin(), data.end(), '\n'));
  }
  // The store as it is, without a gateway's start (which would take the journals in).
  std::optional<Action> Stored(const std::string& id) {
    auto store = OpenSqliteStore(policy_->store_path);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    std::optional<Action> found;
    EXPECT_TRUE((*store)
                    ->Read([&](StoreTxn& t) -> Status {
                      ASSIGN_OR_RETURN(found, t.GetAction(id));
                      return Status::Ok();
                    })
                    .ok());
    return found;
  }
  fs::path dir_;
  std::shared_ptr<const Policy> policy_;
};

TEST_F(CommandJournalTest, AReadIsJournaledAndTakenInAsTheRecordAStoreCommitMakes) {
  const Action read = Exec({"cat", "a.txt"});
  ASSERT_EQ(read.status, ActionStatus::kApplied);
  ASSERT_EQ(read.risk, Risk::kRead);
  EXPECT_EQ(read.result.value("stdout", ""), "alpha\n") << "the caller gets the output";
  EXPECT_EQ(JournalLines(), 1u);
  EXPECT_FALSE(Stored(read.id).has_value()) << "a line, not a store commit";
  // The same read without the journal, for comparison: a store commit.
  const Action committed = Exec({"cat", "a.txt"}, /*journal=*/false);
  EXPECT_TRUE(Stored(committed.id).has_value());
  EXPECT_EQ(JournalLines(), 0u) << "a command that does not journal takes every line in";
  auto taken = Stored(read.id);
  ASSERT_TRUE(taken.has_value());
  auto direct = Stored(committed.id);
  EXPECT_EQ(taken->status, ActionStatus::kApplied);
  EXPECT_EQ(taken->risk, Risk::kRead);
  EXPECT_EQ(taken->reasons, direct->reasons);
  EXPECT_EQ(taken->result, direct->result) << "the summary, not the output";
  EXPECT_FALSE(taken->result.contains("stdout"));
  EXPECT_EQ(taken->result.value("stdout_bytes", -1), 6);
  EXPECT_EQ(EffectToJson(taken->effect), EffectToJson(read.effect)) << "the effect as run";
  EXPECT_EQ(taken->created_ms, read.created_ms);

  auto g = Gateway::Open(policy_);
  ASSERT_TRUE(g.ok());
  auto verify = (*g)->VerifyAudit();
  ASSERT_TRUE(verify.ok());
  EXPECT_TRUE(verify->ok) << verify->problem;
  std::vector<std::string> events;
  ASSERT_TRUE((*g)->ScanAudit(std::nullopt, read.id,
                              [&](const AuditEvent& e) {
                                events.push_back(e.event);
                                EXPECT_EQ(e.principal, "agent:bot");
                                EXPECT_FALSE(e.payload.contains("recovered"));
                                return true;
                              })
                  .ok());
  EXPECT_EQ(events, std::vector<std::string>{"read"});
}

TEST_F(CommandJournalTest, CommandsTakeTheJournalsInOnlyOnceEnoughWait) {
  std::vector<std::string> ids;
  for (size_t i = 0; i < GatewayOptions::kJournaledReadsTakenAt; ++i) {
    ids.push_back(Exec({"true"}).id);
    ASSERT_EQ(JournalLines(), i + 1) << "fewer than kJournaledReadsTakenAt wait: left";
  }
  for (const std::string& id : ids) EXPECT_FALSE(Stored(id).has_value());
  // The next command's start finds enough: all of them, in one batch.
  const std::string next = Exec({"true"}).id;
  EXPECT_EQ(JournalLines(), 1u) << "only the last command's own";
  for (const std::string& id : ids) EXPECT_TRUE(Stored(id).has_value()) << id;
  EXPECT_FALSE(Stored(next).has_value());
}

TEST_F(CommandJournalTest, AWriteAndAJournalThatCannotBeUsedGoToTheStore) {
  // A write is recorded as before: held or applied in the store, never journaled.
  const Action write = Exec({"sh", "-c", "echo beta > b.txt"});
  EXPECT_EQ(write.status, ActionStatus::kApplied) << "low: committed at once";
  EXPECT_TRUE(Stored(write.id).has_value());
  EXPECT_EQ(JournalLines(), 0u);
  // A journal directory others could reach is refused: the read is committed instead.
  fs::create_directories(policy_->store_path + ".journal");
  fs::permissions(policy_->store_path + ".journal", fs::perms::owner_all | fs::perms::others_read);
  const Action read = Exec({"cat", "b.txt"});
  ASSERT_EQ(read.status, ActionStatus::kApplied);
  EXPECT_EQ(read.result.value("stdout", ""), "beta\n");
  EXPECT_TRUE(Stored(read.id).has_value()) << "recorded in the store";
  EXPECT_EQ(JournalLines(), 0u);
}

}  // namespace
}  // namespace airlock
