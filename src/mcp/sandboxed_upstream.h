// An upstream MCP server run inside a shell target's sandbox (policy `sandbox: TARGET`): the
// same namespaces, overlay over the workspace, Landlock, seccomp and cgroup limits as
// `airlock exec`, around one long-lived process whose stdin and stdout carry the protocol.
// The overlay's upper layer (a tmpfs of the sandbox) lives as long as the process: stopping
// it discards whatever the server wrote and airlock did not commit.
#pragma once

#include <memory>
#include <string>

#include "connectors/connector.h"
#include "mcp/upstream.h"

namespace airlock::mcp {

struct SandboxedUpstreamOptions {
  ConnectorConfig sandbox;                 // the shell target (Gateway::ConnectorConfigFor)
  std::vector<std::string> argv;           // argv[0] looked up on the sandbox's PATH
  std::map<std::string, std::string> env;  // over the target's defaults (PATH, HOME, ...)
  std::vector<std::string> read_paths;     // bound read-only (the server's code)
  size_t max_message_bytes = 4u << 20;
};

class SandboxedUpstream : public Upstream {
 public:
  // Starts the server in a fresh sandbox. Errors: the sandbox's own (a setup step that
  // failed, "command not found: node").
  static Result<std::unique_ptr<SandboxedUpstream>> Start(const SandboxedUpstreamOptions& options);
  ~SandboxedUpstream() override;  // Stop()

  bool Send(const Json& message) override;
  LineReader::Event Receive(std::string* line) override;
  std::string Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(2000)) override;
  // Where this process reads the overlay's upper layer while the server runs.
  const std::string& upper_path() const;

 private:
  SandboxedUpstream() = default;
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace airlock::mcp
