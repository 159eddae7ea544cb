// The event hub against a real gateway on a real SQLite store: what an SSE client, a
// wait_ms request and the notifier would see.
#include "server/events.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "server/hub_test_util.h"

namespace airlock::server {
namespace {

using testing::GatewayFixture;
using testing::ReadFailingStore;

constexpr const char* kRead = "SELECT name FROM users WHERE id = 1";
constexpr const char* kLowWrite = "UPDATE users SET name = 'x' WHERE id = 5";
constexpr const char* kHighWrite = "UPDATE users SET status = 'gone'";  // every row: 1 approver
constexpr const char* kCritical = "DELETE FROM users";                  // every row: 2 approvers

class EventHubTest : public GatewayFixture {
 protected:
  void SetUp() override {
    GatewayFixture::SetUp();
    gateway_ = OpenGateway();
    ASSERT_NE(gateway_, nullptr);
  }
  void TearDown() override {
    hub_.reset();
    gateway_.reset();
    GatewayFixture::TearDown();
  }

  // The hub over gateway_, poked by it after every recorded change as the server does.
  void StartHub(EventHub::Options options = {}) {
    hub_ = std::make_unique<EventHub>(*gateway_, options);
    gateway_->SetObserver([hub = hub_.get()](const Action&, const std::string&) { hub->Poke(); });
  }

  // Reads `n` events, failing the test (and returning what came) if they do not come.
  static std::vector<HubEvent> Take(EventHub::Subscription& sub, size_t n) {
    std::vector<HubEvent> got;
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (got.size() < n && std::chrono::steady_clock::now() < until && !sub.closed()) {
      if (auto ev = sub.Next(100)) got.push_back(std::move(*ev));
    }
    EXPECT_EQ(got.size(), n) << "events that did not come";
    return got;
  }

  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<EventHub> hub_;
};

TEST_F(EventHubTest, PublishesEventsInChainOrderWithTheirAction) {
  Submit(*gateway_, "bot-token", kRead, ActionStatus::kApplied);  // before the hub: not published
  StartHub();
  const int64_t start = hub_->published_seq();
  EXPECT_EQ(start, Head(*gateway_)) << "the hub starts at the head of the chain";
  auto sub = hub_->Subscribe(std::nullopt, nullptr);

  const std::string read = Submit(*gateway_, "bot-token", kRead, ActionStatus::kApplied);
  const std::string low = Submit(*gateway_, "bot-token", kLowWrite, ActionStatus::kApplied);
  const std::string high = Submit(*gateway_, "bot2-token", kHighWrite, ActionStatus::kPending);
  ASSERT_TRUE(gateway_->Vote(std::string("dba-token"), high, false, "no").status.ok());

  // read; submitted + applied; submitted; vote + rejected
  std::vector<HubEvent> got = Take(*sub, 6);
  ASSERT_EQ(got.size(), 6u);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].seq, start + 1 + static_cast<int64_t>(i)) << "in chain order, no gaps";
  }
  auto expect = [&](const HubEvent& ev, const std::string& event, const std::string& id,
                    const std::string& status, const std::string& risk, const std::string& agent) {
    EXPECT_EQ(ev.event, event);
    EXPECT_EQ(ev.action_id, id) << event;
    EXPECT_EQ(ev.status, status) << event;
    EXPECT_EQ(ev.risk, risk) << event;
    EXPECT_EQ(ev.target, "db") << event;
    EXPECT_EQ(ev.agent, agent) << event;
  };
  expect(got[0], "read", read, "applied", "read", "bot");
  expect(got[1], "submitted", low, "applying", "low", "bot");
  // The events below carry no action details in their payload: the hub adds them.
  expect(got[2], "applied", low, "applied", "low", "bot");
  expect(got[3], "submitted", high, "pending", "high", "bot2");
  expect(got[4], "vote", high, "pending", "high", "bot2");
  expect(got[5], "rejected", high, "rejected", "high", "bot2");
  EXPECT_EQ(got[4].principal, "approver:dba");
  EXPECT_EQ(got[5].raw.payload.value("reason", ""), "no") << "the whole event is kept";
  EXPECT_EQ(hub_->published_seq(), start + 6);

  Json j = got[2].ToJson();
  EXPECT_EQ(j["seq"], start + 3);
  EXPECT_EQ(j["event"], "applied");
  EXPECT_EQ(j["action_id"], low);
  EXPECT_EQ(j["status"], "applied");
  EXPECT_EQ(j["risk"], "low");
  EXPECT_EQ(j["target"], "db");
  EXPECT_EQ(j["agent"], "bot");
  EXPECT_FALSE(j.contains("raw")) << "the SSE object leaves the payload out";
}

