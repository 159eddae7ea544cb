// `airlock serve`: one gateway for the life of the process behind the HTTP API, the web page
// and /metrics; pending actions expire in the background; SIGTERM drains and exits.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "policy/policy.h"

namespace airlock::server {

struct ServeOptions {
  std::string listen = "127.0.0.1:7070";  // HOST:PORT or [V6]:PORT; port 0 picks a free one
  uint64_t max_body = 1 << 20;
  int max_connections = 512;
  int64_t header_timeout_ms = 10000;
  int64_t body_timeout_ms = 30000;
  int64_t max_wait_ms = 60000;
  int threads = 0;  // io threads; 0: one per core, at most 4
  // Browser origins allowed to call /mcp/NAME besides loopback ones (server/mcp_http.h).
  std::vector<std::string> mcp_allowed_origins;
  // How often /v1/events looks at the store for changes made by other processes; 0: the
  // hub's default (500 ms). A PostgreSQL store also wakes it at once (LISTEN/NOTIFY).
  int64_t events_poll_ms = 0;
  // Keep one sandbox built ahead per shell target, so that a command does not wait for its
  // sandbox to be built (GatewayOptions::keep_warm). false: --no-standby.
  bool standby_sandboxes = true;
  // `airlock store gc` in the background: every gc_every_ms (0: never), removing the shell
  // targets' stored contents that no record needs and that are older than gc_older_than_s.
  int64_t gc_every_ms = 24LL * 3600 * 1000;
  int64_t gc_older_than_s = 24LL * 3600;
  // Signed audit checkpoints (`airlock audit checkpoint`) in the background: every
  // checkpoint_every_ms (0: never), when the chain has grown since the last one, the verified
  // head is signed with checkpoint_key and appended as one line to checkpoint_file.
  int64_t checkpoint_every_ms = 0;
  std::string checkpoint_key;
  std::string checkpoint_file;
};

// "127.0.0.1:7070" -> {"127.0.0.1", 7070}; "[::1]:0" -> {"::1", 0}.
Result<std::pair<std::string, uint16_t>> ParseListen(const std::string& listen);

// Serves until SIGTERM or SIGINT, then lets in-flight requests finish (up to 10 s). Prints
// "airlock: serving http://HOST:PORT (policy FILE)" on stderr once it accepts connections.
// An error before that (the store cannot be opened, the address is taken) is returned.
Status Serve(std::shared_ptr<const Policy> policy, const ServeOptions& options);

}  // namespace airlock::server
