#include "server/mcp_http.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>

#include "core/hash.h"
#include "core/json.h"
#include "mcp/jsonrpc.h"
#include "mcp/proxy.h"

namespace airlock::server {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kSessionHeader = "Mcp-Session-Id";
constexpr std::string_view kKnownVersions[] = {"2024-11-05", "2025-03-26", "2025-06-18",
                                               "2025-11-25"};

// A JSON-RPC error as the whole HTTP answer (a message refused before any session saw it).
HttpResponse RpcError(int status, const Json& id, int code, const std::string& message) {
  HttpResponse r;
  r.status = status;
  r.body = mcp::Serialize(mcp::MakeError(id, code, message));
  return r;
}

Reply Now(HttpResponse r) {
  Reply reply;
  reply.response = std::move(r);
  return reply;
}

// Whether an Accept header lists `type` (or a wildcard that covers it).
bool Accepts(std::string_view accept, std::string_view type) {
  if (accept.empty()) return false;
  const std::string_view major = type.substr(0, type.find('/'));
  while (!accept.empty()) {
    const size_t comma = accept.find(',');
    const std::string item = MediaType(accept.substr(0, comma));
    if (item == type || item == "*/*" || item == std::string(major) + "/*") return true;
    if (comma == std::string_view::npos) break;
    accept.remove_prefix(comma + 1);
  }
  return false;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The host of "scheme://host[:port]" or of a Host header "host[:port]", lower-cased, with
// an IPv6 literal's brackets kept ("[::1]"). "" when it cannot be read.
std::string HostOf(std::string_view s) {
  const size_t scheme = s.find("://");
  if (scheme != std::string_view::npos) s.remove_prefix(scheme + 3);
  s = s.substr(0, s.find_first_of("/?#"));
  if (s.find('@') != std::string_view::npos) return "";  // userinfo: not an origin
  if (!s.empty() && s.front() == '[') {
    const size_t close = s.find(']');
    return close == std::string_view::npos ? "" : Lower(s.substr(0, close + 1));
  }
  return Lower(s.substr(0, s.find(':')));
}

bool IsLoopbackHost(const std::string& host) {
  return host == "localhost" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

Json ProgressTokenOf(const mcp::Message& m) {
  if (m.params.is_object() && m.params.contains("_meta") && m.params["_meta"].is_object() &&
      m.params["_meta"].contains("progressToken")) {
    return m.params["_meta"]["progressToken"];
  }
  return nullptr;
}

std::string SseEvent(const Json& message) {
  return "event: message\ndata: " + mcp::Serialize(message) + "\n\n";
}

// One open reply: a POST's stream (or held JSON answer), or the session's GET stream.
struct Stream {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Json> queue;  // GUARDED_BY(mu)
  Json answer;             // GUARDED_BY(mu): the request's response, once it came
  bool answered = false;   // GUARDED_BY(mu)
  bool ended = false;      // GUARDED_BY(mu): nothing more goes here

  // false when the stream is over (the message must go elsewhere).
  bool Push(const Json& message, bool is_answer) {
    std::lock_guard<std::mutex> lock(mu);
    if (ended) return false;
    queue.push_back(message);
    if (is_answer) {
      answer = message;
      answered = true;
    }
    cv.notify_all();
    return true;
  }
  void End() {
    std::lock_guard<std::mutex> lock(mu);
    ended = true;
    cv.notify_all();
  }
};

// One of a bounded number of concurrent long replies.
class Slot {
 public:
  static std::shared_ptr<Slot> Take(const std::shared_ptr<std::atomic<int>>& count, int max) {
    if (count->fetch_add(1) >= max) {
      --*count;
      return nullptr;
    }
    return std::shared_ptr<Slot>(new Slot(count));
  }
  ~Slot() { --*count_; }

 private:
  explicit Slot(std::shared_ptr<std::atomic<int>> count) : count_(std::move(count)) {}
  std::shared_ptr<std::atomic<int>> count_;
};

}  // namespace

// One client's session: the MCP session (mcp/proxy.h) and the HTTP streams its messages go
// out on. As the session's ClientChannel it routes each message: a response to the stream
// of the POST that asked; progress to the stream of the request that gave the token; what
// the server starts to the GET stream, else the newest open request stream, else a bounded
// backlog that the next GET stream gets first.
class McpHttp::Session : public mcp::ClientChannel {
 public:
  Session(std::string id, std::string token, std::string server, size_t max_backlog)
      : id(std::move(id)),
        token(std::move(token)),
        server(std::move(server)),
        max_backlog_(max_backlog),
        last_used_(Clock::now()) {}

  ~Session() override { End(); }

  bool Send(const Json& m) override {
    std::lock_guard<std::mutex> lock(mu_);
    const bool response =
        m.is_object() && !m.contains("method") && (m.contains("result") || m.contains("error"));
    if (response && m.contains("id") && !m["id"].is_null()) {
      auto it = by_request_.find(CanonicalJson(m["id"]));
      if (it == by_request_.end()) return true;  // nobody waits for it any more: dropped
      std::shared_ptr<Stream> s = it->second;
      by_request_.erase(it);
      std::erase_if(by_progress_, [&](const auto& kv) { return kv.second == s; });
      s->Push(m, /*is_answer=*/true);
      return true;
    }
    if (m.is_object() && m.contains("method") && m["method"] == "notifications/progress" &&
        m.contains("params") && m["params"].is_object() && m["params"].contains("progressToken")) {
      auto it = by_progress_.find(CanonicalJson(m["params"]["progressToken"]));
      if (it != by_progress_.end() && it->second->Push(m, false)) return true;
    }
    if (get_ && get_->Push(m, false)) return true;
    for (auto it = posts_.rbegin(); it != posts_.rend(); ++it) {
      if (auto s = it->lock(); s && s->Push(m, false)) return true;
    }
    backlog_.push_back(m);
    if (backlog_.size() > max_backlog_) backlog_.pop_front();
    return true;
  }

  // Registers the stream that carries request `id`'s answer (and, when it streams, the
  // progress of `progress_token` and what the server starts meanwhile). false: a request
  // with that id is in flight in this session already.
  bool Expect(const Json& id, const Json& progress_token, const std::shared_ptr<Stream>& s,
              bool streams) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!by_request_.emplace(CanonicalJson(id), s).second) return false;
    if (streams) {
      if (!progress_token.is_null()) by_progress_[CanonicalJson(progress_token)] = s;
      std::erase_if(posts_, [](const std::weak_ptr<Stream>& w) { return w.expired(); });
      posts_.push_back(s);
    }
    return true;
  }

