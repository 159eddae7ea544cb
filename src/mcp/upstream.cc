#include "mcp/upstream.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <thread>

namespace airlock::mcp {
namespace {

std::string DescribeWait(int status) {
  if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "ended";
}

// Writes the whole message to a pipe that may close (child gone); never raises SIGPIPE
// (airlock ignores it in every front end that runs upstreams; MSG_NOSIGNAL is for sockets).
void ChildFail(int err_fd, const std::string& what) {
  std::string msg = what + ": " + std::strerror(errno);
  (void)!write(err_fd, msg.data(), msg.size());
  _exit(127);
}

}  // namespace

namespace {

// PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process. A
// gateway thread that restarts an upstream ends with its call, so every upstream is forked
// by this one thread, which lives as long as the process.
class Spawner {
 public:
  static Spawner& Get() {
    static Spawner* s = new Spawner();  // never destroyed: its thread outlives static teardown
    return *s;
  }
  template <typename F>
  auto Run(F fn) -> decltype(fn()) {
    std::packaged_task<decltype(fn())()> task(std::move(fn));
    auto result = task.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.emplace_back([&task] { task(); });
    }
    cv_.notify_one();
    return result.get();
  }

 private:
  Spawner() {
    std::thread([this] {
      for (;;) {
        std::function<void()> job;
        {
          std::unique_lock<std::mutex> lock(mu_);
          cv_.wait(lock, [&] { return !queue_.empty(); });
          job = std::move(queue_.front());
          queue_.pop_front();
        }
        job();
      }
    }).detach();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
};

}  // namespace

void RunOnSpawnerThread(const std::function<void()>& fn) {
  Spawner::Get().Run([&fn] {
    fn();
    return 0;
  });
}

Result<std::unique_ptr<UpstreamProcess>> UpstreamProcess::Start(const UpstreamOptions& options) {
  return Spawner::Get().Run([&options] { return StartHere(options); });
}

Result<std::unique_ptr<UpstreamProcess>> UpstreamProcess::StartHere(
    const UpstreamOptions& options) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return Status::InvalidArgument("the MCP server's command is empty");
  }
  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  std::vector<std::string> env_strings;
  const char* path = std::getenv("PATH");
  bool has_path = options.env.count("PATH") != 0;
  for (const auto& [k, v] : options.env) env_strings.push_back(k + "=" + v);
  if (!has_path) env_strings.push_back(std::string("PATH=") + (path ? path : "/usr/bin:/bin"));
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings = options.argv;
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  int to_child[2], from_child[2], errp[2];
  if (pipe2(to_child, O_CLOEXEC) != 0)
    return Status::IoError("pipe: " + std::string(strerror(errno)));
  if (pipe2(from_child, O_CLOEXEC) != 0) {
    close(to_child[0]), close(to_child[1]);
    return Status::IoError("pipe: " + std::string(strerror(errno)));
  }
  if (pipe2(errp, O_CLOEXEC) != 0) {
    close(to_child[0]), close(to_child[1]), close(from_child[0]), close(from_child[1]);
    return Status::IoError("pipe: " + std::string(strerror(errno)));
  }
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    for (int fd : {to_child[0], to_child[1], from_child[0], from_child[1], errp[0], errp[1]})
      close(fd);
    return Status::IoError("fork: " + std::string(strerror(e)));
  }
  if (pid == 0) {
    // The child. Its own process group, so that Stop() reaches what it starts (npx -> node).
    setpgid(0, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) ChildFail(errp[1], "prctl");
    if (getppid() != parent) _exit(127);  // airlock died before the line above
    signal(SIGPIPE, SIG_DFL);
    if (dup2(to_child[0], 0) < 0 || dup2(from_child[1], 1) < 0) ChildFail(errp[1], "dup2");
    // Every other descriptor of airlock (the store, the client's pipes) stays out.
    for (int fd = 3; fd < 1024; ++fd) {
      if (fd != errp[1]) close(fd);
    }
    execvpe(argv[0], argv.data(), envp.data());
    ChildFail(errp[1], "exec " + argv_strings[0]);
  }
  close(to_child[0]);
  close(from_child[1]);
  close(errp[1]);
  std::string err;
  char buf[512];
  ssize_t n;
  while ((n = read(errp[0], buf, sizeof buf)) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    err.append(buf, static_cast<size_t>(n));
  }
  close(errp[0]);
  if (!err.empty()) {
    close(to_child[1]);
    close(from_child[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (err.find("No such file") != std::string::npos) {
      return Status::InvalidArgument("MCP server command not found: " + options.argv[0]);
    }
    return Status::InvalidArgument("cannot start the MCP server: " + err);
  }
  return std::unique_ptr<UpstreamProcess>(
      new UpstreamProcess(pid, to_child[1], from_child[0], options.max_message_bytes));
}

UpstreamProcess::UpstreamProcess(pid_t pid, int in_fd, int out_fd, size_t max_bytes)
    : pid_(pid), in_fd_(in_fd), out_fd_(out_fd), reader_(out_fd, max_bytes) {}

UpstreamProcess::~UpstreamProcess() {
  Stop(std::chrono::milliseconds(500));
  if (out_fd_ >= 0) close(out_fd_);
}

namespace {
std::atomic<bool> g_sigpipe_ignored{false};
}  // namespace

void IgnoreSigpipe() {
  signal(SIGPIPE, SIG_IGN);
  g_sigpipe_ignored.store(true);
}

bool UpstreamProcess::Send(const Json& message) {
  return SendText(Serialize(message));
}

bool UpstreamProcess::SendText(std::string_view line) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (in_fd_ < 0) return false;
  if (g_sigpipe_ignored.load(std::memory_order_relaxed)) return WriteLine(in_fd_, line);
  // A server that died makes the write fail with EPIPE. The SIGPIPE that comes with it is
  // blocked on this thread and then taken, so that it cannot end a process (the CLI applying
  // an approval) that did not ignore it.
  sigset_t pipe_set, old_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
  const bool ok = WriteLine(in_fd_, line);
  if (!ok && errno == EPIPE) {
    const struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, nullptr, &zero) == SIGPIPE) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
  return ok;
}

