#include "connectors/shell/egress.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/json.h"

namespace airlock::shell {
namespace {

// How soon the acceptor sees Stop() if the shutdown of the listening socket did not wake it.
constexpr int kAcceptPollMs = 200;

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void Reply(int fd, int code, const char* text, const std::string& message) {
  const std::string body = "airlock: " + message + "\n";
  SendAll(fd, "HTTP/1.1 " + std::to_string(code) + " " + text +
                  "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
                  std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
}

ssize_t Recv(int fd, char* buf, size_t size) {
  ssize_t n;
  while ((n = ::recv(fd, buf, size, 0)) < 0 && errno == EINTR) {
  }
  return n;
}

struct AddrInfo {
  addrinfo* list = nullptr;
  ~AddrInfo() {
    if (list) ::freeaddrinfo(list);
  }
};

// A non-blocking connect bounded by timeout_ms, then back to blocking.
int ConnectOne(const addrinfo* a, int64_t timeout_ms) {
  int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
  if (fd < 0) return -1;
  if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  pollfd p{fd, POLLOUT, 0};
  int err = 0;
  socklen_t len = sizeof err;
  if (::poll(&p, 1, static_cast<int>(timeout_ms)) != 1 ||
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
    ::close(fd);
    return -1;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

// The status code of a response's first bytes ("HTTP/1.1 200 OK"), 0 if it is none.
int ResponseStatus(std::string_view first) {
  if (first.size() < 12 || first.substr(0, 5) != "HTTP/" || first[8] != ' ') return 0;
  int code = 0;
  for (char c : first.substr(9, 3)) {
    if (c < '0' || c > '9') return 0;
    code = code * 10 + (c - '0');
  }
  return code;
}

std::string OriginHead(const EgressTarget& t) {
  std::string head = t.method + " " + t.path + " HTTP/1.1\r\nHost: " + t.host;
  if (t.port != 80) head += ":" + std::to_string(t.port);
  head += "\r\n";
  for (const auto& [name, value] : t.headers) head += name + ": " + value + "\r\n";
  // One request per connection: the response ends at EOF, so nothing can hide a second one.
  head += "Connection: close\r\n\r\n";
  return head;
}

}  // namespace

EgressProxy::EgressProxy(EgressOptions options, EgressGate* gate)
    : options_(std::move(options)), gate_(gate) {}

EgressProxy::~EgressProxy() {
  Stop();
}

void EgressProxy::Serve(int listen_fd) {
  listen_fd_ = listen_fd;
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

int64_t EgressProxy::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    // Wakes the acceptor's poll at once (the run is over: nothing more is accepted).
    if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
  }
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    workers.swap(workers_);
  }
  for (std::thread& t : workers) t.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
  return accepted_.load();
}

bool EgressProxy::Track(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return false;
  fds_.insert(fd);
  return true;
}

void EgressProxy::Untrack(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  fds_.erase(fd);
}

void EgressProxy::AcceptLoop() {
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    pollfd p{listen_fd_, POLLIN, 0};
    int ready = ::poll(&p, 1, kAcceptPollMs);
    if (ready <= 0) continue;
    int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    accepted_.fetch_add(1);
    if (open_.load() >= options_.max_connections) {
      Reply(client, 503, "Service Unavailable", "too many connections through the proxy");
      ::close(client);
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      ::close(client);
      return;
    }
    fds_.insert(client);
    open_.fetch_add(1);
    workers_.emplace_back([this, client] {
      Handle(client);
      Untrack(client);
      ::close(client);
      open_.fetch_sub(1);
    });
  }
}

void EgressProxy::Note(const EgressRequest& r, const EgressDecision& d) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_;
  if (!d.allowed) ++refused_;
  if (listed_.size() >= options_.max_listed) return;
  listed_.push_back(
      {{"action_id", d.action_id},
       {"request", r.method.empty() ? std::string("(malformed)") : r.method + " " + r.url},
       {"allowed", d.allowed},
       {"reason", d.reason}});
}

Json EgressProxy::Summary() {
  std::lock_guard<std::mutex> lock(mu_);
  return {{"requests", requests_}, {"refused", refused_}, {"listed", listed_}};
}

