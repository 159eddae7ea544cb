// The event hub: a live feed of the audit chain for the server's subscribers (the SSE stream
// /v1/events, POST /v1/actions?wait_ms, notifications, metrics).
//
// The audit chain is the single source of truth: the hub tails it (Store::ScanAudit after the
// last seq it published), so it sees changes made by this process and by any other (a CLI
// vote on the same store) in chain order. Poke() asks for a scan at once (the gateway's
// observer calls it after every recorded change); without pokes it scans every poll
// interval. Publishing happens on the hub's own thread, never on a request thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/audit_event.h"
#include "core/json.h"
#include "gateway/gateway.h"

namespace airlock::server {

// One audit event as the hub publishes it: the event's own fields plus, when it concerns an
// action, the action's status, risk, target and agent as the event's payload (or, for votes
// and other events whose payload lacks them, the store) gives them.
struct HubEvent {
  int64_t seq = 0;
  int64_t at_ms = 0;
  std::string event;
  std::string action_id;  // empty for breaker and authentication events
  std::string principal;
  std::string status, risk, target, agent;  // empty when unknown
  AuditEvent raw;         // the whole event, payload included (for notifications)
  Json ToJson() const;    // the SSE `data:` object (docs/API.md), without `raw`
};

class EventHub {
 public:
  struct Options {
    int poll_ms = 500;          // scan at least this often (other processes' changes)
    size_t max_backlog = 4096;  // per subscriber; a slower one is cut off (its stream ends)
  };
  // Starts at the chain's current head: only events appended from now on are published.
  EventHub(Gateway& gateway, Options options);
  ~EventHub();  // stops the thread; every subscription ends
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  void Poke();

  // A subscription: a bounded queue of events with seq > `after` (a resume point from
  // Last-Event-ID; events already published are re-read from the store). Next() blocks up to
  // `timeout_ms` and returns nullopt on timeout; `closed()` tells that the hub stopped or the
  // backlog overflowed. Destroying it unsubscribes.
  class Subscription {
   public:
    virtual ~Subscription() = default;
    virtual std::optional<HubEvent> Next(int timeout_ms) = 0;
    virtual bool closed() const = 0;
  };
  // `filter` decides per event whether this subscriber gets it (e.g. an agent's own actions).
  std::unique_ptr<Subscription> Subscribe(std::optional<int64_t> after,
                                          std::function<bool(const HubEvent&)> filter);

  // Calls fn for every event published from now on, on the hub's thread (metrics,
  // notifications). fn must be quick and must not call the hub.
  void OnEvent(std::function<void(const HubEvent&)> fn);

  // Blocks until an event about `action_id` with a final status (applied, rejected, denied,
  // expired, failed, effect_changed, rolled_back) is published, or `timeout_ms` passes, or
  // the hub stops. Returns whether such an event came. Used by wait_ms.
  bool WaitForDecision(const std::string& action_id, int timeout_ms);

  int64_t published_seq() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace airlock::server
