// Prometheus metrics of the server (text exposition format 0.0.4; docs/API.md lists them).
//
// Gauges that describe the store (actions by status/risk/target, pending, audit length,
// breakers) are read from the gateway at scrape time, so they are exact even when another
// process changed the store. Counters and the decision-latency histogram are observed in
// this process.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "gateway/gateway.h"
#include "notify/notify.h"

namespace airlock::server {

class Metrics {
 public:
  // Bucket upper bounds of airlock_decision_latency_seconds.
  static constexpr std::array<double, 14> kLatencyBuckets = {
      0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600};

  // A decided action (applied, rejected, denied, expired, failed, effect_changed) as the
  // gateway's observer reports it: latency = updated_ms - created_ms.
  void ObserveDecision(const Action& action);
  // One HTTP response. `route` is the route's pattern ("/v1/actions/{id}"), never the raw
  // path, so that the label set stays bounded; unknown paths are "other".
  void ObserveRequest(const std::string& route, int code);

  // The whole exposition. `notifications` may be null (no notify: in the policy).
  // Errors reading the store are reported as airlock_scrape_error 1 (and the store gauges
  // left out), never as a failed scrape.
  std::string Render(Gateway& gateway, const notify::Stats* notifications) const;

 private:
  mutable std::mutex mu_;
  std::array<int64_t, kLatencyBuckets.size()> buckets_{};  // GUARDED_BY(mu_), not cumulative
  int64_t latency_count_ = 0;                               // GUARDED_BY(mu_)
  double latency_sum_ = 0;                                  // GUARDED_BY(mu_)
  std::map<std::pair<std::string, int>, int64_t> requests_; // GUARDED_BY(mu_)
};

}  // namespace airlock::server
