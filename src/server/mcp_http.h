// `airlock serve`'s /mcp/NAME: MCP's streamable HTTP transport (2025-06-18 and 2025-11-25
// revisions) in front of the same sessions as `airlock mcp stdio` (mcp/proxy.h).
//
//   POST   a JSON-RPC message. A request is answered with an SSE stream (text/event-stream)
//          that carries the messages related to it (its progress) and ends with its
//          response; a client that accepts only application/json gets the response alone.
//          A notification or a response (to a server-to-client request) gets 202.
//          `initialize` starts a session: its id comes back in Mcp-Session-Id, which every
//          later request must carry (400 without it, 404 once it is unknown or ended).
//   GET    the session's stream for messages the server starts (sampling, elicitation,
//          roots, logging, list_changed). One per session: a new one replaces the old.
//   DELETE ends the session and stops its upstream.
//
// Checks, in order: Origin and Host against DNS rebinding (403: a browser page of another
// site must not reach a loopback gateway), the bearer token (401; it must be an agent's,
// 403, and the session's own, else 404), MCP-Protocol-Version when sent (400 unless known),
// the media types (415/406), the message (400 with a JSON-RPC error; 413 over the server's
// max_message_size). Sessions idle longer than `idle_session_ms` end.
//
// Not built: resuming a broken stream (Last-Event-ID); messages for a client with no open
// stream wait in a bounded backlog until its GET stream opens.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/gateway.h"
#include "server/http.h"

namespace airlock::server {

struct McpHttpOptions {
  int max_sessions = 64;
  int max_streams = 64;  // concurrent streamed or held replies; beyond: 503
  int64_t idle_session_ms = 30 * 60 * 1000;
  int64_t keepalive_ms = 15000;  // the SSE comment that keeps proxies from timing out
  int64_t poll_ms = 500;         // how soon a stream notices a shutdown or a gone client
  size_t max_backlog = 1000;     // messages held for a client with no open stream
  // Origins a browser may call from, besides loopback ones ("https://app.example.com"). Their
  // hosts, with the listening host, are also the Host values accepted.
  std::vector<std::string> allowed_origins;
  std::string listen_host;  // the host airlock serves on (accepted as Host)
};

class McpHttp {
 public:
  McpHttp(Gateway& gateway, McpHttpOptions options);
  ~McpHttp();  // ends every session
  McpHttp(const McpHttp&) = delete;
  McpHttp& operator=(const McpHttp&) = delete;

  // "/mcp/NAME" -> NAME.
  static bool IsMcpPath(std::string_view path, std::string* server);

  // Called on a worker thread; may block briefly (an upstream starting).
  Reply Handle(const HttpRequest& request, const std::string& server);

  size_t sessions() const;

  class Session;  // one client's session; also its ClientChannel

 private:
  Reply Post(const HttpRequest& request, const std::string& server, const Principal& who,
             const std::string& token);
  Reply Get(const std::shared_ptr<Session>& s, const HttpRequest& request);
  std::shared_ptr<Session> Find(const HttpRequest& request, const std::string& server,
                                const std::string& token, std::optional<HttpResponse>* refusal);
  std::optional<HttpResponse> CheckOrigin(const HttpRequest& request) const;
  void ReapIdle();

  Gateway& gateway_;
  const McpHttpOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Session>> sessions_;  // GUARDED_BY(mu_), by id
  std::shared_ptr<std::atomic<int>> streams_;
};

}  // namespace airlock::server
