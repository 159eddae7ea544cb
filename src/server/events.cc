#include "server/events.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <string_view>
#include <unordered_map>

namespace airlock::server {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Events read from the store per scan: large enough that a burst of 10,000 reads a second is
// a handful of scans, small enough that one scan never holds a reader for long.
constexpr size_t kMaxBatch = 4096;
// Events a subscription reads from the store per step of its replay; between steps it
// re-checks its deadline and whether the hub stopped.
constexpr size_t kReplayChunk = 1024;
// Actions whose target, agent and risk are remembered per cache generation (two are kept).
constexpr size_t kCacheGeneration = 4096;
// Pokes that arrive within this gap after a scan started are served by the next scan
// together: at 10,000 events/s the hub does a few hundred scans a second, not one per event.
constexpr auto kMinScanGap = milliseconds(2);
// How often one event's action lookup may fail before the event is published without what
// the lookup would have added (a hub stuck on one unreadable action would publish nothing).
constexpr int kMaxLookupFailures = 3;
// How long a subscription waits before retrying a replay read that failed.
constexpr auto kReplayRetry = milliseconds(100);

std::string PayloadString(const Json& payload, const char* key) {
  if (!payload.is_object()) return "";
  auto it = payload.find(key);
  if (it == payload.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

// The status an event leaves its action in, for the events whose payload does not say it.
// Events not listed (vote_refused, rollback_refused, an approver-only operation denied to an
// agent, auth_failed naming an action) do not move the action, and do not tell where it
// stands: a rollback refused for a pending action leaves it pending. For those the store
// tells the action's status as it is when the hub reads it (which may be later than the
// event when the hub is behind).
std::string ImpliedStatus(std::string_view event) {
  static constexpr std::pair<std::string_view, std::string_view> kImplied[] = {
      {"applied", "applied"},
      {"expired", "expired"},
      {"rejected", "rejected"},
      {"rolled_back", "rolled_back"},
      {"effect_changed", "effect_changed"},
      {"approved", "applying"},
      {"rollback_started", "rolling_back"},
      {"vote", "pending"},
  };
  for (const auto& [name, status] : kImplied) {
    if (event == name) return std::string(status);
  }
  return "";
}

bool IsDecisionStatus(std::string_view status) {
  auto parsed = ParseActionStatus(status);
  return parsed && IsFinal(*parsed);
}

// The hub's view of one audit event before any store lookup: what the event itself says.
// `with_raw` keeps the whole event (payload included), which only listeners that get the
// event need; a scan for waiters alone keeps only what matching a decision takes.
HubEvent Describe(const AuditEvent& e, bool with_raw) {
  HubEvent ev;
  ev.seq = e.seq;
  ev.at_ms = e.at_ms;
  ev.event = e.event;
  ev.action_id = e.action_id;
  ev.principal = e.principal;
  ev.status = PayloadString(e.payload, "status");
  if (ev.status.empty() && !ev.action_id.empty()) ev.status = ImpliedStatus(ev.event);
  if (with_raw) {
    ev.risk = PayloadString(e.payload, "risk");
    // Breaker events name their target and agent without an action.
    ev.target = PayloadString(e.payload, "target");
    ev.agent = PayloadString(e.payload, "agent");
    ev.raw = e;
  }
  return ev;
}

// What never changes about an action once it is recorded.
struct ActionFacts {
  std::string target, agent, risk;
};

// Recently seen actions, so that the events following a submission (votes, applied,
// expired) do not each read the action from the store. Two generations: when the current
// one is full it becomes the old one, which bounds memory without an LRU list.
class FactsCache {
 public:
  std::optional<ActionFacts> Get(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = current_.find(id); it != current_.end()) return it->second;
    auto it = previous_.find(id);
    if (it == previous_.end()) return std::nullopt;
    ActionFacts facts = it->second;
    PutLocked(id, facts);  // still in use: keep it past the next turnover
    return facts;
  }
  void Put(const std::string& id, ActionFacts facts) {
    std::lock_guard<std::mutex> lock(mu_);
    PutLocked(id, std::move(facts));
  }

 private:
  void PutLocked(const std::string& id, ActionFacts facts) {
    if (current_.size() >= kCacheGeneration) {
      previous_ = std::move(current_);
      current_.clear();
    }
    current_[id] = std::move(facts);
  }

  std::mutex mu_;
  std::unordered_map<std::string, ActionFacts> current_;   // GUARDED_BY(mu_)
  std::unordered_map<std::string, ActionFacts> previous_;  // GUARDED_BY(mu_)
};

}  // namespace

Json HubEvent::ToJson() const {
  Json j = {{"seq", seq}, {"at_ms", at_ms}, {"event", event}, {"principal", principal}};
  if (!action_id.empty()) j["action_id"] = action_id;
  if (!status.empty()) j["status"] = status;
  if (!risk.empty()) j["risk"] = risk;
  if (!target.empty()) j["target"] = target;
  if (!agent.empty()) j["agent"] = agent;
  return j;
}

namespace {

using EventPtr = std::shared_ptr<const HubEvent>;
using Callback = std::function<void(const HubEvent&)>;

// The hub's side of one subscription. The hub thread appends; the subscriber's thread takes.
struct SubscriberState {
  std::function<bool(const HubEvent&)> filter;  // set before it is shared; empty: every event
  std::mutex mu;
  std::condition_variable cv;
  std::deque<EventPtr> live;  // GUARDED_BY(mu)
  // The replay from the store covers (start, replay_to]; live events start after it.
  int64_t replay_to = 0;  // GUARDED_BY(mu)
  // Events up to here were not asked for: a stream that starts "at the head" while the
  // hub could not read the head yet learns it here.
  int64_t skip_through = 0;  // GUARDED_BY(mu)
  bool from_head = false;    // set before it is shared
  bool closed = false;       // GUARDED_BY(mu)

