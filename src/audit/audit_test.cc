#include "audit/audit.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

#include "core/clock.h"
#include "core/hash.h"
#include "core/json.h"

namespace airlock::audit {
namespace {

namespace fs = std::filesystem;

constexpr int kEvents = 40;

// A store with a chain of 40 events, tampered with through a separate plain sqlite3
// connection, as an attacker with write access to the file would.
class AuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "airlock_audit_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = (dir_ / "airlock.db").string();
    auto store = OpenSqliteStore(path_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
    for (int i = 1; i <= kEvents; ++i) {
      ASSERT_TRUE(store_
                      ->Transact([&](StoreTxn& t) {
                        AuditEvent e;
                        e.at_ms = 1'700'000'000'000 + i;
                        e.action_id = "act_" + std::to_string(i / 4);
                        e.principal = i % 3 ? "agent:support-bot" : "approver:alice";
                        e.event = i % 2 ? "submitted" : "applied";
                        e.payload = {{"sql", "UPDATE t SET x = " + std::to_string(i)}, {"rows", i}};
                        return t.AppendAudit(e).status();
                      })
                      .ok());
    }
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  void Tamper(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    std::string msg = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << msg;
  }

  AuditEvent EventAt(int64_t seq) {
    AuditEvent found;
    EXPECT_TRUE(store_
                    ->ScanAudit(seq - 1, "",
                                [&](const AuditEvent& e) {
                                  found = e;
                                  return false;
                                })
                    .ok());
    return found;
  }

  VerifyReport MustVerify() {
    auto report = Verify(*store_);
    EXPECT_TRUE(report.ok()) << report.status().ToString();
    return report.ok() ? *report : VerifyReport{};
  }

  static std::string Quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
      out += c;
      if (c == '\'') out += '\'';
    }
    return out + "'";
  }

  fs::path dir_;
  std::string path_;
  std::unique_ptr<Store> store_;
};

TEST_F(AuditTest, IntactChainVerifies) {
  VerifyReport r = MustVerify();
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.events, kEvents);
  EXPECT_EQ(r.first_bad_seq, 0);
  EXPECT_EQ(r.problem, "");
}

TEST_F(AuditTest, EmptyChainVerifies) {
  store_.reset();
  fs::remove(path_);
  store_ = std::move(OpenSqliteStore(path_)).value();
  VerifyReport r = MustVerify();
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.events, 0);
}

TEST_F(AuditTest, ModifiedPayloadIsFound) {
  Tamper("UPDATE audit SET payload = '{\"rows\":0,\"sql\":\"SELECT 1\"}' WHERE seq = 17");
  VerifyReport r = MustVerify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 17);
  EXPECT_EQ(r.problem, "event 17 was modified: its hash does not match its contents");
}

TEST_F(AuditTest, ModifiedPrincipalIsFound) {
  Tamper("UPDATE audit SET principal = 'approver:bob' WHERE seq = 3");
  VerifyReport r = MustVerify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 3);
}

TEST_F(AuditTest, DeletedMiddleEventIsFound) {
  Tamper("DELETE FROM audit WHERE seq = 17");
  VerifyReport r = MustVerify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 17);
  EXPECT_EQ(r.problem, "event 17 is missing (deleted)");
}

TEST_F(AuditTest, DeletedLastEventIsFoundByTheHead) {
  Tamper("DELETE FROM audit WHERE seq = 40");
  VerifyReport r = MustVerify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 40);
  EXPECT_EQ(r.problem,
            "the chain ends at 39 but 40 events were recorded (events removed from the end)");
}

TEST_F(AuditTest, ForgedEventWithValidHashInTheMiddleIsFound) {
  // The attacker replaces event 17 with one of their own, hashed correctly onto event 16:
  // event 18 no longer follows it.
  AuditEvent forged = EventAt(17);
  forged.principal = "approver:alice";
  forged.event = "approved";
  forged.hash = ComputeEventHash(forged.prev_hash, forged);
  Tamper("UPDATE audit SET principal = 'approver:alice', event = 'approved', hash = " +
         Quote(forged.hash) + " WHERE seq = 17");
  VerifyReport r = MustVerify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 18);
  EXPECT_EQ(r.problem, "event 18 does not follow event 17 (inserted or reordered)");
}

TEST_F(AuditTest, ForgedEventAppendedOutsideAirlockIsFound) {
  AuditEvent last = EventAt(kEvents);
  AuditEvent forged;
  forged.seq = kEvents + 1;
  forged.at_ms = last.at_ms + 1;
  forged.principal = "approver:alice";
  forged.event = "approved";
  forged.action_id = "act_1";
  forged.payload = Json::object();
  forged.prev_hash = last.hash;
  forged.hash = ComputeEventHash(forged.prev_hash, forged);
  Tamper("INSERT INTO audit VALUES (41, " + std::to_string(forged.at_ms) +
         ", 'act_1', 'approver:alice', 'approved', '{}', " + Quote(forged.prev_hash) + ", " +
         Quote(forged.hash) + ")");
  VerifyReport r = MustVerify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 41);
  EXPECT_NE(r.problem.find("the chain ends at 41 but only 40 events were recorded"),
            std::string::npos)
      << r.problem;
}

