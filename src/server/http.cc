#include "server/http.h"

#include <fcntl.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <csignal>
#include <future>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include "core/json.h"
#include "core/trace.h"
#include "server/elastic_pool.h"

namespace airlock::server {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Parser = http::request_parser<http::string_body>;
// A connection's socket and timer name their executor's type. tcp::socket's executor is
// type-erased (any_io_executor), too small to hold a strand in place, so every operation
// that took it copied the strand to the heap: ~12 allocations per request (heaptrack).
using Strand = net::strand<net::io_context::executor_type>;
using Socket = net::basic_stream_socket<tcp, Strand>;
using Timer = net::basic_waitable_timer<std::chrono::steady_clock,
                                        net::wait_traits<std::chrono::steady_clock>, Strand>;

// How long a connection that must close is read from (and its bytes dropped) after the reply:
// closing a socket with unread input resets it, and the client would lose the reply.
constexpr int64_t kLingerMs = 2000;
constexpr size_t kReadChunk = 4096;
// How often a deadline that has passed cancels the connection's operation again (see
// WaitAndCancel).
constexpr int64_t kRecancelMs = 10;
// A pool thread idle this long ends (ElasticPool).
constexpr std::chrono::milliseconds kPoolLinger{30'000};

std::string Seconds(int64_t ms) {
  std::ostringstream os;
  os << static_cast<double>(ms) / 1000.0 << " s";
  return os.str();
}

HttpResponse Closing(HttpResponse r) {
  r.close = true;
  return r;
}

// The reply to a request the parser refused; the connection cannot be read further.
HttpResponse ParseErrorResponse(beast::error_code ec, const HttpLimits& limits) {
  if (ec == http::error::header_limit) {
    return Closing(ErrorResponse(
        431, "headers_too_large",
        "the request headers are over " + std::to_string(limits.max_header) + " bytes"));
  }
  if (ec == http::error::body_limit) {
    return Closing(ErrorResponse(413, "body_too_large",
                                 "the body is over " + std::to_string(limits.max_body) + " bytes"));
  }
  return Closing(ErrorResponse(400, "bad_request", "malformed HTTP request: " + ec.message()));
}

// Checks on a request's head that the parser does not make.
std::optional<HttpResponse> CheckHead(const Parser& p, const HttpLimits& limits) {
  const auto method = p.get().method();
  const bool takes_body =
      method == http::verb::post || method == http::verb::put || method == http::verb::patch;
  // Without a length, the end of the body could only be the end of the connection.
  if (takes_body && !p.content_length() && !p.chunked()) {
    return Closing(ErrorResponse(411, "length_required",
                                 "a request body needs Content-Length or chunked encoding"));
  }
  if (p.content_length() && *p.content_length() > limits.max_body) {
    return ParseErrorResponse(http::error::body_limit, limits);
  }
  return std::nullopt;
}

HttpRequest ToRequest(http::request<http::string_body>&& req) {
  HttpRequest r;
  r.method = std::string(req.method_string());
  r.target = std::string(req.target());
  for (const auto& field : req) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers.emplace_back(std::move(name), std::string(field.value()));
  }
  r.body = std::move(req.body());
  return r;
}

// One request's way out for an answer that comes later: the first Send wins; dropped unsent
// (a handler that lost its Responder), it answers 500 so that the client is never left
// waiting.
class ResponseSlot {
 public:
  explicit ResponseSlot(std::function<void(HttpResponse)> send) : send_(std::move(send)) {}
  ~ResponseSlot() {
    if (!sent_.exchange(true)) send_(ErrorResponse(500, "internal", "the handler gave no answer"));
  }
  ResponseSlot(const ResponseSlot&) = delete;
  ResponseSlot& operator=(const ResponseSlot&) = delete;
  void Send(HttpResponse r) {
    if (!sent_.exchange(true)) send_(std::move(r));
  }
  // The request went elsewhere (HandleInline declined it): no answer from here.
  void Cancel() { sent_ = true; }

