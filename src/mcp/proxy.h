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

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/gateway.h"

namespace airlock::mcp {

struct Message;

// Where a session's messages to its client go: stdout for `airlock mcp stdio`, the HTTP
// streams of a session for `airlock serve`'s /mcp/NAME (server/mcp_http.h).
class ClientChannel {
 public:
  virtual ~ClientChannel() = default;
  // One message for the client; called from several threads at once. false: the client is
  // gone for good, and the session ends.
  virtual bool Send(const Json& message) = 0;
  // A message already in its compact one-line text (checked by the caller: valid JSON, no
  // newline or carriage return), sent as is. Only when TakesText(): the reply to a read tool
  // call then goes out as the server's own text with its id replaced, before the message is
  // built (Session::ReplyEarly); other channels get it as Json.
  virtual bool TakesText() const { return false; }
  virtual bool SendText(std::string_view /*line*/) { return false; }
};

// One client's session with one MCP server (or airlock's built-in one), whatever carries
// its messages.
class McpSession {
 public:
  // NotFound: no such server in the policy (the message lists the names). PermissionDenied:
  // the token is not an agent's. The upstream starts with the first message that needs it.
  static Result<std::unique_ptr<McpSession>> Open(Gateway& gateway, const std::string& server,
                                                  std::optional<std::string> token,
                                                  ClientChannel& channel);
  ~McpSession();  // Close()
  McpSession(const McpSession&) = delete;
  McpSession& operator=(const McpSession&) = delete;

  // One valid message from the client. Requests are answered through the channel (a
  // tools/call from another thread, later).
  void Handle(const Message& message);
  // One message's text: a malformed one is answered through the channel with its error.
  void HandleText(std::string_view text);
  // Waiting calls stop waiting, calls being applied finish and are recorded, the upstream
  // is stopped. Idempotent; the channel must outlive it.
  void Close();
  // The channel said the client is gone.
  bool closing() const;
  size_t max_message_bytes() const;  // the server's max_message_size
  const std::string& agent() const;

 private:
  McpSession();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

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