TEST_F(EventHubTest, ActionDetailsMissingFromAnEventComeFromTheStore) {
  // Submitted before the hub started: nothing about it is cached.
  const std::string id = Submit(*gateway_, "bot2-token", kLowWrite, ActionStatus::kApplied);
  StartHub();
  auto sub = hub_->Subscribe(std::nullopt, nullptr);
  // An agent trying to roll it back is refused (event "denied", about the action, without
  // its status: the store tells where the action stands).
  EXPECT_FALSE(gateway_->Rollback(std::string("bot-token"), id).status.ok());
  std::vector<HubEvent> got = Take(*sub, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].event, "denied");
  EXPECT_EQ(got[0].status, "applied") << "a refusal is no decision about the action";
  // Then an approver rolls it back.
  ASSERT_TRUE(gateway_->Rollback(std::string("dba-token"), id).status.ok());
  std::vector<HubEvent> more = Take(*sub, 2);
  got.insert(got.end(), more.begin(), more.end());
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1].event, "rollback_started");
  EXPECT_EQ(got[1].status, "rolling_back");
  EXPECT_EQ(got[2].event, "rolled_back");
  EXPECT_EQ(got[2].status, "rolled_back");
  for (const HubEvent& ev : got) {
    EXPECT_EQ(ev.action_id, id);
    EXPECT_EQ(ev.agent, "bot2") << ev.event;
    EXPECT_EQ(ev.target, "db") << ev.event;
    EXPECT_EQ(ev.risk, "low") << ev.event;
  }
}

TEST_F(EventHubTest, FilterGivesAnAgentOnlyItsOwnActions) {
  StartHub();
  auto mine = hub_->Subscribe(std::nullopt, [](const HubEvent& e) { return e.agent == "bot2"; });
  auto all = hub_->Subscribe(std::nullopt, nullptr);
  Submit(*gateway_, "bot-token", kRead, ActionStatus::kApplied);
  const std::string b2 = Submit(*gateway_, "bot2-token", kHighWrite, ActionStatus::kPending);
  Submit(*gateway_, "bot-token", kLowWrite, ActionStatus::kApplied);
  ASSERT_TRUE(gateway_->Vote(std::string("dba-token"), b2, true, "").status.ok());

  // everyone: read, submitted, submitted, applied, vote, approved, applied = 7
  std::vector<HubEvent> every = Take(*all, 7);
  std::vector<HubEvent> got = Take(*mine, 4);  // submitted, vote, approved, applied
  ASSERT_EQ(got.size(), 4u);
  const char* events[] = {"submitted", "vote", "approved", "applied"};
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].event, events[i]);
    EXPECT_EQ(got[i].action_id, b2);
    EXPECT_EQ(got[i].agent, "bot2");
  }
  EXPECT_EQ(got[2].status, "applying");
  EXPECT_EQ(got[3].status, "applied");
  EXPECT_FALSE(mine->Next(50).has_value()) << "nothing of bot's";
}