 private:
  const std::function<void(HttpResponse)> send_;
  std::atomic<bool> sent_{false};
};

Responder ResponderFor(const std::shared_ptr<ResponseSlot>& slot) {
  return [slot](HttpResponse r) { slot->Send(std::move(r)); };
}

// Runs a Reply::async; an exception answers 500 (unless an answer went out already).
void StartAsync(const std::function<void(Responder)>& fn, const std::shared_ptr<ResponseSlot>& slot) {
  try {
    fn(ResponderFor(slot));
  } catch (const std::exception& e) {
    slot->Send(ErrorResponse(500, "internal", std::string("the handler failed: ") + e.what()));
  } catch (...) {
    slot->Send(ErrorResponse(500, "internal", "the handler failed"));
  }
}

Reply RunHandler(HttpHandler& handler, const HttpRequest& request) {
  try {
    return handler.Handle(request);
  } catch (const std::exception& e) {
    Reply r;
    r.response = ErrorResponse(500, "internal", std::string("the handler failed: ") + e.what());
    return r;
  } catch (...) {
    Reply r;
    r.response = ErrorResponse(500, "internal", "the handler failed");
    return r;
  }
}

HttpResponse RunDeferred(const std::function<HttpResponse(const ReplyContext&)>& fn,
                         const ReplyContext& context) {
  try {
    return fn(context);
  } catch (const std::exception& e) {
    return ErrorResponse(500, "internal", std::string("the handler failed: ") + e.what());
  } catch (...) {
    return ErrorResponse(500, "internal", "the handler failed");
  }
}

void RunStream(const std::function<void(StreamSink&)>& fn, StreamSink& sink) {
  try {
    fn(sink);
  } catch (...) {
    // The head is sent: all that is left to do is to end the stream.
  }
}

// Headers every reply carries; `Cache-Control` unless the reply sets its own.
template <class Message>
void SetCommonHeaders(Message& m, const HttpResponse& r) {
  if (!r.content_type.empty()) m.set(http::field::content_type, r.content_type);
  m.set("X-Content-Type-Options", "nosniff");
  m.set("Referrer-Policy", "no-referrer");
  bool cache_control = false;
  for (const auto& [name, value] : r.headers) {
    m.set(name, value);
    cache_control = cache_control || beast::iequals(name, "cache-control");
  }
  if (!cache_control) m.set(http::field::cache_control, "no-store");
}

// The asio sockets are opened without close-on-exec; the sandbox closes stray fds in its
// children too, but a listening socket must never be inherited by anything.
void SetCloseOnExec(int fd) {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

void Log(const std::string& what) {
  std::cerr << "airlock: serve: " << what << std::endl;
}

}  // namespace

std::string_view HttpRequest::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return {};
}

std::string BearerToken(const HttpRequest& req) {
  std::string_view h = req.Header("authorization");
  constexpr std::string_view kScheme = "bearer ";
  if (h.size() <= kScheme.size()) return "";
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(h[i])) != kScheme[i]) return "";
  }
  h.remove_prefix(kScheme.size());
  while (!h.empty() && (h.front() == ' ' || h.front() == '\t')) h.remove_prefix(1);
  while (!h.empty() && (h.back() == ' ' || h.back() == '\t')) h.remove_suffix(1);
  return std::string(h);
}

