#include "mcp/http_upstream.h"

#include <chrono>
#include <thread>

#include "connectors/http/credentials.h"
#include "net/curl.h"

namespace airlock::mcp {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return std::string(s);
}

// What one transfer collects, shared with libcurl's callbacks.
struct TransferState {
  size_t max_bytes;
  const std::atomic<bool>* cancel = nullptr;  // abort when it becomes true
  std::string content_type;
  std::string session_id;
  int code = 0;  // the status of the response being read, from its status line
  bool sse = false;
  bool decided = false;  // whether the body is SSE is known (first body bytes)
  bool too_big = false;
  std::string body;  // a JSON answer
  std::unique_ptr<HttpUpstream::SseParser> parser;
  std::function<void(std::string)> on_message;  // an SSE event's data
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<TransferState*>(user);
  std::string_view line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {  // a new response (after a 100 Continue, say)
    t->content_type.clear();
    t->code = 0;
    if (const size_t space = line.find(' '); space != std::string_view::npos) {
      for (size_t i = space + 1; i < line.size() && i < space + 4; ++i) {
        if (line[i] < '0' || line[i] > '9') break;
        t->code = t->code * 10 + (line[i] - '0');
      }
    }
  } else if (const size_t colon = line.find(':'); colon != std::string_view::npos) {
    const std::string name = Lower(line.substr(0, colon));
    if (name == "content-type") t->content_type = Trim(line.substr(colon + 1));
    if (name == "mcp-session-id") t->session_id = Trim(line.substr(colon + 1));
  }
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<TransferState*>(user);
  const std::string_view bytes(data, size * n);
  if (!t->decided) {
    t->decided = true;
    std::string media = Lower(t->content_type.substr(0, t->content_type.find(';')));
    t->sse = Trim(media) == "text/event-stream";
    if (t->sse) t->parser = std::make_unique<HttpUpstream::SseParser>(t->max_bytes);
  }
  if (t->sse) {
    if (!t->parser->Feed(bytes, [&](std::string d) { t->on_message(std::move(d)); })) {
      t->too_big = true;
      return 0;  // aborts the transfer
    }
    return bytes.size();
  }
  if (t->body.size() + bytes.size() > t->max_bytes) {
    t->too_big = true;
    return 0;
  }
  t->body.append(bytes);
  return bytes.size();
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<TransferState*>(user);
  return t->cancel != nullptr && t->cancel->load() ? 1 : 0;
}

struct Outcome {
  Status status;  // the transfer itself (refused, reset, aborted)
  long code = 0;  // the HTTP status
};

// One HTTP exchange. `method` "POST" (with `body`), "GET" or "DELETE".
Outcome Exchange(const std::string& method, const std::string& url,
                 const std::vector<std::string>& headers, const std::string& body,
                 int64_t connect_timeout_ms, int64_t total_timeout_ms, TransferState* t) {
  auto easy = net::CurlEasy::Create();
  if (!easy.ok()) return {easy.status(), 0};
  net::CurlList list(easy->api());
  for (const auto& h : headers) {
    if (Status st = list.Append(h); !st.ok()) return {st, 0};
  }
  for (Status st : {
           easy->Set(CURLOPT_URL, url.c_str()),
           easy->Set(CURLOPT_PROTOCOLS_STR, "http,https"),
           easy->Set(CURLOPT_FOLLOWLOCATION, 0L),
           // "" = no proxy, whatever the environment says: the request may carry the
           // policy's credentials (headers:), which go to the server and nowhere else.
           easy->Set(CURLOPT_PROXY, ""),
           easy->Set(CURLOPT_HTTPHEADER, list.get()),
           easy->Set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(connect_timeout_ms)),
           easy->Set(CURLOPT_TIMEOUT_MS, static_cast<long>(total_timeout_ms)),
           easy->Set(CURLOPT_HEADERFUNCTION, &OnHeader),
           easy->Set(CURLOPT_HEADERDATA, static_cast<void*>(t)),
           easy->Set(CURLOPT_WRITEFUNCTION, &OnBody),
           easy->Set(CURLOPT_WRITEDATA, static_cast<void*>(t)),
           easy->Set(CURLOPT_NOPROGRESS, 0L),
           easy->Set(CURLOPT_XFERINFOFUNCTION, &OnProgress),
           easy->Set(CURLOPT_XFERINFODATA, static_cast<void*>(t)),
       }) {
    if (!st.ok()) return {st, 0};
  }
  if (method == "POST") {
    for (Status st :
         {easy->Set(CURLOPT_POSTFIELDS, body.data()),
          easy->Set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()))}) {
      if (!st.ok()) return {st, 0};
    }
  } else if (method == "DELETE") {
    if (Status st = easy->Set(CURLOPT_CUSTOMREQUEST, "DELETE"); !st.ok()) return {st, 0};
  }
  Status st = easy->Perform();
  return {st, easy->ResponseCode()};
}

