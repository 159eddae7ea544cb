#include "notify/notify.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>

#include "core/json.h"
#include "net/curl.h"

namespace airlock::notify {
namespace {

using Clock = std::chrono::steady_clock;

// ---- NotificationFor ------------------------------------------------------------------------

std::string StringField(const Json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string FirstNonEmpty(const std::string& a, const std::string& b) {
  return a.empty() ? b : a;
}

// Cuts `s` to at most `max` bytes without splitting a UTF-8 sequence.
std::string Cap(std::string s, size_t max) {
  if (s.size() <= max) return s;
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  s.resize(cut);
  return s + "...";
}

// Text for one line of chat. Agents choose target names, SQL and file names that end up in
// reasons and errors, so: control characters (a newline would forge a second line) become
// spaces; &, < and > are escaped, as Slack requires, so that `<!channel>` or `<https://x|y>`
// cannot ping everyone or forge a link; and the plain-text mass mentions of Mattermost and
// Discord (@channel, @here, @everyone, @all) get a zero-width space after the '@'.
std::string ChatSafe(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      out += ' ';
    } else if (c == '&') {
      out += "&amp;";
    } else if (c == '<') {
      out += "&lt;";
    } else if (c == '>') {
      out += "&gt;";
    } else if (c == '@') {
      out += '@';
      for (std::string_view word : {"channel", "here", "everyone", "all"}) {
        std::string next = s.substr(i + 1, word.size());
        for (char& ch : next) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (next == word) {
          out += "\u200b";
          break;
        }
      }
    } else {
      out += c;
    }
  }
  return out;
}

// The leading run of `s` that `ok` accepts, at most `max` bytes.
template <typename Pred>
std::string LeadingRun(std::string_view s, size_t max, Pred ok) {
  size_t n = 0;
  while (n < s.size() && n < max && ok(static_cast<unsigned char>(s[n]))) ++n;
  return std::string(s.substr(0, n));
}

// A short label for what the action does: the SQL statement's first keyword ("DELETE"), a
// command's name ("command rm"), else its kind. Only letters, digits and a few marks pass,
// so the label cannot carry markup.
std::string OpLabel(const Json& p) {
  const Json* args = p.is_object() && p.contains("args") ? &p["args"] : nullptr;
  if (std::string sql = args ? StringField(*args, "sql") : ""; !sql.empty()) {
    size_t start = std::min(sql.find_first_not_of(" \t\r\n("), sql.size());
    std::string word = LeadingRun(std::string_view(sql).substr(start), 16,
                                  [](unsigned char c) { return std::isalpha(c) || c == '_'; });
    for (char& c : word) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return word.empty() ? "SQL" : word;
  }
  const Json* argv =
      args != nullptr && args->is_object() && args->contains("argv") ? &(*args)["argv"] : nullptr;
  if (argv != nullptr && argv->is_array() && !argv->empty() && (*argv)[0].is_string()) {
    const std::string& argv0 = (*argv)[0].get_ref<const std::string&>();
    std::string name =
        LeadingRun(std::string_view(argv0).substr(argv0.rfind('/') + 1), 32, [](unsigned char c) {
          return std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == '+';
        });
    return name.empty() ? "command" : "command " + name;
  }
  const std::string kind = StringField(p, "kind");
  if (kind == "sql") return "SQL";
  if (kind == "shell") return "command";
  return "action";
}

std::string Reasons(const Json& p) {
  std::string out;
  if (!p.is_object() || !p.contains("reasons") || !p["reasons"].is_array()) return out;
  for (const Json& r : p["reasons"]) {
    if (!r.is_string()) continue;
    if (!out.empty()) out += "; ";
    out += r.get<std::string>();
  }
  return out;
}

// "approver:alice" -> "alice".
std::string PrincipalName(const std::string& principal) {
  size_t colon = principal.find(':');
  return colon == std::string::npos ? principal : principal.substr(colon + 1);
}

struct Mapped {
  std::string kind;
  std::string status;  // the action's status this event records ("" for breakers)
};

std::optional<Mapped> Map(const AuditEvent& e, const EventFacts& facts) {
  const Json& p = e.payload;
  if (e.event == "submitted") {
    // The event's own status is what it recorded; the hub's may have moved on since.
    if (FirstNonEmpty(StringField(p, "status"), facts.status) != "pending") return std::nullopt;
    return Mapped{"pending", "pending"};
  }
  if (e.event == "denied") {
    // An operation refused to a principal (an agent's vote, an approver's submission) is an
    // authorization failure, not an action's decision; dry-run "denies" every write.
    if (p.is_object() && (p.contains("operation") || p.contains("would_status"))) {
      return std::nullopt;
    }
    return Mapped{"denied", "denied"};
  }
  for (const char* same : {"applied", "rejected", "expired", "failed", "rolled_back"}) {
    if (e.event == same) return Mapped{same, same};
  }
  if (e.event == "effect_changed") return Mapped{"failed", "effect_changed"};
  if (e.event == "breaker_tripped") return Mapped{"breaker", ""};
  // Recovery after a crash that left an action failed (a message or tool call whose outcome
  // is unknown, say) alerts like any failure: someone should check the far side.
  if (e.event == "recovered" && StringField(p, "status") == "failed") {
    return Mapped{"failed", "failed"};
  }
  return std::nullopt;
}

std::string Text(const Mapped& m, const AuditEvent& e, const Json& payload) {
  // A denied request's target is whatever the agent sent: bounded like the other free text.
  const std::string agent = Cap(StringField(payload, "agent"), 100);
  const std::string target = Cap(StringField(payload, "target"), 100);
  const std::string risk = StringField(payload, "risk");
  const std::string error = Cap(StringField(payload, "error"), 300);
  const std::string reason = Cap(StringField(payload, "reason"), 300);
  if (m.kind == "breaker") {
    return "airlock: circuit breaker tripped for " + (agent.empty() ? "an agent" : agent) + " on " +
           (target.empty() ? "a target" : target) +
           ": every write needs approval until an approver resets it" +
           (reason.empty() ? "" : " (" + reason + ")");
  }
  std::string subject = (agent.empty() ? std::string("an agent's") : agent + "'s") + " " +
                        OpLabel(e.payload) + (target.empty() ? "" : " on " + target) +
                        (risk.empty() ? "" : " (" + risk + ")");
  const std::string id = e.action_id.empty() ? "" : ": " + e.action_id;
  const std::string by = PrincipalName(e.principal);
  std::string line;
  if (m.status == "pending") {
    std::string reasons = Cap(Reasons(payload), 300);
    line = subject + " waits for approval" + id + (reasons.empty() ? "" : " (" + reasons + ")");
  } else if (m.status == "applied") {
    line = subject + " was applied" + id;
  } else if (m.status == "denied") {
    line = subject + " was denied" + id + (error.empty() ? "" : " (" + error + ")");
  } else if (m.status == "rejected") {
    line = subject + " was rejected by " + by + id + (reason.empty() ? "" : " (" + reason + ")");
  } else if (m.status == "expired") {
    line = subject + " expired without a decision" + id;
  } else if (m.status == "effect_changed") {
    line =
        subject + " was approved but not applied: its real effect differed from the preview" + id;
  } else if (m.status == "rolled_back") {
    line = subject + " was rolled back by " + by + id;
  } else {
    line = subject + " failed" + id + (error.empty() ? "" : " (" + error + ")");
  }
  return "airlock: " + line;
}

}  // namespace