TEST_F(AuditTest, ForgedEventBeforeTheFirstIsFound) {
  Tamper("INSERT INTO audit VALUES (0, 1, '', 'airlock', 'x', '{}', " + Quote(kGenesisHash) +
         ", 'abc')");
  VerifyReport r = MustVerify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 1);
}

TEST_F(AuditTest, SwappedEventsAreFound) {
  // Rows 10 and 11 exchange everything but their sequence numbers.
  Tamper(
      "CREATE TEMP TABLE t AS SELECT * FROM audit WHERE seq IN (10, 11);"
      "UPDATE audit SET (at_ms, action_id, principal, event, payload, prev_hash, hash) = "
      "(SELECT at_ms, action_id, principal, event, payload, prev_hash, hash FROM t "
      " WHERE t.seq = 21 - audit.seq) WHERE seq IN (10, 11);");
  ASSERT_EQ(EventAt(10).payload["rows"], 11);
  VerifyReport r = MustVerify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 10);
  EXPECT_EQ(r.problem, "event 10 does not follow event 9 (inserted or reordered)");
}

TEST_F(AuditTest, ChangedHashIsFound) {
  Tamper("UPDATE audit SET hash = " + Quote(std::string(64, 'f')) + " WHERE seq = 20");
  VerifyReport r = MustVerify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 20);
  EXPECT_EQ(r.problem, "event 20 was modified: its hash does not match its contents");
}

TEST_F(AuditTest, ChangedRecordedHeadIsFound) {
  Tamper("UPDATE meta SET value = " + Quote(std::string(64, 'e')) +
         " WHERE key = 'audit_head_hash'");
  VerifyReport r = MustVerify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 40);
}

TEST_F(AuditTest, UnreadablePayloadIsAFailureNotACrash) {
  Tamper("UPDATE audit SET payload = '{\"rows\": [1, 2' WHERE seq = 12");
  VerifyReport r = MustVerify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 12);
  EXPECT_NE(r.problem.find("audit event 12"), std::string::npos) << r.problem;
}

TEST_F(AuditTest, AppendAfterTamperingKeepsTheDamageVisible) {
  Tamper("DELETE FROM audit WHERE seq = 5");
  ASSERT_TRUE(
      store_
          ->Transact([](StoreTxn& t) {
            return t.AppendAudit(AuditEvent{0, 0, "", "airlock", "started", {}, "", "", ""}).status();
          })
          .ok());
  VerifyReport r = MustVerify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 5);
}

TEST(AuditFormatTest, EventLineIsOneAlignedLine) {
  AuditEvent e;
  e.seq = 17;
  e.at_ms = 1'795'000'000'123;
  e.action_id = "act_0123456789abcdef";
  e.principal = "agent:support-bot";
  e.event = "submitted";
  e.payload = {{"sql", "DELETE FROM users\nWHERE 1=1"}, {"risk", "critical"}, {"rows", 3}};
  std::string line = FormatEventLine(e);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.rfind("     17  " + FormatTimeMs(e.at_ms) + "  agent:support-bot ", 0), 0u)
      << line;
  EXPECT_NE(line.find("submitted"), std::string::npos);
  EXPECT_NE(line.find("act_0123456789abcdef"), std::string::npos);
  EXPECT_NE(line.find("risk=\"critical\""), std::string::npos) << line;
  EXPECT_NE(line.find("rows=3"), std::string::npos) << line;

  AuditEvent other = e;
  other.seq = 1234;
  other.principal = "airlock";
  // Columns line up: the event name starts at the same offset.
  EXPECT_EQ(FormatEventLine(other).find("submitted"), line.find("submitted"));

  other.payload = {{"sql", std::string(500, 'x')}};
  EXPECT_LT(FormatEventLine(other).size(), 250u);
}

TEST(AuditFormatTest, JsonLineRoundTrips) {
  AuditEvent e;
  e.seq = 3;
  e.at_ms = 42;
  e.principal = "approver:alice";
  e.event = "approved";
  e.payload = {{"reason", "line1\nline2"}};
  e.prev_hash = kGenesisHash;
  e.hash = ComputeEventHash(e.prev_hash, e);
  std::string line = ToJsonLine(e);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto parsed = ParseJson(line);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed, AuditEventToJson(e));
}

}  // namespace
}  // namespace airlock::audit
