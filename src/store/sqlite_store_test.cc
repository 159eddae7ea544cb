#include <gtest/gtest.h>
#include <seccomp.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <latch>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>

#include "audit/audit.h"
#include "core/json.h"
#include "store/change_counter.h"
#include "store/store.h"

namespace airlock {
namespace {

namespace fs = std::filesystem;

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "airlock_store_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = (dir_ / "state" / "airlock.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Store> Open(const StoreOptions& options = {}) {
    auto store = OpenSqliteStore(path_, options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  static std::string ReadBytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static void WriteBytes(const std::string& path, const std::string& bytes) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream out(path, std::ios::binary);
    out << bytes;
  }
  // Whether a WAL file starts with a WAL header SQLite would read (its magic number, big- or
  // little-endian checksums): frames behind one that is not are never replayed.
  static bool WalHeaderValid(const std::string& wal) {
    const std::string head = ReadBytes(wal).substr(0, 4);
    return head == std::string("\x37\x7f\x06\x82", 4) || head == std::string("\x37\x7f\x06\x83", 4);
  }
  // The first column of the first row of `sql`, as text, read through a plain read-only
  // sqlite3 connection of its own; "" (and a failure) if there is none.
  static std::string SqlValue(const std::string& path, const char* sql) {
    sqlite3* db = nullptr;
    sqlite3_stmt* s = nullptr;
    std::string value;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &s, nullptr) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(s, 0);
      if (text != nullptr) value = reinterpret_cast<const char*>(text);
    } else {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return value;
  }
  // Runs SQL on the file through a plain sqlite3 connection of its own.
  static void Sql(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    std::string msg = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << msg;
  }

  fs::path dir_;
  std::string path_;
};

int64_t FileBytes(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

Action FullAction(const std::string& id, int64_t created_ms) {
  Action a;
  a.id = id;
  a.created_ms = created_ms;
  a.updated_ms = created_ms + 5;
  a.agent = "support-bot";
  a.target = "app-db";
  a.kind = "sql";
  a.args = {{"sql", "DELETE FROM users WHERE id = 7"}, {"params", {1, "two", nullptr}}};
  a.status = ActionStatus::kPending;
  a.risk = Risk::kHigh;
  a.reasons = {"deletes 1 row of users", "users holds personal data"};
  a.effect.kind = "sql";
  a.effect.tables.push_back(TableChange{"users", 0, 0, 1, 41, false, false, true});
  DdlOp op;
  op.op = "drop_index";
  op.object = "users_by_mail";
  op.table = "users";
  op.indexes = {"a", "b"};
  op.detail = "detail";
  a.effect.ddl.push_back(op);
  a.effect.preview.push_back(
      RowChange{"users", "delete", {{"id", 7}, {"mail", "x@example.com"}}, nullptr});
  a.effect.preview_omitted = 3;
  a.effect.effect_hash = std::string(64, 'a');
  a.effect.extra = {{"statements", 1}};
  a.result = {{"rows", Json::array({Json::array({1, "x"})})}};
  a.quorum = 2;
  a.expires_ms = created_ms + 3'600'000;
  a.error = "none yet";
  a.reversible = false;
  a.dry_run = true;
  a.would_status = "pending";
  return a;
}

TEST_F(SqliteStoreTest, ActionAndVotesRoundTrip) {
  auto store = Open();
  Action a = FullAction("act_00000000000000a1", 1000);
  Vote v1{"alice", true, "looks right", 2000};
  Vote v2{"bob", false, "too many rows", 1500};
  ASSERT_TRUE(store
                  ->Transact([&](StoreTxn& t) -> Status {
                    RETURN_IF_ERROR(t.InsertAction(a));
                    RETURN_IF_ERROR(t.AddVote(a.id, v1));
                    return t.AddVote(a.id, v2);
                  })
                  .ok());

  std::optional<Action> got;
  ASSERT_TRUE(store
                  ->Read([&](StoreTxn& t) -> Status {
                    ASSIGN_OR_RETURN(got, t.GetAction(a.id));
                    return Status::Ok();
                  })
                  .ok());
  ASSERT_TRUE(got.has_value());
  a.votes = {v2, v1};  // ordered by time
  EXPECT_EQ(ActionToJson(*got), ActionToJson(a));
  EXPECT_EQ(got->effect.preview_omitted, 3);
  EXPECT_EQ(got->effect.extra, a.effect.extra);
  EXPECT_EQ(got->result, a.result);
}

// TransactDue hands over only pending actions whose time has come, soonest first, at most
// `limit`; a failing closure commits nothing.
TEST_F(SqliteStoreTest, TransactDueListsDuePendingActionsSoonestFirst) {
  auto store = Open();
  ASSERT_TRUE(store);
  const std::vector<std::pair<std::string, int64_t>> rows = {
      {"act_00000000000000d1", 5000},
      {"act_00000000000000d2", 3000},
      {"act_00000000000000d3", 9000},
      {"act_00000000000000d4", 4000},
      {"act_00000000000000d5", 0}};  // no expiry at all
  ASSERT_TRUE(store
                  ->Transact([&](StoreTxn& t) -> Status {
                    for (const auto& [id, expires] : rows) {
                      Action a = FullAction(id, 1000);
                      a.expires_ms = expires;
                      RETURN_IF_ERROR(t.InsertAction(a));
                    }
                    Action done = FullAction("act_00000000000000d6", 1000);
                    done.expires_ms = 2000;
                    done.status = ActionStatus::kApplied;  // due, but not pending
                    return t.InsertAction(done);
                  })
                  .ok());
  std::vector<std::string> seen;
  ASSERT_TRUE(store
                  ->TransactDue(6000, 2,
                                [&](StoreTxn&, std::vector<Action>& due) -> Status {
                                  for (const Action& a : due) seen.push_back(a.id);
                                  return Status::Ok();
                                })
                  .ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"act_00000000000000d2", "act_00000000000000d4"}));
  seen.clear();
  ASSERT_TRUE(store
                  ->TransactDue(6000, 0,
                                [&](StoreTxn&, std::vector<Action>& due) -> Status {
                                  for (const Action& a : due) seen.push_back(a.id);
                                  return Status::Ok();
                                })
                  .ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"act_00000000000000d2", "act_00000000000000d4",
                                            "act_00000000000000d1"}));
  Status failed = store->TransactDue(6000, 0, [&](StoreTxn& t, std::vector<Action>& due) {
    due[0].status = ActionStatus::kExpired;
    EXPECT_TRUE(t.UpdateAction(due[0]).ok());
    return Status::IoError("disk full");
  });
  EXPECT_FALSE(failed.ok());
  ASSERT_TRUE(store
                  ->Read([&](StoreTxn& t) -> Status {
                    auto a = t.GetAction("act_00000000000000d2");
                    EXPECT_TRUE(a.ok() && a->has_value());
                    if (a.ok() && a->has_value()) {
                      EXPECT_EQ((*a)->status, ActionStatus::kPending);
                    }
                    return Status::Ok();
                  })
                  .ok());
}

