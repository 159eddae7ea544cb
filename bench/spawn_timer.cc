// spawn_timer: times whole commands, start to exit, for bench/shell_peers.sh.
//
//   spawn_timer [--runs N] [--warmup W] [--timeout-ms T] [--stderr-dir DIR]
//               --cmd NAME ARGC ARG0 ARG1 ... [--cmd NAME ARGC ARG0 ...]...
//
// Each --cmd gives a name and an argv of exactly ARGC words (length-prefixed, so an argument
// may be anything, "--cmd" included). ARG0 is looked up on PATH once, before any timing.
//
// Every round runs each command once, round-robin, so that machine noise is spread over all
// of them alike; the order rotates by one each round, so no command always follows the same
// one. W untimed warm-up rounds come first, then N timed ones. One run is timed with
// steady_clock (CLOCK_MONOTONIC, ns resolution) from just before posix_spawn to just after
// waitpid: it includes the spawn, everything the command does, and its exit.
//
// A run counts only if it exits 0. The first run that does not (non-zero status, a signal,
// a timeout, or a command that cannot be spawned) marks that command failed: it is run no
// more, and none of its times are reported. stdin and stdout are /dev/null; stderr goes to
// DIR/NAME.stderr (appended) with --stderr-dir, else to /dev/null. Each command is spawned
// in a new process group, which is killed at a timeout.
//
// Output on stdout, tab-separated, one record a line, written after the last round:
//   cmd      NAME  RESOLVED_PATH  ARGV...
//   sample   NAME  ROUND  NS                 (ROUND counts timed rounds from 0)
//   summary  NAME  RUNS  P50_NS  P99_NS  MIN_NS  MAX_NS  MEAN_NS  LINGERED  LINGER_MAX_NS
//            STRAGGLERS
//   failed   NAME  ROUND  REASON             (ROUND is "warmup-K" or K)
// Quantiles are nearest-rank (index floor(q*n), a real sample), as in bench/bench_common.h;
// with at most 100 runs "P99" is the maximum. LINGERED counts runs (warm-ups included) after
// which some process of the command's process group, zombies included, was still there when
// the command itself had exited; spawn_timer then waits, untimed, until the group is gone (at
// most 2 s, LINGER_MAX_NS is the longest wait) so it does not run into the next command's
// time. STRAGGLERS counts runs whose group was still there after 2 s (left running).
// Exit status: 0 if every command succeeded, 1 if any failed, 2 on a usage error.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

extern char** environ;

namespace {

// How long to wait, untimed, for what a command left in its process group to exit.
constexpr int64_t kSettleMs = 2000;

struct Command {
  std::string name;
  std::vector<std::string> argv;
  std::string path;  // argv[0] resolved on PATH
  int stderr_fd = -1;
  std::vector<int64_t> ns;
  int64_t lingered = 0;       // runs after which the process group outlived the command
  int64_t linger_max_ns = 0;  // the longest such wait
  int64_t stragglers = 0;     // runs whose group was still alive after kSettleMs
  bool failed = false;
};

[[noreturn]] void Usage(const char* msg) {
  std::fprintf(stderr,
               "spawn_timer: %s\n"
               "usage: spawn_timer [--runs N] [--warmup W] [--timeout-ms T] [--stderr-dir DIR]\n"
               "                   --cmd NAME ARGC ARG0 [ARG...] [--cmd ...]\n",
               msg);
  std::exit(2);
}

int64_t ParseCount(const char* flag, const char* text, int64_t min) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < min) {
    Usage((std::string("bad value for ") + flag + ": " + text).c_str());
  }
  return v;
}

// The executable that execvp would run for `word`, or "" if there is none.
std::string ResolveOnPath(const std::string& word) {
  auto executable = [](const std::string& p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(p.c_str(), X_OK) == 0;
  };
  if (word.find('/') != std::string::npos) return executable(word) ? word : "";
  const char* path_env = std::getenv("PATH");
  std::string path = path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + word;
    if (executable(candidate)) return candidate;
    start = end + 1;
  }
  return "";
}

std::string Describe(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return "killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  }
  return "wait status " + std::to_string(status);
}

