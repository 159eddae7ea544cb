#include "mcp/sandboxed_upstream.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <mutex>

#include "connectors/shell/sandbox.h"
#include "connectors/shell/shell_connector.h"

namespace airlock::mcp {

struct SandboxedUpstream::State {
  std::unique_ptr<shell::SandboxedProcess> process;
  std::string scratch_dir;
  std::unique_ptr<LineReader> reader;
  std::mutex write_mu;        // one message at a time on its stdin
  bool input_closed = false;  // GUARDED_BY(write_mu)
  std::mutex stop_mu;
  bool stopped = false;  // GUARDED_BY(stop_mu)
  std::string exit_text;
};

Result<std::unique_ptr<SandboxedUpstream>> SandboxedUpstream::Start(
    const SandboxedUpstreamOptions& options) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return Status::InvalidArgument("the MCP server's command is empty");
  }
  ASSIGN_OR_RETURN(shell::SandboxSpec spec,
                   ShellSandboxFor(options.sandbox, options.argv, options.env, options.read_paths));
  Result<std::unique_ptr<shell::SandboxedProcess>> started =
      Status::Internal("the sandbox was not started");
  // The sandbox's supervisor dies with the thread that forked it: that must be the thread
  // that lives as long as airlock, not the gate thread that asked.
  RunOnSpawnerThread([&] { started = shell::SandboxedProcess::Start(spec); });
  if (!started.ok()) {
    ::rmdir(spec.scratch_dir.c_str());
    return started.status().Annotate("starting the MCP server in the sandbox of '" +
                                     options.sandbox.name + "'");
  }
  std::unique_ptr<SandboxedUpstream> up(new SandboxedUpstream());
  up->state_ = std::make_unique<State>();
  up->state_->process = std::move(*started);
  up->state_->scratch_dir = spec.scratch_dir;
  up->state_->reader =
      std::make_unique<LineReader>(up->state_->process->stdout_fd(), options.max_message_bytes);
  return up;
}

SandboxedUpstream::~SandboxedUpstream() {
  if (state_) Stop(std::chrono::milliseconds(500));
}

bool SandboxedUpstream::Send(const Json& message) {
  std::lock_guard<std::mutex> lock(state_->write_mu);
  if (state_->input_closed) return false;
  // As UpstreamProcess::Send: a server that died makes the write fail with EPIPE, and the
  // SIGPIPE that comes with it is taken here, never delivered.
  sigset_t pipe_set, old_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
  const bool ok = WriteLine(state_->process->stdin_fd(), Serialize(message));
  if (!ok && errno == EPIPE) {
    const struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, nullptr, &zero) == SIGPIPE) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
  return ok;
}

LineReader::Event SandboxedUpstream::Receive(std::string* line) {
  return state_->reader->Next(line);
}

std::string SandboxedUpstream::Stop(std::chrono::milliseconds grace) {
  std::lock_guard<std::mutex> lock(state_->stop_mu);
  if (state_->stopped) return state_->exit_text;
  state_->stopped = true;
  {
    std::lock_guard<std::mutex> wlock(state_->write_mu);
    state_->input_closed = true;
  }
  state_->exit_text = state_->process->Stop(grace);
  ::rmdir(state_->scratch_dir.c_str());
  return state_->exit_text;
}

const std::string& SandboxedUpstream::upper_path() const {
  return state_->process->upper_path();
}

}  // namespace airlock::mcp
