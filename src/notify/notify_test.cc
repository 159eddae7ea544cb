// Notifications: the event -> notification mapping, and delivery to real HTTP receivers on
// 127.0.0.1 (retries, filtering, a receiver that is down, a full queue). No timing
// assertions: every wait is for a condition, with a generous deadline.
#include "notify/notify.h"

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/json.h"
#include "net/http_test_util.h"
#include "policy/policy.h"

namespace airlock::notify {
namespace {

using airlock::testing::HttpReceiver;
using airlock::testing::RefusingPort;
using airlock::testing::Reply;

// ---- events as the gateway records them ----------------------------------------------------

Json Decision(const std::string& status, const std::string& risk) {
  return {{"agent", "support-bot"},
          {"target", "app-db"},
          {"kind", "sql"},
          {"args", {{"sql", "DELETE FROM users WHERE id < 100"}}},
          {"status", status},
          {"risk", risk},
          {"reasons", {"DELETE of 99 rows in users", "rule at airlock.yaml:12: users are people"}},
          {"quorum", 1},
          {"effect", Json::object()}};
}

AuditEvent Event(const std::string& event, Json payload, const std::string& principal,
                 const std::string& action_id = "act_0123456789abcdef") {
  AuditEvent e;
  e.seq = 42;
  e.at_ms = 1700000000123;
  e.action_id = action_id;
  e.principal = principal;
  e.event = event;
  e.payload = std::move(payload);
  return e;
}

AuditEvent Submitted(const std::string& status = "pending") {
  return Event("submitted", Decision(status, "high"), "agent:support-bot");
}

AuditEvent Applied() {
  return Event("applied",
               {{"effect_hash", "ab"}, {"result", {{"rows_changed", 99}}}, {"reversible", true}},
               "approver:alice");
}

const EventFacts kFacts{"", "high", "app-db", "support-bot"};

// ---- NotificationFor -----------------------------------------------------------------------

TEST(NotifyMapping, PendingFromASubmissionThatWaits) {
  auto n = NotificationFor(Submitted(), EventFacts{"pending", "high", "app-db", "support-bot"});
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->kind, "pending");
  const Json& p = n->payload;
  EXPECT_EQ(p["kind"], "pending");
  EXPECT_EQ(p["status"], "pending");
  EXPECT_EQ(p["action_id"], "act_0123456789abcdef");
  EXPECT_EQ(p["agent"], "support-bot");
  EXPECT_EQ(p["target"], "app-db");
  EXPECT_EQ(p["risk"], "high");
  EXPECT_EQ(p["reasons"],
            (Json{"DELETE of 99 rows in users", "rule at airlock.yaml:12: users are people"}));
  EXPECT_EQ(p["seq"], 42);
  EXPECT_EQ(p["at_ms"], 1700000000123);
  EXPECT_EQ(p["principal"], "agent:support-bot");
  EXPECT_FALSE(p.contains("error"));
  EXPECT_EQ(p["text"],
            "airlock: support-bot's DELETE on app-db (high) waits for approval: "
            "act_0123456789abcdef (DELETE of 99 rows in users; rule at airlock.yaml:12: users "
            "are people)");
}

TEST(NotifyMapping, SubmissionsThatDoNotWaitAreNotNotified) {
  // A low-risk write is recorded as submitted (applying), then applied: only "applied" tells.
  EXPECT_FALSE(NotificationFor(Submitted("applying"), kFacts).has_value());
  // The event's own status wins over the hub's, which may have moved on since.
  EXPECT_TRUE(NotificationFor(Submitted("pending"), EventFacts{"applied", "high", "", ""}));
  // Without a status in the payload, the hub's decides.
  Json bare = Decision("pending", "high");
  bare.erase("status");
  EXPECT_TRUE(NotificationFor(Event("submitted", bare, "agent:support-bot"),
                              EventFacts{"pending", "high", "app-db", "support-bot"}));
  EXPECT_FALSE(NotificationFor(Event("submitted", bare, "agent:support-bot"), kFacts));
}

TEST(NotifyMapping, Applied) {
  auto n = NotificationFor(Applied(), EventFacts{"applied", "high", "app-db", "support-bot"});
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->kind, "applied");
  EXPECT_EQ(n->payload["status"], "applied");
  EXPECT_EQ(n->payload["principal"], "approver:alice");
  // Facts from the hub fill what the applied event's payload lacks.
  EXPECT_EQ(n->payload["agent"], "support-bot");
  EXPECT_EQ(n->payload["target"], "app-db");
  EXPECT_EQ(n->payload["risk"], "high");
  EXPECT_FALSE(n->payload.contains("reasons"));
  EXPECT_EQ(n->payload["text"],
            "airlock: support-bot's action on app-db (high) was applied: act_0123456789abcdef");
}

