// airlock's egress proxy for a shell target with `network: proxy`.
//
// The command runs in its own network namespace with only `lo`; the one way out is a
// listening socket on 127.0.0.1 in that namespace (sandbox.h, egress_port), which this proxy
// serves from airlock's side, in the host's namespace. Each request is parsed strictly
// (egress_request.h), its host checked (a name, not an address; in the target's `egress:`
// allow list; it resolves), then handed to the EgressGate, which records it as an http
// action of the target and decides. Only then does airlock resolve and connect:
//   - plain HTTP (`GET http://host/path`): one request per connection, rewritten to origin
//     form with airlock's own Host and `Connection: close`, the response relayed back;
//   - HTTPS (`CONNECT host:443`): decided on host and port only (airlock does not intercept
//     TLS), then bytes are spliced both ways, counted and capped.
// A refusal is a 403 with a one-line reason; the command sees it as any proxy error.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "connectors/connector.h"
#include "connectors/shell/egress_request.h"
#include "connectors/shell/sandbox.h"

namespace airlock::shell {

struct EgressOptions {
  std::string target;              // the shell target's name, for messages
  std::vector<EgressAllow> allow;  // the target's `egress:` list; empty: nothing is allowed
  int64_t max_bytes = 64LL << 20;  // per direction of one connection; then it is cut
  int64_t connect_timeout_ms = 10'000;
  int max_connections = 16;  // open at once; more get a 503
  size_t max_listed = 50;    // requests named in the shell action's effect
};

class EgressProxy : public EgressListener {
 public:
  // `gate` outlives the proxy's Stop().
  EgressProxy(EgressOptions options, EgressGate* gate);
  ~EgressProxy() override;
  EgressProxy(const EgressProxy&) = delete;
  EgressProxy& operator=(const EgressProxy&) = delete;

  void Serve(int listen_fd) override;
  int64_t Stop() override;

  // What went through (for the shell action's effect): count and the first max_listed
  // requests as {action_id, request, allowed, reason}.
  Json Summary();

 private:
  void AcceptLoop();
  void Handle(int client);
  void Note(const EgressRequest& r, const EgressDecision& d);
  // Registered fds are shut down by Stop(): a blocked read or write returns at once.
  bool Track(int fd);
  void Untrack(int fd);

  const EgressOptions options_;
  EgressGate* const gate_;
  int listen_fd_ = -1;
  std::thread acceptor_;
  std::atomic<int64_t> accepted_{0};
  std::atomic<int> open_{0};
  std::mutex mu_;
  bool stopping_ = false;               // GUARDED_BY(mu_)
  std::set<int> fds_;                   // GUARDED_BY(mu_)
  std::vector<std::thread> workers_;    // GUARDED_BY(mu_)
  Json listed_ = Json::array();         // GUARDED_BY(mu_)
  int64_t requests_ = 0, refused_ = 0;  // GUARDED_BY(mu_)
};

}  // namespace airlock::shell