// Every CLI command expires what is due; with nothing due that must not take (or wait for)
// the store's write lock, which another process may hold.
TEST_F(SqliteStoreTest, TransactDueWithNothingDueNeedsNoWriteLock) {
  auto store = Open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store
                  ->Transact([&](StoreTxn& t) -> Status {
                    Action later = FullAction("act_00000000000000e1", 1000);
                    later.expires_ms = 9000;
                    return t.InsertAction(later);
                  })
                  .ok());
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  bool called = false;
  Status st = store->TransactDue(6000, 0, [&](StoreTxn&, std::vector<Action>&) -> Status {
    called = true;
    return Status::Ok();
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_FALSE(called) << "nothing is due at 6000";
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  std::vector<std::string> seen;
  ASSERT_TRUE(store
                  ->TransactDue(9000, 0,
                                [&](StoreTxn&, std::vector<Action>& due) -> Status {
                                  for (const Action& a : due) seen.push_back(a.id);
                                  return Status::Ok();
                                })
                  .ok());
  EXPECT_EQ(seen, std::vector<std::string>{"act_00000000000000e1"});
}

TEST_F(SqliteStoreTest, MissingActionIsNullopt) {
  auto store = Open();
  ASSERT_TRUE(store
                  ->Read([&](StoreTxn& t) -> Status {
                    ASSIGN_OR_RETURN(auto got, t.GetAction("act_nope"));
                    EXPECT_FALSE(got.has_value());
                    return Status::Ok();
                  })
                  .ok());
}

TEST_F(SqliteStoreTest, SecondVoteBySameApproverIsRefused) {
  auto store = Open();
  Action a = FullAction("act_00000000000000b1", 1000);
  ASSERT_TRUE(store->Transact([&](StoreTxn& t) { return t.InsertAction(a); }).ok());
  ASSERT_TRUE(
      store->Transact([&](StoreTxn& t) {
             return t.AddVote(a.id, Vote{"alice", true, "", 10});
           })
          .ok());
  Status st = store->Transact([&](StoreTxn& t) {
    return t.AddVote(a.id, Vote{"alice", false, "changed my mind", 11});
  });
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(st.message(), "alice already voted on act_00000000000000b1");

  Status missing = store->Transact([&](StoreTxn& t) {
    return t.AddVote("act_missing", Vote{"alice", true, "", 10});
  });
  EXPECT_EQ(missing.code(), StatusCode::kNotFound) << missing.ToString();

  ASSERT_TRUE(store
                  ->Read([&](StoreTxn& t) -> Status {
                    ASSIGN_OR_RETURN(auto got, t.GetAction(a.id));
                    EXPECT_EQ(got->votes.size(), 1u);
                    EXPECT_TRUE(got->votes[0].approve);
                    return Status::Ok();
                  })
                  .ok());
}

TEST_F(SqliteStoreTest, DuplicateInsertAndMissingUpdate) {
  auto store = Open();
  Action a = FullAction("act_00000000000000c1", 1000);
  ASSERT_TRUE(store->Transact([&](StoreTxn& t) { return t.InsertAction(a); }).ok());
  Status dup = store->Transact([&](StoreTxn& t) { return t.InsertAction(a); });
  EXPECT_EQ(dup.code(), StatusCode::kFailedPrecondition);

  a.status = ActionStatus::kApplied;
  a.risk = Risk::kLow;
  a.error.clear();
  ASSERT_TRUE(store->Transact([&](StoreTxn& t) { return t.UpdateAction(a); }).ok());
  ASSERT_TRUE(store
                  ->Read([&](StoreTxn& t) -> Status {
                    ASSIGN_OR_RETURN(auto got, t.GetAction(a.id));
                    EXPECT_EQ(got->status, ActionStatus::kApplied);
                    EXPECT_EQ(got->risk, Risk::kLow);
                    EXPECT_EQ(got->error, "");
                    return Status::Ok();
                  })
                  .ok());

  Action other = FullAction("act_00000000000000c2", 1000);
  Status missing = store->Transact([&](StoreTxn& t) { return t.UpdateAction(other); });
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
}

TEST_F(SqliteStoreTest, FailedTransactLeavesNothing) {
  auto store = Open();
  Action a = FullAction("act_00000000000000d1", 1000);
  Status st = store->Transact([&](StoreTxn& t) -> Status {
    RETURN_IF_ERROR(t.InsertAction(a));
    RETURN_IF_ERROR(t.PutUndo(a.id, UndoRecord{"sqlite", "x", true, ""}));
    RETURN_IF_ERROR(t.PutBreaker(Breaker{"app-db", "bot", true, 5, "rate"}));
    RETURN_IF_ERROR(
        t.AppendAudit(AuditEvent{0, 0, a.id, "agent:bot", "submitted", {}, "", "", ""}).status());
    return Status::Conflict("the effect changed");
  });
  EXPECT_EQ(st.code(), StatusCode::kConflict);
  EXPECT_EQ(st.message(), "the effect changed");

  ASSERT_TRUE(store
                  ->Read([&](StoreTxn& t) -> Status {
                    ASSIGN_OR_RETURN(auto got, t.GetAction(a.id));
                    EXPECT_FALSE(got.has_value());
                    ASSIGN_OR_RETURN(auto undo, t.GetUndo(a.id));
                    EXPECT_FALSE(undo.has_value());
                    ASSIGN_OR_RETURN(auto breakers, t.ListBreakers());
                    EXPECT_TRUE(breakers.empty());
                    return Status::Ok();
                  })
                  .ok());
  auto head = store->RecordedHead();
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->seq, 0);
  EXPECT_EQ(head->hash, kGenesisHash);

  // The next append after the rollback takes seq 1, chained to genesis.
  AuditEvent stored;
  ASSERT_TRUE(store
                  ->Transact([&](StoreTxn& t) -> Status {
                    ASSIGN_OR_RETURN(stored, t.AppendAudit(AuditEvent{
                                                 0, 0, "", "airlock", "started", {}, "", "", ""}));
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_EQ(stored.seq, 1);
  EXPECT_EQ(stored.prev_hash, kGenesisHash);
  EXPECT_GT(stored.at_ms, 0);
  EXPECT_EQ(stored.hash, ComputeEventHash(kGenesisHash, stored));
}

TEST_F(SqliteStoreTest, ExceptionInTransactIsAnErrorAndRollsBack) {
  auto store = Open();
  Status st = store->Transact([&](StoreTxn& t) -> Status {
    RETURN_IF_ERROR(t.PutBreaker(Breaker{"a", "b", true, 1, ""}));
    throw std::runtime_error("boom");
  });
  EXPECT_EQ(st.code(), StatusCode::kInternal);
  EXPECT_NE(st.message().find("boom"), std::string::npos);
  ASSERT_TRUE(store
                  ->Read([&](StoreTxn& t) -> Status {
                    ASSIGN_OR_RETURN(auto b, t.GetBreaker("a", "b"));
                    EXPECT_FALSE(b.has_value());
                    return Status::Ok();
                  })
                  .ok());
}

TEST_F(SqliteStoreTest, CountWritesSinceCountsOnlyWritesInTheWindow) {
  auto store = Open();
  ASSERT_TRUE(
      store
          ->Transact([&](StoreTxn& t) -> Status {
            int n = 0;
            auto add = [&](const std::string& agent, const std::string& target, Risk risk,
                           int64_t created, ActionStatus status) {
              Action a = FullAction("act_" + std::to_string(++n), created);
              a.agent = agent;
              a.target = target;
              a.risk = risk;
              a.status = status;
              return t.InsertAction(a);
            };
            RETURN_IF_ERROR(add("bot", "mail", Risk::kLow, 100, ActionStatus::kApplied));
            RETURN_IF_ERROR(add("bot", "mail", Risk::kHigh, 200, ActionStatus::kDenied));
            RETURN_IF_ERROR(add("bot", "mail", Risk::kCritical, 300, ActionStatus::kPending));
            RETURN_IF_ERROR(
                add("bot", "mail", Risk::kRead, 300, ActionStatus::kApplied));            // a read
            RETURN_IF_ERROR(add("bot", "mail", Risk::kLow, 50, ActionStatus::kApplied));  // too old
            RETURN_IF_ERROR(add("other", "mail", Risk::kLow, 300, ActionStatus::kApplied));
            return add("bot", "db", Risk::kLow, 300, ActionStatus::kApplied);
          })
          .ok());
  ASSERT_TRUE(store
                  ->Read([&](StoreTxn& t) -> Status {
                    ASSIGN_OR_RETURN(int64_t n, t.CountWritesSince("bot", "mail", 100));
                    EXPECT_EQ(n, 3);
                    ASSIGN_OR_RETURN(n, t.CountWritesSince("bot", "mail", 301));
                    EXPECT_EQ(n, 0);
                    ASSIGN_OR_RETURN(n, t.CountWritesSince("bot", "mail", 0));
                    EXPECT_EQ(n, 4);
                    return Status::Ok();
                  })
                  .ok());
}

TEST_F(SqliteStoreTest, ListActionsFiltersOldestFirst) {
  auto store = Open();
  ASSERT_TRUE(store
                  ->Transact([&](StoreTxn& t) -> Status {
                    const int64_t created[] = {300, 100, 200, 400};
                    for (int i = 0; i < 4; ++i) {
                      Action a = FullAction("act_" + std::to_string(i), created[i]);
                      a.status = i == 3 ? ActionStatus::kApplied : ActionStatus::kPending;
                      a.agent = i == 2 ? "other" : "bot";
                      RETURN_IF_ERROR(t.InsertAction(a));
                    }
                    return Status::Ok();
                  })
                  .ok());
  ASSERT_TRUE(store
                  ->Read([&](StoreTxn& t) -> Status {
                    ASSIGN_OR_RETURN(auto all, t.ListActions({}));
                    EXPECT_EQ(all.size(), 4u);
                    EXPECT_EQ(all[0].id, "act_1");
                    EXPECT_EQ(all[3].id, "act_3");
                    ASSIGN_OR_RETURN(auto pending,
                                     t.ListActions({ActionStatus::kPending, "", 1000, "", false}));
                    if (pending.size() != 3u) return Status::Internal("expected 3 pending");
                    EXPECT_EQ(pending[0].id, "act_1");
                    EXPECT_EQ(pending[1].id, "act_2");
                    EXPECT_EQ(pending[2].id, "act_0");
                    ASSIGN_OR_RETURN(
                        auto bots, t.ListActions({ActionStatus::kPending, "bot", 1000, "", false}));
                    EXPECT_EQ(bots.size(), 2u);
                    ASSIGN_OR_RETURN(auto first, t.ListActions({std::nullopt, "", 1, "", false}));
                    EXPECT_EQ(first.size(), 1u);
                    EXPECT_EQ(first[0].id, "act_1");
                    ActionFilter newest{std::nullopt, "", 1, "", false};
                    newest.newest_first = true;
                    ASSIGN_OR_RETURN(auto last, t.ListActions(newest));
                    EXPECT_EQ(last.size(), 1u);
                    EXPECT_EQ(last[0].id, "act_3");
                    ASSIGN_OR_RETURN(auto counts, t.CountActions());
                    int64_t total = 0;
                    for (const auto& c : counts) total += c.count;
                    EXPECT_EQ(total, 4);
                    return Status::Ok();
                  })
                  .ok());
}

TEST_F(SqliteStoreTest, Breakers) {
  auto store = Open();
  ASSERT_TRUE(
      store
          ->Transact([&](StoreTxn& t) -> Status {
            RETURN_IF_ERROR(t.PutBreaker(Breaker{"mail", "bot", true, 100, "20/min exceeded"}));
            return t.PutBreaker(Breaker{"db", "bot", false, 50, ""});
          })
          .ok());
  ASSERT_TRUE(store
                  ->Transact([&](StoreTxn& t) {
                    return t.PutBreaker(Breaker{"mail", "bot", false, 200, "reset by alice"});
                  })
                  .ok());
  ASSERT_TRUE(store
                  ->Read([&](StoreTxn& t) -> Status {
                    ASSIGN_OR_RETURN(auto b, t.GetBreaker("mail", "bot"));
                    EXPECT_TRUE(b.has_value());
                    EXPECT_FALSE(b->open);
                    EXPECT_EQ(b->changed_ms, 200);
                    EXPECT_EQ(b->reason, "reset by alice");
                    ASSIGN_OR_RETURN(auto none, t.GetBreaker("mail", "other"));
                    EXPECT_FALSE(none.has_value());
                    ASSIGN_OR_RETURN(auto all, t.ListBreakers());
                    EXPECT_EQ(all.size(), 2u);
                    EXPECT_EQ(all[0].target, "db");
                    return Status::Ok();
                  })
                  .ok());
}

TEST_F(SqliteStoreTest, UndoKeepsArbitraryBytes) {
  auto store = Open();
  std::string bytes;
  for (int i = 0; i < 512; ++i) bytes.push_back(static_cast<char>(i % 256));  // NULs included
  Action a = FullAction("act_e1", 1);
  Action b = FullAction("act_e2", 2);
  ASSERT_TRUE(store
                  ->Transact([&](StoreTxn& t) -> Status {
                    RETURN_IF_ERROR(t.InsertAction(a));
                    RETURN_IF_ERROR(t.InsertAction(b));
                    RETURN_IF_ERROR(t.PutUndo(a.id, UndoRecord{"sqlite", bytes, true, ""}));
                    return t.PutUndo(b.id, UndoRecord{"smtp", "", false, "mail cannot be unsent"});
                  })
                  .ok());
  Status orphan = store->Transact([&](StoreTxn& t) {
    return t.PutUndo("act_missing", UndoRecord{"sqlite", "x", true, ""});
  });
  EXPECT_EQ(orphan.code(), StatusCode::kNotFound);
  ASSERT_TRUE(store
                  ->Read([&](StoreTxn& t) -> Status {
                    ASSIGN_OR_RETURN(auto u, t.GetUndo(a.id));
                    EXPECT_TRUE(u.has_value());
                    EXPECT_EQ(u->data, bytes);
                    EXPECT_EQ(u->data.size(), 512u);
                    EXPECT_TRUE(u->reversible);
                    ASSIGN_OR_RETURN(auto v, t.GetUndo(b.id));
                    EXPECT_EQ(v->data, "");
                    EXPECT_FALSE(v->reversible);
                    EXPECT_EQ(v->note, "mail cannot be unsent");
                    ASSIGN_OR_RETURN(auto none, t.GetUndo("act_other"));
                    EXPECT_FALSE(none.has_value());
                    return Status::Ok();
                  })
                  .ok());
}

TEST_F(SqliteStoreTest, ReadRefusesWrites) {
  auto store = Open();
  Status st = store->Read([&](StoreTxn& t) {
    return t.PutBreaker(Breaker{"a", "b", true, 1, ""});
  });
  EXPECT_FALSE(st.ok());
  Status audit = store->Read([&](StoreTxn& t) {
    return t.AppendAudit(AuditEvent{0, 0, "", "airlock", "x", {}, "", "", ""}).status();
  });
  EXPECT_FALSE(audit.ok());
  EXPECT_EQ(store->RecordedHead()->seq, 0);
}

TEST_F(SqliteStoreTest, CreatesDirectoriesAndUsesWal) {
  path_ = (dir_ / "a" / "b" / "c" / "airlock.db").string();
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(fs::exists(path_));
  EXPECT_EQ(SqlValue(path_, "SELECT value FROM meta WHERE key = 'schema_version'"), "1");
  EXPECT_EQ(SqlValue(path_, "PRAGMA journal_mode"), "wal");
}

TEST_F(SqliteStoreTest, MissingFileWithoutCreateIsNotFound) {
  StoreOptions options;
  options.create_if_missing = false;
  auto store = OpenSqliteStore(path_, options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kNotFound);
  EXPECT_NE(store.status().message().find(path_), std::string::npos);
  EXPECT_FALSE(fs::exists(path_));
}

TEST_F(SqliteStoreTest, GarbageFileIsCorruptionAndUntouched) {
  std::string garbage;
  for (int i = 0; i < 8192; ++i) garbage.push_back(static_cast<char>((i * 7919) % 251));
  WriteBytes(path_, garbage);
  auto store = OpenSqliteStore(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(store.status().message().rfind(path_ + " is not an airlock store: ", 0), 0u)
      << store.status().message();
  EXPECT_EQ(ReadBytes(path_), garbage);
}

TEST_F(SqliteStoreTest, TextFileIsCorruptionAndUntouched) {
  const std::string text = "version: 1\nmode: enforce\n";  // e.g. the policy file by mistake
  WriteBytes(path_, text);
  auto store = OpenSqliteStore(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ReadBytes(path_), text);
}

TEST_F(SqliteStoreTest, ForeignSqliteDatabaseIsCorruptionAndUntouched) {
  fs::create_directories(fs::path(path_).parent_path());
  Sql(path_,
      "CREATE TABLE users(id INTEGER PRIMARY KEY, mail TEXT); "
      "INSERT INTO users VALUES (1, 'a@example.com');");
  const std::string before = ReadBytes(path_);
  auto store = OpenSqliteStore(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kCorruption);
  EXPECT_NE(store.status().message().find("is not an airlock store"), std::string::npos);
  EXPECT_EQ(ReadBytes(path_), before);
}

// Opening a store at this build's schema (its SQL's SHA-256 is in meta) runs no schema
// transaction; a store whose schema SQL differs (an older build's, or none recorded) gets
// it again, which brings it up to date.
TEST_F(SqliteStoreTest, TheSchemaRunsOnlyWhenItsSqlChanged) {
  Open().reset();
  auto index_count = [&] {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db,
                                 "SELECT count(*) FROM sqlite_master WHERE name = "
                                 "'audit_by_action'",
                                 -1, &s, nullptr),
              SQLITE_OK);
    EXPECT_EQ(sqlite3_step(s), SQLITE_ROW);
    const int n = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
  };
  ASSERT_EQ(index_count(), 1);
  Sql(path_, "DROP INDEX audit_by_action");
  Open().reset();
  EXPECT_EQ(index_count(), 0) << "the schema ran although its SQL was recorded as current";
  Sql(path_, "DELETE FROM meta WHERE key = 'schema_sha256'");
  Open().reset();
  EXPECT_EQ(index_count(), 1) << "a store without the recorded SQL did not get the schema";
  Sql(path_, "UPDATE meta SET value = 'an older schema' WHERE key = 'schema_sha256'");
  Sql(path_, "DROP INDEX audit_by_action");
  Open().reset();
  EXPECT_EQ(index_count(), 1) << "a store at another schema did not get this one";
}

// A foreign database in WAL mode is refused on the writer's own connection before anything
// writes to it: neither its bytes nor its journal mode change.
TEST_F(SqliteStoreTest, ForeignWalDatabaseIsCorruptionAndUntouched) {
  fs::create_directories(fs::path(path_).parent_path());
  Sql(path_,
      "PRAGMA journal_mode=WAL; CREATE TABLE users(id INTEGER PRIMARY KEY); "
      "INSERT INTO users VALUES (1); PRAGMA wal_checkpoint(TRUNCATE);");
  const std::string before = ReadBytes(path_);
  auto store = OpenSqliteStore(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("is not an airlock store"), std::string::npos);
  EXPECT_EQ(ReadBytes(path_), before);
}

TEST_F(SqliteStoreTest, ForeignMetaTableIsCorruption) {
  fs::create_directories(fs::path(path_).parent_path());
  Sql(path_,
      "CREATE TABLE meta(key TEXT PRIMARY KEY, value); "
      "INSERT INTO meta VALUES ('app', 'something-else');");
  const std::string before = ReadBytes(path_);
  auto store = OpenSqliteStore(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ReadBytes(path_), before);
}

TEST_F(SqliteStoreTest, NewerSchemaIsCorruptionAndUntouched) {
  { ASSERT_NE(Open(), nullptr); }
  Sql(path_,
      "UPDATE meta SET value = 2 WHERE key = 'schema_version'; "
      "PRAGMA wal_checkpoint(TRUNCATE);");
  const std::string before = ReadBytes(path_);
  auto store = OpenSqliteStore(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kCorruption);
  EXPECT_NE(store.status().message().find("newer"), std::string::npos);
  EXPECT_EQ(ReadBytes(path_), before);
}

TEST_F(SqliteStoreTest, ZeroByteFileIsInitialised) {
  WriteBytes(path_, "");
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->RecordedHead()->seq, 0);
}

TEST_F(SqliteStoreTest, ReopenKeepsDataAndContinuesTheChain) {
  Action a = FullAction("act_f1", 1);
  {
    auto store = Open();
    ASSERT_TRUE(store
                    ->Transact([&](StoreTxn& t) -> Status {
                      RETURN_IF_ERROR(t.InsertAction(a));
                      return t
                          .AppendAudit(AuditEvent{
                              0, 5, a.id, "agent:bot", "submitted", {{"k", 1}}, "", "", ""})
                          .status();
                    })
                    .ok());
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  AuditEvent second;
  ASSERT_TRUE(store
                  ->Transact([&](StoreTxn& t) -> Status {
                    ASSIGN_OR_RETURN(auto got, t.GetAction(a.id));
                    EXPECT_TRUE(got.has_value());
                    ASSIGN_OR_RETURN(
                        second, t.AppendAudit(
                                    AuditEvent{0, 6, a.id, "airlock", "applied", {}, "", "", ""}));
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_EQ(second.seq, 2);
  std::vector<AuditEvent> events;
  ASSERT_TRUE(store
                  ->ScanAudit(0, a.id,
                              [&](const AuditEvent& e) {
                                events.push_back(e);
                                return true;
                              })
                  .ok());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].at_ms, 5);
  EXPECT_EQ(events[0].payload, Json({{"k", 1}}));
  EXPECT_EQ(events[1].prev_hash, events[0].hash);
  auto head = store->RecordedHead();
  EXPECT_EQ(head->seq, 2);
  EXPECT_EQ(head->hash, second.hash);
  auto report = audit::Verify(*store);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok) << report->problem;
}

// The WAL file is kept between processes, emptied: the next one neither creates it (no
// directory fsync) nor finds frames in it to replay onto a store file restored beside it. A
// small one keeps its size with its header zeroed (store_vfs.h), so that the next process
// writes over its blocks.
TEST_F(SqliteStoreTest, TheWalIsKeptEmptyAfterTheLastCloseAndReused) {
  const std::string wal = path_ + "-wal";
  ino_t inode = 0;
  for (int i = 0; i < 3; ++i) {
    off_t open_size = 0;
    {
      auto store = Open();
      ASSERT_NE(store, nullptr);
      Action a = FullAction("act_w" + std::to_string(i), 1);
      ASSERT_TRUE(store->Transact([&](StoreTxn& t) { return t.InsertAction(a); }).ok());
      struct stat open_st;
      ASSERT_EQ(::stat(wal.c_str(), &open_st), 0);
      EXPECT_TRUE(WalHeaderValid(wal)) << "the commit went through the WAL";
      open_size = open_st.st_size;
    }
    struct stat st;
    ASSERT_EQ(::stat(wal.c_str(), &st), 0) << "the WAL file is kept";
    EXPECT_FALSE(WalHeaderValid(wal)) << "and emptied: its header is gone";
    EXPECT_EQ(st.st_size, open_size) << "a small WAL keeps its size";
    if (i == 0) inode = st.st_ino;
    EXPECT_EQ(st.st_ino, inode) << "the same file every time, not a new one";
  }
  // Everything is in the store file itself: a copy of it alone has all three actions.
  const std::string copy = (dir_ / "copy.db").string();
  fs::copy_file(path_, copy);
  path_ = copy;
  auto store = Open();
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(store
                    ->Read([&](StoreTxn& t) -> Status {
                      ASSIGN_OR_RETURN(auto got, t.GetAction("act_w" + std::to_string(i)));
                      EXPECT_TRUE(got.has_value()) << i;
                      return Status::Ok();
                    })
                    .ok());
  }
}

// A store file restored from a backup beside the kept WAL: the frames the WAL still holds
// (written after the backup, behind its zeroed header) are never replayed onto it. Were the
// header left as it was, they would be, and the restored store would hold pages of a later
// state.
TEST_F(SqliteStoreTest, AStoreFileRestoredBesideTheKeptWalGetsNoneOfItsFrames) {
  const std::string wal = path_ + "-wal";
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(
        store->Transact([&](StoreTxn& t) { return t.InsertAction(FullAction("act_a", 1)); }).ok());
    ASSERT_TRUE(store
                    ->Transact([&](StoreTxn& t) {
                      return t
                          .AppendAudit(AuditEvent{0, 0, "act_a", "airlock", "e", {}, "", "", ""})
                          .status();
                    })
                    .ok());
  }
  const std::string backup = (dir_ / "backup.db").string();
  fs::copy_file(path_, backup);
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(store
                      ->Transact([&](StoreTxn& t) -> Status {
                        RETURN_IF_ERROR(t.InsertAction(FullAction("act_b" + std::to_string(i), 2)));
                        return t
                            .AppendAudit(AuditEvent{0, 0, "act_b", "airlock", "e", {}, "", "", ""})
                            .status();
                      })
                      .ok());
    }
  }
  ASSERT_GT(FileBytes(wal), 0) << "the later commits' frames are still in the file";
  fs::copy_file(backup, path_, fs::copy_options::overwrite_existing);

  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->RecordedHead()->seq, 1) << "the head of the backup, not of the later state";
  ASSERT_TRUE(store
                  ->Read([&](StoreTxn& t) -> Status {
                    ASSIGN_OR_RETURN(auto a, t.GetAction("act_a"));
                    EXPECT_TRUE(a.has_value());
                    ASSIGN_OR_RETURN(auto b, t.GetAction("act_b0"));
                    EXPECT_FALSE(b.has_value()) << "a frame of a later commit was replayed";
                    return Status::Ok();
                  })
                  .ok());
  auto report = audit::Verify(*store);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->ok) << report->problem;
  store.reset();
  EXPECT_EQ(SqlValue(path_, "PRAGMA integrity_check"), "ok");
}