std::string MediaType(std::string_view content_type) {
  content_type = content_type.substr(0, content_type.find(';'));
  std::string out;
  for (char c : content_type) {
    if (c != ' ' && c != '\t')
      out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return out;
}

HttpResponse ErrorResponse(int status, std::string_view code, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.body =
      CanonicalJson({{"error", {{"code", std::string(code)}, {"message", std::string(message)}}}});
  return r;
}

Reply HandleRawRequest(std::string_view bytes, const HttpLimits& limits, HttpHandler& handler) {
  Parser p;
  p.header_limit(limits.max_header);
  p.body_limit(limits.max_body);
  p.eager(true);
  beast::error_code ec;
  net::const_buffer buf(bytes.data(), bytes.size());
  while (buf.size() > 0 && !p.is_done()) {
    const size_t n = p.put(buf, ec);
    if (ec == http::error::need_more) {
      ec = {};
      break;
    }
    if (ec || n == 0) break;
    buf += n;
  }
  if (!ec && !p.is_done()) {
    if (p.got_some()) {
      p.put_eof(ec);
    } else {
      ec = http::error::partial_message;  // no request at all (put_eof requires some)
    }
  }
  Reply r;
  if (ec) {
    r.response = ParseErrorResponse(ec, limits);
    return r;
  }
  if (auto refused = CheckHead(p, limits)) {
    r.response = std::move(*refused);
    return r;
  }
  Reply reply = RunHandler(handler, ToRequest(p.release()));
  if (!reply.async) return reply;
  // No connection to answer later: wait here for the answer.
  auto answer = std::make_shared<std::promise<HttpResponse>>();
  std::future<HttpResponse> got = answer->get_future();
  auto slot = std::make_shared<ResponseSlot>(
      [answer](HttpResponse resp) { answer->set_value(std::move(resp)); });
  StartAsync(reply.async, slot);
  slot.reset();
  r.response = got.get();
  return r;
}

// ---- the server's shared state ---------------------------------------------------------------

struct HttpServer::Impl {
  Impl(HttpServerOptions o, HttpHandler& h)
      : options(std::move(o)),
        handler(h),
        io(std::max(1, options.io_threads)),
        long_pool(static_cast<size_t>(std::max(1, options.long_workers)), kPoolLinger),
        workers(static_cast<size_t>(std::max(1, options.workers)), kPoolLinger),
        strand(net::make_strand(io)),
        acceptor(strand),
        retry_timer(strand),
        drain_timer(strand),
        work(net::make_work_guard(io)) {}

  void Accept();
  void OnAccept(beast::error_code ec, Socket socket);
  void WaitForSignal();
  void BeginShutdown();
  void CheckDrained();

  const HttpServerOptions options;
  HttpHandler& handler;
  std::function<void(std::string_view, int)> on_response;
  std::atomic<int> connections{0};
  std::atomic<int> in_flight{0};  // requests read and not yet answered (streams included)
  std::atomic<bool> stopping{false};
  // Declared before the pools and sockets: their queued handlers are destroyed with them and
  // still refer to the io_context.
  net::io_context io;
  // Threads made as work comes (ElasticPool): a server with hundreds of idle threads made
  // every fork of it (each shell sandbox's supervisor) cost ~2 ms. The long pool is declared
  // first so that it outlives the workers, whose tasks post to it.
  ElasticPool long_pool;
  ElasticPool workers;
  // Serialises the server's own handlers (accepting, signals, draining) across io threads.
  net::strand<net::io_context::executor_type> strand;
  tcp::acceptor acceptor;
  net::steady_timer retry_timer;
  net::steady_timer drain_timer;
  std::optional<net::signal_set> signals;
  net::executor_work_guard<net::io_context::executor_type> work;
  uint16_t port = 0;
  bool shutdown_started = false;  // on `strand` only
  std::chrono::steady_clock::time_point drain_deadline;
  std::atomic<bool> drained{true};
};

// ---- one connection --------------------------------------------------------------------------

namespace {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Socket socket, HttpServer::Impl& server)
      : server_(server), socket_(std::move(socket)), timer_(socket_.get_executor()) {}
  ~Connection() {
    if (busy_) --server_.in_flight;
    if (counted_) --server_.connections;
  }

  void Start() {
    counted_ = true;
    ++server_.connections;
    net::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->ReadIdle(); });
  }

  // Answers without reading a request, then closes (too many connections).
  void Reject(HttpResponse r) {
    net::dispatch(socket_.get_executor(), [self = shared_from_this(), r = std::move(r)]() mutable {
      self->Write(Closing(std::move(r)));
    });
  }

  bool Stopping() const { return server_.stopping || peer_gone_; }
  // Writes `bytes` from a stream's thread; blocks until written or failed.
  bool SendFromStream(std::string bytes);

 private:
  void ReadIdle();
  void ReadHeader();
  void OnHeader(beast::error_code ec);
  void SendContinue();
  void ReadBody();
  void OnBody(beast::error_code ec);
  void Dispatch();
  void Deliver(Reply reply);  // on a worker thread
  void PostWrite(HttpResponse r);
  void Write(HttpResponse r);
  void Responded(int status);
  void StartStream(Reply reply);
  void WatchPeer();
  void EndStream(int status);
  void CloseGracefully();
  void Linger();
  void CloseNow();
  void Arm(int64_t ms);
  void WaitAndCancel(uint64_t gen, int64_t ms);
  bool Disarm();  // whether the deadline had fired
  bool Gone(beast::error_code ec) const {
    return ec == http::error::end_of_stream || ec == net::error::eof ||
           ec == net::error::connection_reset || ec == net::error::broken_pipe;
  }

  HttpServer::Impl& server_;
  Socket socket_;
  Timer timer_;
  uint64_t timer_gen_ = 0;
  bool fired_ = false;
  beast::flat_buffer buffer_;
  std::optional<Parser> parser_;
  std::string target_;  // of the request being answered, for OnResponse
  bool keep_alive_ = false;
  bool counted_ = false;  // counts against max_connections
  bool busy_ = false;     // counts in in_flight
  std::atomic<bool> peer_gone_{false};
  std::array<char, kReadChunk> scratch_{};
};

