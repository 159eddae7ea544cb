// `airlock mcp stdio --server NAME`: the MCP gateway between one client (on this process's
// stdin/stdout) and one upstream server (a child process, mcp/upstream.h).
//
// The protocol passes through as is, with three exceptions:
//   - tools/list answers are filtered: tools the agent may not call are absent, and
//     airlock's own `airlock_action_status` is added;
//   - every tools/call goes through the gateway (authenticate, scope, classify by the
//     policy's tool rules, limits, decide, apply, audit). Read and low calls are made at
//     once; a call waiting for approval waits up to the server's approval_wait, sending
//     progress notifications when the client gave a progress token, and honouring
//     cancellation. Undecided by then, it ends as a tool error that says what is pending,
//     why, and how a human approves it;
//   - ids of requests to the upstream are airlock's own (so that airlock can talk to the
//     upstream too: re-initializing after a restart); answers carry the client's ids back.
// Server-to-client requests (sampling, elicitation, roots) and notifications (progress,
// logging, list_changed) pass through. Malformed messages get JSON-RPC errors and the
// session goes on. If the upstream dies, its requests in flight get an error, and the next
// request starts it again (re-initialized with the client's own initialize parameters).
#pragma once

#include <optional>
#include <string>

#include "gateway/gateway.h"

namespace airlock::mcp {

struct StdioProxyOptions {
  std::string server;                // a name under mcp_servers:
  std::optional<std::string> token;  // the agent's token (AIRLOCK_TOKEN)
  int in_fd = 0;                     // the client's messages
  int out_fd = 1;                    // to the client
};

// Runs the session until the client closes its input. Returns a process exit code: 0 after
// a clean end, 2 for a usage error (unknown server, not an agent's token), 1 otherwise.
// Errors before the session starts are printed to stderr.
int RunStdioProxy(Gateway& gateway, const StdioProxyOptions& options);

}  // namespace airlock::mcp