// A WAL over 1 MiB (a server's) is truncated to 0 bytes at the last close, as SQLite asks:
// its space goes back.
TEST_F(SqliteStoreTest, ALargeWalIsTruncatedAtTheLastClose) {
  const std::string wal = path_ + "-wal";
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    const std::string pad(8000, 'x');
    for (int i = 0; i < 200 && FileBytes(wal) <= (1 << 20); ++i) {
      ASSERT_TRUE(store
                      ->Transact([&](StoreTxn& t) {
                        return t
                            .AppendAudit(
                                AuditEvent{0, 0, "", "airlock", "e", {{"pad", pad}}, "", "", ""})
                            .status();
                      })
                      .ok());
    }
    ASSERT_GT(FileBytes(wal), 1 << 20);
  }
  EXPECT_EQ(FileBytes(wal), 0);
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto report = audit::Verify(*store);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->ok) << report->problem;
}

// The statements of a record compiled ahead (a CLI command's, while its sandbox runs): no
// lock is held after, nothing is written, and the record then made with them is whole.
TEST_F(SqliteStoreTest, RecordStatementsPreparedAheadHoldNoLockAndWriteNothing) {
  { ASSERT_NE(Open(), nullptr); }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const std::string wal = path_ + "-wal";
  const std::string store_bytes = ReadBytes(path_);
  const std::string wal_bytes = ReadBytes(wal);
  ASSERT_TRUE(store->PrepareRecordStatements().ok());
  EXPECT_EQ(ReadBytes(path_), store_bytes);
  EXPECT_EQ(ReadBytes(wal), wal_bytes);
  // Another connection can write at once: no transaction was left open.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  sqlite3_busy_timeout(other, 0);
  EXPECT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE; ROLLBACK;", nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(other);
  sqlite3_close(other);
  ASSERT_TRUE(store
                  ->Transact([&](StoreTxn& t) -> Status {
                    RETURN_IF_ERROR(t.InsertAction(FullAction("act_p", 1)));
                    return t.AppendAudit(AuditEvent{0, 0, "act_p", "airlock", "e", {}, "", "", ""})
                        .status();
                  })
                  .ok());
  EXPECT_EQ(store->RecordedHead()->seq, 1);
  auto report = audit::Verify(*store);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->ok) << report->problem;
}