class ConnectionSink : public StreamSink {
 public:
  explicit ConnectionSink(std::shared_ptr<Connection> c) : conn_(std::move(c)) {}
  bool Send(std::string bytes) override { return conn_->SendFromStream(std::move(bytes)); }
  bool Stopping() const override { return conn_->Stopping(); }

 private:
  std::shared_ptr<Connection> conn_;
};

class ServerContext : public ReplyContext {
 public:
  explicit ServerContext(const HttpServer::Impl& s) : server_(s) {}
  bool Stopping() const override { return server_.stopping; }

 private:
  const HttpServer::Impl& server_;
};

void Connection::Arm(int64_t ms) {
  fired_ = false;
  WaitAndCancel(++timer_gen_, ms);
}

// A composed read or write (a whole head, a whole reply) is many socket operations. A cancel
// that lands while one of them has completed but its handler has not yet run reaches no
// operation, and the next one would then wait with no deadline (a client that stops sending
// mid-head would hold the connection for ever). So the cancel is repeated, every
// kRecancelMs, until the operation ends and Disarm() retires this generation.
void Connection::WaitAndCancel(uint64_t gen, int64_t ms) {
  timer_.expires_after(std::chrono::milliseconds(ms));
  timer_.async_wait([self = shared_from_this(), gen](beast::error_code ec) {
    if (ec || gen != self->timer_gen_) return;
    self->fired_ = true;
    beast::error_code ignored;
    self->socket_.cancel(ignored);  // the pending read or write completes with an error
    self->WaitAndCancel(gen, kRecancelMs);
  });
}

bool Connection::Disarm() {
  ++timer_gen_;
  timer_.cancel();
  const bool fired = fired_;
  fired_ = false;
  return fired;
}

void Connection::ReadIdle() {
  if (buffer_.size() > 0) return ReadHeader();  // a pipelined request is already here
  // The header deadline starts at the request's first byte, so that a keep-alive connection
  // may wait idle (up to idle_timeout_ms) without being answered 408.
  Arm(server_.options.idle_timeout_ms);
  socket_.async_read_some(buffer_.prepare(kReadChunk),
                          [self = shared_from_this()](beast::error_code ec, size_t n) {
                            self->Disarm();
                            if (ec) return self->CloseNow();
                            self->buffer_.commit(n);
                            self->ReadHeader();
                          });
}