  // After a stream ended: nothing more is routed to it.
  void Forget(const std::shared_ptr<Stream>& s) {
    s->End();
    std::lock_guard<std::mutex> lock(mu_);
    std::erase_if(by_request_, [&](const auto& kv) { return kv.second == s; });
    std::erase_if(by_progress_, [&](const auto& kv) { return kv.second == s; });
    if (get_ == s) get_.reset();
    last_used_ = Clock::now();
  }

  std::shared_ptr<Stream> OpenGetStream() {
    auto s = std::make_shared<Stream>();
    std::shared_ptr<Stream> old;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& m : backlog_) s->Push(m, false);
      backlog_.clear();
      old = std::exchange(get_, s);
    }
    if (old) old->End();
    return s;
  }

  void Touch() {
    std::lock_guard<std::mutex> lock(mu_);
    last_used_ = Clock::now();
  }

  bool Idle(Clock::time_point now, int64_t idle_ms) {
    std::lock_guard<std::mutex> lock(mu_);
    return open_streams == 0 && now - last_used_ > std::chrono::milliseconds(idle_ms);
  }

  // Ends the MCP session (its upstream stops) and every stream.
  void End() {
    if (mcp) mcp->Close();
    std::vector<std::shared_ptr<Stream>> open;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [k, s] : by_request_) open.push_back(s);
      if (get_) open.push_back(get_);
      by_request_.clear();
      by_progress_.clear();
      get_.reset();
    }
    for (auto& s : open) s->End();
  }

  const std::string id;
  const std::string token;
  const std::string server;
  std::unique_ptr<mcp::McpSession> mcp;  // set once, right after construction
  std::atomic<int> open_streams{0};

 private:
  const size_t max_backlog_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Stream>> by_request_;   // canonical client id
  std::map<std::string, std::shared_ptr<Stream>> by_progress_;  // canonical progress token
  std::shared_ptr<Stream> get_;
  std::vector<std::weak_ptr<Stream>> posts_;  // request streams, newest last
  std::deque<Json> backlog_;
  Clock::time_point last_used_;
};