TEST_F(SqliteStoreTest, GroupedAppendsFromEightThreadsFormOneChain) {
  auto store = Open();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 500;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto done = store->TransactGrouped([t, i](StoreTxn& txn) {
          return txn
              .AppendAudit(AuditEvent{
                  0, 0, "", "agent:t" + std::to_string(t), "tick", {{"i", i}}, "", "", ""})
              .status();
        });
        if (!done.get().ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(store->RecordedHead()->seq, kThreads * kPerThread);
  auto report = audit::Verify(*store);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->ok) << report->problem;
  EXPECT_EQ(report->events, kThreads * kPerThread);
}

// TransactGroupedWait with nobody to group with: the caller commits its own closure on its
// own thread (no hand-over to the committer and back); while it does, others queue for the
// committer, and the chain stays one.
TEST_F(SqliteStoreTest, ALoneGroupedCallerCommitsItselfAndOthersQueue) {
  auto store = Open();
  std::thread::id ran_on;
  Status done = store->TransactGroupedWait([&](StoreTxn& txn) {
    ran_on = std::this_thread::get_id();
    return txn.AppendAudit(AuditEvent{0, 0, "", "agent:a", "tick", {{"i", 0}}, "", "", ""})
        .status();
  });
  EXPECT_TRUE(done.ok()) << done.ToString();
  EXPECT_EQ(ran_on, std::this_thread::get_id());

  // A leader that takes its time: the others' closures run on the committer thread, after it.
  std::promise<void> leading;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::thread::id leader_id;
  std::thread leader([&] {
    Status st = store->TransactGroupedWait([&](StoreTxn& txn) {
      leader_id = std::this_thread::get_id();
      leading.set_value();
      released.wait();
      return txn.AppendAudit(AuditEvent{0, 0, "", "agent:lead", "tick", {{"i", 1}}, "", "", ""})
          .status();
    });
    EXPECT_TRUE(st.ok());
  });
  leading.get_future().wait();
  std::vector<std::thread::id> others(3);
  std::vector<std::future<Status>> queued;
  for (int i = 0; i < 3; ++i) {
    // Grouped or waited for, they queue while the leader commits.
    queued.push_back(store->TransactGrouped([&, i](StoreTxn& txn) {
      others[i] = std::this_thread::get_id();
      return txn.AppendAudit(AuditEvent{0, 0, "", "agent:q", "tick", {{"i", 2 + i}}, "", "", ""})
          .status();
    }));
  }
  for (auto& f : queued) {
    EXPECT_EQ(f.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  }
  std::thread waiter([&] {
    EXPECT_TRUE(store
                    ->TransactGroupedWait([&](StoreTxn& txn) {
                      return txn
                          .AppendAudit(
                              AuditEvent{0, 0, "", "agent:w", "tick", {{"i", 5}}, "", "", ""})
                          .status();
                    })
                    .ok());
  });
  release.set_value();
  for (auto& f : queued) EXPECT_TRUE(f.get().ok());
  leader.join();
  waiter.join();
  for (const auto& id : others) {
    EXPECT_NE(id, std::this_thread::get_id());
    EXPECT_NE(id, leader_id);
  }
  EXPECT_EQ(store->RecordedHead()->seq, 6);
  auto report = audit::Verify(*store);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->ok) << report->problem;
}