TEST(NotifyMapping, DeniedRejectedExpiredFailedRolledBack) {
  Json denied = Decision("denied", "high");
  denied["error"] = "rate limit 20/min exceeded by support-bot on app-db";
  auto n = NotificationFor(Event("denied", denied, "agent:support-bot"), kFacts);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->kind, "denied");
  EXPECT_EQ(n->payload["status"], "denied");
  EXPECT_EQ(n->payload["error"], "rate limit 20/min exceeded by support-bot on app-db");
  EXPECT_EQ(n->payload["text"],
            "airlock: support-bot's DELETE on app-db (high) was denied: act_0123456789abcdef "
            "(rate limit 20/min exceeded by support-bot on app-db)");

  n = NotificationFor(
      Event("rejected", {{"by", "alice"}, {"reason", "not today"}}, "approver:alice"), kFacts);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->kind, "rejected");
  EXPECT_EQ(n->payload["reason"], "not today");
  EXPECT_EQ(n->payload["text"],
            "airlock: support-bot's action on app-db (high) was rejected by alice: "
            "act_0123456789abcdef (not today)");

  n = NotificationFor(Event("expired", {{"expires_ms", 5}}, "airlock"), kFacts);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->kind, "expired");
  EXPECT_EQ(n->payload["status"], "expired");
  EXPECT_EQ(n->payload["text"],
            "airlock: support-bot's action on app-db (high) expired without a decision: "
            "act_0123456789abcdef");

  Json failed = Decision("failed", "read");
  failed["error"] = "target 'app-db' is a sqlite target; it does not take shell actions";
  n = NotificationFor(Event("failed", failed, "agent:support-bot"), EventFacts{});
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->kind, "failed");
  EXPECT_EQ(n->payload["risk"], "read");  // from the payload when the hub gives none
  EXPECT_EQ(n->payload["error"], failed["error"]);

  n = NotificationFor(Event("rolled_back", {{"undo_kind", "sqlite"}}, "approver:bob"), kFacts);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->kind, "rolled_back");
  EXPECT_EQ(n->payload["status"], "rolled_back");
  EXPECT_EQ(n->payload["text"],
            "airlock: support-bot's action on app-db (high) was rolled back by bob: "
            "act_0123456789abcdef");
}

TEST(NotifyMapping, EffectChangedIsAFailure) {
  auto n = NotificationFor(
      Event("effect_changed", {{"approved_effect_hash", "a"}, {"observed_effect_hash", "b"}},
            "approver:alice"),
      kFacts);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->kind, "failed");
  EXPECT_EQ(n->payload["status"], "effect_changed");
  EXPECT_NE(n->payload["error"].get<std::string>().find("nothing was applied"), std::string::npos);
  EXPECT_NE(n->payload["text"].get<std::string>().find("approved but not applied"),
            std::string::npos);
}