namespace {

// Writes a stream's messages as SSE events until it ends (its answer sent, when
// `until_answered`), the client goes, or the server stops.
void Pump(Stream& s, StreamSink& sink, const McpHttpOptions& o, bool until_answered) {
  auto last_write = Clock::now();
  for (;;) {
    std::deque<Json> batch;
    bool answered = false;
    bool ended = false;
    {
      std::unique_lock<std::mutex> lock(s.mu);
      s.cv.wait_for(lock, std::chrono::milliseconds(o.poll_ms),
                    [&] { return !s.queue.empty() || s.ended; });
      batch.swap(s.queue);
      answered = s.answered;
      ended = s.ended;
    }
    if (!batch.empty()) {
      std::string bytes;
      for (const Json& m : batch) bytes += SseEvent(m);
      if (!sink.Send(std::move(bytes))) return;
      last_write = Clock::now();
    }
    if (ended || (until_answered && answered) || sink.Stopping()) return;
    if (Clock::now() - last_write >= std::chrono::milliseconds(o.keepalive_ms)) {
      if (!sink.Send(": keep-alive\n\n")) return;
      last_write = Clock::now();
    }
  }
}

}  // namespace

McpHttp::McpHttp(Gateway& gateway, McpHttpOptions options)
    : gateway_(gateway),
      options_(std::move(options)),
      streams_(std::make_shared<std::atomic<int>>(0)) {}

McpHttp::~McpHttp() {
  std::map<std::string, std::shared_ptr<Session>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    all.swap(sessions_);
  }
  for (auto& [id, s] : all) s->End();
}

bool McpHttp::IsMcpPath(std::string_view path, std::string* server) {
  constexpr std::string_view kPrefix = "/mcp/";
  if (path.rfind(kPrefix, 0) != 0) return false;
  std::string_view name = path.substr(kPrefix.size());
  if (name.empty() || name.find('/') != std::string_view::npos) return false;
  *server = std::string(name);
  return true;
}

size_t McpHttp::sessions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sessions_.size();
}

std::optional<HttpResponse> McpHttp::CheckOrigin(const HttpRequest& request) const {
  auto allowed_host = [&](const std::string& host) {
    if (IsLoopbackHost(host)) return true;
    if (!options_.listen_host.empty() && host == Lower(options_.listen_host)) return true;
    for (const auto& o : options_.allowed_origins) {
      if (HostOf(o) == host) return true;
    }
    return false;
  };
  const std::string_view origin = request.Header("origin");
  if (!origin.empty()) {
    const bool listed = std::find(options_.allowed_origins.begin(), options_.allowed_origins.end(),
                                  origin) != options_.allowed_origins.end();
    if (!listed && !IsLoopbackHost(HostOf(origin))) {
      return RpcError(403, nullptr, mcp::kInvalidRequest,
                      "Origin '" + std::string(origin) +
                          "' is not allowed (a page of another site must not reach airlock; "
                          "`airlock serve --mcp-allow-origin` adds one)");
    }
  }
  // DNS rebinding: a page of another site whose name now resolves to a loopback address
  // sends its own name as Host. A wildcard listener cannot know its names: it relies on
  // Origin alone.
  const bool wildcard = options_.listen_host == "0.0.0.0" || options_.listen_host == "::";
  const std::string_view host = request.Header("host");
  if (!wildcard && !host.empty() && !allowed_host(HostOf(host))) {
    return RpcError(403, nullptr, mcp::kInvalidRequest,
                    "Host '" + std::string(host) + "' is not one airlock serves as");
  }
  return std::nullopt;
}

void McpHttp::ReapIdle() {
  std::vector<std::shared_ptr<Session>> idle;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = Clock::now();
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      if (it->second->Idle(now, options_.idle_session_ms)) {
        idle.push_back(it->second);
        it = sessions_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& s : idle) s->End();
}