// The asynchronous form the server's read path uses: no caller waits, every `done` runs once
// on the committer thread after the commit, and the appends still form one chain.
TEST_F(SqliteStoreTest, GroupedAsyncAppendsAllGetTheirDoneAndFormOneChain) {
  auto store = Open();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 300;
  std::mutex mu;
  std::condition_variable cv;
  int done_ok = 0;
  int done_failed = 0;
  std::set<std::thread::id> done_threads;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        store->TransactGroupedAsync(
            [t, i](StoreTxn& txn) {
              return txn
                  .AppendAudit(AuditEvent{
                      0, 0, "", "agent:t" + std::to_string(t), "tick", {{"i", i}}, "", "", ""})
                  .status();
            },
            [&](Status st) {
              std::lock_guard lock(mu);
              ++(st.ok() ? done_ok : done_failed);
              done_threads.insert(std::this_thread::get_id());
              cv.notify_all();
            });
      }
    });
  }
  for (auto& th : threads) th.join();
  {
    std::unique_lock lock(mu);
    // A generous bound only so that a lost `done` fails the test instead of hanging it.
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60),
                            [&] { return done_ok + done_failed == kThreads * kPerThread; }))
        << done_ok + done_failed << " of " << kThreads * kPerThread << " answered";
    EXPECT_EQ(done_failed, 0);
    EXPECT_EQ(done_threads.size(), 1u) << "every done runs on the one committer thread";
    EXPECT_EQ(done_threads.count(std::this_thread::get_id()), 0u);
  }
  EXPECT_EQ(store->RecordedHead()->seq, kThreads * kPerThread);
  auto report = audit::Verify(*store);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->ok) << report->problem;
  EXPECT_EQ(report->events, kThreads * kPerThread);
}

TEST_F(SqliteStoreTest, GroupedAsyncFailingClosureGetsItsErrorAndOthersCommit) {
  auto store = Open();
  std::mutex mu;
  std::condition_variable cv;
  std::map<int, Status> results;
  for (int i = 0; i < 30; ++i) {
    store->TransactGroupedAsync(
        [i](StoreTxn& t) -> Status {
          RETURN_IF_ERROR(
              t.AppendAudit(AuditEvent{0, 0, "", "airlock", "e", {{"i", i}}, "", "", ""}).status());
          if (i % 3 == 0) return Status::IoError("closure " + std::to_string(i) + " fails");
          return Status::Ok();
        },
        [&, i](Status st) {
          std::lock_guard lock(mu);
          results[i] = st;
          cv.notify_all();
        });
  }
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return results.size() == 30; }));
  }
  for (int i = 0; i < 30; ++i) {
    if (i % 3 == 0) {
      EXPECT_EQ(results[i].code(), StatusCode::kIoError) << i;
    } else {
      EXPECT_TRUE(results[i].ok()) << i << ": " << results[i].ToString();
    }
  }
  EXPECT_EQ(store->RecordedHead()->seq, 20) << "only the closures that succeeded are in the chain";
  auto report = audit::Verify(*store);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok) << report->problem;
}