std::string UpstreamProcess::Stop(std::chrono::milliseconds grace) {
  std::lock_guard<std::mutex> lock(stop_mu_);
  if (stopped_) return exit_text_;
  stopped_ = true;
  {
    std::lock_guard<std::mutex> wlock(write_mu_);
    if (in_fd_ >= 0) close(in_fd_);
    in_fd_ = -1;
  }
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + grace;
  for (;;) {
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_text_ = DescribeWait(status);
      break;
    }
    if (r < 0 && errno != EINTR) {
      exit_text_ = "ended";
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(-pid_, SIGKILL);
      kill(pid_, SIGKILL);
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      exit_text_ = DescribeWait(status);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // Whatever it started in its group goes with it.
  kill(-pid_, SIGKILL);
  return exit_text_;
}

namespace {

// Reads lines until the response with `id` arrives, or the deadline passes.
Result<Json> AwaitResponse(Upstream& up, const Json& id,
                           std::chrono::steady_clock::time_point deadline, int out_fd) {
  (void)out_fd;
  for (;;) {
    // The read blocks; a timer thread kills the process at the deadline (see CallToolOnce),
    // which ends the read with EOF.
    std::string line;
    auto ev = up.Receive(&line);
    if (ev == LineReader::Event::kEof || ev == LineReader::Event::kError) {
      if (std::chrono::steady_clock::now() >= deadline) {
        return Status::FailedPrecondition("the MCP server did not answer in time");
      }
      return Status::IoError("the MCP server ended before it answered");
    }
    if (ev == LineReader::Event::kTooLong) {
      return Status::IoError("the MCP server sent a message over the size cap");
    }
    ParseResult p = Parse(line, SIZE_MAX);
    if (!p.message) continue;  // not ours to fix; keep reading
    const Message& m = *p.message;
    if (m.IsRequest()) {
      // Sampling, elicitation, roots: nobody is here to answer them.
      up.Send(MakeError(
          m.id, kMethodNotFound,
          "airlock applies this call without a client session; " + m.method + " is not available"));
      continue;
    }
    if (!m.IsResponse() || m.id != id) continue;
    if (m.type == Message::Type::kError) {
      std::string msg = m.error.contains("message") && m.error["message"].is_string()
                            ? m.error["message"].get<std::string>()
                            : std::string("error");
      return Status::IoError("the MCP server answered with an error: " + msg);
    }
    return m.result;
  }
}

}  // namespace

Result<Json> CallToolOnce(const UpstreamOptions& options, const Json& params,
                          std::chrono::milliseconds timeout) {
  ASSIGN_OR_RETURN(auto up, UpstreamProcess::Start(options));
  return CallToolOnce(std::unique_ptr<Upstream>(std::move(up)), params, timeout);
}

Result<Json> CallToolOnce(std::unique_ptr<Upstream> up, const Json& params,
                          std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread timer([&] {
    std::unique_lock<std::mutex> lock(mu);
    // Stopping it at the deadline ends the read that waits for it.
    if (!cv.wait_until(lock, deadline, [&] { return done; }))
      up->Stop(std::chrono::milliseconds(0));
  });
  auto finish = [&](Result<Json> r) {
    {
      std::lock_guard<std::mutex> lock(mu);
      done = true;
    }
    cv.notify_all();
    timer.join();
    up->Stop(std::chrono::milliseconds(1000));
    return r;
  };
  Json init_params = {{"protocolVersion", kProtocolVersion},
                      {"capabilities", Json::object()},
                      {"clientInfo", {{"name", "airlock"}, {"version", "1"}}}};
  if (!up->Send(MakeRequest(1, "initialize", init_params))) {
    return finish(Status::IoError("the MCP server closed its input"));
  }
  auto init = AwaitResponse(*up, 1, deadline, -1);
  if (!init.ok()) return finish(init.status().Annotate("initialize"));
  up->Send(MakeNotification("notifications/initialized", nullptr));
  if (!up->Send(MakeRequest(2, "tools/call", params))) {
    return finish(Status::IoError("the MCP server closed its input"));
  }
  return finish(AwaitResponse(*up, 2, deadline, -1));
}

}  // namespace airlock::mcp