std::optional<Notification> NotificationFor(const AuditEvent& e, const EventFacts& facts) {
  std::optional<Mapped> m = Map(e, facts);
  if (!m) return std::nullopt;
  const Json& p = e.payload;
  Json out = Json::object();
  auto put = [&](const char* key, const std::string& value) {
    if (!value.empty()) out[key] = value;
  };
  out["kind"] = m->kind;
  put("action_id", e.action_id);
  put("target", FirstNonEmpty(facts.target, StringField(p, "target")));
  put("agent", FirstNonEmpty(facts.agent, StringField(p, "agent")));
  if (m->kind != "breaker") {
    put("risk", FirstNonEmpty(facts.risk, StringField(p, "risk")));
    put("status", m->status);
  }
  if (p.is_object() && p.contains("reasons") && p["reasons"].is_array()) {
    out["reasons"] = p["reasons"];
  }
  out["at_ms"] = e.at_ms;
  if (e.seq > 0) out["seq"] = e.seq;
  put("principal", e.principal);
  if (m->status == "effect_changed") {
    out["error"] = "the real effect differs from the approved preview; nothing was applied";
  } else if (m->kind == "denied" || m->kind == "failed") {
    put("error", StringField(p, "error"));
  }
  if (m->kind == "rejected" || m->kind == "breaker") put("reason", StringField(p, "reason"));
  out["text"] = ChatSafe(Text(*m, e, out));
  return Notification{m->kind, std::move(out)};
}

// ---- Notifier -------------------------------------------------------------------------------

