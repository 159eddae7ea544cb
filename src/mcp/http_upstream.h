// An upstream MCP server reached over streamable HTTP (policy `url:`), as the client side of
// the 2025-06-18 / 2025-11-25 transport: every message is POSTed; a request's answer comes
// back as JSON or as an SSE stream (which may carry the server's own requests and
// notifications first); `Mcp-Session-Id` from the answer to initialize goes on every later
// request, with MCP-Protocol-Version; after `notifications/initialized` a GET stream carries
// what the server starts on its own (a 405 means it has none); Stop() DELETEs the session.
//
// It looks to a session like a process (mcp/upstream.h): Send() hands over a message,
// Receive() gives back every message from the server, in arrival order. An HTTP error on a
// request becomes a JSON-RPC error answer for that request; a 404 once a session exists
// means the server ended it, and the upstream then reports its end (kEof), so that the
// session restarts it (a new session, re-initialized), as after a process crash.
//
// Sent through libcurl, loaded on first use (net/curl.h). Only the URL's origin appears in
// errors and logs.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "mcp/upstream.h"

namespace airlock::mcp {

struct HttpUpstreamOptions {
  std::string url;  // http:// or https://
  size_t max_message_bytes = 4u << 20;
  int64_t connect_timeout_ms = 10000;
  // Sent with every request: header name -> env:NAME, file:PATH or a literal (policy
  // `headers:`; connectors/http/credentials.h). Read once, by Start; never logged.
  std::vector<std::pair<std::string, std::string>> headers;
};

class HttpUpstream : public Upstream {
 public:
  // Checks the URL, reads the headers' values and loads libcurl; nothing is sent yet. A
  // header whose value cannot be read fails it, naming the header and its reference only.
  static Result<std::unique_ptr<HttpUpstream>> Start(const HttpUpstreamOptions& options);
  ~HttpUpstream() override;  // Stop()

  bool Send(const Json& message) override;
  LineReader::Event Receive(std::string* line) override;
  std::string Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(2000)) override;

  // Splits an SSE byte stream into the data of its events. Feed() may be called with any
  // slicing of the bytes; each complete event's data (its `data:` lines joined by "\n")
  // goes to `on_data`. false once an event grows over `max_bytes` (the stream is then
  // unusable). Public for tests.
  class SseParser {
   public:
    explicit SseParser(size_t max_bytes) : max_bytes_(max_bytes) {}
    template <typename F>
    bool Feed(std::string_view bytes, F&& on_data);

   private:
    bool Line(std::string_view line, std::string* ready);
    size_t max_bytes_;
    std::string line_;  // an incomplete line
    std::string data_;  // the current event's data so far
    bool has_data_ = false;
  };

 private:
  explicit HttpUpstream(HttpUpstreamOptions options);
  void Transfer(Json message);  // one POST, on its own thread
  void GetLoop();               // the server's own stream
  void Deliver(std::string line);
  void End(const std::string& why);
  std::string SessionId();
  // Takes the session that an answer to initialize opens: its id from the response's header,
  // its protocol version from the answer. Called before that answer is delivered, since the
  // client may send its next message (each request goes on a thread of its own) as soon as
  // it has the answer, and that message must carry both.
  void AdoptSession(const std::string& session_id, const std::string& answer);
  std::vector<std::string> Headers(bool json_body);

  const HttpUpstreamOptions options_;
  const std::string origin_;  // what errors may show of the URL
  std::vector<std::string> extra_headers_;  // "Name: value", from options_.headers
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;  // GUARDED_BY(mu_)
  bool ended_ = false;             // GUARDED_BY(mu_)
  std::string end_text_;           // GUARDED_BY(mu_)
  std::string session_id_;         // GUARDED_BY(mu_)
  std::string protocol_version_;   // GUARDED_BY(mu_)
  bool get_started_ = false;       // GUARDED_BY(mu_)
  int running_ = 0;                // GUARDED_BY(mu_): transfer and GET threads alive
  std::atomic<bool> stopping_{false};
};

template <typename F>
bool HttpUpstream::SseParser::Feed(std::string_view bytes, F&& on_data) {
  while (!bytes.empty()) {
    const size_t nl = bytes.find('\n');
    if (nl == std::string_view::npos) {
      line_.append(bytes);
      return line_.size() + data_.size() <= max_bytes_;
    }
    line_.append(bytes.substr(0, nl));
    bytes.remove_prefix(nl + 1);
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    std::string ready;
    const bool event_done = Line(line_, &ready);
    line_.clear();
    if (data_.size() > max_bytes_) return false;
    if (event_done) on_data(std::move(ready));
  }
  return true;
}

}  // namespace airlock::mcp