  bool Wants(const HubEvent& ev) const { return !filter || filter(ev); }
  void Close() {
    {
      std::lock_guard<std::mutex> lock(mu);
      closed = true;
      live.clear();  // a cut-off subscriber resumes from the store; do not hold its backlog
    }
    cv.notify_all();
  }
};

// A WaitForDecision call in progress.
struct Waiter {
  bool decided = false;  // GUARDED_BY(HubCore::mu)
};

// Everything the hub thread, the request threads and the subscriptions share. Subscriptions
// hold it too, so one that outlives the hub finds it closed instead of freed.
struct HubCore {
  HubCore(Gateway& g, EventHub::Options o) : gateway(g), options(o) {}

  Gateway& gateway;  // used only between BeginUse/EndUse, or by the hub thread
  const EventHub::Options options;
  FactsCache facts;

  std::mutex mu;
  std::condition_variable waiters_cv;  // a waiter decided, or the hub stopped
  std::condition_variable idle_cv;     // users dropped to 0
  // Every event with seq <= published_seq has been given to every subscriber registered
  // when it was published (and seq > its start), or skipped while nobody listened.
  int64_t published_seq = 0;                                  // GUARDED_BY(mu)
  bool head_known = false;                                    // GUARDED_BY(mu)
  bool stopping = false;                                      // GUARDED_BY(mu)
  std::vector<std::shared_ptr<SubscriberState>> subscribers;  // GUARDED_BY(mu)
  std::vector<std::shared_ptr<const Callback>> callbacks;     // GUARDED_BY(mu)
  std::unordered_multimap<std::string, Waiter*> waiters;      // GUARDED_BY(mu)
  // Threads other than the hub's that are using `gateway` (a wait, a replay): the hub's
  // destructor waits for them, since the gateway may be destroyed right after the hub.
  int users = 0;  // GUARDED_BY(mu)

  // The hub thread sleeps on wake_cv; Poke sets `poked` without taking `mu`.
  std::mutex wake_mu;
  std::condition_variable wake_cv;
  std::atomic<bool> poked{false};
  std::atomic<bool> stop{false};

  // Hub thread only: for logging a failing store once per outage, and for giving up on a
  // lookup that keeps failing.
  bool read_error_logged = false;
  int64_t failing_seq = -1;
  int lookup_failures = 0;

  bool BeginUse() {
    std::lock_guard<std::mutex> lock(mu);
    if (stopping) return false;
    ++users;
    return true;
  }
  void EndUse() {
    std::lock_guard<std::mutex> lock(mu);
    if (--users == 0) idle_cv.notify_all();
  }