void Connection::ReadHeader() {
  parser_.emplace();
  parser_->header_limit(server_.options.limits.max_header);
  parser_->body_limit(server_.options.limits.max_body);
  Arm(server_.options.header_timeout_ms);
  http::async_read_header(
      socket_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
}

void Connection::OnHeader(beast::error_code ec) {
  const bool timed_out = Disarm();
  if (ec && timed_out) {
    return Write(Closing(ErrorResponse(408, "request_timeout",
                                       "the request headers did not arrive within " +
                                           Seconds(server_.options.header_timeout_ms))));
  }
  if (Gone(ec)) return CloseNow();
  // Also when the head was refused for what it announced (a body over the limit): the
  // request line is parsed by then.
  target_ = std::string(parser_->get().target());
  const HttpLimits& limits = server_.options.limits;
  if (ec) return Write(ParseErrorResponse(ec, limits));
  keep_alive_ = parser_->get().keep_alive();
  if (server_.stopping) {
    return Write(Closing(ErrorResponse(503, "shutting_down", "airlock is shutting down")));
  }
  if (auto refused = CheckHead(*parser_, limits)) return Write(std::move(*refused));
  if (parser_->is_done()) return Dispatch();
  if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) return SendContinue();
  ReadBody();
}

void Connection::SendContinue() {
  static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
  Arm(server_.options.write_timeout_ms);
  net::async_write(socket_, net::buffer(kContinue),
                   [self = shared_from_this()](beast::error_code ec, size_t) {
                     self->Disarm();
                     if (ec) return self->CloseNow();
                     self->ReadBody();
                   });
}

