#include "server/metrics.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>

namespace airlock::server {
namespace {

// Appends `v` as a label value: backslash, double quote and newline escaped as the text
// format requires, and bytes that are not UTF-8 replaced by U+FFFD. Target and agent names
// come from the policy or from a store another process wrote: a stray quote or newline in
// one must not let it forge other series or break the whole scrape.
void AppendLabelValue(std::string* out, std::string_view v) {
  size_t i = 0;
  while (i < v.size()) {
    const unsigned char c = static_cast<unsigned char>(v[i]);
    if (c < 0x80) {
      if (c == '\\') {
        out->append("\\\\");
      } else if (c == '"') {
        out->append("\\\"");
      } else if (c == '\n') {
        out->append("\\n");
      } else {
        out->push_back(static_cast<char>(c));
      }
      ++i;
      continue;
    }
    // The length of a well-formed sequence starting here (RFC 3629: no overlongs, no
    // surrogates, nothing above U+10FFFF), or 0.
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    bool ok = len > 0 && i + len <= v.size();
    for (size_t k = 1; ok && k < len; ++k) {
      const unsigned char b = static_cast<unsigned char>(v[i + k]);
      ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    }
    if (ok) {
      out->append(v.substr(i, len));
      i += len;
    } else {
      out->append("\xEF\xBF\xBD");
      ++i;
    }
  }
}

// Shortest text that reads back as the same double ("0.001", "3600", "12.5").
std::string FormatDouble(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, end);
}

void AppendFamily(std::string* out, const char* name, const char* type, const char* help) {
  out->append("# HELP ").append(name).append(" ").append(help).append("\n");
  out->append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

// name{k1="v1",k2="v2"} value
class Sample {
 public:
  Sample(std::string* out, std::string_view name) : out_(out) { out_->append(name); }
  Sample& Label(std::string_view key, std::string_view value) {
    out_->push_back(first_ ? '{' : ',');
    first_ = false;
    out_->append(key).append("=\"");
    AppendLabelValue(out_, value);
    out_->push_back('"');
    return *this;
  }
  void Value(int64_t v) { End(std::to_string(v)); }
  void Value(double v) { End(FormatDouble(v)); }

 private:
  void End(const std::string& v) {
    if (!first_) out_->push_back('}');
    out_->append(" ").append(v).append("\n");
  }
  std::string* out_;
  bool first_ = true;
};

bool IsDecision(ActionStatus s) {
  switch (s) {
    case ActionStatus::kApplied:
    case ActionStatus::kRejected:
    case ActionStatus::kDenied:
    case ActionStatus::kExpired:
    case ActionStatus::kFailed:
    case ActionStatus::kEffectChanged:
      return true;
    default:
      return false;
  }
}

}  // namespace

void Metrics::ObserveDecision(const Action& action) {
  // Only decisions: the observer also reports submissions (pending, applying) and rollbacks,
  // which are not the end of a wait for a decision.
  if (!IsDecision(action.status)) return;
  const double seconds =
      static_cast<double>(std::max<int64_t>(0, action.updated_ms - action.created_ms)) / 1000.0;
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < kLatencyBuckets.size(); ++i) {
    if (seconds <= kLatencyBuckets[i]) {
      ++buckets_[i];
      break;
    }
  }
  ++latency_count_;
  latency_sum_ += seconds;
}

void Metrics::ObserveRequest(const std::string& route, int code) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{route, code}];
}

