// The sandbox launcher (launcher.h).
//
// The channel is an AF_UNIX stream pair. A request is one sendmsg of a fixed header (blob
// length, fd count) carrying the fds (SCM_RIGHTS), then the blob; the answer is one int64:
// the child's pid, or -errno when clone failed.
#include "connectors/shell/launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "connectors/shell/fds.h"
#include "core/trace.h"

namespace airlock::shell {
namespace {

struct Header {
  uint32_t blob_len;
  uint32_t fd_count;
};

// How long the caller waits for the launcher to take a request or answer it (a clone takes
// well under a millisecond).
constexpr time_t kAnswerTimeoutS = 30;

// The caller's end of the channel and the lock that keeps one request on it at a time.
std::mutex g_mu;
int g_channel = -1;  // GUARDED_BY(g_mu); -1: no launcher, or it failed
pid_t g_pid = -1;    // GUARDED_BY(g_mu); the launcher, until reaped

bool WriteAll(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = ::send(fd, data, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool ReadAll(int fd, char* data, size_t len) {
  while (len > 0) {
    ssize_t n = ::read(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

// Receives one request's header and fds. False at EOF or on a malformed request (the
// launcher then exits: its only peer is the process that forked it).
bool ReceiveHeader(int channel, Header* h, std::vector<int>* fds) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxLaunchFds)];
  iovec iov{h, sizeof *h};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  while ((n = ::recvmsg(channel, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  if (n <= 0) return false;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds->push_back(fd);
    }
  }
  // The rest of a short header (a stream may split it; the fds came with its first byte).
  if (static_cast<size_t>(n) < sizeof *h &&
      !ReadAll(channel, reinterpret_cast<char*>(h) + n, sizeof *h - static_cast<size_t>(n))) {
    return false;
  }
  return (msg.msg_flags & MSG_CTRUNC) == 0 && h->blob_len <= kMaxLaunchBlob &&
         h->fd_count == fds->size();
}

[[noreturn]] void Serve(int channel, pid_t parent, LaunchedMain main) {
  // Dies with the thread that forked it; and if that already happened, ends now.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || ::getppid() != parent) ::_exit(0);
  ::prctl(PR_SET_NAME, "airlock-launch", 0, 0, 0);
  // A terminal's ^C reaches the whole process group: the server shuts down in order, and the
  // sandboxes it runs (children of this process's forks) finish or are killed by it, as they
  // were when it forked them itself and they inherited its handlers. init resets every
  // signal before the command runs.
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) ::signal(sig, SIG_IGN);
  // Nothing of the parent's but stdio, the channel and the trace file.
  CloseAllFdsExcept({channel, TraceFd()});
  for (;;) {
    Header h{};
    std::vector<int> fds;
    if (!ReceiveHeader(channel, &h, &fds)) ::_exit(0);
    std::string blob(h.blob_len, '\0');
    if (!ReadAll(channel, blob.data(), blob.size())) ::_exit(0);
    // Like fork (no new stack), but the child's parent is ours: the caller's. With
    // CLONE_PARENT the kernel ignores the exit signal given here and uses ours (SIGCHLD:
    // we were forked), so the caller gets SIGCHLD and waitpid() finds the child either way.
    long pid = ::syscall(SYS_clone, CLONE_PARENT | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
    if (pid == 0) {
      ::close(channel);
      main(blob, fds);
      ::_exit(127);
    }
    const int64_t answer = pid > 0 ? static_cast<int64_t>(pid) : -static_cast<int64_t>(errno);
    for (int fd : fds) ::close(fd);
    if (!WriteAll(channel, reinterpret_cast<const char*>(&answer), sizeof answer)) ::_exit(0);
  }
}

int ThreadCount() {
  int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  // Field 20, counted after the command name's closing parenthesis (which may hold spaces).
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr) return -1;
  for (int field = 2; field < 20 && *p != '\0'; ++p) {
    if (*p == ' ') ++field;
  }
  return std::atoi(p);
}

}  // namespace

Status StartLauncher(LaunchedMain main) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_channel >= 0 || g_pid > 0) {
    return Status::FailedPrecondition("the sandbox launcher already runs");
  }
  const int threads = ThreadCount();
  if (threads < 0) {
    return Status::FailedPrecondition(
        "the sandbox launcher is started only by a process with one thread, and /proc/self/stat "
        "did not say how many this one has");
  }
  if (threads != 1) {
    return Status::FailedPrecondition(
        "the sandbox launcher is started only by a process with "
        "one thread (this one has " +
        std::to_string(threads) + ")");
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return Status::IoError(std::string("sandbox launcher: socketpair: ") + std::strerror(errno));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(sv[0]);
    ::close(sv[1]);
    return Status::IoError(std::string("sandbox launcher: fork: ") + std::strerror(err));
  }
  if (pid == 0) {
    ::close(sv[0]);
    Serve(sv[1], parent, main);
  }
  ::close(sv[1]);
  // A launcher that does not answer (stopped, or worse) must not hold every run, nor the
  // exit, forever: after kAnswerTimeoutS it is killed and runs fork from their own thread.
  timeval limit{kAnswerTimeoutS, 0};
  ::setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  ::setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  g_channel = sv[0];
  g_pid = pid;
  static const bool registered = [] { return std::atexit(StopLauncher) == 0; }();
  (void)registered;
  TraceMark("launcher: started");
  return Status::Ok();
}

void StopLauncher() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_channel >= 0) ::close(g_channel);  // it reads EOF and exits
  g_channel = -1;
  if (g_pid > 0) {
    while (::waitpid(g_pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  g_pid = -1;
}

bool LauncherRunning() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_channel >= 0;
}

Result<pid_t> Launch(const std::string& blob, const std::vector<int>& fds) {
  if (blob.size() > kMaxLaunchBlob || fds.size() > kMaxLaunchFds) {
    return Status::InvalidArgument("sandbox launcher: request too large");
  }
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_channel < 0) return Status::FailedPrecondition("the sandbox launcher is not running");
  auto broken = [&](const char* what) {
    const int err = errno;
    ::close(g_channel);
    g_channel = -1;
    // Whatever state it is in, it serves no one now: killed, and reaped at once if it can be
    // (else by StopLauncher at exit).
    if (g_pid > 0) {
      ::kill(g_pid, SIGKILL);
      if (::waitpid(g_pid, nullptr, WNOHANG) == g_pid) g_pid = -1;
    }
    return Status::IoError(std::string("sandbox launcher: ") + what +
                           (err != 0 ? std::string(": ") + std::strerror(err) : ""));
  };
  Header h{static_cast<uint32_t>(blob.size()), static_cast<uint32_t>(fds.size())};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxLaunchFds)] = {};
  iovec iov{&h, sizeof h};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  errno = 0;
  ssize_t n;
  while ((n = ::sendmsg(g_channel, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  if (n < 0) return broken("send");
  if (static_cast<size_t>(n) < sizeof h &&
      !WriteAll(g_channel, reinterpret_cast<const char*>(&h) + n,
                sizeof h - static_cast<size_t>(n))) {
    return broken("send");
  }
  if (!WriteAll(g_channel, blob.data(), blob.size())) return broken("send");
  int64_t answer = 0;
  errno = 0;
  if (!ReadAll(g_channel, reinterpret_cast<char*>(&answer), sizeof answer)) {
    return broken("no answer (it exited)");
  }
  if (answer < 0) {
    return Status::IoError(std::string("sandbox launcher: clone: ") +
                           std::strerror(static_cast<int>(-answer)));
  }
  return static_cast<pid_t>(answer);
}

}  // namespace airlock::shell
