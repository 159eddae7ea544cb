// The floor of any stdio proxy: a relay that starts a command and copies bytes between its
// own stdin/stdout and the command's, with no parsing, no policy and no record. One thread,
// poll(2), one read and one write per message and direction: the least a process between an
// MCP client and its server can do. bench/mcp_bench.sh runs it as a side, so that what
// `airlock mcp stdio` adds can be read against what the extra process alone adds on the same
// machine in the same run.
//   stdio_relay COMMAND [ARG...]
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace {

// Writes all of buf; false when the other end is gone.
bool WriteAll(int fd, const char* buf, ssize_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, static_cast<size_t>(n));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    buf += w;
    n -= w;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: stdio_relay COMMAND [ARG...]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int to_child[2];
  int from_child[2];
  if (pipe(to_child) != 0 || pipe(from_child) != 0) {
    std::perror("stdio_relay: pipe");
    return 1;
  }
  const pid_t pid = fork();
  if (pid < 0) {
    std::perror("stdio_relay: fork");
    return 1;
  }
  if (pid == 0) {
    dup2(to_child[0], 0);
    dup2(from_child[1], 1);
    close(to_child[0]);
    close(to_child[1]);
    close(from_child[0]);
    close(from_child[1]);
    execvp(argv[1], argv + 1);
    std::perror("stdio_relay: exec");
    _exit(127);
  }
  close(to_child[0]);
  close(from_child[1]);
  pollfd fds[2] = {{0, POLLIN, 0}, {from_child[0], POLLIN, 0}};
  static char buf[1 << 16];
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents != 0) {
      ssize_t n = read(0, buf, sizeof buf);
      if (n <= 0 || !WriteAll(to_child[1], buf, n)) break;
    }
    if (fds[1].revents != 0) {
      ssize_t n = read(from_child[0], buf, sizeof buf);
      if (n <= 0 || !WriteAll(1, buf, n)) break;
    }
  }
  close(to_child[1]);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
