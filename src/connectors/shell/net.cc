#include "connectors/shell/net.h"

#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace airlock::shell {
namespace {

Status SysError(const std::string& what, int err = errno) {
  return Status::IoError(what + ": " + std::strerror(err));
}

// Reads a small /proc file into buf; returns its length or -1.
ssize_t ReadSmallFile(const char* path, char* buf, size_t size) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t len = 0;
  while (len < size - 1) {
    ssize_t n = ::read(fd, buf + len, size - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += static_cast<size_t>(n);
  }
  ::close(fd);
  buf[len] = '\0';
  return static_cast<ssize_t>(len);
}

std::string_view NextLine(std::string_view* text) {
  size_t end = text->find('\n');
  std::string_view line = text->substr(0, end);
  text->remove_prefix(end == std::string_view::npos ? text->size() : end + 1);
  return line;
}

std::string_view NextField(std::string_view* line) {
  while (!line->empty() && (line->front() == ' ' || line->front() == '\t')) line->remove_prefix(1);
  size_t end = line->find_first_of(" \t");
  std::string_view field = line->substr(0, end);
  line->remove_prefix(end == std::string_view::npos ? line->size() : end);
  return field;
}

int64_t ParseInt(std::string_view text) {
  int64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

// /proc/net/snmp: pairs of lines "Tcp: Name1 Name2 ..." / "Tcp: 1 2 ...".
int64_t SnmpValue(std::string_view text, std::string_view proto, std::string_view name) {
  while (!text.empty()) {
    std::string_view names = NextLine(&text);
    std::string_view values = NextLine(&text);
    if (NextField(&names) != proto || NextField(&values) != proto) continue;
    for (std::string_view n = NextField(&names), v = NextField(&values); !n.empty();
         n = NextField(&names), v = NextField(&values)) {
      if (n == name) return ParseInt(v);
    }
  }
  return 0;
}

// /proc/net/snmp6: one "Name value" per line.
int64_t Snmp6Value(std::string_view text, std::string_view name) {
  while (!text.empty()) {
    std::string_view line = NextLine(&text);
    if (NextField(&line) == name) {
      return ParseInt(NextField(&line));
    }
  }
  return 0;
}

void AppendCount(std::string* out, int64_t n, const char* one, const char* many) {
  if (n <= 0) return;
  if (!out->empty()) *out += ", ";
  *out += std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

Status BringUpLoopback() {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return SysError("loopback: socket");
  ifreq req{};
  std::strncpy(req.ifr_name, "lo", IFNAMSIZ - 1);
  int rc = ::ioctl(fd, SIOCGIFFLAGS, &req);
  if (rc == 0) {
    req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP | IFF_RUNNING);
    rc = ::ioctl(fd, SIOCSIFFLAGS, &req);
  }
  int err = errno;
  ::close(fd);
  if (rc != 0) return SysError("loopback: bring lo up", err);
  return Status::Ok();
}

Status SendLoopbackListener(int channel, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return SysError("egress proxy: socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 64) != 0) {
    int err = errno;
    ::close(fd);
    return SysError("egress proxy: listen on 127.0.0.1:" + std::to_string(port), err);
  }
  Status sent = SendFd(channel, 'L', fd);
  ::close(fd);
  if (!sent.ok()) return sent.Annotate("egress proxy: hand the socket to airlock");
  return Status::Ok();
}

Result<int> ReceiveListener(int channel, int64_t timeout_ms) {
  Result<int> fd = ReceiveFd(channel, 'L', timeout_ms);
  if (fd.ok()) return fd;
  if (fd.status().code() == StatusCode::kNotFound) {
    return Status::NotFound("egress proxy: the sandbox closed without sending its socket");
  }
  return fd.status().Annotate("egress proxy: receive the socket");
}

Status SendFd(int channel, char tag, int fd) {
  iovec iov{&tag, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  ssize_t n;
  while ((n = ::sendmsg(channel, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  if (n != 1) return SysError("send a descriptor");
  return Status::Ok();
}

Result<int> ReceiveFd(int channel, char tag, int64_t timeout_ms) {
  pollfd p{channel, POLLIN, 0};
  int ready;
  while ((ready = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(timeout_ms, INT32_MAX)))) < 0 &&
         errno == EINTR) {
  }
  if (ready == 0) return Status::IoError("no descriptor came in time");
  if (ready < 0) return SysError("poll");
  char byte = 0;
  iovec iov{&byte, 1};
  // Room for more than one: whatever comes is closed unless it is exactly one.
  alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  while ((n = ::recvmsg(channel, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  if (n < 0) return SysError("receive a descriptor");
  std::vector<int> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds.push_back(fd);
    }
  }
  if (n == 1 && byte == tag && fds.size() == 1 && (msg.msg_flags & MSG_CTRUNC) == 0) return fds[0];
  for (int fd : fds) ::close(fd);
  return Status::NotFound("the other end sent no descriptor");
}

Result<int> NewLoopbackNamespace() {
  if (::unshare(CLONE_NEWNET) != 0) return SysError("network namespace");
  RETURN_IF_ERROR(BringUpLoopback());
  int fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return SysError("open the new network namespace");
  return fd;
}

NetCounters ReadNetCounters(const std::string& proc_dir) {
  NetCounters c;
  char buf[8192];
  if (ReadSmallFile((proc_dir + "/net/snmp").c_str(), buf, sizeof buf) <= 0) return c;
  std::string_view snmp(buf);
  c.tcp_active_opens = SnmpValue(snmp, "Tcp:", "ActiveOpens");
  c.udp_out_datagrams = SnmpValue(snmp, "Udp:", "OutDatagrams");
  c.out_no_routes = SnmpValue(snmp, "Ip:", "OutNoRoutes");
  c.valid = true;
  // IPv6 may be disabled (no snmp6): then there is no IPv6 traffic to count either.
  if (ReadSmallFile((proc_dir + "/net/snmp6").c_str(), buf, sizeof buf) > 0) {
    std::string_view snmp6(buf);
    c.udp_out_datagrams += Snmp6Value(snmp6, "Udp6OutDatagrams");
    c.out_no_routes += Snmp6Value(snmp6, "Ip6OutNoRoutes");
  }
  return c;
}

bool DescribeNetworkUse(const NetCounters& before, const NetCounters& after, std::string* detail) {
  detail->clear();
  if (!before.valid || !after.valid) return false;
  AppendCount(detail, after.tcp_active_opens - before.tcp_active_opens, "TCP connection attempt",
              "TCP connection attempts");
  AppendCount(detail, after.udp_out_datagrams - before.udp_out_datagrams, "UDP datagram",
              "UDP datagrams");
  AppendCount(detail, after.out_no_routes - before.out_no_routes, "packet without a route",
              "packets without a route");
  return !detail->empty();
}

}  // namespace airlock::shell