void EgressProxy::Handle(int client) {
  EgressRequest req;
  // A refusal is decided by the gate too, so that it is recorded (and audited) like any.
  auto refuse = [&](int code, const char* text, const std::string& why) {
    req.refused = why;
    EgressDecision d = gate_->Decide(req);
    Note(req, d);
    Reply(client, code, text, why + (d.action_id.empty() ? "" : " (" + d.action_id + ")"));
  };

  std::string buf;
  size_t head_end;
  char chunk[16 * 1024];
  while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
    if (buf.size() > kMaxEgressHeadBytes) {
      return refuse(400, "Bad Request", "malformed proxy request: the request head is over 16 KiB");
    }
    ssize_t n = Recv(client, chunk, sizeof chunk);
    if (n <= 0) {
      // A connection closed without a word is not a request; a cut head is.
      if (!buf.empty()) refuse(400, "Bad Request", "malformed proxy request: the head is cut");
      return;
    }
    buf.append(chunk, static_cast<size_t>(n));
  }
  Result<EgressTarget> parsed = ParseEgressRequest(std::string_view(buf).substr(0, head_end + 2));
  if (!parsed.ok()) {
    return refuse(400, "Bad Request", "malformed proxy request: " + parsed.status().message());
  }
  const EgressTarget& t = *parsed;
  req.method = t.method;
  req.url = t.Url();
  req.host = t.host;
  req.port = t.port;
  req.path = t.path;
  std::string rest = buf.substr(head_end + 4);
  if (Status host = CheckEgressHost(t.host); !host.ok()) {
    return refuse(403, "Forbidden", host.message());
  }
  if (!EgressAllowed(options_.allow, t.host, t.port)) {
    return refuse(403, "Forbidden",
                  t.host + ":" + std::to_string(t.port) +
                      " is not in the egress allow list of target '" + options_.target + "'");
  }
  // The body is read whole before the decision: rules may look into it.
  std::string body;
  if (!t.tunnel) {
    while (static_cast<int64_t>(rest.size()) < t.content_length) {
      ssize_t n = Recv(client, chunk, sizeof chunk);
      if (n <= 0) return refuse(400, "Bad Request", "malformed proxy request: the body is cut");
      rest.append(chunk, static_cast<size_t>(n));
    }
    body = rest.substr(0, static_cast<size_t>(t.content_length));
    req.body_bytes = t.content_length;
    if (!body.empty() && t.content_type.find("json") != std::string::npos) {
      Result<Json> j = ParseJson(body);
      if (j.ok()) req.body = *j;
    }
  }
  AddrInfo resolved;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (::getaddrinfo(t.host.c_str(), std::to_string(t.port).c_str(), &hints, &resolved.list) != 0 ||
      resolved.list == nullptr) {
    return refuse(403, "Forbidden", t.host + " does not resolve");
  }

  EgressDecision d = gate_->Decide(req);
  Note(req, d);
  if (!d.allowed) {
    return Reply(client, 403, "Forbidden",
                 d.reason + (d.action_id.empty() ? "" : " (" + d.action_id + ")"));
  }
  int upstream = -1;
  for (const addrinfo* a = resolved.list; a != nullptr && upstream < 0; a = a->ai_next) {
    upstream = ConnectOne(a, options_.connect_timeout_ms);
  }
  if (upstream < 0) {
    gate_->Finish(d.action_id,
                  Status::IoError("could not connect to " + t.host + ":" + std::to_string(t.port)),
                  Json::object());
    return Reply(client, 502, "Bad Gateway", "could not connect to " + t.host);
  }
  if (!Track(upstream)) {
    ::close(upstream);
    gate_->Finish(d.action_id, Status::Internal("the command's run ended first"), Json::object());
    return;
  }
  int64_t up = 0, down = 0;
  int status = 0;
  bool sent = true, capped = false;
  if (t.tunnel) {
    sent = SendAll(client, "HTTP/1.1 200 Connection established\r\n\r\n");
    if (sent && !rest.empty()) {
      sent = SendAll(upstream, rest);
      up += static_cast<int64_t>(rest.size());
    }
    // Splice both ways until both sides are done, the run ends (Stop shuts the fds), or a
    // direction reaches its cap.
    pollfd fds[2] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}};
    while (sent && (fds[0].fd >= 0 || fds[1].fd >= 0)) {
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        const int to = i == 0 ? upstream : client;
        int64_t& count = i == 0 ? up : down;
        ssize_t n = Recv(fds[i].fd, chunk, sizeof chunk);
        if (n <= 0 || count + n > options_.max_bytes ||
            !SendAll(to, std::string_view(chunk, static_cast<size_t>(n)))) {
          if (n > 0 && count + n > options_.max_bytes) capped = true;
          ::shutdown(to, SHUT_WR);
          fds[i].fd = -1;
          continue;
        }
        count += n;
      }
    }
  } else {
    sent = SendAll(upstream, OriginHead(t)) && SendAll(upstream, body);
    up = static_cast<int64_t>(body.size());
    std::string first;
    ssize_t n;
    while (sent && (n = Recv(upstream, chunk, sizeof chunk)) > 0) {
      if (first.size() < 16) first.append(chunk, std::min<size_t>(16, static_cast<size_t>(n)));
      if (down + n > options_.max_bytes) {
        capped = true;
        break;
      }
      if (!SendAll(client, std::string_view(chunk, static_cast<size_t>(n)))) break;
      down += n;
    }
    status = ResponseStatus(first);
  }
  Untrack(upstream);
  ::close(upstream);
  Json result = {{"bytes_sent", up}, {"bytes_received", down}};
  if (!t.tunnel) result["status"] = status;
  if (capped) result["capped"] = true;
  gate_->Finish(d.action_id,
                sent ? Status::Ok() : Status::IoError("the connection to " + t.host + " broke"),
                result);
}

}  // namespace airlock::shell
