// The PostgreSQL store against a real server. These run only when AIRLOCK_TEST_PG_DSN names
// one (tests/blackbox/pg_store_unit_test.sh starts a private server and sets it); otherwise
// they are skipped, and say so.
#include <gtest/gtest.h>

#include <cstdlib>
#include <future>
#include <string>
#include <vector>

#include "audit/audit.h"
#include "connectors/postgres/libpq.h"
#include "store/pg_store.h"
#include "store/store.h"

namespace airlock {
namespace {

class PgStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dsn = std::getenv("AIRLOCK_TEST_PG_DSN");
    if (dsn == nullptr || *dsn == '\0') GTEST_SKIP() << "AIRLOCK_TEST_PG_DSN is not set";
    dsn_ = dsn;
    // A clean store for every test.
    auto c = pg::Conn::Open(dsn_);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    ASSERT_TRUE((*c)->Exec("DROP SCHEMA IF EXISTS airlock_store CASCADE").ok());
    auto store = OpenPgStore(dsn_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }

  static Action Pending(const std::string& id, int64_t expires_ms) {
    Action a;
    a.id = id;
    a.created_ms = 1000;
    a.updated_ms = 1000;
    a.agent = "support-bot";
    a.target = "app-db";
    a.kind = "sql";
    a.args = {{"sql", "DELETE FROM users"}};
    a.status = ActionStatus::kPending;
    a.risk = Risk::kHigh;
    a.expires_ms = expires_ms;
    return a;
  }

  // Inserts the action with its `submitted` event, as the gateway records one.
  static Status Submit(StoreTxn& t, const Action& a) {
    RETURN_IF_ERROR(t.InsertAction(a));
    AuditEvent e;
    e.action_id = a.id;
    e.principal = "agent:" + a.agent;
    e.event = "submitted";
    e.payload = {{"sql", a.args["sql"]}};
    return t.AppendAudit(std::move(e)).status();
  }

  Status StatusOf(const std::string& id, ActionStatus* out) {
    return store_->Read([&](StoreTxn& t) -> Status {
      auto a = t.GetAction(id);
      if (!a.ok()) return a.status();
      if (!a->has_value()) return Status::NotFound(id);
      *out = (*a)->status;
      return Status::Ok();
    });
  }

  std::string dsn_;
  std::unique_ptr<Store> store_;
};

// A failing closure in a group-commit batch is rolled back alone: the others commit, and the
// chain has exactly their events, unbroken.
TEST_F(PgStoreTest, GroupedBatchDropsOnlyTheFailingClosure) {
  std::vector<std::future<Status>> done;
  for (int i = 0; i < 12; ++i) {
    const std::string id = "act_pgstoretest" + std::to_string(100 + i);
    done.push_back(store_->TransactGrouped([id, i](StoreTxn& t) -> Status {
      RETURN_IF_ERROR(Submit(t, Pending(id, 0)));
      if (i % 4 == 1) return Status::InvalidArgument("closure " + std::to_string(i) + " fails");
      return Status::Ok();
    }));
  }
  int failed = 0;
  for (int i = 0; i < 12; ++i) {
    Status st = done[i].get();
    if (i % 4 == 1) {
      EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << i;
      ++failed;
    } else {
      EXPECT_TRUE(st.ok()) << i << ": " << st.ToString();
    }
  }
  EXPECT_EQ(failed, 3);
  for (int i = 0; i < 12; ++i) {
    ActionStatus s;
    Status st = StatusOf("act_pgstoretest" + std::to_string(100 + i), &s);
    if (i % 4 == 1) {
      EXPECT_EQ(st.code(), StatusCode::kNotFound) << i;
    } else {
      EXPECT_TRUE(st.ok()) << i;
    }
  }
  auto report = audit::Verify(*store_);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->ok) << report->problem;
  EXPECT_EQ(report->events, 9);
}

// TransactDue: only due pending actions, soonest first, at most `limit`; a row that another
// transaction holds is skipped (SKIP LOCKED), not waited for.
TEST_F(PgStoreTest, TransactDueSkipsRowsHeldElsewhere) {
  ASSERT_TRUE(store_
                  ->Transact([&](StoreTxn& t) -> Status {
                    RETURN_IF_ERROR(Submit(t, Pending("act_pgstoretest201", 5000)));
                    RETURN_IF_ERROR(Submit(t, Pending("act_pgstoretest202", 3000)));
                    RETURN_IF_ERROR(Submit(t, Pending("act_pgstoretest203", 9000)));
                    RETURN_IF_ERROR(Submit(t, Pending("act_pgstoretest204", 4000)));
                    return Submit(t, Pending("act_pgstoretest205", 0));  // never expires
                  })
                  .ok());
  auto due_ids = [&](int limit) {
    std::vector<std::string> ids;
    Status st = store_->TransactDue(6000, limit, [&](StoreTxn&, std::vector<Action>& due) {
      for (const Action& a : due) ids.push_back(a.id);
      return Status::Ok();
    });
    EXPECT_TRUE(st.ok()) << st.ToString();
    return ids;
  };
  EXPECT_EQ(due_ids(2), (std::vector<std::string>{"act_pgstoretest202", "act_pgstoretest204"}));
  EXPECT_EQ(due_ids(0), (std::vector<std::string>{"act_pgstoretest202", "act_pgstoretest204",
                                                  "act_pgstoretest201"}));

  auto other = pg::Conn::Open(dsn_);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->Exec("BEGIN").ok());
  ASSERT_TRUE((*other)
                  ->Query("SELECT 1 FROM airlock_store.actions WHERE id = $1 FOR UPDATE",
                          {"act_pgstoretest202"})
                  .ok());
  EXPECT_EQ(due_ids(0), (std::vector<std::string>{"act_pgstoretest204", "act_pgstoretest201"}));

  // Expire what is handed over; the held one stays pending, and comes next once let go.
  Status st = store_->TransactDue(6000, 0, [&](StoreTxn& t, std::vector<Action>& due) -> Status {
    for (Action& a : due) {
      a.status = ActionStatus::kExpired;
      RETURN_IF_ERROR(t.UpdateAction(a));
      AuditEvent e;
      e.action_id = a.id;
      e.principal = "airlock";
      e.event = "expired";
      RETURN_IF_ERROR(t.AppendAudit(std::move(e)).status());
    }
    return Status::Ok();
  });
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_TRUE((*other)->Exec("COMMIT").ok());
  ActionStatus s;
  ASSERT_TRUE(StatusOf("act_pgstoretest204", &s).ok());
  EXPECT_EQ(s, ActionStatus::kExpired);
  ASSERT_TRUE(StatusOf("act_pgstoretest202", &s).ok());
  EXPECT_EQ(s, ActionStatus::kPending);
  EXPECT_EQ(due_ids(0), (std::vector<std::string>{"act_pgstoretest202"}));
  auto report = audit::Verify(*store_);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok) << report->problem;
  EXPECT_EQ(report->events, 7);
}

}  // namespace
}  // namespace airlock
