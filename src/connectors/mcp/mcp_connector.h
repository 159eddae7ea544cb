// The MCP target: one upstream MCP server (policy `mcp_servers:`), one action per
// `tools/call`.
//
// A tool call cannot be run in a dry-run (the server would act), so its effect is the call
// itself: the server, the tool and its exact arguments, hashed. The policy's tool rules
// classify it (policy/policy.h ClassifyMcpCall). Apply makes the call. It cannot be undone by
// airlock, so every applied call is recorded as irreversible.
//
// Who makes the call: the live session that asked for it (its gate thread holds a
// ScopedMcpCaller while the gateway decides and applies), or, when an approver's vote applies
// it later, a one-shot session with a fresh upstream (mcp/upstream.h).
#pragma once

#include <functional>
#include <memory>

#include "connectors/connector.h"

namespace airlock {

// Makes one tools/call on an upstream. params: {"name", "arguments", "_meta"?}. Returns the
// CallToolResult, or an error when the upstream could not answer.
class McpToolCaller {
 public:
  virtual ~McpToolCaller() = default;
  virtual Result<Json> CallTool(const Json& params) = 0;
  // The same, running `in_flight` once the request is sent and before the answer is
  // awaited (a read's durable record overlaps the round trip; Connector::ApplyRead). If it
  // fails, the answer is withheld and its error returned. This default overlaps nothing:
  // in_flight first, then the call.
  virtual Result<Json> CallToolOverlapped(const Json& params,
                                          const std::function<Status()>& in_flight) {
    RETURN_IF_ERROR(in_flight());
    return CallTool(params);
  }
  // A server run in a shell target's sandbox: the path at which this process reads the
  // overlay's upper layer now, starting the server if it is not running. Callers that run no
  // sandbox: FailedPrecondition.
  virtual Result<std::string> SandboxUpper() {
    return Status::FailedPrecondition("this MCP caller runs no sandbox");
  }
  // Stops the sandboxed server, so that the next call starts it on a fresh overlay: what
  // earlier calls left in the upper layer (staged or stale) is gone from its view.
  virtual Status ResetSandbox() {
    return Status::FailedPrecondition("this MCP caller runs no sandbox");
  }
};

// While one is alive on a thread, an MCP connector applying a call on that thread makes it
// through `caller` (the live session whose client asked for it) rather than its own. Null
// leaves the connector's own. Nests.
class ScopedMcpCaller {
 public:
  explicit ScopedMcpCaller(McpToolCaller* caller);
  ~ScopedMcpCaller();
  ScopedMcpCaller(const ScopedMcpCaller&) = delete;
  ScopedMcpCaller& operator=(const ScopedMcpCaller&) = delete;

 private:
  McpToolCaller* previous_;
};

// args of an MCP action: {"tool": NAME, "arguments": {...}, "annotations"?: {...} (the
// upstream's, untrusted), "_meta"?: {...} (the client's progress token; not hashed)}.
//
// fields: the server's policy entry as JSON (command, env, url, max_message_bytes, ...).
// Without a caller, Apply starts the upstream for the one call.
//
// A server run in a shell target's sandbox (fields.sandbox_target: that target's connector
// config, see Gateway::ConnectorConfigFor) is different: the call is made in DryRun, on the
// live session's sandboxed upstream, and its file effect is the overlay's upper layer after
// the call (the session starts each call on an upper layer that holds no change: see
// SandboxedDryRun in mcp_connector.cc). The effect is the call's (server, tool, arguments)
// plus the file part of a shell effect, and the upstream's answer held in the shell target's
// state (STATE/held/HASH); Apply commits the layer exactly as `airlock exec` does and returns the
// held answer. Without a live session (a one-shot process) such a call is refused.
Result<std::unique_ptr<Connector>> CreateMcpConnector(const ConnectorConfig& config);
std::unique_ptr<Connector> NewMcpConnector(const ConnectorConfig& config,
                                           std::shared_ptr<McpToolCaller> caller);

// The effect of calling `tool` with `arguments` on `server`: kind "mcp", extra {server,
// tool, arguments, annotations}, effect_hash over server, tool and canonical arguments.
Effect McpCallEffect(const std::string& server, const std::string& tool, const Json& arguments,
                     const Json& annotations);

// The same in two steps, for a read call whose decision needs the effect before the request
// leaves and whose record needs its hash only after (Gateway::BeginMcpRead, RecordMcpRead):
// the effect of the action args {tool, arguments, annotations} with no effect_hash
// (InvalidArgument as DryRun for a missing tool), then its hash, filled in if empty.
Result<Effect> McpCallEffectUnhashed(const std::string& server, const Json& args);
void HashMcpCallEffect(Effect* e);

// What the store keeps of a tool result: its size, isError and the content types, not the
// content (a tool's answer can hold production data; the caller gets it once).
Json McpResultSummary(const Json& result);

}  // namespace airlock