  // Fills what the event does not say (target, agent, risk; status for events that do not
  // imply one) from the cache or the store. NotFound (an auth_failed event naming a made-up
  // id) leaves them empty; other errors are returned.
  Status Complete(HubEvent* ev) {
    if (ev->action_id.empty()) return Status::Ok();
    if (ev->event == "submitted" && !ev->target.empty() && !ev->agent.empty() &&
        !ev->risk.empty()) {
      // Votes, applied, expired follow only submissions that were not decided at once.
      facts.Put(ev->action_id, {ev->target, ev->agent, ev->risk});
      return Status::Ok();
    }
    const bool need_facts = ev->target.empty() || ev->agent.empty() || ev->risk.empty();
    const bool need_status = ev->status.empty();
    if (!need_facts && !need_status) return Status::Ok();
    if (!need_status) {
      if (auto known = facts.Get(ev->action_id)) {
        Fill(ev, *known);
        return Status::Ok();
      }
    }
    Outcome shown = gateway.Show(std::nullopt, ev->action_id);
    if (shown.status.code() == StatusCode::kNotFound) return Status::Ok();
    if (!shown.status.ok()) return shown.status;
    if (!shown.action) return Status::Ok();
    const Action& a = *shown.action;
    ActionFacts known{a.target, a.agent, RiskName(a.risk)};
    Fill(ev, known);
    if (need_status) ev->status = ActionStatusName(a.status);
    facts.Put(ev->action_id, std::move(known));
    return Status::Ok();
  }
  static void Fill(HubEvent* ev, const ActionFacts& f) {
    if (ev->target.empty()) ev->target = f.target;
    if (ev->agent.empty()) ev->agent = f.agent;
    if (ev->risk.empty()) ev->risk = f.risk;
  }

  void LogReadError(const Status& st) {
    if (read_error_logged) return;
    read_error_logged = true;
    std::fprintf(stderr,
                 "airlock: event hub: reading the audit chain failed; retrying every %d ms: %s\n",
                 options.poll_ms, st.ToString().c_str());
  }
  void LogReadOk() {
    if (!read_error_logged) return;
    read_error_logged = false;
    std::fprintf(stderr, "airlock: event hub: reading the audit chain again\n");
  }