TEST(NotifyMapping, BreakerTripped) {
  AuditEvent e = Event("breaker_tripped",
                       {{"target", "support-mail"},
                        {"agent", "support-bot"},
                        {"reason", "rate limit 20/min exceeded"},
                        {"tripped_by", "act_1"}},
                       "airlock", "");
  auto n = NotificationFor(e, EventFacts{});
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->kind, "breaker");
  EXPECT_EQ(n->payload["target"], "support-mail");
  EXPECT_EQ(n->payload["agent"], "support-bot");
  EXPECT_EQ(n->payload["reason"], "rate limit 20/min exceeded");
  EXPECT_FALSE(n->payload.contains("action_id"));
  EXPECT_FALSE(n->payload.contains("status"));
  EXPECT_EQ(n->payload["text"],
            "airlock: circuit breaker tripped for support-bot on support-mail: every write "
            "needs approval until an approver resets it (rate limit 20/min exceeded)");
}

TEST(NotifyMapping, RecoveredAsFailedAlerts) {
  // A message sent when airlock died: nobody knows whether the server took it.
  AuditEvent e = Event("recovered",
                       {{"was", "applying"},
                        {"target_committed", false},
                        {"status", "failed"},
                        {"agent", "support-bot"},
                        {"target", "support-mail"},
                        {"kind", "mail"},
                        {"error", "whether the mail server accepted it is unknown"},
                        {"error_code", "unknown_outcome"}},
                       "airlock");
  auto n = NotificationFor(e, kFacts);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->kind, "failed");
  EXPECT_EQ(n->payload["status"], "failed");
  EXPECT_NE(n->payload["text"].get<std::string>().find("support-bot"), std::string::npos);
  // Recovered as applied (or rolled back) is the normal end of a crash: no alert.
  EXPECT_FALSE(NotificationFor(
      Event("recovered", {{"was", "applying"}, {"status", "applied"}}, "airlock"), kFacts));
}

TEST(NotifyMapping, EverythingElseIsNone) {
  Json read = Decision("applied", "read");
  EXPECT_FALSE(NotificationFor(Event("read", read, "agent:support-bot"), kFacts));
  EXPECT_FALSE(NotificationFor(
      Event("vote", {{"vote", "approve"}, {"progress", "1 of 2"}}, "approver:alice"), kFacts));
  EXPECT_FALSE(
      NotificationFor(Event("approved", {{"progress", "2 of 2"}}, "approver:bob"), kFacts));
  EXPECT_FALSE(NotificationFor(Event("vote_refused", {{"why", "self"}}, "approver:a"), kFacts));
  EXPECT_FALSE(NotificationFor(Event("auth_failed", {{"operation", "submit"}}, "anonymous", ""),
                               EventFacts{}));
  EXPECT_FALSE(NotificationFor(Event("rollback_started", Json::object(), "approver:a"), kFacts));
  EXPECT_FALSE(NotificationFor(Event("rollback_refused", {{"why", "x"}}, "approver:a"), kFacts));
  EXPECT_FALSE(NotificationFor(
      Event("breaker_reset", {{"target", "t"}, {"agent", "a"}}, "approver:a", ""), EventFacts{}));
  // An agent trying to vote: an authorization failure, not an action's decision.
  EXPECT_FALSE(NotificationFor(
      Event("denied", {{"operation", "approve"}, {"why", "only approvers may approve"}},
            "agent:support-bot"),
      EventFacts{"pending", "high", "app-db", "support-bot"}));
  // mode: dry-run "denies" every write it previews.
  Json dry = Decision("denied", "low");
  dry["would_status"] = "applied";
  EXPECT_FALSE(NotificationFor(Event("denied", dry, "agent:support-bot"), kFacts));
  EXPECT_FALSE(NotificationFor(Event("something_new", Json::object(), "airlock"), kFacts));
  // A payload that is not an object (a corrupt or foreign event) is no crash.
  EXPECT_FALSE(NotificationFor(Event("submitted", Json::array(), "x"), EventFacts{}));
  EXPECT_TRUE(NotificationFor(Event("applied", "junk", "x"), EventFacts{}));
}

TEST(NotifyMapping, CommandsAreNamed) {
  Json p = Decision("pending", "high");
  p["kind"] = "shell";
  p["args"] = {{"argv", {"/usr/bin/rm", "-rf", "build"}}};
  p["target"] = "repo";
  auto n = NotificationFor(Event("submitted", p, "agent:support-bot"), EventFacts{});
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->payload["text"].get<std::string>().rfind(
                "airlock: support-bot's command rm on repo (high) waits for approval", 0),
            0u)
      << n->payload["text"];
}

