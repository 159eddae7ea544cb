// An upstream MCP server reached over stdio: a child process whose stdin and stdout are
// pipes carrying newline-delimited JSON-RPC. Its stderr is airlock's (the client's log).
//
// The child gets exactly the environment the policy gives it plus PATH, never airlock's own
// (AIRLOCK_TOKEN and the agent's other variables stay out). It dies with airlock
// (PR_SET_PDEATHSIG, set by a thread that lives as long as airlock: the signal follows the
// forking thread, not the process) and runs in its own process group, so that Stop() ends
// what it started.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/status.h"
#include "mcp/jsonrpc.h"

namespace airlock::mcp {

// What a session needs of an upstream, whatever carries its messages: a child process on
// stdio (UpstreamProcess) or a server reached over streamable HTTP (mcp/http_upstream.h).
class Upstream {
 public:
  virtual ~Upstream() = default;
  // Thread-safe; false when the upstream is gone.
  virtual bool Send(const Json& message) = 0;
  // A message already in its compact one-line text (valid JSON, no newline or carriage
  // return: the caller's check), sent as is; only when TakesText(). Thread-safe.
  virtual bool TakesText() const { return false; }
  virtual bool SendText(std::string_view /*line*/) { return false; }
  // Blocks for the next message from the upstream (one reader thread at a time). kEof once
  // it is gone (stopped, exited, its session ended).
  virtual LineReader::Event Receive(std::string* line) = 0;
  // Ends it, waiting up to `grace` for a clean end. Returns how it ended ("exited 0",
  // "killed by signal 9", "session ended"). Idempotent; any thread.
  virtual std::string Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(2000)) = 0;
};

struct UpstreamOptions {
  std::vector<std::string> argv;           // argv[0] looked up on PATH
  std::map<std::string, std::string> env;  // besides PATH
  size_t max_message_bytes = 4u << 20;
};

// Ignores SIGPIPE for the whole process, for good, and tells UpstreamProcess::Send so: it
// then writes without blocking the signal around each write (two system calls a message).
// For front ends that run for a session (airlock mcp stdio); call before any thread starts.
void IgnoreSigpipe();

class UpstreamProcess : public Upstream {
 public:
  // Starts the process. InvalidArgument when argv is empty or argv[0] cannot be executed
  // ("command not found: foo").
  static Result<std::unique_ptr<UpstreamProcess>> Start(const UpstreamOptions& options);
  ~UpstreamProcess() override;  // Stop()

  // Thread-safe; false when the process is gone (EPIPE).
  bool Send(const Json& message) override;
  bool TakesText() const override { return true; }
  bool SendText(std::string_view line) override;
  // Blocks for the next line from the process (one reader thread at a time).
  LineReader::Event Receive(std::string* line) override { return reader_.Next(line); }

  // Closes its stdin, waits up to `grace` for it to exit, then kills its process group.
  // Returns its exit status text ("exited 0", "killed by signal 9"). Idempotent.
  std::string Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(2000)) override;
  pid_t pid() const { return pid_; }

 private:
  UpstreamProcess(pid_t pid, int in_fd, int out_fd, size_t max_bytes);
  // Start() runs this on one long-lived thread (see Spawner in upstream.cc).
  static Result<std::unique_ptr<UpstreamProcess>> StartHere(const UpstreamOptions& options);
  pid_t pid_;
  int in_fd_;   // the child's stdin (we write)
  int out_fd_;  // the child's stdout (we read)
  LineReader reader_;
  std::mutex write_mu_;
  std::mutex stop_mu_;
  bool stopped_ = false;
  std::string exit_text_;
};

// Runs `fn` on the one long-lived thread that forks every upstream (and sandbox supervisor):
// PR_SET_PDEATHSIG follows the forking thread, not the process.
void RunOnSpawnerThread(const std::function<void()>& fn);

// The protocol revision airlock speaks when it opens a session of its own (a one-shot call).
inline constexpr const char* kProtocolVersion = "2025-06-18";

// Starts the upstream, initializes a session, calls `tools/call` with `params` ({"name",
// "arguments"}) and stops it. Server-to-client requests are refused (-32601): there is no
// client to ask. Used when a call is applied by a process that has no live session (an
// approval from the CLI or the web page). Errors: IoError when the upstream dies or breaks
// the protocol, with what it said; FailedPrecondition on timeout.
Result<Json> CallToolOnce(const UpstreamOptions& options, const Json& params,
                          std::chrono::milliseconds timeout);
// The same on an upstream already started (an HTTP one, say); it is stopped at the end.
Result<Json> CallToolOnce(std::unique_ptr<Upstream> upstream, const Json& params,
                          std::chrono::milliseconds timeout);

}  // namespace airlock::mcp