namespace {

constexpr auto kLogEvery = std::chrono::seconds(10);

struct Delivery {
  size_t hook = 0;                          // index into Impl::hooks
  std::shared_ptr<const std::string> body;  // one JSON text, shared by every hook it goes to
  int attempts = 0;                         // made so far
};

// What the worker tells stderr about one hook, at most one line per kLogEvery: a receiver
// that is down must not turn every action into a log line.
struct HookLog {
  Clock::time_point next;
  int64_t failed = 0;   // given up since the last line
  int64_t dropped = 0;  // queue full since the last line
  std::string last_error;
};

}  // namespace

struct Notifier::Impl {
  std::vector<NotifySpec> hooks;
  std::vector<std::string> origins;  // scheme://host[:port]: what logs may show of a URL
  Options options;

  mutable std::mutex mu;
  std::condition_variable cv;
  std::multimap<Clock::time_point, Delivery> queue;  // GUARDED_BY(mu), by due time
  Stats stats;                                       // GUARDED_BY(mu)
  std::vector<HookLog> logs;                         // GUARDED_BY(mu)
  bool stopping = false;                             // GUARDED_BY(mu)
  bool worker_done = false;                          // GUARDED_BY(mu)
  Clock::time_point drain_deadline;                  // GUARDED_BY(mu)
  // Set by the destructor when the grace is over: abandons the transfer under way.
  std::atomic<bool> cancel{false};
  std::thread worker;

  bool Wants(const NotifySpec& hook, const std::string& kind) const {
    return hook.on.empty() || std::find(hook.on.begin(), hook.on.end(), kind) != hook.on.end();
  }

  int BackoffMs(int attempts) const {
    int64_t ms = std::max(0, options.initial_backoff_ms);
    for (int i = 1; i < attempts && ms < options.max_backoff_ms; ++i) ms *= 2;
    return static_cast<int>(std::min<int64_t>(ms, options.max_backoff_ms));
  }

  Status Attempt(const Delivery& d, int timeout_ms) {
    Result<net::HttpResponse> r = net::Post(hooks[d.hook].url, {"Content-Type: application/json"},
                                            *d.body, timeout_ms, &cancel);
    if (!r.ok()) {
      // net::Post names the URL as "POST scheme://host: ..."; the log line names it already.
      std::string msg = r.status().message();
      const std::string prefix = "POST " + origins[d.hook] + ": ";
      if (msg.rfind(prefix, 0) == 0) msg.erase(0, prefix.size());
      return Status(r.status().code(), msg);
    }
    if (r->status >= 200 && r->status < 300) return Status::Ok();
    std::string body = Cap(r->body, 200);  // e.g. Slack's "invalid_token": worth a log line
    for (char& c : body) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = ' ';
    }
    return Status::IoError("HTTP " + std::to_string(r->status) + (body.empty() ? "" : ": " + body));
  }

  // Lines due for stderr, taken under `mu` and written after it is released, so that a
  // blocked stderr never holds up Post().
  std::vector<std::string> TakeLogLines(Clock::time_point now, bool force) {
    std::vector<std::string> lines;
    for (size_t i = 0; i < logs.size(); ++i) {
      HookLog& l = logs[i];
      if ((l.failed == 0 && l.dropped == 0) || (!force && now < l.next)) continue;
      std::string line = "airlock: notify " + origins[i] + ":";
      if (l.failed > 0) {
        line += " gave up on " + std::to_string(l.failed) + " notification" +
                (l.failed == 1 ? "" : "s") + " (last: " + l.last_error + ")";
      }
      if (l.dropped > 0) {
        line += std::string(l.failed > 0 ? ";" : "") + " dropped " + std::to_string(l.dropped) +
                " notification" + (l.dropped == 1 ? "" : "s") + ": the queue is full (" +
                std::to_string(options.max_queue) + ")";
      }
      lines.push_back(std::move(line));
      l = HookLog{now + kLogEvery, 0, 0, ""};
    }
    return lines;
  }

  // When the next suppressed line may be written; max() if none is waiting.
  Clock::time_point NextLogTime() const {
    Clock::time_point next = Clock::time_point::max();
    for (const HookLog& l : logs) {
      if (l.failed > 0 || l.dropped > 0) next = std::min(next, l.next);
    }
    return next;
  }

  static void WriteLines(const std::vector<std::string>& lines) {
    for (const std::string& line : lines) std::fprintf(stderr, "%s\n", line.c_str());
  }

  void GiveUp(const Delivery& d, const std::string& why) {  // REQUIRES(mu)
    ++stats.failed;
    ++logs[d.hook].failed;
    logs[d.hook].last_error = why;
  }

  void Run();
};

