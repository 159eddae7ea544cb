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

#include <memory>

#include "connectors/connector.h"

namespace airlock {

// Makes one tools/call on an upstream. params: {"name", "arguments", "_meta"?}. Returns the
// CallToolResult, or an error when the upstream could not answer.
class McpToolCaller {
 public:
  virtual ~McpToolCaller() = default;
  virtual Result<Json> CallTool(const Json& params) = 0;
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
Result<std::unique_ptr<Connector>> CreateMcpConnector(const ConnectorConfig& config);
std::unique_ptr<Connector> NewMcpConnector(const ConnectorConfig& config,
                                           std::shared_ptr<McpToolCaller> caller);

// The effect of calling `tool` with `arguments` on `server`: kind "mcp", extra {server,
// tool, arguments, annotations}, effect_hash over server, tool and canonical arguments.
Effect McpCallEffect(const std::string& server, const std::string& tool, const Json& arguments,
                     const Json& annotations);

// What the store keeps of a tool result: its size, isError and the content types, not the
// content (a tool's answer can hold production data; the caller gets it once).
Json McpResultSummary(const Json& result);

}  // namespace airlock