std::shared_ptr<McpHttp::Session> McpHttp::Find(const HttpRequest& request,
                                                const std::string& server, const std::string& token,
                                                std::optional<HttpResponse>* refusal) {
  const std::string_view id = request.Header("mcp-session-id");
  if (id.empty()) {
    *refusal = RpcError(400, nullptr, mcp::kInvalidRequest,
                        "no Mcp-Session-Id header: start a session with initialize first");
    return nullptr;
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(std::string(id));
  // Another agent's session, or another server's, is as unknown as an ended one.
  if (it == sessions_.end() || it->second->server != server || it->second->token != token) {
    *refusal = RpcError(404, nullptr, mcp::kInvalidRequest,
                        "no MCP session '" + std::string(id) +
                            "' here (it ended or expired): initialize a new one");
    return nullptr;
  }
  return it->second;
}

Reply McpHttp::Handle(const HttpRequest& request, const std::string& server) {
  if (auto refused = CheckOrigin(request)) return Now(std::move(*refused));
  const std::string token = BearerToken(request);
  auto who = gateway_.WhoIs(token);  // a failure is audited as auth_failed
  if (!who.ok()) {
    HttpResponse r = RpcError(401, nullptr, mcp::kInvalidRequest,
                              "a valid 'Authorization: Bearer TOKEN' header is required");
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"airlock\"");
    return Now(std::move(r));
  }
  if (who->role != Principal::Role::kAgent) {
    return Now(RpcError(403, nullptr, mcp::kInvalidRequest,
                        "MCP sessions are for agents; this token is " + who->Label() + "'s"));
  }
  const std::string_view version = request.Header("mcp-protocol-version");
  if (!version.empty() && std::find(std::begin(kKnownVersions), std::end(kKnownVersions),
                                    version) == std::end(kKnownVersions)) {
    return Now(RpcError(400, nullptr, mcp::kInvalidRequest,
                        "unsupported MCP-Protocol-Version '" + std::string(version) + "'"));
  }
  if (request.method == "POST") return Post(request, server, *who, token);
  if (request.method == "GET" || request.method == "DELETE") {
    std::optional<HttpResponse> refusal;
    auto s = Find(request, server, token, &refusal);
    if (!s) return Now(std::move(*refusal));
    if (request.method == "GET") return Get(s, request);
    {
      std::lock_guard<std::mutex> lock(mu_);
      sessions_.erase(s->id);
    }
    s->End();
    HttpResponse r;
    r.status = 204;
    r.content_type.clear();
    return Now(std::move(r));
  }
  HttpResponse r = ErrorResponse(405, "method_not_allowed",
                                 request.method + " is not allowed on an MCP endpoint");
  r.headers.emplace_back("Allow", "GET, POST, DELETE");
  return Now(std::move(r));
}

Reply McpHttp::Get(const std::shared_ptr<Session>& s, const HttpRequest& request) {
  if (!Accepts(request.Header("accept"), "text/event-stream")) {
    return Now(RpcError(406, nullptr, mcp::kInvalidRequest,
                        "GET opens the session's event stream: Accept text/event-stream"));
  }
  auto slot = Slot::Take(streams_, options_.max_streams);
  if (!slot) {
    return Now(RpcError(503, nullptr, mcp::kInvalidRequest,
                        "too many MCP streams are open; try again later"));
  }
  s->Touch();
  auto stream = s->OpenGetStream();
  ++s->open_streams;
  Reply r;
  r.response.content_type = "text/event-stream";
  r.response.headers.emplace_back(kSessionHeader, s->id);
  r.response.headers.emplace_back("Cache-Control", "no-cache");
  r.stream = [s, stream, slot, o = options_](StreamSink& sink) {
    if (sink.Send(": stream open\n\n")) Pump(*stream, sink, o, /*until_answered=*/false);
    s->Forget(stream);
    --s->open_streams;
  };
  return r;
}