// Runs `c` once. Returns the wall time in ns, or nullopt with `why` set when the run failed.
std::optional<int64_t> RunOnce(Command& c, int devnull, int64_t timeout_ms, std::string& why) {
  std::vector<char*> argv;
  for (auto& a : c.argv) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, devnull, STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&fa, devnull, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa, c.stderr_fd >= 0 ? c.stderr_fd : devnull, STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);    // no blocked signals
  posix_spawnattr_setsigdefault(&attr, &all);  // and none ignored, whatever we inherited

  pid_t pid = -1;
  auto t0 = std::chrono::steady_clock::now();
  int rc = posix_spawn(&pid, c.path.c_str(), &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    why = std::string("posix_spawn failed: ") + std::strerror(rc);
    return std::nullopt;
  }

  int status = 0;
  bool timed_out = false;
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    int n;
    do {
      n = poll(&p, 1, static_cast<int>(timeout_ms));
    } while (n < 0 && errno == EINTR);
    if (n == 0) {
      timed_out = true;
      kill(-pid, SIGKILL);
    }
    close(pidfd);
  }  // without pidfd_open (kernel < 5.3) there is no timeout: waitpid blocks
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  auto t1 = std::chrono::steady_clock::now();

  // Anything left in the command's process group outlived the command itself. Wait, untimed,
  // until it is gone (at most kSettleMs), so that it does not run into the next command's time.
  if (!timed_out && kill(-pid, 0) == 0) {
    ++c.lingered;
    auto deadline = t1 + std::chrono::milliseconds(kSettleMs);
    bool gone = false;
    while (!gone && std::chrono::steady_clock::now() < deadline) {
      usleep(200);
      while (waitpid(-1, nullptr, WNOHANG) > 0) {  // orphans come to us (subreaper, see main)
      }
      gone = kill(-pid, 0) != 0 && errno == ESRCH;
    }
    auto waited = std::chrono::steady_clock::now() - t1;
    c.linger_max_ns = std::max<int64_t>(
        c.linger_max_ns, std::chrono::duration_cast<std::chrono::nanoseconds>(waited).count());
    if (!gone) ++c.stragglers;
  }

  if (timed_out) {
    why = "timed out after " + std::to_string(timeout_ms) + " ms (process group killed)";
    return std::nullopt;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    why = Describe(status);
    return std::nullopt;
  }
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
}

int64_t Quantile(const std::vector<int64_t>& sorted, double q) {
  size_t rank = static_cast<size_t>(q * static_cast<double>(sorted.size()));
  if (rank >= sorted.size()) rank = sorted.size() - 1;
  return sorted[rank];
}

}  // namespace