void Connection::ReadBody() {
  Arm(server_.options.body_timeout_ms);
  http::async_read(socket_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
}

void Connection::OnBody(beast::error_code ec) {
  const bool timed_out = Disarm();
  if (ec && timed_out) {
    return Write(Closing(ErrorResponse(
        408, "request_timeout",
        "the request body did not arrive within " + Seconds(server_.options.body_timeout_ms))));
  }
  if (Gone(ec)) return CloseNow();
  if (ec) return Write(ParseErrorResponse(ec, server_.options.limits));
  Dispatch();
}

void Connection::Dispatch() {
  TraceMark("http: request read");
  busy_ = true;
  ++server_.in_flight;
  auto request = std::make_shared<HttpRequest>(ToRequest(parser_->release()));
  parser_.reset();
  auto slot = std::make_shared<ResponseSlot>(
      [self = shared_from_this()](HttpResponse r) { self->PostWrite(std::move(r)); });
  bool taken = false;
  try {
    taken = server_.handler.HandleInline(*request, ResponderFor(slot));
  } catch (const std::exception& e) {
    taken = true;
    slot->Send(ErrorResponse(500, "internal", std::string("the handler failed: ") + e.what()));
  } catch (...) {
    taken = true;
    slot->Send(ErrorResponse(500, "internal", "the handler failed"));
  }
  if (taken) return;
  slot->Cancel();
  server_.workers.Post([self = shared_from_this(), request] {
    TraceMark("http: on a worker");
    self->Deliver(RunHandler(self->server_.handler, *request));
  });
}

void Connection::Deliver(Reply reply) {
  auto self = shared_from_this();
  if (reply.stream) {
    net::post(socket_.get_executor(),
              [self, reply = std::move(reply)]() mutable { self->StartStream(std::move(reply)); });
    return;
  }
  if (reply.deferred) {
    server_.long_pool.Post([self, fn = std::move(reply.deferred)] {
      ServerContext context(self->server_);
      self->PostWrite(RunDeferred(fn, context));
    });
    return;
  }
  if (reply.async) {
    StartAsync(reply.async, std::make_shared<ResponseSlot>([self](HttpResponse r) {
                 self->PostWrite(std::move(r));
               }));
    return;
  }
  PostWrite(std::move(reply.response));
}

void Connection::PostWrite(HttpResponse r) {
  net::post(socket_.get_executor(),
            [self = shared_from_this(), r = std::move(r)]() mutable { self->Write(std::move(r)); });
}

void Connection::Write(HttpResponse r) {
  TraceMark("http: writing the reply");
  const bool close = r.close || !keep_alive_ || server_.stopping;
  auto msg =
      std::make_shared<http::response<http::string_body>>(static_cast<http::status>(r.status), 11);
  SetCommonHeaders(*msg, r);
  msg->body() = std::move(r.body);
  msg->keep_alive(!close);
  msg->prepare_payload();
  const int status = r.status;
  Arm(server_.options.write_timeout_ms);
  http::async_write(socket_, *msg,
                    [self = shared_from_this(), msg, close, status](beast::error_code ec, size_t) {
                      self->Disarm();
                      self->Responded(status);
                      if (ec) return self->CloseNow();
                      if (close) return self->CloseGracefully();
                      self->ReadIdle();
                    });
}

void Connection::Responded(int status) {
  if (server_.on_response) server_.on_response(target_, status);
  target_.clear();
  if (busy_) {
    busy_ = false;
    --server_.in_flight;
  }
}

void Connection::StartStream(Reply reply) {
  keep_alive_ = false;
  // No length: the stream's body ends when the connection closes.
  http::response<http::empty_body> head{static_cast<http::status>(reply.response.status), 11};
  SetCommonHeaders(head, reply.response);
  head.keep_alive(false);
  std::ostringstream os;
  os << head.base();
  WatchPeer();
  const int status = reply.response.status;
  server_.long_pool.Post(
      [self = shared_from_this(), fn = std::move(reply.stream), bytes = os.str(), status] {
        ConnectionSink sink(self);
        if (sink.Send(bytes)) RunStream(fn, sink);
        net::post(self->socket_.get_executor(), [self, status] { self->EndStream(status); });
      });
}

// A stream only writes; a read that ends tells that the client went away.
void Connection::WatchPeer() {
  socket_.async_read_some(net::buffer(scratch_),
                          [self = shared_from_this()](beast::error_code ec, size_t) {
                            if (!ec) return self->WatchPeer();
                            self->peer_gone_ = true;
                          });
}

bool Connection::SendFromStream(std::string bytes) {
  if (Stopping()) return false;
  auto done = std::make_shared<std::promise<bool>>();
  auto result = done->get_future();
  auto data = std::make_shared<std::string>(std::move(bytes));
  net::post(socket_.get_executor(), [self = shared_from_this(), done, data] {
    self->Arm(self->server_.options.write_timeout_ms);
    net::async_write(self->socket_, net::buffer(*data),
                     [self, done, data](beast::error_code ec, size_t) {
                       self->Disarm();
                       done->set_value(!ec);
                     });
  });
  // The write's own deadline ends it; the margin covers an io_context that stopped.
  const auto limit = std::chrono::milliseconds(server_.options.write_timeout_ms + 2000);
  if (result.wait_for(limit) != std::future_status::ready) return false;
  return result.get();
}

void Connection::EndStream(int status) {
  Responded(status);
  CloseNow();
}

void Connection::CloseGracefully() {
  beast::error_code ec;
  socket_.shutdown(Socket::shutdown_send, ec);
  if (ec) return CloseNow();
  Arm(kLingerMs);
  Linger();
}

void Connection::Linger() {
  socket_.async_read_some(net::buffer(scratch_),
                          [self = shared_from_this()](beast::error_code ec, size_t) {
                            if (!ec) return self->Linger();
                            self->Disarm();
                            self->CloseNow();
                          });
}

void Connection::CloseNow() {
  beast::error_code ec;
  socket_.shutdown(Socket::shutdown_both, ec);
  socket_.close(ec);
}

}  // namespace

// ---- accepting, shutting down ----------------------------------------------------------------

void HttpServer::Impl::Accept() {
  acceptor.async_accept(net::make_strand(io), [this](beast::error_code ec, Socket socket) {
    OnAccept(ec, std::move(socket));
  });
}