bool IsResponseTo(const std::string& data, const Json& id) {
  ParseResult p = Parse(data, SIZE_MAX);
  return p.message && p.message->IsResponse() && p.message->id == id;
}

}  // namespace

bool HttpUpstream::SseParser::Line(std::string_view line, std::string* ready) {
  if (line.empty()) {  // the end of an event
    if (!has_data_) return false;
    *ready = std::move(data_);
    data_.clear();
    has_data_ = false;
    return true;
  }
  if (line.front() == ':') return false;  // a comment (keep-alive)
  const size_t colon = line.find(':');
  const std::string_view field = line.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field == "data") {
    if (has_data_) data_.push_back('\n');
    data_.append(value);
    has_data_ = true;
  }
  // event, id, retry: airlock reads messages only, and does not resume streams.
  return false;
}

Result<std::unique_ptr<HttpUpstream>> HttpUpstream::Start(const HttpUpstreamOptions& options) {
  if (options.url.rfind("http://", 0) != 0 && options.url.rfind("https://", 0) != 0) {
    return Status::InvalidArgument("an MCP server's url must be http:// or https://");
  }
  std::vector<std::string> extra;
  for (const auto& [name, value] : options.headers) {
    ASSIGN_OR_RETURN(http_target::HeaderSpec spec, http_target::ParseHeaderSpec(name, value));
    auto resolved = http_target::ResolveHeaderValue(spec);
    if (!resolved.ok()) {
      return resolved.status().Annotate("the MCP server at " + net::UrlOrigin(options.url));
    }
    extra.push_back(spec.name + ": " + *resolved);
  }
  RETURN_IF_ERROR(net::Curl().status());
  auto up = std::unique_ptr<HttpUpstream>(new HttpUpstream(options));
  up->extra_headers_ = std::move(extra);
  return up;
}

HttpUpstream::HttpUpstream(HttpUpstreamOptions options)
    : options_(std::move(options)), origin_(net::UrlOrigin(options_.url)) {}

HttpUpstream::~HttpUpstream() {
  Stop(std::chrono::milliseconds(500));
}

std::string HttpUpstream::SessionId() {
  std::lock_guard<std::mutex> lock(mu_);
  return session_id_;
}

std::vector<std::string> HttpUpstream::Headers(bool json_body) {
  std::vector<std::string> h = {"Accept: application/json, text/event-stream"};
  if (json_body) h.push_back("Content-Type: application/json");
  std::lock_guard<std::mutex> lock(mu_);
  if (!session_id_.empty()) h.push_back("Mcp-Session-Id: " + session_id_);
  if (!protocol_version_.empty()) h.push_back("MCP-Protocol-Version: " + protocol_version_);
  h.insert(h.end(), extra_headers_.begin(), extra_headers_.end());
  return h;
}

void HttpUpstream::AdoptSession(const std::string& session_id, const std::string& answer) {
  ParseResult p = Parse(answer, SIZE_MAX);
  if (!p.message || p.message->type != Message::Type::kResponse || !p.message->result.is_object()) {
    return;  // an error answer opens no session
  }
  std::lock_guard<std::mutex> lock(mu_);
  session_id_ = session_id;
  const Json& result = p.message->result;
  if (result.contains("protocolVersion") && result["protocolVersion"].is_string()) {
    protocol_version_ = result["protocolVersion"].get<std::string>();
  }
}

void HttpUpstream::Deliver(std::string line) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ended_) return;
  queue_.push_back(std::move(line));
  cv_.notify_all();
}

void HttpUpstream::End(const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ended_) return;
  ended_ = true;
  end_text_ = why;
  cv_.notify_all();
}

bool HttpUpstream::Send(const Json& message) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ended_) return false;
    ++running_;
  }
  const bool request = message.contains("method") && message.contains("id");
  if (request) {
    // A request may take long (a tool call): its answer comes on its own thread.
    std::thread([this, message] { Transfer(message); }).detach();
  } else {
    // Notifications and answers go in order, before any later message (initialized before
    // the next request, say); the server acknowledges them at once (202).
    Transfer(message);
  }
  return true;
}

