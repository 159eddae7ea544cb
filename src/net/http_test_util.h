// Test helpers: a real HTTP/1.1 receiver on 127.0.0.1 (a thread, one connection at a time)
// that records every request, and a port where nothing listens. Header-only; tests only.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace airlock::testing {

struct ReceivedRequest {
  std::string method;
  std::string target;                          // "/hook?x=1"
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

struct Reply {
  int status = 200;
  std::string body = "ok";
  std::string extra_headers;  // "Location: /x\r\n"
  bool hang = false;          // never answer; hold the connection until the receiver stops
  std::string content_type = "text/plain";
  // > 0: the body has no Content-Length and ends when the connection closes, this long after
  // it was sent (a stream that stays open after its last event).
  int linger_ms = 0;
};

inline int BindLoopback(int* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// A port that refuses connections: bound (so nobody else gets it) but never listening, so
// the kernel answers a SYN with RST.
class RefusingPort {
 public:
  RefusingPort() { fd_ = BindLoopback(&port_); }
  ~RefusingPort() {
    if (fd_ >= 0) close(fd_);
  }
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;
  bool ok() const { return fd_ >= 0; }
  std::string Url(const std::string& path = "/hook") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

class HttpReceiver {
 public:
  // `reply(i)` answers the i-th request (0-based).
  explicit HttpReceiver(std::function<Reply(int)> reply = [](int) { return Reply{}; })
      : reply_(std::move(reply)) {
    fd_ = BindLoopback(&port_);
    if (fd_ >= 0 && listen(fd_, 64) != 0) {
      close(fd_);
      fd_ = -1;
    }
    if (fd_ >= 0) thread_ = std::thread([this] { Serve(); });
  }
  ~HttpReceiver() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
  }
  HttpReceiver(const HttpReceiver&) = delete;
  HttpReceiver& operator=(const HttpReceiver&) = delete;

  bool ok() const { return fd_ >= 0; }
  std::string Url(const std::string& path = "/hook") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::vector<ReceivedRequest> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  // Waits (generously) until at least n requests came.
  bool WaitForRequests(size_t n, std::chrono::seconds limit = std::chrono::seconds(60)) const {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return requests_.size() >= n; });
  }

 private:
  static bool WaitReadable(int fd, const std::atomic<bool>& stop) {
    while (!stop) {
      pollfd p{fd, POLLIN, 0};
      int r = poll(&p, 1, 20);
      if (r > 0) return true;
      if (r < 0 && errno != EINTR) return false;
    }
    return false;
  }

  void Serve() {
    while (WaitReadable(fd_, stop_)) {
      int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) continue;
      Handle(conn);
      close(conn);
    }
  }

  void Handle(int conn) {
    std::string data;
    char buf[16384];
    size_t header_end = std::string::npos;
    while (header_end == std::string::npos) {
      if (!WaitReadable(conn, stop_)) return;
      ssize_t n = read(conn, buf, sizeof buf);
      if (n <= 0) return;
      data.append(buf, static_cast<size_t>(n));
      header_end = data.find("\r\n\r\n");
    }
    ReceivedRequest req;
    std::string head = data.substr(0, header_end);
    size_t line_end = head.find("\r\n");
    std::string request_line = head.substr(0, line_end);
    size_t sp1 = request_line.find(' ');
    size_t sp2 = request_line.find(' ', sp1 + 1);
    req.method = request_line.substr(0, sp1);
    req.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t end = head.find("\r\n", pos);
      if (end == std::string::npos) end = head.size();
      std::string line = head.substr(pos, end - pos);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        size_t v = line.find_first_not_of(' ', colon + 1);
        req.headers[name] = v == std::string::npos ? "" : line.substr(v);
      }
      pos = end + 2;
    }
    size_t length = req.headers.count("content-length")
                        ? static_cast<size_t>(std::stoul(req.headers["content-length"]))
                        : 0;
    req.body = data.substr(header_end + 4);
    while (req.body.size() < length) {
      if (!WaitReadable(conn, stop_)) return;
      ssize_t n = read(conn, buf, sizeof buf);
      if (n <= 0) return;
      req.body.append(buf, static_cast<size_t>(n));
    }
    int index;
    {
      std::lock_guard<std::mutex> lock(mu_);
      index = static_cast<int>(requests_.size());
      requests_.push_back(req);
    }
    cv_.notify_all();
    Reply reply = reply_(index);
    if (reply.hang) {
      while (!stop_) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return;
    }
    const std::string content_length =
        reply.linger_ms > 0 ? "" : "Content-Length: " + std::to_string(reply.body.size()) + "\r\n";
    std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " X\r\n" +
                      "Content-Type: " + reply.content_type + "\r\n" + content_length +
                      "Connection: close\r\n" + reply.extra_headers + "\r\n" + reply.body;
    for (size_t off = 0; off < out.size();) {
      ssize_t n = send(conn, out.data() + off, out.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;  // the client gave up (e.g. a capped body); fine
      off += static_cast<size_t>(n);
    }
    if (reply.linger_ms > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(reply.linger_ms));
  }

  std::function<Reply(int)> reply_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<ReceivedRequest> requests_;  // GUARDED_BY(mu_)
};

}  // namespace airlock::testing
