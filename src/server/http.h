// The HTTP/1.1 transport of `airlock serve`: listener, keep-alive connections and the limits
// that keep one client from starving the others (docs/API.md, "Errors").
//
// I/O is asynchronous on a few io threads; a handler's work (Gateway calls block on SQLite,
// sandbox runs and group commits) runs on a worker pool and its reply is posted back. Waits
// and event streams, which last long, run on a separate pool so that they never hold the
// workers that answer ordinary requests.
//
// A handler may also take a request on the io thread itself (HandleInline) or answer it
// later from any thread (Reply::async): `airlock serve` answers a plain read from the store's
// group committer once its audit record is durable, so that no thread blocks on the fsync
// and the read crosses threads twice (io thread -> committer -> io thread), not four times.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace airlock::server {

struct HttpRequest {
  std::string method;  // as sent: "GET"
  std::string target;  // path and query as sent: "/v1/actions?status=pending"
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  // The first value of a header (name lower-cased), or "" when absent.
  std::string_view Header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // besides Content-Type
  std::string body;
  bool close = false;  // close the connection after this reply
  // Released with the response on the connection's thread, once its write has started (the
  // body is moved into the message first) or it is dropped.
  std::shared_ptr<const void> hold;
};

// The token of an `Authorization: Bearer TOKEN` header, or "" when there is none.
std::string BearerToken(const HttpRequest& request);

// The media type of a Content-Type value, lower-cased, without parameters.
std::string MediaType(std::string_view content_type);

// `{"error": {"code": CODE, "message": MESSAGE}}` with `status` (docs/API.md's table).
HttpResponse ErrorResponse(int status, std::string_view code, std::string_view message);

// What a long reply can ask of the connection it runs for.
class ReplyContext {
 public:
  virtual ~ReplyContext() = default;
  // The server is shutting down or the client went away: finish now.
  virtual bool Stopping() const = 0;
};

// Where a streamed reply (Server-Sent Events) writes. Send blocks until the bytes are written
// (bounded by the write timeout); false means the client is gone and the stream should end.
class StreamSink : public ReplyContext {
 public:
  virtual bool Send(std::string bytes) = 0;
};

// Sends the response of a request whose answer comes later, from any thread. Only the first
// call counts; when every copy is dropped uncalled, the client gets 500 rather than no answer.
using Responder = std::function<void(HttpResponse)>;

// A handler's answer: a response at once; or `deferred`, run on the long-reply pool, that
// produces it (a wait); or `stream`, which writes `response`'s head and then streams the body
// until it returns (the connection closes after it); or `async`, called at once on the same
// worker with a Responder: it may answer before it returns, or start work that answers later
// from another thread (a read whose audit record waits for a group commit), so that no
// thread blocks for it.
struct Reply {
  HttpResponse response;
  std::function<HttpResponse(const ReplyContext&)> deferred;
  std::function<void(StreamSink&)> stream;
  std::function<void(Responder)> async;
};

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // Called on a worker thread; may block. Must not throw (the server answers 500 if it does).
  virtual Reply Handle(const HttpRequest& request) = 0;
  // Called first, on the io thread that read the request: a handler that can take it on
  // without blocking (quick work, asynchronous waits) does so and returns true, and answers
  // through `respond`; false (the default) leaves `respond` uncalled and sends the request to
  // a worker for Handle. Saves the worker hand-off: two context switches per request.
  virtual bool HandleInline(const HttpRequest& request, const Responder& respond) {
    (void)request;
    (void)respond;
    return false;
  }
};

struct HttpLimits {
  uint64_t max_body = 1 << 20;     // 413 body_too_large beyond it
  uint32_t max_header = 16 << 10;  // 431 headers_too_large beyond it (request line included)
};

// Parses one request held entirely in `bytes`, applies the checks the server applies to a
// request from the network, and hands it to `handler`. No network: the fuzz target's entry.
Reply HandleRawRequest(std::string_view bytes, const HttpLimits& limits, HttpHandler& handler);

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 7070;  // 0: any free port (port() tells which)
  HttpLimits limits;
  int max_connections = 512;          // beyond it: 503 too_many_connections, then close
  int64_t header_timeout_ms = 10000;  // from the request's first byte to its last header
  int64_t body_timeout_ms = 30000;    // from the headers to the body's last byte
  int64_t write_timeout_ms = 30000;   // one response (or one stream write) to a slow reader
  int64_t idle_timeout_ms = 10000;    // a keep-alive connection waiting for its next request
  int io_threads = 2;
  int workers = 64;          // blocking handler calls
  int long_workers = 128;    // deferred and streamed replies; the handler caps how many it starts
  int64_t drain_ms = 10000;  // after Shutdown(): how long in-flight requests may finish
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler& handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Called after every response with the request target ("" when no request was read) and
  // the status sent. Set before Listen().
  void OnResponse(std::function<void(std::string_view target, int status)> fn);

  // Binds and listens; port() is then the real port.
  Status Listen();
  uint16_t port() const;

  // SIGINT and SIGTERM call Shutdown(). Call before Run().
  void ShutdownOnSignals();

  // Serves until Shutdown(), then lets in-flight requests finish for up to drain_ms. Returns
  // true when every request finished; false when some were still running at the deadline
  // (the caller must then exit the process without destroying what they use).
  bool Run();

  // Thread-safe. Stops accepting; requests arriving on open connections get 503
  // shutting_down; streams and waits are told to end.
  void Shutdown();
  bool stopping() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace airlock::server