void HttpUpstream::Transfer(Json message) {
  struct Done {
    HttpUpstream* up;
    ~Done() {
      std::lock_guard<std::mutex> lock(up->mu_);
      --up->running_;
      up->cv_.notify_all();
    }
  } done{this};
  const bool request = message.contains("method") && message.contains("id");
  const Json id = request ? message["id"] : Json(nullptr);
  const std::string method = message.contains("method") && message["method"].is_string()
                                 ? message["method"].get<std::string>()
                                 : "";
  TransferState t;
  t.max_bytes = options_.max_message_bytes;
  t.cancel = &stopping_;
  bool answered = false;
  t.on_message = [&](std::string data) {
    if (request && !answered && IsResponseTo(data, id)) {
      answered = true;
      if (method == "initialize" && t.code >= 200 && t.code < 300) {
        AdoptSession(t.session_id, data);
      }
    }
    Deliver(std::move(data));
  };
  const bool had_session = !SessionId().empty();
  // No overall time limit on a request: a tool call may run long; Stop() aborts it.
  Outcome o = Exchange("POST", options_.url, Headers(true), Serialize(message),
                       options_.connect_timeout_ms, request ? 0 : 30000, &t);
  if (stopping_) return;
  if (o.status.ok() && !t.sse && !t.body.empty()) {
    // A JSON answer: the request's response (or, for a notification, nothing useful).
    if (request && IsResponseTo(t.body, id)) {
      answered = true;
      if (method == "initialize" && o.code >= 200 && o.code < 300) {
        AdoptSession(t.session_id, t.body);
      }
      Deliver(t.body);
    }
  }
  if (o.code == 404 && had_session) {
    End("the MCP server at " + origin_ + " ended the session (404)");
    return;
  }
  if (request && !answered) {
    std::string why;
    if (t.too_big) {
      why = "the MCP server's answer is over " + std::to_string(options_.max_message_bytes) +
            " bytes (max_message_size)";
    } else if (!o.status.ok()) {
      why = "cannot reach the MCP server at " + origin_ + ": " + o.status.message();
    } else if (o.code >= 300) {
      why = "the MCP server at " + origin_ + " answered HTTP " + std::to_string(o.code);
    } else {
      why = "the MCP server at " + origin_ + " closed the stream before it answered";
    }
    Deliver(Serialize(MakeError(id, kUpstreamUnavailable, why)));
    return;
  }
  if (method == "notifications/initialized" && o.status.ok() && o.code < 300) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!get_started_ && !ended_) {
      get_started_ = true;
      ++running_;
      std::thread([this] {
        GetLoop();
        std::lock_guard<std::mutex> lock(mu_);
        --running_;
        cv_.notify_all();
      }).detach();
    }
  }
}

void HttpUpstream::GetLoop() {
  while (!stopping_) {
    TransferState t;
    t.max_bytes = options_.max_message_bytes;
    t.cancel = &stopping_;
    t.on_message = [this](std::string data) { Deliver(std::move(data)); };
    std::vector<std::string> headers = Headers(false);
    headers[0] = "Accept: text/event-stream";
    Outcome o = Exchange("GET", options_.url, headers, "", options_.connect_timeout_ms, 0, &t);
    if (stopping_) return;
    if (o.code == 404 && !SessionId().empty()) {
      End("the MCP server at " + origin_ + " ended the session (404)");
      return;
    }
    // 405: the server offers no stream of its own; anything but an event stream: neither.
    if (o.code == 405 || (o.status.ok() && o.code >= 200 && o.code < 300 && !t.sse)) return;
    if (o.code >= 400 && o.code < 500) return;
    // A stream that ended or broke: open it again, a little later.
    for (int i = 0; i < 10 && !stopping_; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

LineReader::Event HttpUpstream::Receive(std::string* line) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !queue_.empty() || ended_; });
  if (queue_.empty()) return LineReader::Event::kEof;
  *line = std::move(queue_.front());
  queue_.pop_front();
  return LineReader::Event::kLine;
}

std::string HttpUpstream::Stop(std::chrono::milliseconds grace) {
  if (stopping_.exchange(true)) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return running_ == 0; });
    return end_text_.empty() ? "session ended" : end_text_;
  }
  const std::string session = SessionId();
  if (!session.empty() && grace.count() > 0) {
    // The server may free what it holds for the session; it may also not allow it (405).
    TransferState t;
    t.max_bytes = 64 << 10;
    t.on_message = [](std::string) {};
    (void)Exchange("DELETE", options_.url, Headers(false), "",
                   std::min<int64_t>(options_.connect_timeout_ms, grace.count()), grace.count(),
                   &t);
  }
  End("session ended");
  // Every transfer notices `stopping_` within about a second (libcurl's progress callback).
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return running_ == 0; });
  return end_text_;
}

}  // namespace airlock::mcp