  // The hub starts at the head of the chain; a store that cannot tell it yet is asked again
  // at the next poll (nothing is published until then).
  bool EnsureStarted();
  // One scan. Returns true when there may be more to read at once.
  bool RunCycle();
  // Nobody listens: move to the head without reading events.
  void SkipToHead();
  // Hands a batch to everyone. False if the batch must be read again because a listener
  // came that needs what this batch left out.
  bool Publish(std::vector<HubEvent>& batch, bool complete);
  void Loop();
};

bool HubCore::EnsureStarted() {
  {
    std::lock_guard<std::mutex> lock(mu);
    if (head_known) return true;
  }
  auto head = gateway.AuditHeadNow();
  if (!head.ok()) {
    LogReadError(head.status());
    return false;
  }
  LogReadOk();
  std::vector<std::shared_ptr<SubscriberState>> subs;
  {
    std::lock_guard<std::mutex> lock(mu);
    published_seq = std::max(published_seq, head->seq);
    head_known = true;
    subs = subscribers;
  }
  // Subscribers that came before the head was known: those that gave a resume point were
  // promised everything after it up to the head (from the store); the others start here.
  for (auto& s : subs) {
    {
      std::lock_guard<std::mutex> lock(s->mu);
      if (s->from_head) {
        s->skip_through = std::max(s->skip_through, head->seq);
      } else {
        s->replay_to = std::max(s->replay_to, head->seq);
      }
    }
    s->cv.notify_all();
  }
  return true;
}

void HubCore::SkipToHead() {
  auto head = gateway.AuditHeadNow();
  if (!head.ok()) {
    LogReadError(head.status());
    return;
  }
  LogReadOk();
  std::lock_guard<std::mutex> lock(mu);
  // Only while still nobody listens: one who came meanwhile was promised every event after
  // the seq published when they came.
  if (subscribers.empty() && callbacks.empty() && waiters.empty()) {
    published_seq = std::max(published_seq, head->seq);
  }
}

bool HubCore::RunCycle() {
  if (!EnsureStarted()) return false;
  int64_t from = 0;
  bool complete = false;  // someone gets whole events: build them fully
  {
    std::lock_guard<std::mutex> lock(mu);
    from = published_seq;
    complete = !subscribers.empty() || !callbacks.empty();
    if (!complete && waiters.empty()) {
      // Reading and parsing every event only to drop it would cost the server a good part
      // of a core at 10,000 reads a second.
      from = -1;
    }
  }
  if (from < 0) {
    SkipToHead();
    return false;
  }

  std::vector<HubEvent> batch;
  Status scanned = gateway.ScanAudit(std::nullopt, from, "", [&](const AuditEvent& e) {
    batch.push_back(Describe(e, complete));
    return batch.size() < kMaxBatch && !stop.load(std::memory_order_relaxed);
  });
  const bool full = batch.size() >= kMaxBatch;
  if (!scanned.ok()) LogReadError(scanned);

  if (complete) {
    for (size_t i = 0; i < batch.size(); ++i) {
      Status st = Complete(&batch[i]);
      if (st.ok()) continue;
      if (failing_seq != batch[i].seq) {
        failing_seq = batch[i].seq;
        lookup_failures = 0;
      }
      if (++lookup_failures < kMaxLookupFailures) {
        // Publish what precedes it; this event is read again at the next poll.
        LogReadError(st);
        batch.resize(i);
        scanned = st;
        break;
      }
      std::fprintf(stderr,
                   "airlock: event hub: publishing audit event %lld without its action's "
                   "details: %s\n",
                   static_cast<long long>(batch[i].seq), st.ToString().c_str());
    }
  }
  if (scanned.ok()) LogReadOk();
  if (batch.empty()) return false;
  if (!Publish(batch, complete)) return true;
  return full && scanned.ok();
}

bool HubCore::Publish(std::vector<HubEvent>& batch, bool complete) {
  std::vector<std::shared_ptr<SubscriberState>> subs;
  std::vector<std::shared_ptr<const Callback>> cbs;
  bool woke = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (stopping) return true;
    if (!complete && (!subscribers.empty() || !callbacks.empty())) return false;
    // Subscribers registered from here on replay this batch from the store; those already
    // registered get it below. Both under this lock, so none misses it or gets it twice.
    published_seq = batch.back().seq;
    subs = subscribers;
    cbs = callbacks;
    if (!waiters.empty()) {
      for (const HubEvent& ev : batch) {
        if (ev.action_id.empty() || !IsDecisionStatus(ev.status)) continue;
        auto range = waiters.equal_range(ev.action_id);
        for (auto it = range.first; it != range.second; ++it) {
          it->second->decided = true;
          woke = true;
        }
      }
    }
  }
  if (woke) waiters_cv.notify_all();
  if (!complete) return true;

  std::vector<EventPtr> shared;
  if (!subs.empty()) {
    shared.reserve(batch.size());
    for (HubEvent& ev : batch) shared.push_back(std::make_shared<const HubEvent>(std::move(ev)));
  }
  for (auto& s : subs) {
    std::vector<EventPtr> wanted;
    for (const EventPtr& ev : shared) {
      if (s->Wants(*ev)) wanted.push_back(ev);
    }
    if (wanted.empty()) continue;
    bool overflow = false;
    {
      std::lock_guard<std::mutex> lock(s->mu);
      if (s->closed) continue;
      overflow = s->live.size() + wanted.size() > options.max_backlog;
      if (!overflow) s->live.insert(s->live.end(), wanted.begin(), wanted.end());
    }
    // A subscriber that cannot keep up is cut off rather than slowing the hub (and everyone
    // else) down; it resumes from the store with Last-Event-ID.
    if (overflow) {
      s->Close();
    } else {
      s->cv.notify_one();
    }
  }
  if (!cbs.empty()) {
    for (size_t i = 0; i < batch.size(); ++i) {
      const HubEvent& ev = shared.empty() ? batch[i] : *shared[i];
      for (const auto& cb : cbs) (*cb)(ev);
    }
  }
  return true;
}

void HubCore::Loop() {
  while (!stop.load()) {
    const Clock::time_point started = Clock::now();
    // Cleared before the scan: a poke that comes during it asks for another one.
    poked.store(false);
    if (RunCycle()) continue;
    std::unique_lock<std::mutex> lock(wake_mu);
    wake_cv.wait_until(lock, started + kMinScanGap, [&] { return stop.load(); });
    wake_cv.wait_until(lock, started + milliseconds(std::max(1, options.poll_ms)),
                       [&] { return stop.load() || poked.load(); });
  }
}

class SubscriptionImpl : public EventHub::Subscription {
 public:
  SubscriptionImpl(std::shared_ptr<HubCore> core, std::shared_ptr<SubscriberState> state,
                   int64_t start)
      : core_(std::move(core)), state_(std::move(state)), cursor_(start) {}