void HttpServer::Impl::OnAccept(beast::error_code ec, Socket socket) {
  if (!acceptor.is_open() || stopping) return;
  if (ec) {
    // Out of file descriptors, say: try again shortly instead of spinning on the error.
    Log("accept: " + ec.message());
    retry_timer.expires_after(std::chrono::milliseconds(100));
    retry_timer.async_wait([this](beast::error_code e) {
      if (!e) Accept();
    });
    return;
  }
  SetCloseOnExec(socket.native_handle());
  socket.set_option(tcp::no_delay(true), ec);
  auto conn = std::make_shared<Connection>(std::move(socket), *this);
  if (connections.load() >= options.max_connections) {
    conn->Reject(ErrorResponse(503, "too_many_connections",
                               "more than " + std::to_string(options.max_connections) +
                                   " open connections; try again later"));
  } else {
    conn->Start();
  }
  Accept();
}

void HttpServer::Impl::WaitForSignal() {
  signals->async_wait([this](beast::error_code ec, int) {
    if (ec) return;
    BeginShutdown();
    WaitForSignal();
  });
}

void HttpServer::Impl::BeginShutdown() {
  if (shutdown_started) {
    // A second signal: stop waiting for what is still running.
    drained = in_flight.load() == 0;
    io.stop();
    return;
  }
  shutdown_started = true;
  stopping = true;
  beast::error_code ec;
  acceptor.close(ec);
  retry_timer.cancel();
  drain_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options.drain_ms);
  CheckDrained();
}

void HttpServer::Impl::CheckDrained() {
  if (in_flight.load() == 0) {
    io.stop();
    return;
  }
  if (std::chrono::steady_clock::now() >= drain_deadline) {
    drained = false;
    io.stop();
    return;
  }
  drain_timer.expires_after(std::chrono::milliseconds(20));
  drain_timer.async_wait([this](beast::error_code ec) {
    if (!ec) CheckDrained();
  });
}

HttpServer::HttpServer(HttpServerOptions options, HttpHandler& handler)
    : impl_(std::make_unique<Impl>(std::move(options), handler)) {}

HttpServer::~HttpServer() = default;

void HttpServer::OnResponse(std::function<void(std::string_view, int)> fn) {
  impl_->on_response = std::move(fn);
}

Status HttpServer::Listen() {
  Impl& s = *impl_;
  beast::error_code ec;
  const auto address = net::ip::make_address(s.options.host, ec);
  if (ec) return Status::InvalidArgument("'" + s.options.host + "' is not an IP address");
  const tcp::endpoint endpoint(address, s.options.port);
  const std::string where = s.options.host + ":" + std::to_string(s.options.port);
  s.acceptor.open(endpoint.protocol(), ec);
  if (ec) return Status::IoError("cannot open a socket for " + where + ": " + ec.message());
  SetCloseOnExec(s.acceptor.native_handle());
  s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  s.acceptor.bind(endpoint, ec);
  if (ec) return Status::IoError("cannot listen on " + where + ": " + ec.message());
  s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return Status::IoError("cannot listen on " + where + ": " + ec.message());
  s.port = s.acceptor.local_endpoint(ec).port();
  return Status::Ok();
}

uint16_t HttpServer::port() const {
  return impl_->port;
}

void HttpServer::ShutdownOnSignals() {
  impl_->signals.emplace(impl_->strand, SIGINT, SIGTERM);
  impl_->WaitForSignal();
}

bool HttpServer::Run() {
  Impl& s = *impl_;
  net::post(s.strand, [&s] { s.Accept(); });
  auto run = [&s] {
    for (;;) {
      try {
        s.io.run();
        return;
      } catch (const std::exception& e) {
        Log(std::string("unexpected error: ") + e.what());
      }
    }
  };
  std::vector<std::thread> threads;
  for (int i = 1; i < s.options.io_threads; ++i) threads.emplace_back(run);
  run();
  for (auto& t : threads) t.join();
  if (!s.drained) return false;
  s.workers.Join();
  s.long_pool.Join();
  return true;
}

void HttpServer::Shutdown() {
  impl_->stopping = true;
  net::post(impl_->strand, [s = impl_.get()] { s->BeginShutdown(); });
}

bool HttpServer::stopping() const {
  return impl_->stopping;
}

}  // namespace airlock::server