// What an agent writes reaches a chat channel: it must not ping everyone, forge a link or a
// second line.
TEST(NotifyMapping, TextIsSafeForChat) {
  Json p = Decision("denied", "high");
  p["target"] = "<!channel> <https://evil.example|click>";
  p["error"] = "unknown target\n@here @Everyone fake line & more";
  p["args"] = {{"sql", "<b>DROP</b> TABLE x"}};
  auto n = NotificationFor(Event("denied", p, "agent:support-bot"), EventFacts{});
  ASSERT_TRUE(n.has_value());
  const std::string text = n->payload["text"];
  EXPECT_EQ(text.find('<'), std::string::npos) << text;
  EXPECT_EQ(text.find('>'), std::string::npos) << text;
  EXPECT_EQ(text.find('\n'), std::string::npos) << text;
  EXPECT_NE(text.find("&lt;!channel&gt;"), std::string::npos) << text;
  EXPECT_NE(text.find("&amp; more"), std::string::npos) << text;
  EXPECT_EQ(text.find("@here"), std::string::npos) << text;
  EXPECT_EQ(text.find("@Everyone"), std::string::npos) << text;
  EXPECT_NE(text.find("@\u200bhere"), std::string::npos) << text;
  EXPECT_NE(text.find(" SQL on "), std::string::npos) << text;  // no markup as the label
  // The JSON fields keep the values as they are, for machines.
  EXPECT_EQ(n->payload["target"], "<!channel> <https://evil.example|click>");
  // A novel-length error is cut in the text, not in the field.
  p["error"] = std::string(5000, 'e');
  n = NotificationFor(Event("denied", p, "agent:support-bot"), EventFacts{});
  EXPECT_LT(n->payload["text"].get<std::string>().size(), 1000u);
  EXPECT_EQ(n->payload["error"].get<std::string>().size(), 5000u);
}

// ---- delivery ------------------------------------------------------------------------------

Options Fast() {
  Options o;
  o.initial_backoff_ms = 1;
  o.max_backoff_ms = 4;
  o.timeout_ms = 30000;
  return o;
}

// Waits (generously) for the notifier's counters to satisfy `ok`.
bool WaitForStats(const Notifier& n, const std::function<bool(const Stats&)>& ok) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (ok(n.stats())) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return ok(n.stats());
}

std::vector<NotifySpec> HooksFromPolicy(const std::string& notify_yaml) {
  auto p = LoadPolicyText("version: 1\nnotify:\n" + notify_yaml, "/etc/airlock/airlock.yaml");
  EXPECT_TRUE(p.ok()) << p.status().message();
  return p.ok() ? (*p)->notify : std::vector<NotifySpec>{};
}

Json BodyOf(const airlock::testing::ReceivedRequest& r) {
  auto j = ParseJson(r.body);
  EXPECT_TRUE(j.ok()) << r.body;
  return j.ok() ? *j : Json();
}