int main(int argc, char** argv) {
  int64_t runs = 200, warmup = 3, timeout_ms = 60'000;
  std::string stderr_dir;
  std::vector<Command> cmds;

  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto need = [&](int n) {
      if (i + n >= argc) Usage(("missing value after " + a).c_str());
    };
    if (a == "--runs") {
      need(1);
      runs = ParseCount("--runs", argv[++i], 1);
    } else if (a == "--warmup") {
      need(1);
      warmup = ParseCount("--warmup", argv[++i], 0);
    } else if (a == "--timeout-ms") {
      need(1);
      timeout_ms = ParseCount("--timeout-ms", argv[++i], 1);
      if (timeout_ms > 86'400'000) Usage("--timeout-ms is at most one day");
    } else if (a == "--stderr-dir") {
      need(1);
      stderr_dir = argv[++i];
    } else if (a == "--cmd") {
      need(2);
      Command c;
      c.name = argv[++i];
      int64_t n = ParseCount("--cmd ARGC", argv[++i], 1);
      if (n > argc - 1 - i) Usage(("--cmd " + c.name + ": fewer words than ARGC").c_str());
      for (int64_t k = 0; k < n; ++k) c.argv.emplace_back(argv[++i]);
      if (c.name.empty() || c.name.find_first_of("\t\n/") != std::string::npos) {
        Usage("a command name must be non-empty, without tab, newline or '/'");
      }
      for (const auto& o : cmds) {
        if (o.name == c.name) Usage(("duplicate command name: " + c.name).c_str());
      }
      cmds.push_back(std::move(c));
    } else {
      Usage(("unknown argument: " + a).c_str());
    }
  }
  if (cmds.empty()) Usage("no --cmd given");

  // A command's orphans (daemons it leaves, a sandbox's inner processes) are reparented to us,
  // not to whatever init the machine has, so we can see them go and reap them ourselves.
  prctl(PR_SET_CHILD_SUBREAPER, 1);

  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0) {
    std::perror("spawn_timer: /dev/null");
    return 2;
  }

  std::vector<std::string> failures;  // "failed" records, printed at the end
  auto fail = [&](Command& c, const std::string& round, const std::string& why) {
    c.failed = true;
    failures.push_back("failed\t" + c.name + "\t" + round + "\t" + why);
    std::fprintf(stderr, "spawn_timer: %s FAILED (round %s): %s\n", c.name.c_str(), round.c_str(),
                 why.c_str());
  };

  for (auto& c : cmds) {
    if (!stderr_dir.empty()) {
      std::string p = stderr_dir + "/" + c.name + ".stderr";
      c.stderr_fd = open(p.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (c.stderr_fd < 0) {
        std::fprintf(stderr, "spawn_timer: %s: %s\n", p.c_str(), std::strerror(errno));
        return 2;
      }
    }
    c.path = ResolveOnPath(c.argv[0]);
    if (c.path.empty()) fail(c, "warmup-0", "'" + c.argv[0] + "' not found or not executable");
    c.ns.reserve(static_cast<size_t>(runs));
  }

  const size_t k = cmds.size();
  const bool tty = isatty(STDERR_FILENO);
  for (int64_t round = -warmup; round < runs; ++round) {
    const bool timed = round >= 0;
    const size_t rot = static_cast<size_t>((round % static_cast<int64_t>(k) + k) % k);
    for (size_t j = 0; j < k; ++j) {
      Command& c = cmds[(j + rot) % k];
      if (c.failed) continue;
      std::string why;
      auto ns = RunOnce(c, devnull, timeout_ms, why);
      if (!ns) {
        fail(c, timed ? std::to_string(round) : "warmup-" + std::to_string(round + warmup), why);
      } else if (timed) {
        c.ns.push_back(*ns);
      }
    }
    if (tty) {
      std::fprintf(stderr, "\rspawn_timer: %s round %lld/%lld ", timed ? "timed" : "warm-up",
                   static_cast<long long>(timed ? round + 1 : round + warmup + 1),
                   static_cast<long long>(timed ? runs : warmup));
    }
  }
  if (tty) std::fprintf(stderr, "\n");

  bool any_failed = false;
  for (const auto& c : cmds) {
    std::printf("cmd\t%s\t%s", c.name.c_str(), c.path.c_str());
    for (const auto& a : c.argv) std::printf("\t%s", a.c_str());
    std::printf("\n");
  }
  for (const auto& c : cmds) {
    if (c.failed) continue;
    for (size_t r = 0; r < c.ns.size(); ++r) {
      std::printf("sample\t%s\t%zu\t%lld\n", c.name.c_str(), r, static_cast<long long>(c.ns[r]));
    }
  }
  for (auto& c : cmds) {
    if (c.failed) {
      any_failed = true;
      continue;
    }
    std::vector<int64_t> s = c.ns;
    std::sort(s.begin(), s.end());
    long double sum = 0;
    for (int64_t v : s) sum += v;
    std::printf("summary\t%s\t%zu\t%lld\t%lld\t%lld\t%lld\t%.0Lf\t%lld\t%lld\t%lld\n",
                c.name.c_str(), s.size(), static_cast<long long>(Quantile(s, 0.50)),
                static_cast<long long>(Quantile(s, 0.99)), static_cast<long long>(s.front()),
                static_cast<long long>(s.back()), sum / static_cast<long double>(s.size()),
                static_cast<long long>(c.lingered), static_cast<long long>(c.linger_max_ns),
                static_cast<long long>(c.stragglers));
  }
  for (const auto& f : failures) std::printf("%s\n", f.c_str());
  std::fflush(stdout);
  return any_failed ? 1 : 0;
}
