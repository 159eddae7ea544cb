// The HTTP API of `airlock serve` (docs/API.md): routes to Gateway calls, JSON in and out,
// errors as `{"error": {"code", "message"}}`.
//
// Every /v1 route authenticates the bearer token through the gateway first (a missing or
// unknown one is 401 and audited as auth_failed), then calls the gateway with that same
// token: an HTTP caller is never the operator. Nothing here decides about an action; the
// gateway does, and audits it.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "gateway/gateway.h"
#include "notify/notify.h"
#include "server/events.h"
#include "server/http.h"
#include "server/mcp_http.h"
#include "server/metrics.h"

namespace airlock::server {

struct ApiOptions {
  int64_t max_wait_ms = 60000;    // the largest wait_ms a submission may ask for
  int max_streams = 64;           // concurrent /v1/events streams; beyond: 503
  int max_waits = 64;             // concurrent waits; beyond, a wait returns at once
  int64_t keepalive_ms = 15000;   // the SSE comment that keeps proxies from timing out
  int64_t stream_poll_ms = 1000;  // how soon a stream notices a shutdown or a gone client
  McpHttpOptions mcp;             // /mcp/NAME (server/mcp_http.h)
};

class Api : public HttpHandler {
 public:
  // `notifier` may be null (no `notify:` in the policy).
  Api(Gateway& gateway, EventHub& hub, Metrics& metrics, const notify::Notifier* notifier,
      ApiOptions options = {});

  Reply Handle(const HttpRequest& request) override;
  // Takes on the io thread only what the gateway's read fast path answers without blocking:
  // `POST /v1/actions` of a plain read, whose reply is sent by the store's committer once
  // the read's audit record is durable. Everything else goes to a worker (Handle).
  bool HandleInline(const HttpRequest& request, const Responder& respond) override;

  // The route pattern a request target falls under ("/v1/actions/{id}/approve"), "/ui" for
  // the web page, "other" for anything else: a bounded label for metrics.
  static std::string RouteLabel(std::string_view target);

  struct Call;  // one request as the route handlers see it

 private:
  Reply Healthz(const Call& c);
  Reply MetricsText(const Call& c);
  Reply WhoAmI(const Call& c);
  Reply Submit(const Call& c);
  Reply ListActions(const Call& c);
  Reply ShowAction(const Call& c);
  Reply Approve(const Call& c);
  Reply Reject(const Call& c);
  Reply Vote(const Call& c, bool approve);
  Reply Rollback(const Call& c);
  Reply Breakers(const Call& c);
  Reply ResetBreaker(const Call& c);
  Reply Audit(const Call& c);
  Reply VerifyAudit(const Call& c);
  Reply Events(const Call& c);

  void Stream(EventHub::Subscription& sub, StreamSink& sink);
  // Holds a submission that is pending until it is decided or `wait_ms` passes.
  HttpResponse WaitForDecision(const std::string& token, const std::string& id, int64_t wait_ms,
                               const ReplyContext& context);

  struct Route {
    std::string_view method;
    std::string_view pattern;  // segments; "{id}" matches one
    Reply (Api::*handler)(const Call&);
    bool authenticated;
    // The query parameters it takes (comma-separated). Any other is refused, so that a
    // misspelt filter never silently widens a listing.
    std::string_view query;
  };
  static const Route kRoutes[];

  Gateway& gateway_;
  EventHub& hub_;
  Metrics& metrics_;
  const notify::Notifier* notifier_;
  const ApiOptions options_;
  std::atomic<int> streams_{0};
  std::atomic<int> waits_{0};
  McpHttp mcp_;  // last: its sessions end before the rest goes
};

}  // namespace airlock::server