TEST(NotifyDelivery, PendingAndAppliedArriveAsJson) {
  HttpReceiver receiver;
  ASSERT_TRUE(receiver.ok());
  Notifier notifier(HooksFromPolicy("  - {url: \"" + receiver.Url("/services/T0/B0/tok") +
                                    "\", on: [pending, applied]}\n"),
                    Fast());
  notifier.Post(*NotificationFor(Submitted(), kFacts));
  notifier.Post(*NotificationFor(Applied(), kFacts));
  ASSERT_TRUE(WaitForStats(notifier, [](const Stats& s) { return s.delivered == 2; }));
  auto got = receiver.requests();
  ASSERT_EQ(got.size(), 2u);
  for (const auto& r : got) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.target, "/services/T0/B0/tok");
    EXPECT_EQ(r.headers.at("content-type"), "application/json");
  }
  Json pending = BodyOf(got[0]);
  EXPECT_EQ(pending["kind"], "pending");
  EXPECT_EQ(pending["status"], "pending");
  EXPECT_EQ(pending["action_id"], "act_0123456789abcdef");
  EXPECT_EQ(pending["agent"], "support-bot");
  EXPECT_EQ(pending["target"], "app-db");
  EXPECT_EQ(pending["risk"], "high");
  EXPECT_EQ(pending["reasons"].size(), 2u);
  EXPECT_EQ(pending["seq"], 42);
  EXPECT_NE(pending["text"].get<std::string>().find("waits for approval: act_0123456789abcdef"),
            std::string::npos);
  Json applied = BodyOf(got[1]);
  EXPECT_EQ(applied["kind"], "applied");
  EXPECT_EQ(applied["status"], "applied");
  EXPECT_EQ(applied["principal"], "approver:alice");
  EXPECT_EQ(notifier.stats().retried, 0);
  EXPECT_EQ(notifier.stats().failed, 0);
  EXPECT_EQ(notifier.stats().dropped, 0);
}

TEST(NotifyDelivery, EachHookGetsOnlyTheEventsItNames) {
  HttpReceiver pending_only, everything;
  Notifier notifier(
      HooksFromPolicy("  - {url: \"" + pending_only.Url() + "\", on: [pending]}\n  - {url: \"" +
                      everything.Url() + "\"}\n"),
      Fast());
  notifier.Post(*NotificationFor(Submitted(), kFacts));
  notifier.Post(*NotificationFor(Applied(), kFacts));
  notifier.Post(*NotificationFor(Event("expired", Json::object(), "airlock"), kFacts));
  ASSERT_TRUE(WaitForStats(notifier, [](const Stats& s) { return s.delivered == 4; }));
  auto a = pending_only.requests();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(BodyOf(a[0])["kind"], "pending");
  auto b = everything.requests();
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(BodyOf(b[0])["kind"], "pending");
  EXPECT_EQ(BodyOf(b[1])["kind"], "applied");
  EXPECT_EQ(BodyOf(b[2])["kind"], "expired");
  // A kind no hook wants is not queued at all.
  Notifier picky(HooksFromPolicy("  - {url: \"" + pending_only.Url() + "\", on: [breaker]}\n"),
                 Fast());
  picky.Post(*NotificationFor(Applied(), kFacts));
  Stats s = picky.stats();
  EXPECT_EQ(s.delivered + s.retried + s.failed + s.dropped, 0);
}

TEST(NotifyDelivery, RetriesUntilTheReceiverAccepts) {
  HttpReceiver flaky([](int i) { return i < 2 ? Reply{500, "oops", "", false} : Reply{}; });
  Notifier notifier({NotifySpec{flaky.Url(), {}, {}}}, Fast());
  notifier.Post(*NotificationFor(Submitted(), kFacts));
  ASSERT_TRUE(WaitForStats(notifier, [](const Stats& s) { return s.delivered == 1; }));
  Stats s = notifier.stats();
  EXPECT_EQ(s.retried, 2);
  EXPECT_EQ(s.failed, 0);
  auto got = flaky.requests();
  ASSERT_EQ(got.size(), 3u);  // the message, once more after each 500
  EXPECT_EQ(got[0].body, got[2].body);
  EXPECT_EQ(BodyOf(got[2])["kind"], "pending");
}

TEST(NotifyDelivery, GivesUpAfterMaxAttemptsWhenTheReceiverIsDown) {
  RefusingPort down;
  ASSERT_TRUE(down.ok());
  Options o = Fast();
  o.max_attempts = 3;
  Notifier notifier({NotifySpec{down.Url("/services/secret-token"), {}, {}}}, o);
  notifier.Post(*NotificationFor(Submitted(), kFacts));
  ASSERT_TRUE(WaitForStats(notifier, [](const Stats& s) { return s.failed == 1; }));
  Stats s = notifier.stats();
  EXPECT_EQ(s.retried, 2);
  EXPECT_EQ(s.delivered, 0);
  EXPECT_EQ(s.dropped, 0);
}