std::string Metrics::Render(Gateway& gateway, const notify::Stats* notifications) const {
  // The store first, outside mu_: a slow read must not hold up the request threads that
  // count their responses.
  auto counts = gateway.CountActions();
  auto head = gateway.AuditHeadNow();
  auto breakers = gateway.Breakers();
  const bool scrape_error = !counts.ok() || !head.ok() || !breakers.ok();

  std::string out;
  out.reserve(4096);
  if (counts.ok()) {
    AppendFamily(&out, "airlock_actions", "gauge", "Recorded actions by status, risk and target.");
    int64_t pending = 0;
    for (const ActionCount& c : *counts) {
      Sample(&out, "airlock_actions")
          .Label("status", ActionStatusName(c.status))
          .Label("risk", RiskName(c.risk))
          .Label("target", c.target)
          .Value(c.count);
      if (c.status == ActionStatus::kPending) pending += c.count;
    }
    AppendFamily(&out, "airlock_pending_actions", "gauge", "Actions waiting for approval.");
    Sample(&out, "airlock_pending_actions").Value(pending);
  }

  {
    std::lock_guard<std::mutex> lock(mu_);
    AppendFamily(&out, "airlock_decision_latency_seconds", "histogram",
                 "Time from submission to decision of the actions this server decided.");
    int64_t cumulative = 0;
    for (size_t i = 0; i < kLatencyBuckets.size(); ++i) {
      cumulative += buckets_[i];
      Sample(&out, "airlock_decision_latency_seconds_bucket")
          .Label("le", FormatDouble(kLatencyBuckets[i]))
          .Value(cumulative);
    }
    Sample(&out, "airlock_decision_latency_seconds_bucket")
        .Label("le", "+Inf")
        .Value(latency_count_);
    Sample(&out, "airlock_decision_latency_seconds_sum").Value(latency_sum_);
    Sample(&out, "airlock_decision_latency_seconds_count").Value(latency_count_);
  }

  if (head.ok()) {
    AppendFamily(&out, "airlock_audit_events", "gauge", "Length of the audit chain.");
    Sample(&out, "airlock_audit_events").Value(head->seq);
  }
  if (const std::optional<CheckpointStats> ckpt = gateway.StoreCheckpoints()) {
    AppendFamily(&out, "airlock_store_checkpoints_total", "counter",
                 "WAL checkpoints of the SQLite store by who ran them: thread (the checkpoint "
                 "thread), finish (a commit, after which the WAL started over), inline (a commit, "
                 "the thread having fallen behind).");
    const std::pair<const char*, uint64_t> by[] = {
        {"thread", ckpt->passes}, {"finish", ckpt->finishes}, {"inline", ckpt->inline_runs}};
    for (const auto& [who, n] : by) {
      Sample(&out, "airlock_store_checkpoints_total")
          .Label("by", who)
          .Value(static_cast<int64_t>(n));
    }
    AppendFamily(&out, "airlock_store_checkpoint_failures_total", "counter",
                 "Failed WAL checkpoints or syncs of the store file after one; the first stops "
                 "the checkpoints, and the store then refuses writes.");
    Sample(&out, "airlock_store_checkpoint_failures_total")
        .Value(static_cast<int64_t>(ckpt->failures));
    AppendFamily(&out, "airlock_store_wal_restarts_total", "counter",
                 "Commits that started the store's WAL over from its beginning.");
    Sample(&out, "airlock_store_wal_restarts_total").Value(static_cast<int64_t>(ckpt->restarts));
    AppendFamily(&out, "airlock_store_wal_frames_max", "gauge",
                 "The longest the store's WAL has been since the server started, in frames.");
    Sample(&out, "airlock_store_wal_frames_max").Value(ckpt->most_wal_frames);
  }
  if (breakers.ok()) {
    AppendFamily(&out, "airlock_breaker_open", "gauge",
                 "Circuit breakers by target and agent: 1 open, 0 closed.");
    for (const Breaker& b : *breakers) {
      Sample(&out, "airlock_breaker_open")
          .Label("target", b.target)
          .Label("agent", b.agent)
          .Value(int64_t{b.open ? 1 : 0});
    }
  }

  {
    std::lock_guard<std::mutex> lock(mu_);
    AppendFamily(&out, "airlock_http_requests_total", "counter",
                 "HTTP responses by route and status code.");
    for (const auto& [key, n] : requests_) {
      Sample(&out, "airlock_http_requests_total")
          .Label("route", key.first)
          .Label("code", std::to_string(key.second))
          .Value(n);
    }
  }

  if (notifications != nullptr) {
    AppendFamily(&out, "airlock_notifications_total", "counter",
                 "Webhook notifications by result: delivered, retried, failed (after the last "
                 "retry), dropped (queue full).");
    const std::pair<const char*, int64_t> results[] = {
        {"delivered", notifications->delivered},
        {"failed", notifications->failed},
        {"retried", notifications->retried},
        {"dropped", notifications->dropped},
    };
    for (const auto& [result, n] : results) {
      Sample(&out, "airlock_notifications_total").Label("result", result).Value(n);
    }
  }

  AppendFamily(&out, "airlock_scrape_error", "gauge",
               "1 when reading the store for this scrape failed (its gauges are left out).");
  Sample(&out, "airlock_scrape_error").Value(int64_t{scrape_error ? 1 : 0});
  return out;
}

}  // namespace airlock::server