  ~SubscriptionImpl() override {
    std::lock_guard<std::mutex> lock(core_->mu);
    auto& subs = core_->subscribers;
    subs.erase(std::remove(subs.begin(), subs.end(), state_), subs.end());
  }

  std::optional<HubEvent> Next(int timeout_ms) override {
    const Clock::time_point deadline = Clock::now() + milliseconds(std::max(0, timeout_ms));
    while (true) {
      if (!replayed_.empty()) {
        HubEvent out = std::move(replayed_.front());
        replayed_.pop_front();
        return out;
      }
      int64_t replay_to = 0;
      {
        std::lock_guard<std::mutex> lock(state_->mu);
        if (state_->closed) return std::nullopt;
        replay_to = state_->replay_to;
        cursor_ = std::max(cursor_, state_->skip_through);
      }
      if (cursor_ < replay_to) {
        Status st = ReplayChunk(replay_to);
        if (!replayed_.empty()) continue;
        if (!st.ok()) {
          // The store failed: try again shortly, or let the caller send its keep-alive.
          std::unique_lock<std::mutex> lock(state_->mu);
          state_->cv.wait_until(lock, std::min(deadline, Clock::now() + kReplayRetry),
                                [&] { return state_->closed; });
        }
        if (Clock::now() >= deadline) return std::nullopt;
        continue;
      }
      std::unique_lock<std::mutex> lock(state_->mu);
      state_->cv.wait_until(lock, deadline, [&] {
        return state_->closed || !state_->live.empty() || state_->replay_to > cursor_;
      });
      if (state_->closed) return std::nullopt;
      // The hub learned its start late and extended the replay: the store comes first.
      if (state_->replay_to > cursor_) continue;
      cursor_ = std::max(cursor_, state_->skip_through);
      while (!state_->live.empty()) {
        EventPtr ev = std::move(state_->live.front());
        state_->live.pop_front();
        // Events up to a resume point that was ahead of the hub were not asked for.
        if (ev->seq <= cursor_) continue;
        cursor_ = ev->seq;
        return *ev;
      }
      if (Clock::now() >= deadline) return std::nullopt;
    }
  }

  bool closed() const override {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->closed;
  }

 private:
  // Reads the next events of (cursor_, replay_to] from the store into replayed_ (those the
  // filter wants) and moves cursor_ past what was read.
  Status ReplayChunk(int64_t replay_to) {
    if (!core_->BeginUse()) {
      state_->Close();
      return Status::Ok();
    }
    std::vector<HubEvent> read;
    Status st = core_->gateway.ScanAudit(std::nullopt, cursor_, "", [&](const AuditEvent& e) {
      if (e.seq > replay_to) return false;
      read.push_back(Describe(e, /*with_raw=*/true));
      return read.size() < kReplayChunk;
    });
    for (HubEvent& ev : read) {
      Status done = core_->Complete(&ev);
      if (!done.ok()) {
        st = done;
        break;
      }
      cursor_ = ev.seq;
      if (state_->Wants(ev)) replayed_.push_back(std::move(ev));
    }
    // Read to the end of the store's chain short of replay_to: nothing is left to replay
    // (a chain can only grow, so this happens only when the start was ahead of the hub).
    if (st.ok() && read.size() < kReplayChunk) cursor_ = std::max(cursor_, replay_to);
    core_->EndUse();
    return st;
  }

