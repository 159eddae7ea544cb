// The sandbox's network: with network off, a new network namespace whose only interface is
// the loopback. Nothing leaves it; the counters of that namespace (/proc/net/snmp, snmp6)
// tell whether the command tried anyway, which is worth showing the approver.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace airlock::shell {

// Brings `lo` up (SIOCSIFFLAGS IFF_UP) in the calling process's network namespace: a fresh
// namespace starts with it down, and many programs expect 127.0.0.1 to exist.
Status BringUpLoopback();

// In the calling process's network namespace: a TCP socket listening on 127.0.0.1:port,
// sent over the AF_UNIX socket `channel` (SCM_RIGHTS) and closed here. A socket keeps the
// namespace it was made in, so whoever receives it accepts the sandbox's connections.
Status SendLoopbackListener(int channel, int port);
// Receives that socket (close-on-exec). NotFound when the other end closed without
// sending one (its setup failed; the sandbox reports why); IoError after timeout_ms.
Result<int> ReceiveListener(int channel, int64_t timeout_ms);

// One descriptor (or none: fd < 0) with a one-byte tag over the AF_UNIX socket `channel`
// (SCM_RIGHTS, MSG_NOSIGNAL).
Status SendFd(int channel, char tag, int fd);
// Receives it, close-on-exec: exactly one descriptor with `tag`. NotFound when the other end
// closed, or sent anything else (every descriptor that came with it is closed); IoError
// after timeout_ms.
Result<int> ReceiveFd(int channel, char tag, int64_t timeout_ms);

// For network off, made ahead of the sandbox (sandbox.cc): unshares a new network namespace
// for the calling *thread*, brings its loopback up and returns a descriptor of it (close-on-
// exec). The thread stays in that namespace: call it on a thread of its own that ends next.
Result<int> NewLoopbackNamespace();

// Counters of the calling process's network namespace. Plain data: it crosses the report
// pipe as bytes.
struct NetCounters {
  bool valid = false;
  int64_t tcp_active_opens = 0;   // connect() that sent a SYN (refused ones included)
  int64_t udp_out_datagrams = 0;  // UDP + UDP6 datagrams sent
  int64_t out_no_routes = 0;      // IPv4 + IPv6 packets dropped for lack of a route
};

// Reads <proc_dir>/net/snmp and snmp6: "/proc/self" in init (needs the sandbox's own
// /proc), "/proc/<init pid>" from outside (the counters of that process's namespace). On
// failure returns valid = false.
NetCounters ReadNetCounters(const std::string& proc_dir);

// Whether the counters moved between `before` and `after`; fills *detail with e.g.
// "2 TCP connection attempts, 1 UDP datagram, 1 packet without a route".
bool DescribeNetworkUse(const NetCounters& before, const NetCounters& after, std::string* detail);

}  // namespace airlock::shell
