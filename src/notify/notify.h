// Notifications: webhooks named by the policy's `notify:` get a JSON POST for the events
// they want (pending, applied, denied, rejected, expired, failed, rolled_back, breaker).
//
// Delivery never blocks or fails an action: Post() only queues. One worker thread delivers
// with libcurl, retrying failed deliveries with exponential backoff; what is still undelivered
// after the last attempt is counted as failed (and logged), never retried forever. A full
// queue drops (and counts) new notifications instead of growing without bound.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/audit_event.h"
#include "core/json.h"
#include "policy/policy.h"

namespace airlock::notify {

// One notification. `kind` is one of the event names above. `payload` is what the webhook
// receives: {"kind", "text", "action_id", "target", "agent", "risk", "status", "reasons",
// "at_ms", "seq", "principal", "error", "reason"} (fields that do not apply are absent;
// `error` says why an action was denied or failed, `reason` is a rejecting approver's reason
// or why a breaker tripped). `text` is one line a Slack-compatible receiver shows as it is
// ("airlock: support-bot's DELETE on app-db (high) waits for approval: act_…"), with &, <, >
// escaped as Slack requires: agents choose much of what it quotes.
struct Notification {
  std::string kind;
  Json payload = Json::object();
};

// The notification an audit event calls for, if any: "submitted" with status pending ->
// pending; "applied", "denied", "rejected", "expired", "failed", "rolled_back" -> themselves;
// "breaker_tripped" -> breaker; "effect_changed" (approved, but nothing applied because the
// real effect differed) -> failed, with status effect_changed; everything else (reads, votes
// short of the quorum, authentication failures, a "denied" operation such as an agent's vote
// or a principal's refused submission, mode: dry-run's "denied" for every write) -> none.
// `status`, `risk`, `target`, `agent` come from the hub (they are not in every event's
// payload); the payload gives reasons and the rest.
struct EventFacts {
  std::string status, risk, target, agent;
};
std::optional<Notification> NotificationFor(const AuditEvent& e, const EventFacts& facts);

struct Options {
  int max_attempts = 5;             // first try included
  int initial_backoff_ms = 500;     // doubled after every failure
  int max_backoff_ms = 30000;
  int timeout_ms = 5000;            // per attempt (connect + send + response)
  size_t max_queue = 10000;         // deliveries waiting; beyond it new ones are dropped
  int drain_ms = 2000;              // the destructor's grace for deliveries still queued
};

struct Stats {
  int64_t delivered = 0;  // 2xx from the receiver
  int64_t retried = 0;    // attempts that failed and were scheduled again
  int64_t failed = 0;     // gave up after max_attempts
  int64_t dropped = 0;    // queue full
};

class Notifier {
 public:
  Notifier(std::vector<NotifySpec> hooks, Options options = {});
  // Stops the worker: deliveries still queued are given up to `options.drain_ms` (default
  // 2 s), a transfer still running then is abandoned, and what is left is counted as failed.
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Queues `n` for every hook whose `on` names n.kind. Never blocks on the network.
  void Post(const Notification& n);
  Stats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace airlock::notify