TEST_F(SqliteStoreTest, FailingClosureInABatchIsRolledBackAlone) {
  auto store = Open();
  // The first closure holds the committer, so everything queued meanwhile lands in one batch.
  std::latch release(1);
  auto blocker = store->TransactGrouped([&](StoreTxn& t) {
    release.wait();
    return t.PutBreaker(Breaker{"blocker", "x", true, 1, ""});
  });
  std::vector<std::future<Status>> futures;
  for (int i = 0; i < 20; ++i) {
    futures.push_back(store->TransactGrouped([i](StoreTxn& t) -> Status {
      RETURN_IF_ERROR(t.PutBreaker(Breaker{"t" + std::to_string(i), "a", true, i, ""}));
      RETURN_IF_ERROR(
          t.AppendAudit(AuditEvent{0, 0, "", "airlock", "e", {{"i", i}}, "", "", ""}).status());
      if (i % 5 == 0) return Status::Conflict("closure " + std::to_string(i) + " fails");
      if (i == 7) throw std::runtime_error("closure 7 throws");
      return Status::Ok();
    }));
  }
  release.count_down();
  EXPECT_TRUE(blocker.get().ok());
  for (int i = 0; i < 20; ++i) {
    Status st = futures[i].get();
    if (i % 5 == 0) {
      EXPECT_EQ(st.code(), StatusCode::kConflict);
      EXPECT_EQ(st.message(), "closure " + std::to_string(i) + " fails");
    } else if (i == 7) {
      EXPECT_EQ(st.code(), StatusCode::kInternal);
    } else {
      EXPECT_TRUE(st.ok()) << i << ": " << st.ToString();
    }
  }
  ASSERT_TRUE(store
                  ->Read([&](StoreTxn& t) -> Status {
                    for (int i = 0; i < 20; ++i) {
                      ASSIGN_OR_RETURN(auto b, t.GetBreaker("t" + std::to_string(i), "a"));
                      EXPECT_EQ(b.has_value(), i % 5 != 0 && i != 7) << i;
                    }
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_EQ(store->RecordedHead()->seq, 15);
  auto report = audit::Verify(*store);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok) << report->problem;
}

TEST_F(SqliteStoreTest, DestructorDrainsTheGroupQueue) {
  std::vector<std::future<Status>> futures;
  {
    auto store = Open();
    for (int i = 0; i < 200; ++i) {
      futures.push_back(store->TransactGrouped([](StoreTxn& t) {
        return t.AppendAudit(AuditEvent{0, 0, "", "airlock", "e", {}, "", "", ""}).status();
      }));
    }
  }
  for (auto& f : futures) EXPECT_TRUE(f.get().ok());
  auto store = Open();
  EXPECT_EQ(store->RecordedHead()->seq, 200);
}

// A store that groups commits checkpoints on a thread of its own (store/wal_checkpointer.h),
// with the limits of its options; the WAL file keeps the largest size it reached. With
// SQLite's automatic checkpoint (AIRLOCK_CHECKPOINT_THREAD=0) it grows past 1,000 frames
// before it starts over; with restart_frames 200 it stays far below.
class StoreCheckpointTest : public SqliteStoreTest {
 protected:
  void SetUp() override {
    SqliteStoreTest::SetUp();
    ::unsetenv("AIRLOCK_CHECKPOINT_THREAD");  // a benchmark's leftover would turn it off
  }
  // *stats: the thread's counts, or nullopt when it did not run.
  int64_t WalFramesAfterGroupedAppends(int appends, std::optional<CheckpointStats>* stats) {
    StoreOptions options;
    options.checkpoint_pass_frames = 50;
    options.checkpoint_restart_frames = 200;
    // Below SQLite's 1,000 frames, so that a thread kept from running on a loaded machine
    // cannot make the WAL look like SQLite's; the passes count says the thread ran.
    options.checkpoint_inline_frames = 900;
    auto store = Open(options);
    if (store == nullptr) return -1;
    for (int i = 0; i < appends; ++i) {
      Status st = store->TransactGroupedWait([i](StoreTxn& t) {
        return t.AppendAudit(AuditEvent{0, 0, "", "airlock", "e", {{"i", i}}, "", "", ""}).status();
      });
      EXPECT_TRUE(st.ok()) << st.ToString();
    }
    EXPECT_EQ(store->RecordedHead()->seq, appends);
    auto report = audit::Verify(*store);
    EXPECT_TRUE(report.ok() && report->ok);
    *stats = store->Checkpoints();
    struct stat st {};
    EXPECT_EQ(::stat((path_ + "-wal").c_str(), &st), 0);
    return st.st_size / (4096 + 24);
  }
};

TEST_F(StoreCheckpointTest, GroupedCommitsAreCheckpointedOffTheCommitter) {
  std::optional<CheckpointStats> stats;
  const int64_t frames = WalFramesAfterGroupedAppends(800, &stats);
  ASSERT_TRUE(stats.has_value()) << "the thread ran";
  EXPECT_GT(stats->passes, 0u);
  EXPECT_GT(stats->restarts, 0u) << "and the WAL started over";
  EXPECT_EQ(stats->failures, 0u);
  EXPECT_GT(frames, 50);
  EXPECT_LT(frames, 1000);
  auto store = Open();  // the last close checkpointed everything into the store file
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->RecordedHead()->seq, 800);
}

TEST_F(StoreCheckpointTest, TurnedOffTheCommitsCheckpointAsSQLiteDoes) {
  ::setenv("AIRLOCK_CHECKPOINT_THREAD", "0", 1);
  std::optional<CheckpointStats> stats;
  const int64_t frames = WalFramesAfterGroupedAppends(800, &stats);
  ::unsetenv("AIRLOCK_CHECKPOINT_THREAD");
  EXPECT_FALSE(stats.has_value()) << "no thread";
  EXPECT_GE(frames, 1000);
}

// A file-size limit for this process (RLIMIT_FSIZE; every thread's writes), with SIGXFSZ
// ignored so that a write past it fails with EFBIG instead of ending the process. Both are
// restored on destruction.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    if (::sigaction(SIGXFSZ, &ignore, &old_action_) != 0) {
      error_ = errno;
      return;
    }
    action_set_ = true;
    if (::getrlimit(RLIMIT_FSIZE, &old_limit_) != 0) {
      error_ = errno;
      return;
    }
    rlimit limit = old_limit_;
    limit.rlim_cur = bytes;
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) {
      error_ = errno;
      return;
    }
    limit_set_ = true;
  }
  ~FileSizeLimit() { Lift(); }
  // Restores only what the constructor changed.
  void Lift() {
    if (limit_set_) ::setrlimit(RLIMIT_FSIZE, &old_limit_);
    if (action_set_) ::sigaction(SIGXFSZ, &old_action_, nullptr);
    limit_set_ = action_set_ = false;
  }
  bool ok() const { return limit_set_; }
  int error() const { return error_; }

 private:
  struct sigaction old_action_ {};
  rlimit old_limit_{};
  bool action_set_ = false;
  bool limit_set_ = false;
  int error_ = 0;
};

// Fail closed: a checkpoint that fails stops them all, and the store refuses every write
// from then on; nothing committed before is lost, and the close keeps the WAL for the next
// open to recover. The failure is a real one, not an injected one: a file-size limit at the
// store file's size lets the WAL take commits (it reuses its file once it starts over),
// while a checkpoint that would grow the store file fails with EFBIG.
TEST_F(StoreCheckpointTest, AFailedCheckpointStopsTheWritesAndLosesNothing) {
  StoreOptions options;
  options.checkpoint_pass_frames = 50;
  options.checkpoint_restart_frames = 200;
  // Well inside the 2 MiB the WAL may still grow by under the limit below (~500 frames): if
  // the thread gets no CPU, a commit checkpoints in place, and fails, before the WAL itself
  // would hit the limit. The test does not depend on the thread being scheduled.
  options.checkpoint_inline_frames = 350;
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  const std::string pad(2000, 'x');  // about half a page an event: the store file grows
  auto append = [&](int i) {
    return store->TransactGroupedWait([&](StoreTxn& t) {
      return t
          .AppendAudit(AuditEvent{0, 0, "", "airlock", "e", {{"i", i}, {"pad", pad}}, "", "", ""})
          .status();
    });
  };
  // Until the store file is well past the WAL file (which keeps the largest size it had).
  int committed = 0;
  const std::string wal = path_ + "-wal";
  while (committed < 20000 && FileBytes(path_) < FileBytes(wal) + (2 << 20)) {
    Status st = append(committed);
    ASSERT_TRUE(st.ok()) << st.ToString();
    ++committed;
  }
  ASSERT_GE(FileBytes(path_), FileBytes(wal) + (2 << 20)) << "the store file did not grow";
  auto before = store->Checkpoints();
  ASSERT_TRUE(before.has_value()) << "the thread runs";
  ASSERT_EQ(before->failures, 0u);

  FileSizeLimit limit(static_cast<rlim_t>(FileBytes(path_)));
  ASSERT_TRUE(limit.ok()) << "cannot set a file-size limit: " << std::strerror(limit.error());
  Status refused;
  for (int i = 0; i < 20000 && refused.ok(); ++i) {
    refused = append(committed);
    if (refused.ok()) ++committed;
  }
  ASSERT_FALSE(refused.ok()) << "no checkpoint failed after " << committed << " commits";
  EXPECT_NE(refused.message().find("checkpointing"), std::string::npos) << refused.ToString();
  auto after = store->Checkpoints();
  ASSERT_TRUE(after.has_value());
  EXPECT_GE(after->failures, 1u);
  limit.Lift();
  // Refused for good, though the file could grow again: a failed write-back is reported once
  // per open file, so a later checkpoint could not be trusted.
  Status again = append(committed);
  EXPECT_FALSE(again.ok());
  EXPECT_NE(again.message().find("checkpointing"), std::string::npos) << again.ToString();

  store.reset();  // closed without a checkpoint: the WAL still holds the latest commits
  EXPECT_TRUE(WalHeaderValid(wal)) << "the close emptied the WAL";
  auto reopened = Open();
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->RecordedHead()->seq, committed) << "every commit that returned OK is there";
  auto report = audit::Verify(*reopened);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->ok) << report->problem;
  Status st = reopened->Transact([&](StoreTxn& t) {
    return t.AppendAudit(AuditEvent{0, 0, "", "airlock", "e", {}, "", "", ""}).status();
  });
  EXPECT_TRUE(st.ok()) << "a new open writes again: " << st.ToString();
}