Reply McpHttp::Post(const HttpRequest& request, const std::string& server, const Principal& who,
                    const std::string& token) {
  (void)who;
  if (MediaType(request.Header("content-type")) != "application/json") {
    return Now(RpcError(415, nullptr, mcp::kInvalidRequest,
                        "an MCP message is application/json, not '" +
                            std::string(request.Header("content-type")) + "'"));
  }
  const std::string_view accept = request.Header("accept");
  // The spec has clients list both; one that lists neither could read no answer.
  const bool sse = accept.empty() || Accepts(accept, "text/event-stream");
  if (!sse && !Accepts(accept, "application/json")) {
    return Now(RpcError(406, nullptr, mcp::kInvalidRequest,
                        "Accept must list application/json or text/event-stream"));
  }
  size_t max_bytes = static_cast<size_t>(McpServerSpec{}.max_message_bytes);
  if (const McpServerSpec* spec = gateway_.policy().FindMcpServer(server)) {
    max_bytes = static_cast<size_t>(spec->max_message_bytes);
  }
  mcp::ParseResult p = mcp::Parse(request.body, max_bytes);
  if (!p.message) {
    const int status = p.failure.code == mcp::kMessageTooLarge ? 413 : 400;
    return Now(RpcError(status, p.failure.answerable ? p.failure.id : Json(nullptr), p.failure.code,
                        p.failure.message));
  }
  const mcp::Message& m = *p.message;

  std::shared_ptr<Session> s;
  if (m.IsRequest() && m.method == "initialize") {
    if (!request.Header("mcp-session-id").empty()) {
      return Now(RpcError(400, m.id, mcp::kInvalidRequest,
                          "initialize starts a new session: send it without Mcp-Session-Id"));
    }
    ReapIdle();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (static_cast<int>(sessions_.size()) >= options_.max_sessions) {
        return Now(RpcError(503, m.id, mcp::kInvalidRequest,
                            "too many MCP sessions are open (" +
                                std::to_string(options_.max_sessions) + "); try again later"));
      }
    }
    s = std::make_shared<Session>(RandomHex(16), token, server, options_.max_backlog);
    auto opened = mcp::McpSession::Open(gateway_, server, token, *s);
    if (!opened.ok()) {
      const int status = opened.status().code() == StatusCode::kNotFound ? 404 : 403;
      return Now(RpcError(status, m.id, mcp::kInvalidRequest, opened.status().message()));
    }
    s->mcp = std::move(*opened);
    std::lock_guard<std::mutex> lock(mu_);
    sessions_[s->id] = s;
  } else {
    std::optional<HttpResponse> refusal;
    s = Find(request, server, token, &refusal);
    if (!s) return Now(std::move(*refusal));
  }
  s->Touch();

  if (!m.IsRequest()) {
    // A notification, or the client's answer to a server's request: nothing to wait for.
    s->mcp->Handle(m);
    HttpResponse r;
    r.status = 202;
    r.content_type.clear();
    return Now(std::move(r));
  }
  auto slot = Slot::Take(streams_, options_.max_streams);
  if (!slot) {
    return Now(RpcError(503, m.id, mcp::kInvalidRequest,
                        "too many MCP requests are waiting; try again later"));
  }
  auto stream = std::make_shared<Stream>();
  if (!s->Expect(m.id, sse ? ProgressTokenOf(m) : Json(nullptr), stream, sse)) {
    return Now(RpcError(400, m.id, mcp::kInvalidRequest,
                        "a request with this id is already in flight in this session"));
  }
  ++s->open_streams;
  s->mcp->Handle(m);

  Reply r;
  r.response.headers.emplace_back(kSessionHeader, s->id);
  if (sse) {
    r.response.content_type = "text/event-stream";
    r.response.headers.emplace_back("Cache-Control", "no-cache");
    r.stream = [s, stream, slot, o = options_](StreamSink& sink) {
      Pump(*stream, sink, o, /*until_answered=*/true);
      s->Forget(stream);
      --s->open_streams;
    };
    return r;
  }
  r.deferred = [s, stream, slot, o = options_](const ReplyContext& context) {
    HttpResponse out;
    {
      std::unique_lock<std::mutex> lock(stream->mu);
      while (!stream->answered && !stream->ended && !context.Stopping()) {
        stream->cv.wait_for(lock, std::chrono::milliseconds(o.poll_ms));
      }
      if (stream->answered) {
        out.body = mcp::Serialize(stream->answer);
      } else {
        out = RpcError(503, nullptr, mcp::kInternalError,
                       "the MCP session ended before the request was answered");
      }
    }
    out.headers.emplace_back(kSessionHeader, s->id);
    s->Forget(stream);
    --s->open_streams;
    return out;
  };
  return r;
}

}  // namespace airlock::server
