// Sends one HTTP request with libcurl (loaded lazily, net/curl.h) and reads a bounded
// answer. Redirects are never followed: a 3xx comes back as it is, with its Location, so a
// server cannot send airlock (and the credentials in its headers) to a host the policy never
// named. Proxies from the environment are not used either, for the same reason.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace airlock::http_target {

struct OutboundRequest {
  std::string method;                // normalized (url.h)
  std::string url;                   // JoinUrl()
  std::vector<std::string> headers;  // "Name: value", credentials included
  bool has_body = false;
  std::string body;             // sent as application/json when has_body
  int64_t timeout_ms = 30'000;  // connect plus transfer
  int64_t max_response_bytes = 1 << 20;
};

struct InboundResponse {
  long status = 0;
  std::string content_type;
  std::string location;    // a 3xx's Location, not followed
  std::string body;        // at most max_response_bytes of it
  bool truncated = false;  // the server sent more; airlock stopped reading
};

// Transport failures (refused, DNS, TLS, timeout) are IoError naming the URL's origin only;
// the request's headers never appear in a message.
Result<InboundResponse> SendRequest(const OutboundRequest& request);

}  // namespace airlock::http_target