TEST_F(SqliteStoreTest, ReadSeesCommittedWritesAndScanStops) {
  auto store = Open();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store
                    ->Transact([&](StoreTxn& t) {
                      return t
                          .AppendAudit(AuditEvent{
                              0, 0, i % 2 ? "act_odd" : "", "airlock", "e", {}, "", "", ""})
                          .status();
                    })
                    .ok());
  }
  std::vector<int64_t> seqs;
  ASSERT_TRUE(store
                  ->ScanAudit(1, "",
                              [&](const AuditEvent& e) {
                                seqs.push_back(e.seq);
                                return seqs.size() < 3;
                              })
                  .ok());
  EXPECT_EQ(seqs, (std::vector<int64_t>{2, 3, 4}));
  seqs.clear();
  ASSERT_TRUE(store
                  ->ScanAudit(0, "act_odd",
                              [&](const AuditEvent& e) {
                                seqs.push_back(e.seq);
                                return true;
                              })
                  .ok());
  EXPECT_EQ(seqs, (std::vector<int64_t>{2, 4}));
}

}  // namespace
}  // namespace airlock

namespace airlock {
namespace {

TEST_F(SqliteStoreTest, PreSerializedPayloadIsStoredAndVerifies) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  AuditEvent e{0, 7, "act_1", "agent:bot", "submitted", nullptr, "", "", ""};
  e.canonical_payload = CanonicalJson(Json{{"sql", "DROP TABLE users"}, {"a", 1}});
  ASSERT_TRUE(
      store->TransactGrouped([e](StoreTxn& t) { return t.AppendAudit(e).status(); }).get().ok());
  std::vector<AuditEvent> seen;
  ASSERT_TRUE(store
                  ->ScanAudit(0, "",
                              [&](const AuditEvent& ev) {
                                seen.push_back(ev);
                                return true;
                              })
                  .ok());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].payload["sql"], "DROP TABLE users");
  EXPECT_EQ(seen[0].hash, ComputeEventHash(kGenesisHash, seen[0]));
  auto report = audit::Verify(*store);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok) << report->problem;
}

// A staged record is durable at once, in neither actions nor the chain until IngestStaged,
// which moves every staged record in staging order (each event keeps its at_ms) in one
// transaction; a record whose action already exists stops the move and moves nothing.
TEST_F(SqliteStoreTest, StagedRecordsAreIngestedInOrderAndWhole) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto stage = [&](const std::string& id, int64_t at) {
    AuditEvent e{0, at, "", "agent:bot", "read", nullptr, "", "", ""};
    e.canonical_payload = CanonicalJson(Json{{"n", at}});
    return store->Transact([&](StoreTxn& t) { return t.StageRecord(FullAction(id, at), e); });
  };
  auto length = [&] { return store->RecordedHead()->seq; };
  ASSERT_TRUE(stage("act_b", 200).ok());
  ASSERT_TRUE(stage("act_a", 100).ok());
  EXPECT_EQ(length(), 0);
  bool any = false;
  ASSERT_TRUE(store
                  ->Read([&](StoreTxn& t) -> Status {
                    ASSIGN_OR_RETURN(any, t.AnyStaged());
                    auto got = t.GetAction("act_b");
                    EXPECT_TRUE(got.ok() && !got->has_value()) << "not an action yet";
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_TRUE(any);

  // An id already staged, or already an action, is refused when staged.
  EXPECT_EQ(stage("act_b", 300).code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(
      store->Transact([](StoreTxn& t) { return t.InsertAction(FullAction("act_c", 1)); }).ok());
  EXPECT_EQ(stage("act_c", 300).code(), StatusCode::kFailedPrecondition);
  // An action made between staging and the move (another process): the whole move is
  // refused and nothing moves.
  ASSERT_TRUE(
      store->Transact([](StoreTxn& t) { return t.InsertAction(FullAction("act_a", 1)); }).ok());
  int64_t moved = -1;
  auto ingest = [&] {
    return store->Transact([&](StoreTxn& t) -> Status {
      ASSIGN_OR_RETURN(moved, t.IngestStaged());
      return Status::Ok();
    });
  };
  Status st = ingest();
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.ToString();
  EXPECT_EQ(length(), 0);
  Sql(path_, "DELETE FROM actions WHERE id = 'act_a'");

  ASSERT_TRUE(ingest().ok());
  EXPECT_EQ(moved, 2);
  std::vector<AuditEvent> seen;
  ASSERT_TRUE(store
                  ->ScanAudit(0, "",
                              [&](const AuditEvent& ev) {
                                seen.push_back(ev);
                                return true;
                              })
                  .ok());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].action_id, "act_b") << "staging order, not time order";
  EXPECT_EQ(seen[0].at_ms, 200);
  EXPECT_EQ(seen[0].payload["n"], 200);
  EXPECT_EQ(seen[1].action_id, "act_a");
  ASSERT_TRUE(store
                  ->Read([&](StoreTxn& t) -> Status {
                    ASSIGN_OR_RETURN(auto got, t.GetAction("act_b"));
                    EXPECT_TRUE(got.has_value());
                    if (got) {
                      EXPECT_EQ(ActionToJson(*got), ActionToJson(FullAction("act_b", 200)));
                    }
                    ASSIGN_OR_RETURN(any, t.AnyStaged());
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_FALSE(any) << "moved, not copied";
  ASSERT_TRUE(ingest().ok());
  EXPECT_EQ(moved, 0);
  auto report = audit::Verify(*store);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok) << report->problem;
}

// Makes every fsync and fdatasync of the calling thread (and of the threads it starts) fail
// with EIO: a seccomp filter binds only its own thread unless told otherwise.
bool FailSyncsOnThisThread() {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == nullptr) return false;
  bool ok = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EIO), SCMP_SYS(fdatasync), 0) == 0 &&
            seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EIO), SCMP_SYS(fsync), 0) == 0 &&
            seccomp_load(ctx) == 0;
  seccomp_release(ctx);
  return ok;
}

bool HasAction(Store& store, const std::string& id) {
  bool found = false;
  EXPECT_TRUE(store
                  .Read([&](StoreTxn& t) -> Status {
                    ASSIGN_OR_RETURN(auto a, t.GetAction(id));
                    found = a.has_value();
                    return Status::Ok();
                  })
                  .ok());
  return found;
}

// TransactUnsynced hands its commit to the operating system and returns; the store's syncer
// thread syncs it. A thread that cannot sync at all commits unsynced, and cannot commit
// synced.
TEST_F(SqliteStoreTest, AnUnsyncedCommitSyncsNothingOnTheCallersThread) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto insert = [](const std::string& id) {
    return [id](StoreTxn& t) { return t.InsertAction(FullAction(id, 1)); };
  };
  // The first one from here: the syncer thread starts without the filter below.
  ASSERT_TRUE(store->TransactUnsynced(insert("act_first")).ok());
  ASSERT_TRUE(store->SyncUnsynced().ok());
  Status unsynced, synced;
  std::thread t([&] {
    ASSERT_TRUE(FailSyncsOnThisThread());
    unsynced = store->TransactUnsynced(insert("act_unsynced"));
    synced = store->Transact(insert("act_synced"));
  });
  t.join();
  EXPECT_TRUE(unsynced.ok()) << unsynced.ToString();
  EXPECT_FALSE(synced.ok()) << "a synced commit on a thread that cannot sync";
  EXPECT_TRUE(store->SyncUnsynced().ok());
  store.reset();
  auto again = Open();
  ASSERT_NE(again, nullptr);
  EXPECT_TRUE(HasAction(*again, "act_first"));
  EXPECT_TRUE(HasAction(*again, "act_unsynced"));
  EXPECT_FALSE(HasAction(*again, "act_synced"));
}

// Fail closed: once a sync failed, the commits it covered may be lost, so no later unsynced
// commit is taken, and SyncUnsynced says so.
TEST_F(SqliteStoreTest, AFailedSyncRefusesEveryLaterUnsyncedCommit) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Status first, waited;
  std::thread t([&] {
    ASSERT_TRUE(FailSyncsOnThisThread());
    // The syncer thread starts here, and inherits the filter: its sync fails.
    first =
        store->TransactUnsynced([](StoreTxn& t) { return t.InsertAction(FullAction("act_a", 1)); });
    waited = store->SyncUnsynced();
  });
  t.join();
  EXPECT_TRUE(first.ok()) << first.ToString();
  EXPECT_EQ(waited.code(), StatusCode::kIoError) << waited.ToString();
  EXPECT_NE(waited.message().find("airlock.db-wal"), std::string::npos) << waited.message();
  Status later =
      store->TransactUnsynced([](StoreTxn& t) { return t.InsertAction(FullAction("act_b", 1)); });
  EXPECT_EQ(later.code(), StatusCode::kIoError) << later.ToString();
  EXPECT_EQ(store->SyncUnsynced().code(), StatusCode::kIoError);
  // Nor a synced one: the WAL on disk may have a hole that would take the frames after it.
  EXPECT_EQ(
      store->Transact([](StoreTxn& t) { return t.InsertAction(FullAction("act_c", 1)); }).code(),
      StatusCode::kIoError);
  EXPECT_EQ(
      store->TransactGrouped([](StoreTxn& t) { return t.InsertAction(FullAction("act_d", 1)); })
          .get()
          .code(),
      StatusCode::kIoError);
  EXPECT_TRUE(HasAction(*store, "act_a"));
  EXPECT_FALSE(HasAction(*store, "act_b"));
}