TEST_F(EventHubTest, ResumeReplaysFromTheStoreWithoutGapsOrDuplicates) {
  // Events from before the hub started are in the store only.
  for (int i = 0; i < 5; ++i) Submit(*gateway_, "bot-token", kRead, ActionStatus::kApplied);
  StartHub();

  // Subscriptions made while another thread keeps writing, each resuming at a different
  // point behind the hub: every one must read each seq after its resume point exactly once.
  std::atomic<bool> writing{true};
  std::thread writer([&] {
    for (int i = 0; i < 300; ++i) {
      Sql(*gateway_, i % 2 ? "bot-token" : "bot2-token", kRead);
    }
    writing = false;
  });
  struct Resumed {
    int64_t after;
    std::unique_ptr<EventHub::Subscription> sub;
  };
  std::vector<Resumed> subs;
  subs.push_back({0, hub_->Subscribe(0, nullptr)});
  for (int i = 0; i < 8 && writing; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const int64_t behind = std::max<int64_t>(0, hub_->published_seq() - 3 * i);
    subs.push_back({behind, hub_->Subscribe(behind, nullptr)});
  }
  writer.join();
  const int64_t head = Head(*gateway_);
  ASSERT_TRUE(Eventually([&] { return hub_->published_seq() == head; }));

  for (auto& r : subs) {
    std::vector<HubEvent> got = Take(*r.sub, static_cast<size_t>(head - r.after));
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].seq, r.after + 1 + static_cast<int64_t>(i))
          << "resumed after " << r.after << ": a gap or a duplicate";
      EXPECT_EQ(got[i].event, "read");
      EXPECT_EQ(got[i].status, "applied");
      EXPECT_FALSE(got[i].agent.empty());
    }
    EXPECT_FALSE(r.sub->Next(20).has_value()) << "nothing after the head";
  }
}

TEST_F(EventHubTest, ResumePointAheadOfTheHubSkipsWhatWasNotAskedFor) {
  StartHub();
  const int64_t start = hub_->published_seq();
  auto sub = hub_->Subscribe(start + 2, nullptr);
  for (int i = 0; i < 4; ++i) Submit(*gateway_, "bot-token", kRead, ActionStatus::kApplied);
  std::vector<HubEvent> got = Take(*sub, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].seq, start + 3);
  EXPECT_EQ(got[1].seq, start + 4);
}

TEST_F(EventHubTest, SeesChangesMadeByAnotherGatewayOnTheSameStore) {
  StartHub(EventHub::Options{.poll_ms = 50});
  auto sub = hub_->Subscribe(std::nullopt, nullptr);
  // Another process: its changes poke nobody here; the hub finds them when it polls.
  auto other = OpenGateway();
  ASSERT_NE(other, nullptr);
  const std::string id = Submit(*other, "bot2-token", kHighWrite, ActionStatus::kPending);
  std::vector<HubEvent> got = Take(*sub, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].action_id, id);
  EXPECT_EQ(got[0].status, "pending");
  EXPECT_EQ(got[0].agent, "bot2");
}

TEST_F(EventHubTest, WaitForDecisionReturnsWhenAnotherGatewayApproves) {
  StartHub(EventHub::Options{.poll_ms = 50});
  const std::string id = Submit(*gateway_, "bot-token", kHighWrite, ActionStatus::kPending);
  auto other = OpenGateway();
  ASSERT_NE(other, nullptr);
  std::thread approver([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    Outcome v = other->Vote(std::string("dba-token"), id, true, "fine");
    EXPECT_TRUE(v.status.ok()) << v.status.ToString();
  });
  EXPECT_TRUE(hub_->WaitForDecision(id, 30000));
  approver.join();
  Outcome shown = gateway_->Show(std::nullopt, id);
  ASSERT_TRUE(shown.action.has_value());
  EXPECT_EQ(shown.action->status, ActionStatus::kApplied);
}

TEST_F(EventHubTest, WaitForDecisionTimesOutWhileNobodyDecides) {
  StartHub(EventHub::Options{.poll_ms = 20});
  const std::string id = Submit(*gateway_, "bot-token", kCritical, ActionStatus::kPending);
  // One approval of the two needed is no decision.
  ASSERT_TRUE(gateway_->Vote(std::string("dba-token"), id, true, "").status.ok());
  EXPECT_FALSE(hub_->WaitForDecision(id, 300));
  EXPECT_FALSE(hub_->WaitForDecision("act_0000000000000000", 50)) << "no such action";
}

TEST_F(EventHubTest, WaitForDecisionOnAnAlreadyDecidedAction) {
  StartHub();
  const std::string id = Submit(*gateway_, "bot-token", kHighWrite, ActionStatus::kPending);
  ASSERT_TRUE(gateway_->Vote(std::string("dba-token"), id, false, "").status.ok());
  // The rejection may have been published (or skipped: nobody listened) before the wait.
  ASSERT_TRUE(Eventually([&] { return hub_->published_seq() == Head(*gateway_); }));
  EXPECT_TRUE(hub_->WaitForDecision(id, 30000));
}