  std::shared_ptr<HubCore> core_;
  std::shared_ptr<SubscriberState> state_;
  // Owned by the subscriber's thread (Next is not called concurrently): the seq through
  // which this stream has been read, from the store or live.
  int64_t cursor_;
  std::deque<HubEvent> replayed_;
};

}  // namespace

struct EventHub::Impl {
  std::shared_ptr<HubCore> core;
  std::thread thread;
};

EventHub::EventHub(Gateway& gateway, Options options) : impl_(std::make_unique<Impl>()) {
  impl_->core = std::make_shared<HubCore>(gateway, options);
  // Read the head before returning, so that "from now on" means from this call.
  impl_->core->EnsureStarted();
  impl_->thread = std::thread([core = impl_->core.get()] { core->Loop(); });
}

EventHub::~EventHub() {
  HubCore& c = *impl_->core;
  std::vector<std::shared_ptr<SubscriberState>> subs;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    c.stopping = true;
    subs = std::move(c.subscribers);
    c.subscribers.clear();
  }
  c.stop.store(true);
  { std::lock_guard<std::mutex> lock(c.wake_mu); }
  c.wake_cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
  for (auto& s : subs) s->Close();
  c.waiters_cv.notify_all();
  std::unique_lock<std::mutex> lock(c.mu);
  c.idle_cv.wait(lock, [&] { return c.users == 0; });
}

void EventHub::Poke() {
  HubCore& c = *impl_->core;
  if (c.poked.exchange(true)) return;  // a scan is already due and will see this change
  {
    // Taking the lock orders this poke against the hub's check of `poked` before it sleeps.
    std::lock_guard<std::mutex> lock(c.wake_mu);
  }
  c.wake_cv.notify_one();
}

std::unique_ptr<EventHub::Subscription> EventHub::Subscribe(
    std::optional<int64_t> after, std::function<bool(const HubEvent&)> filter) {
  auto state = std::make_shared<SubscriberState>();
  state->filter = std::move(filter);
  state->from_head = !after.has_value();
  int64_t start = 0;
  {
    std::lock_guard<std::mutex> lock(impl_->core->mu);
    start = after ? std::max<int64_t>(0, *after) : impl_->core->published_seq;
    state->replay_to = impl_->core->published_seq;  // not shared yet
    if (impl_->core->stopping) {
      state->closed = true;
    } else {
      impl_->core->subscribers.push_back(state);
    }
  }
  return std::make_unique<SubscriptionImpl>(impl_->core, std::move(state), start);
}

void EventHub::OnEvent(std::function<void(const HubEvent&)> fn) {
  auto cb = std::make_shared<const Callback>(std::move(fn));
  std::lock_guard<std::mutex> lock(impl_->core->mu);
  impl_->core->callbacks.push_back(std::move(cb));
}

bool EventHub::WaitForDecision(const std::string& action_id, int timeout_ms) {
  HubCore& c = *impl_->core;
  const Clock::time_point deadline = Clock::now() + milliseconds(std::max(0, timeout_ms));
  Waiter me;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.stopping) return false;
    ++c.users;
    c.waiters.emplace(action_id, &me);
  }
  // Registered first, then asked the store: a decision recorded before the registration
  // (already published, or skipped while nobody listened) is in the store, and one recorded
  // after it will be published to this waiter. Nothing falls between the two.
  Outcome shown = c.gateway.Show(std::nullopt, action_id);
  const bool already = shown.status.ok() && shown.action && IsFinal(shown.action->status);

  std::unique_lock<std::mutex> lock(c.mu);
  if (!already) {
    c.waiters_cv.wait_until(lock, deadline, [&] { return me.decided || c.stopping; });
  }
  const bool decided = already || me.decided;
  // By value: other waiters' inserts may have rehashed the map since this one was added.
  auto range = c.waiters.equal_range(action_id);
  for (auto it = range.first; it != range.second; ++it) {
    if (it->second == &me) {
      c.waiters.erase(it);
      break;
    }
  }
  if (--c.users == 0) c.idle_cv.notify_all();
  return decided;
}

int64_t EventHub::published_seq() const {
  std::lock_guard<std::mutex> lock(impl_->core->mu);
  return impl_->core->published_seq;
}

}  // namespace airlock::server