// An unsynced commit is in the operating system when TransactUnsynced returns: a process
// killed right after loses nothing, and the next one moves the staged record into the chain.
TEST_F(SqliteStoreTest, AnUnsyncedCommitSurvivesTheProcessBeingKilled) {
  ASSERT_NE(Open(), nullptr);  // created here, so that the child only writes
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto store = OpenSqliteStore(path_);
    if (!store.ok()) _exit(2);
    AuditEvent e{0, 100, "", "agent:bot", "read", nullptr, "", "", ""};
    e.canonical_payload = CanonicalJson(Json{{"n", 1}});
    Status st = (*store)->TransactUnsynced(
        [&](StoreTxn& t) { return t.StageRecord(FullAction("act_k", 100), e); });
    if (!st.ok()) _exit(3);
    raise(SIGKILL);  // no destructor runs: no close, no checkpoint
    _exit(4);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child status " << status;
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Result<int64_t> moved = int64_t{0};
  ASSERT_TRUE(store
                  ->Transact([&](StoreTxn& t) -> Status {
                    moved = t.IngestStaged();
                    return moved.status();
                  })
                  .ok());
  EXPECT_EQ(*moved, 1);
  EXPECT_TRUE(HasAction(*store, "act_k"));
  auto report = audit::Verify(*store);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok) << report->problem;
  EXPECT_EQ(store->RecordedHead()->seq, 1);
}

// LookupBreaker answers from a cache while the breaker change count that every process shares
// (the file beside the store) stands still, and reads afresh once another store changed one.
TEST_F(SqliteStoreTest, LookupBreakerSeesEveryChangeMadeThroughAnotherStore) {
  auto a = Open();
  auto b = Open();  // another process, as far as the cache can tell
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  auto lookup = [&](Store& s) {
    auto got = s.LookupBreaker("app-db", "bot");
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    return got.ok() ? *got : std::nullopt;
  };
  auto put = [&](Store& s, bool open, Status then) {
    return s.Transact([&](StoreTxn& t) -> Status {
      RETURN_IF_ERROR(t.PutBreaker(Breaker{"app-db", "bot", open, 7, "rate"}));
      return then;
    });
  };
  EXPECT_FALSE(lookup(*a).has_value());
  ASSERT_TRUE(put(*b, true, Status::Ok()).ok());
  ASSERT_TRUE(lookup(*a).has_value());
  EXPECT_TRUE(lookup(*a)->open);
  // Group commit counts its changes too.
  ASSERT_TRUE(b->TransactGrouped([](StoreTxn& t) {
                 return t.PutBreaker(Breaker{"app-db", "bot", false, 8, "reset"});
               })
                  .get()
                  .ok());
  EXPECT_FALSE(lookup(*a)->open);
  ASSERT_TRUE(put(*b, false, Status::Ok()).ok());
  EXPECT_FALSE(lookup(*a)->open);
  // A change rolled back ends too: the counts meet again, and the cache serves.
  EXPECT_FALSE(put(*b, true, Status::Internal("no")).ok());
  EXPECT_FALSE(lookup(*a)->open);
  uint64_t counts[2] = {1, 2};
  {
    std::ifstream in(path_ + "-breakers", std::ios::binary);
    in.read(reinterpret_cast<char*>(counts), sizeof counts);
  }
  EXPECT_EQ(counts[0], 4u) << "four changes begun";
  EXPECT_EQ(counts[1], 4u) << "and four ended";
  // From the cache: a write behind the store's back (plain SQL) is not seen while the counts
  // stand still.
  Sql(path_, "UPDATE breakers SET open = 1");
  EXPECT_FALSE(lookup(*a)->open);
  // A change begun and never ended (its process died) keeps every reader reading afresh.
  counts[0] += 1;
  {
    std::fstream io(path_ + "-breakers", std::ios::binary | std::ios::in | std::ios::out);
    io.write(reinterpret_cast<const char*>(counts), sizeof counts);
  }
  EXPECT_TRUE(lookup(*a)->open);
  Sql(path_, "UPDATE breakers SET open = 0");
  EXPECT_FALSE(lookup(*a)->open);
}

// A counter file replaced starts its counts again: a process that cached under the old one
// must not take the new one's count for its own. Deleted and made anew, or another file
// renamed over it: seen at once (the old file has no link left). Renamed away: seen within
// ChangeCounter::kPathEvery, when the path is looked at again. The change is made by a
// process that had the old counter open, and by one that starts after.
TEST_F(SqliteStoreTest, LookupBreakerIsNotFooledByACounterReplaced) {
  enum class How { kDeleted, kRenamedAway, kRenamedOver };
  for (const How how : {How::kDeleted, How::kRenamedAway, How::kRenamedOver}) {
    for (const bool fresh_writer : {false, true}) {
      SCOPED_TRACE(std::string(how == How::kDeleted       ? "deleted"
                               : how == How::kRenamedAway ? "renamed away"
                                                          : "another file renamed over it") +
                   (fresh_writer ? ", changed by a new process" : ", changed by an old one"));
      auto a = Open();
      auto b = Open();
      ASSERT_NE(a, nullptr);
      ASSERT_NE(b, nullptr);
      auto put = [](Store& s, bool open) {
        return s.Transact([&](StoreTxn& t) {
          return t.PutBreaker(Breaker{"app-db", "bot", open, 7, "rate"});
        });
      };
      ASSERT_TRUE(put(*b, true).ok());
      auto first = a->LookupBreaker("app-db", "bot");  // cached: open
      ASSERT_TRUE(first.ok() && first->has_value() && (*first)->open);
      const std::string counter = path_ + "-breakers";
      switch (how) {
        case How::kDeleted:
          ASSERT_TRUE(fs::remove(counter));
          break;
        case How::kRenamedAway:
          fs::rename(counter, counter + ".old");
          std::this_thread::sleep_for(ChangeCounter::kPathEvery + std::chrono::milliseconds(50));
          break;
        case How::kRenamedOver: {
          {
            std::ofstream zeros(counter + ".new", std::ios::binary);
            zeros << std::string(16, '\0');
          }
          fs::rename(counter + ".new", counter);
          break;
        }
      }
      std::unique_ptr<Store> c;
      if (fresh_writer) {
        c = Open();
        ASSERT_NE(c, nullptr);
      }
      ASSERT_TRUE(put(fresh_writer ? *c : *b, false).ok());
      auto got = a->LookupBreaker("app-db", "bot");
      ASSERT_TRUE(got.ok() && got->has_value());
      EXPECT_FALSE((*got)->open);
      fs::remove(counter + ".old");
      a.reset();
      b.reset();
      c.reset();
      Sql(path_, "DELETE FROM breakers");
    }
  }
}

// Fail closed: a store that cannot count a breaker change does not make it (the others would
// keep their cached breakers), and reads breakers afresh.
TEST_F(SqliteStoreTest, NoBreakerChangeWithoutTheChangeCount) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  fs::create_directory(path_ + "-breakers");  // in the way of the counter file
  auto other = Open();
  ASSERT_NE(other, nullptr);
  Status st = other->Transact([](StoreTxn& t) {
    return t.PutBreaker(Breaker{"app-db", "bot", true, 7, "rate"});
  });
  EXPECT_EQ(st.code(), StatusCode::kIoError) << st.ToString();
  EXPECT_NE(st.message().find("-breakers"), std::string::npos) << st.message();
  Sql(path_,
      "INSERT INTO breakers(target, agent, open, changed_ms, reason) "
      "VALUES ('app-db', 'bot', 1, 7, 'by hand')");
  auto got = other->LookupBreaker("app-db", "bot");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_TRUE((*got)->open);
}

// SQLite resolves a symbolic link to the store file, and names the WAL after the target: the
// syncer syncs that one.
TEST_F(SqliteStoreTest, AStoreOpenedThroughASymlinkSyncsItsRealWal) {
  ASSERT_NE(Open(), nullptr);
  const std::string link = (dir_ / "link.db").string();
  fs::create_symlink(path_, link);
  auto store = OpenSqliteStore(link);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_TRUE(
      (*store)
          ->TransactUnsynced([](StoreTxn& t) { return t.InsertAction(FullAction("act_l", 1)); })
          .ok());
  Status synced = (*store)->SyncUnsynced();
  EXPECT_TRUE(synced.ok()) << synced.ToString();
  EXPECT_FALSE(fs::exists(link + "-wal"));
  EXPECT_FALSE(fs::exists(link + "-breakers"));
}

}  // namespace
}  // namespace airlock