TEST_F(EventHubTest, OverflowingSubscriberIsCutOffWhileOthersContinue) {
  StartHub(EventHub::Options{.poll_ms = 500, .max_backlog = 8});
  auto slow = hub_->Subscribe(std::nullopt, nullptr);  // never reads
  auto fast = hub_->Subscribe(std::nullopt, nullptr);
  std::vector<HubEvent> got;
  for (int i = 0; i < 20; ++i) {
    Submit(*gateway_, "bot-token", kRead, ActionStatus::kApplied);
    std::vector<HubEvent> one = Take(*fast, 1);  // keeps its backlog at one event
    got.insert(got.end(), one.begin(), one.end());
  }
  EXPECT_EQ(got.size(), 20u);
  EXPECT_FALSE(fast->closed());
  EXPECT_TRUE(slow->closed()) << "more than max_backlog events waited for it";
  EXPECT_FALSE(slow->Next(10).has_value()) << "its stream has ended";
  // It resumes from the store where it left off, as a client with Last-Event-ID would.
  auto resumed = hub_->Subscribe(got.front().seq - 1, nullptr);
  std::vector<HubEvent> again = Take(*resumed, 20);
  ASSERT_EQ(again.size(), 20u);
  EXPECT_EQ(again.back().seq, got.back().seq);
}

TEST_F(EventHubTest, CallbacksGetEveryEventInOrder) {
  StartHub();
  std::mutex mu;
  std::vector<int64_t> seqs;
  std::vector<std::string> statuses;
  hub_->OnEvent([&](const HubEvent& e) {
    std::lock_guard<std::mutex> lock(mu);
    seqs.push_back(e.seq);
    statuses.push_back(e.status);
  });
  const int64_t start = hub_->published_seq();
  Submit(*gateway_, "bot-token", kRead, ActionStatus::kApplied);
  Submit(*gateway_, "bot-token", kLowWrite, ActionStatus::kApplied);
  ASSERT_TRUE(Eventually([&] {
    std::lock_guard<std::mutex> lock(mu);
    return seqs.size() >= 3;
  }));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(seqs, (std::vector<int64_t>{start + 1, start + 2, start + 3}));
  EXPECT_EQ(statuses, (std::vector<std::string>{"applied", "applying", "applied"}));
}

TEST_F(EventHubTest, StoppingTheHubEndsEverySubscription) {
  StartHub();
  auto sub = hub_->Subscribe(std::nullopt, nullptr);
  std::atomic<bool> ended{false};
  std::thread reader([&] {
    while (!sub->closed()) (void)sub->Next(60000);
    ended = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let it block in Next
  gateway_->SetObserver(nullptr);
  hub_.reset();
  reader.join();
  EXPECT_TRUE(ended);
  EXPECT_TRUE(sub->closed());
  EXPECT_FALSE(sub->Next(1000).has_value());
}

TEST_F(EventHubTest, StoreReadFailuresAreRetriedWithoutLosingEvents) {
  ReadFailingStore* store = nullptr;
  gateway_ = OpenFailingGateway(&store);
  ASSERT_NE(gateway_, nullptr);
  StartHub(EventHub::Options{.poll_ms = 20});
  auto sub = hub_->Subscribe(std::nullopt, nullptr);
  const int64_t start = hub_->published_seq();

  store->fail_reads = true;
  // Reads and decisions are written in transactions, which still work.
  for (int i = 0; i < 3; ++i) Submit(*gateway_, "bot-token", kRead, ActionStatus::kApplied);
  ASSERT_TRUE(Eventually([&] { return store->failed_reads.load() >= 3; })) << "the hub kept trying";
  EXPECT_FALSE(sub->closed());
  store->fail_reads = false;

  std::vector<HubEvent> got = Take(*sub, 3);
  ASSERT_EQ(got.size(), 3u);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].seq, start + 1 + int64_t(i));
}

}  // namespace
}  // namespace airlock::server
