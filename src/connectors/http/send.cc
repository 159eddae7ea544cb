#include "connectors/http/send.h"

#include <algorithm>

#include "net/curl.h"

namespace airlock::http_target {
namespace {

struct Sink {
  InboundResponse* response;
  size_t cap;
};

size_t Append(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  const size_t n = size * count;
  const size_t room = sink->cap - std::min(sink->cap, sink->response->body.size());
  sink->response->body.append(data, std::min(n, room));
  if (n > room) {
    // Stop reading: a server that streams gigabytes must not hold the caller until the
    // timeout. libcurl reports a write error, which SendRequest turns back into "truncated".
    sink->response->truncated = true;
    return 0;
  }
  return n;
}

}  // namespace

Result<InboundResponse> SendRequest(const OutboundRequest& request) {
  const std::string origin = net::UrlOrigin(request.url);
  ASSIGN_OR_RETURN(net::CurlEasy easy, net::CurlEasy::Create());
  net::CurlList list(easy.api());
  for (const std::string& h : request.headers) RETURN_IF_ERROR(list.Append(h));
  if (request.has_body) RETURN_IF_ERROR(list.Append("Content-Type: application/json"));
  // No "Expect: 100-continue" wait on bodies over 1 KiB.
  RETURN_IF_ERROR(list.Append("Expect:"));

  InboundResponse response;
  Sink sink{&response, static_cast<size_t>(std::max<int64_t>(0, request.max_response_bytes))};
  const long timeout = static_cast<long>(std::max<int64_t>(1, request.timeout_ms));
  auto setup = [&]() -> Status {
    RETURN_IF_ERROR(easy.Set(CURLOPT_URL, request.url.c_str()));
    RETURN_IF_ERROR(easy.Set(CURLOPT_FOLLOWLOCATION, 0L));
    RETURN_IF_ERROR(easy.Set(CURLOPT_PROXY, ""));  // "" = no proxy, whatever the environment says
    RETURN_IF_ERROR(easy.Set(CURLOPT_TIMEOUT_MS, timeout));
    RETURN_IF_ERROR(easy.Set(CURLOPT_CONNECTTIMEOUT_MS, timeout));
    RETURN_IF_ERROR(easy.Set(CURLOPT_HTTPHEADER, list.get()));
    RETURN_IF_ERROR(easy.Set(CURLOPT_USERAGENT, "airlock"));
    RETURN_IF_ERROR(easy.Set(CURLOPT_WRITEFUNCTION, &Append));
    RETURN_IF_ERROR(easy.Set(CURLOPT_WRITEDATA, static_cast<void*>(&sink)));
    if (request.method == "HEAD") {
      RETURN_IF_ERROR(easy.Set(CURLOPT_NOBODY, 1L));
    } else if (request.has_body) {
      // POSTFIELDS makes it a POST with this exact body; CUSTOMREQUEST renames the method.
      RETURN_IF_ERROR(easy.Set(CURLOPT_POSTFIELDS, request.body.c_str()));
      RETURN_IF_ERROR(
          easy.Set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size())));
      if (request.method != "POST") {
        RETURN_IF_ERROR(easy.Set(CURLOPT_CUSTOMREQUEST, request.method.c_str()));
      }
    } else if (request.method == "GET") {
      RETURN_IF_ERROR(easy.Set(CURLOPT_HTTPGET, 1L));
    } else {
      if (request.method == "POST") {
        // A POST without a body still says Content-Length: 0 (never reads stdin).
        RETURN_IF_ERROR(easy.Set(CURLOPT_POSTFIELDS, ""));
        RETURN_IF_ERROR(easy.Set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(0)));
      } else {
        RETURN_IF_ERROR(easy.Set(CURLOPT_CUSTOMREQUEST, request.method.c_str()));
      }
    }
    // Defence in depth beside the http(s) base_url check; libcurl before 7.85 lacks it.
    CURLcode code = easy.api().easy_setopt(easy.get(), CURLOPT_PROTOCOLS_STR, "http,https");
    if (code != CURLE_OK && code != CURLE_UNKNOWN_OPTION) {
      return Status::Internal(std::string("setting the protocols: ") +
                              easy.api().easy_strerror(code));
    }
    return Status::Ok();
  };
  Status st = setup();
  if (st.ok()) {
    st = easy.Perform();
    if (!st.ok() && response.truncated) st = Status::Ok();  // our own stop at the cap
  }
  if (!st.ok()) return st.Annotate(request.method + " " + origin);
  response.status = easy.ResponseCode();
  char* type = nullptr;
  if (easy.api().easy_getinfo(easy.get(), CURLINFO_CONTENT_TYPE, &type) == CURLE_OK &&
      type != nullptr) {
    response.content_type = type;
  }
  char* location = nullptr;
  if (response.status >= 300 && response.status < 400 &&
      easy.api().easy_getinfo(easy.get(), CURLINFO_REDIRECT_URL, &location) == CURLE_OK &&
      location != nullptr) {
    response.location = location;
  }
  return response;
}

}  // namespace airlock::http_target