TEST(NotifyDelivery, A3xxIsNotDelivered) {
  HttpReceiver moved([](int) {
    return Reply{301, "", "Location: http://127.0.0.1:1/\r\n", false};
  });
  Options o = Fast();
  o.max_attempts = 2;
  Notifier notifier({NotifySpec{moved.Url(), {}, {}}}, o);
  notifier.Post(*NotificationFor(Applied(), kFacts));
  ASSERT_TRUE(WaitForStats(notifier, [](const Stats& s) { return s.failed == 1; }));
  EXPECT_EQ(moved.requests().size(), 2u);
  EXPECT_EQ(notifier.stats().delivered, 0);
}

// 1,000 notifications while the receiver is down and the queue holds 5: Post() returns for
// every one, and each is either dropped or (after its attempts) failed.
TEST(NotifyDelivery, PostNeverBlocksAndAFullQueueDrops) {
  RefusingPort down;
  ASSERT_TRUE(down.ok());
  Options o = Fast();
  o.max_attempts = 2;
  o.max_queue = 5;
  Notifier notifier({NotifySpec{down.Url(), {}, {}}}, o);
  Notification n = *NotificationFor(Submitted(), kFacts);
  for (int i = 0; i < 1000; ++i) notifier.Post(n);
  ASSERT_TRUE(WaitForStats(notifier, [](const Stats& s) { return s.failed + s.dropped == 1000; }));
  Stats s = notifier.stats();
  EXPECT_GT(s.dropped, 0);
  EXPECT_GE(s.failed, 1);
  EXPECT_EQ(s.delivered, 0);
  EXPECT_EQ(s.retried, s.failed);  // one retry for each message that got in (2 attempts)
}

// A receiver that takes the request and never answers: Post() still returns at once (the
// posting thread would hang here otherwise), the queue overflows, and the destructor ends the
// stuck transfer after its grace period instead of waiting out the 10-minute timeout.
TEST(NotifyDelivery, AHungReceiverHoldsUpNeitherPostNorShutdown) {
  HttpReceiver hung([](int) { return Reply{200, "", "", /*hang=*/true}; });
  Options o = Fast();
  o.timeout_ms = 600000;
  o.max_queue = 10;
  o.drain_ms = 100;
  auto notifier = std::make_unique<Notifier>(std::vector<NotifySpec>{{hung.Url(), {}, {}}}, o);
  Notification n = *NotificationFor(Submitted(), kFacts);
  notifier->Post(n);
  ASSERT_TRUE(hung.WaitForRequests(1));  // the worker is stuck in that transfer now
  auto posting = std::async(std::launch::async, [&] {
    for (int i = 0; i < 1000; ++i) notifier->Post(n);
  });
  ASSERT_EQ(posting.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  Stats s = notifier->stats();
  EXPECT_EQ(s.dropped, 990);  // 10 wait in the queue, the rest are dropped
  EXPECT_EQ(s.delivered, 0);
  auto stopping = std::async(std::launch::async, [&] { notifier.reset(); });
  ASSERT_EQ(stopping.wait_for(std::chrono::seconds(60)), std::future_status::ready);
}

TEST(NotifyDelivery, DestructorDeliversWhatIsQueued) {
  HttpReceiver receiver;
  {
    Options o = Fast();
    o.drain_ms = 60000;  // generous: the drain ends as soon as the queue is empty
    Notifier notifier({NotifySpec{receiver.Url(), {}, {}}}, o);
    for (int i = 0; i < 20; ++i) notifier.Post(*NotificationFor(Applied(), kFacts));
  }
  EXPECT_EQ(receiver.requests().size(), 20u);
}

TEST(NotifyDelivery, NoHooksNoThread) {
  Notifier notifier({}, Options{});
  notifier.Post(*NotificationFor(Applied(), kFacts));
  Stats s = notifier.stats();
  EXPECT_EQ(s.delivered + s.retried + s.failed + s.dropped, 0);
}

}  // namespace
}  // namespace airlock::notify