void Notifier::Impl::Run() {
  std::unique_lock<std::mutex> lock(mu);
  while (true) {
    const Clock::time_point now = Clock::now();
    std::vector<std::string> lines = TakeLogLines(now, /*force=*/false);
    if (!lines.empty()) {
      lock.unlock();
      WriteLines(lines);
      lock.lock();
      continue;
    }
    if (stopping && (queue.empty() || now >= drain_deadline)) break;
    if (queue.empty() || now < queue.begin()->first) {
      Clock::time_point wake = NextLogTime();
      if (!queue.empty()) wake = std::min(wake, queue.begin()->first);
      if (stopping) wake = std::min(wake, drain_deadline);
      if (wake == Clock::time_point::max()) {
        cv.wait(lock);
      } else {
        cv.wait_until(lock, wake);
      }
      continue;
    }
    Delivery d = std::move(queue.begin()->second);
    queue.erase(queue.begin());
    int timeout_ms = options.timeout_ms;
    if (stopping) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(drain_deadline - now);
      timeout_ms = static_cast<int>(std::clamp<int64_t>(left.count(), 1, timeout_ms));
    }
    lock.unlock();
    Status st = Attempt(d, timeout_ms);  // the network, never under the lock
    lock.lock();
    ++d.attempts;
    if (st.ok()) {
      ++stats.delivered;
    } else if (d.attempts < options.max_attempts && !(stopping && Clock::now() >= drain_deadline)) {
      ++stats.retried;
      queue.emplace(Clock::now() + std::chrono::milliseconds(BackoffMs(d.attempts)), std::move(d));
    } else if (d.attempts < options.max_attempts) {
      GiveUp(d, "airlock stopped during the delivery: " + st.message());
    } else {
      GiveUp(d, std::to_string(d.attempts) + " attempt" + (d.attempts == 1 ? "" : "s") +
                    " failed, the last with: " + st.message());
    }
  }
  // Stopped, and the grace is over: what is left will never be delivered.
  for (const auto& [due, d] : queue) GiveUp(d, "airlock stopped before it could be delivered");
  queue.clear();
  std::vector<std::string> lines = TakeLogLines(Clock::now(), /*force=*/true);
  worker_done = true;
  lock.unlock();
  cv.notify_all();
  WriteLines(lines);
}

Notifier::Notifier(std::vector<NotifySpec> hooks, Options options) : impl_(new Impl) {
  impl_->options = options;
  impl_->options.max_attempts = std::max(1, options.max_attempts);
  impl_->options.timeout_ms = std::max(1, options.timeout_ms);
  for (const NotifySpec& h : hooks) impl_->origins.push_back(net::UrlOrigin(h.url));
  impl_->logs.resize(hooks.size());
  impl_->hooks = std::move(hooks);
  if (impl_->hooks.empty()) {
    impl_->worker_done = true;  // nothing to deliver to: no thread
    return;
  }
  impl_->worker = std::thread([impl = impl_.get()] { impl->Run(); });
}

Notifier::~Notifier() {
  {
    std::unique_lock<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
    impl_->drain_deadline = Clock::now() + std::chrono::milliseconds(impl_->options.drain_ms);
    impl_->cv.notify_all();
    // A transfer begun before the stop may have the full per-attempt timeout: at the
    // deadline it is cancelled, so the destructor's wait stays bounded.
    impl_->cv.wait_until(lock, impl_->drain_deadline, [&] { return impl_->worker_done; });
  }
  impl_->cancel = true;
  if (impl_->worker.joinable()) impl_->worker.join();
}

void Notifier::Post(const Notification& n) {
  // Serialised once, outside the lock; CanonicalJson never throws (bad UTF-8 is replaced).
  auto body = std::make_shared<const std::string>(CanonicalJson(n.payload));
  bool queued = false;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    const Clock::time_point now = Clock::now();
    for (size_t i = 0; i < impl_->hooks.size(); ++i) {
      if (!impl_->Wants(impl_->hooks[i], n.kind)) continue;
      if (impl_->stopping || impl_->queue.size() >= impl_->options.max_queue) {
        ++impl_->stats.dropped;
        ++impl_->logs[i].dropped;
        continue;
      }
      impl_->queue.emplace(now, Delivery{i, body, 0});
      queued = true;
    }
  }
  if (queued) impl_->cv.notify_one();
}

Stats Notifier::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}

}  // namespace airlock::notify
