// RunSandboxed: the caller's side (validate, cgroups, pipes, fork the supervisor, collect
// output, enforce the timeout, hand the upper layer to `inspect`, clean up), the
// supervisor's (scratch tmpfs, clone init, admit it into the cgroups) and init's (contain,
// spawn the command, reap, report). Each concern lives in its own file; this one
// only says in which order they happen, and why.
#include "connectors/shell/sandbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>  // struct clone_args, CLONE_INTO_CGROUP
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "connectors/shell/caps.h"
#include "connectors/shell/cgroup.h"
#include "connectors/shell/fds.h"
#include "connectors/shell/landlock.h"
#include "connectors/shell/launcher.h"
#include "connectors/shell/mount.h"
#include "connectors/shell/net.h"
#include "connectors/shell/seccomp.h"
#include "core/cpu_placement.h"
#include "core/trace.h"

extern char** environ;

namespace airlock::shell {
namespace {

using Clock = std::chrono::steady_clock;

// After the timeout the cgroup is killed; if the run has still not ended this much later,
// the supervisor is SIGKILLed (its namespaces, init and every mount go with it).
constexpr auto kKillGrace = std::chrono::seconds(5);
constexpr int kExitSetupFailed = 125;
constexpr int kExitExecFailed = 127;
constexpr int kExitNotStarted = 126;  // init: the caller never said "start"
// A prepared run's command travels over the start socket (PreparedRun::Run); execve itself
// refuses more than ~2 MiB of arguments and environment with the default stack limit.
constexpr uint32_t kMaxCommandArgs = 65'536;
constexpr size_t kMaxCommandBytes = 1 << 20;

Status SysError(const std::string& what, int err = errno) {
  return Status::IoError(what + ": " + std::strerror(err));
}

// ---- fds ----------------------------------------------------------------------------------

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    reset(o.release());
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// poll(2) on one descriptor without waiting: the number of ready descriptors (0 or 1; -1 on an
// error), with pfd->revents filled in.
int PollNow(pollfd* pfd) {
  int ready;
  while ((ready = ::poll(pfd, 1, 0)) < 0 && errno == EINTR) {
  }
  return ready;
}

struct Pipe {
  Fd read, write;
};

Result<Pipe> MakePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return SysError("pipe");
  return Pipe{Fd(fds[0]), Fd(fds[1])};
}

// An AF_UNIX pair for SendFd/ReceiveFd: "read" for the receiving end, "write" for the other.
Result<Pipe> MakeSocketPair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0)
    return SysError("socketpair");
  return Pipe{Fd(fds[0]), Fd(fds[1])};
}

// ---- messages from the sandbox to the caller ------------------------------------------------
//
// One pipe (O_CLOEXEC: the command never holds it) carries framed messages from the
// supervisor and init to the caller. Each is a single write() below PIPE_BUF, so messages
// never interleave.

enum class Msg : char {
  kInitPid = 'P',     // supervisor: init's pid (in the caller's pid namespace)
  kSetupError = 'E',  // supervisor or init: "sandbox setup: <step>: <strerror>"
  kBaseline = 'B',    // init: network counters before the command
  kExecError = 'X',   // init: the command could not be executed; payload errno
  kReport = 'R',      // init: the command's wait status, network counters after
  kInitExited = 'D',  // supervisor: init's wait status; every process of the run is gone
  kStarted = 'S',     // init, long-lived runs only: the command was executed
};

struct ReportMsg {
  int wait_status;
  NetCounters after;
};

constexpr size_t kMsgHeader = 3;  // type, 16-bit length

void Send(int fd, Msg type, const void* payload, size_t len) {
  char buf[PIPE_BUF];
  len = std::min(len, sizeof buf - kMsgHeader);
  buf[0] = static_cast<char>(type);
  uint16_t len16 = static_cast<uint16_t>(len);
  std::memcpy(buf + 1, &len16, sizeof len16);
  std::memcpy(buf + kMsgHeader, payload, len);
  while (::write(fd, buf, kMsgHeader + len) < 0 && errno == EINTR) {
  }
}

[[noreturn]] void FailChild(int status_fd, const Status& st) {
  std::string msg = "sandbox setup: " + st.message();
  Send(status_fd, Msg::kSetupError, msg.data(), msg.size());
  ::_exit(kExitSetupFailed);
}

// ---- what the children need, built before fork ---------------------------------------------

struct ChildPlan {
  const SandboxSpec* spec = nullptr;
  CgroupHandles cgroups;
  pid_t caller = 0;
  int last_cap = 0;
  std::string scratch_dir;
  NewRootSpec root;
  std::vector<std::string> hide;      // spec.hide plus the scratch dir
  std::vector<std::string> writable;  // Landlock: workspace, /tmp, /dev
  std::vector<char*> argv, envp;      // point into *spec; null-terminated
  std::vector<int> cgroup_fds;        // cgroups.fds()
  bool in_cgroup2 = false;            // init was cloned into the cgroup2 directory
  int stdout_w = -1, stderr_w = -1, status_w = -1, control_r = -1;
  int stdin_r = -1;          // a long-lived run's stdin (SandboxedProcess); -1: /dev/null
  int go_r = -1, go_w = -1;  // created by the supervisor
  // The caller's "start" (PreparedRun::Run): init waits on it, contained, right before the
  // command. -1: no gate (a long-lived run starts at once).
  int start_r = -1;
  int egress_w = -1;  // AF_UNIX end that carries the egress socket (-1: no proxy)
  // Network off: the AF_UNIX end on which the caller sends the run's network namespace,
  // made ahead on a thread of its own (PreparedRun::Prepare); -1: init gets a new one at
  // clone. net_ready: the supervisor has entered it (its loopback is up), so init inherits it.
  int net_r = -1;
  bool net_ready = false;
};

ChildPlan MakePlan(const SandboxSpec& spec, const RunCgroups& cgroups, int last_cap) {
  ChildPlan p;
  p.spec = &spec;
  p.cgroups = cgroups.handles();
  p.caller = ::getpid();
  p.last_cap = last_cap;
  p.scratch_dir = spec.scratch_dir;
  ScratchLayout scratch(spec.scratch_dir);
  p.root.new_root = scratch.root;
  p.root.workspace = spec.workspace;
  p.root.overlay_options = OverlayOptions(spec.workspace, scratch);
  p.root.tmp_options = TmpfsOptions(spec.upper_size_bytes, spec.upper_inodes);
  p.root.read_only_paths = spec.read_only_paths;
  p.hide = spec.hide;
  // A scratch dir under a bound directory (say /var/lib/airlock) would show the upper layer
  // read-only inside the sandbox.
  p.hide.push_back(spec.scratch_dir);
  p.writable = {spec.workspace, "/tmp", "/dev"};
  for (const std::string& a : spec.argv) p.argv.push_back(const_cast<char*>(a.c_str()));
  p.argv.push_back(nullptr);
  for (const std::string& e : spec.env) p.envp.push_back(const_cast<char*>(e.c_str()));
  p.envp.push_back(nullptr);
  p.cgroup_fds = p.cgroups.fds();
  return p;
}

// ---- the command (spawned by init) ---------------------------------------------------------

int MoveAbove2(int fd) {
  if (fd > 2) return fd;
  return ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

// posix_spawn (a vfork: no copy of init's page tables, which are the caller's) with stdin
// /dev/null and the output pipes. Every other fd of init is close-on-exec, so the command
// gets exactly 0, 1 and 2. Returns the pid, or the errno of the exec (ENOENT, EACCES...).
Result<pid_t> SpawnCommand(const ChildPlan& p, char* const* argv, int* exec_errno) {
  int out = MoveAbove2(p.stdout_w);
  int err = MoveAbove2(p.stderr_w);
  int in = p.stdin_r >= 0 ? MoveAbove2(p.stdin_r) : -1;
  if (out < 0 || err < 0 || (p.stdin_r >= 0 && in < 0)) return SysError("command stdio");
  posix_spawn_file_actions_t actions;
  if (::posix_spawn_file_actions_init(&actions) != 0) return SysError("command stdio");
  if (in >= 0) {
    ::posix_spawn_file_actions_adddup2(&actions, in, 0);
  } else {
    ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  }
  ::posix_spawn_file_actions_adddup2(&actions, out, 1);
  ::posix_spawn_file_actions_adddup2(&actions, err, 2);
  environ = const_cast<char**>(p.envp.data());  // posix_spawnp looks PATH up in environ
  pid_t pid = -1;
  *exec_errno = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv, environ);
  ::posix_spawn_file_actions_destroy(&actions);
  return pid;
}

// ---- init: pid 1 of the run ----------------------------------------------------------------

bool ReadExact(int fd, void* buf, size_t n) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    const ssize_t got = ::read(fd, p, n);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

// The caller's "start" with the command (EncodeStart): true and *argv filled in; false on
// EOF before a whole message (the caller gave the run up, or died).
bool WaitForStart(int start_r, std::vector<std::string>* argv) {
  char tag = 0;
  uint32_t count = 0;
  bool ok = ReadExact(start_r, &tag, 1) && tag == 's' && ReadExact(start_r, &count, sizeof count) &&
            count > 0 && count <= kMaxCommandArgs;
  size_t total = 0;
  for (uint32_t i = 0; ok && i < count; ++i) {
    uint32_t len = 0;
    ok = ReadExact(start_r, &len, sizeof len) && len <= kMaxCommandBytes - total;
    if (!ok) break;
    total += len;
    std::string& arg = argv->emplace_back(len, '\0');
    ok = ReadExact(start_r, arg.data(), len);
  }
  return ok;
}

// After the report: init waits for the end of "start". A run that does not linger ends it
// right after sending the command, so init goes at once; a lingering one ends it at Finish,
// so that the pid namespace, and with it the run's last processes, is torn down then, not
// while the caller records the action and answers (SandboxSpec::linger).
void WaitForFinish(int start_r) {
  char c;
  ssize_t n;
  do {
    n = ::read(start_r, &c, 1);
  } while (n > 0 || (n < 0 && errno == EINTR));
}

// The supervisor holds the go pipe's only write end for its whole life (Supervise), so
// after "go" the pipe hangs up exactly when the supervisor is gone. It is looked at after
// the parent-death signal was armed: a supervisor that died before that (after saying "go",
// while init had not run yet) is seen here, and one that dies later kills init.
Status WaitForGo(int go_r) {
  char c;
  ssize_t n;
  while ((n = ::read(go_r, &c, 1)) < 0 && errno == EINTR) {
  }
  if (n != 1) return Status::Internal("the supervisor went away before the start");
  struct pollfd pfd = {go_r, POLLIN, 0};
  const int ready = PollNow(&pfd);
  ::close(go_r);
  if (ready > 0 && (pfd.revents & (POLLHUP | POLLERR)) != 0) {
    return Status::Internal("the supervisor went away before the start");
  }
  return Status::Ok();
}

// The caller may ignore SIGPIPE or block signals; the command must start with defaults.
Status ResetSignals() {
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
  }
  sigset_t none;
  sigemptyset(&none);
  if (::sigprocmask(SIG_SETMASK, &none, nullptr) != 0) return SysError("reset signal mask");
  return Status::Ok();
}

Status Unshare(int flags, const char* what) {
  if (::unshare(flags) != 0) return SysError(std::string("unshare ") + what);
  return Status::Ok();
}

Status SetHostname() {
  if (::sethostname("airlock", 7) != 0) return SysError("sethostname");
  return Status::Ok();
}

Status ChangeDir(const std::string& dir) {
  if (::chdir(dir.c_str()) != 0) return SysError("chdir " + dir);
  return Status::Ok();
}

// Everything that stands between the command and the host, in order.
Status ContainInit(const ChildPlan& p) {
  // getppid() is 0 here (the supervisor is outside our pid namespace); the go pipe is the
  // liveness check instead (WaitForGo): EOF or a hang-up if the supervisor died before this
  // prctl.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) return SysError("set parent-death signal");
  std::vector<int> keep = p.cgroup_fds;
  keep.insert(keep.end(), {p.go_r, p.stdout_w, p.stderr_w, p.status_w, p.stdin_r, p.egress_w,
                           p.start_r, TraceFd()});
  CloseAllFdsExcept(keep);
  TraceMark("init: started");
  // "go": we are in the run's cgroup2 directory (cloned into it, or moved by the supervisor
  // without clone3). We join the v1 ones ourselves, which skips the lock a move by pid
  // takes (CgroupHandles::AdmitSelf): every limit applies from here on.
  RETURN_IF_ERROR(WaitForGo(p.go_r));
  TraceMark("init: go");
  RETURN_IF_ERROR(p.cgroups.AdmitSelf());
  for (int fd : p.cgroup_fds) ::close(fd);
  // A cgroup namespace is rooted where its creator is at creation: after "go", the command
  // sees its own cgroup as "/".
  RETURN_IF_ERROR(Unshare(CLONE_NEWCGROUP, "cgroup namespace"));
  RETURN_IF_ERROR(ResetSignals());
  RETURN_IF_ERROR(SetHostname());
  if (!p.spec->network && !p.net_ready) RETURN_IF_ERROR(BringUpLoopback());
  // network: proxy. The listening socket is made here, in the sandbox's namespace and before
  // the command exists, so the command's first request finds it (queued until airlock
  // accepts); airlock serves it from outside, where the real network is.
  if (p.egress_w >= 0) {
    RETURN_IF_ERROR(SendLoopbackListener(p.egress_w, p.spec->egress_port));
    ::close(p.egress_w);
  }
  TraceMark("init: cgroups, loopback");
  RETURN_IF_ERROR(BuildNewRoot(p.root));
  TraceMark("init: new root built");
  RETURN_IF_ERROR(PivotInto(p.root.new_root));
  TraceMark("init: pivoted");
  // After pivot_root: the new /proc must show this pid namespace and live in the new root.
  RETURN_IF_ERROR(MountProc());
  TraceMark("init: proc");
  // Hidden paths resolve inside the new root (symlinks included), the overlay too.
  RETURN_IF_ERROR(HidePaths(p.hide));
  TraceMark("init: hidden");
  RETURN_IF_ERROR(SealRoot());
  TraceMark("init: pivoted, proc, hidden, sealed");
  RETURN_IF_ERROR(ChangeDir(p.spec->workspace));
  RETURN_IF_ERROR(DetachFromTerminal());
  RETURN_IF_ERROR(DropAllCapabilities(p.last_cap));
  // no_new_privs first: Landlock and seccomp refuse a process without CAP_SYS_ADMIN that
  // could still gain privileges through execve.
  TraceMark("init: capabilities dropped");
  RETURN_IF_ERROR(SetNoNewPrivs());
  RETURN_IF_ERROR(RestrictWritesTo(p.writable));
  // seccomp last: it denies mount, unshare and other calls the steps above make, and once
  // it is in place nothing runs unfiltered.
  TraceMark("init: landlock");
  Status filtered = InstallSeccompFilter();
  TraceMark("init: seccomp");
  return filtered;
}

int ReapUntil(pid_t command) {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, 0);
    if (pid == command) return status;
    if (pid < 0 && errno != EINTR) return W_EXITCODE(kExitSetupFailed, 0);
  }
}

[[noreturn]] void RunInit(const ChildPlan& p) {
  Status contained = ContainInit(p);
  if (!contained.ok()) FailChild(p.status_w, contained);
  NetCounters before;
  if (!p.spec->network) {
    before = ReadNetCounters("/proc/self");
    Send(p.status_w, Msg::kBaseline, &before, sizeof before);
  }
  // Everything is in place; the command starts when the caller says so. EOF instead: the
  // caller gave the run up (PreparedRun destroyed unrun), and nothing of the command runs.
  // A prepared run learns its command only now: a sandbox can be built before anyone knows
  // what will run in it (airlock serve keeps one ready per shell target).
  std::vector<std::string> args;
  std::vector<char*> argv = p.argv;
  if (p.start_r >= 0) {
    if (!WaitForStart(p.start_r, &args)) ::_exit(kExitNotStarted);
    TraceMark("init: start");
    argv.clear();
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
  }
  int exec_errno = 0;
  Result<pid_t> command = SpawnCommand(p, argv.data(), &exec_errno);
  if (!command.ok()) FailChild(p.status_w, command.status());
  TraceMark("init: command spawned");
  if (exec_errno != 0) {
    Send(p.status_w, Msg::kExecError, &exec_errno, sizeof exec_errno);
    ::_exit(kExitExecFailed);
  }
  ::close(p.stdout_w);
  ::close(p.stderr_w);
  if (p.stdin_r >= 0) {
    ::close(p.stdin_r);
    char started = 1;
    Send(p.status_w, Msg::kStarted, &started, sizeof started);
  }
  ReportMsg report{ReapUntil(*command), {}};
  TraceMark("init: command reaped");
  // Nothing the command started (double fork, setsid, daemon) outlives it: everything left
  // in this pid namespace is killed and reaped here, as the kernel would on our exit, but
  // before the report. Once the caller has the report the upper layer is final, and it
  // reads it while we exit (dropping our mount namespace takes a while).
  ::kill(-1, SIGKILL);
  while (::waitpid(-1, nullptr, 0) > 0 || errno == EINTR) {
  }
  if (!p.spec->network) report.after = ReadNetCounters("/proc/self");
  Send(p.status_w, Msg::kReport, &report, sizeof report);
  if (p.start_r >= 0) WaitForFinish(p.start_r);
  ::_exit(0);
}

// ---- supervisor ----------------------------------------------------------------------------

Status DieWithParent(pid_t caller) {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) return SysError("set parent-death signal");
  // The caller may have died between fork and prctl: then nobody would kill us.
  if (::getppid() != caller) return Status::Internal("airlock exited during the start");
  return Status::Ok();
}

Result<pid_t> CloneInit(ChildPlan& p) {
  int go[2];
  if (::pipe2(go, O_CLOEXEC) != 0) return SysError("pipe");
  p.go_r = go[0];
  p.go_w = go[1];
  unsigned long flags = CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNS;
  if (!p.spec->network && !p.net_ready) flags |= CLONE_NEWNET;
  // Raw clone used like fork (no new stack): the supervisor is single-threaded, so no lock
  // of the C library can be held by another thread. clone3 starts init inside the run's
  // cgroup2 directory (no move by pid afterwards; see CgroupHandles); a kernel
  // without it (ENOSYS, E2BIG) gets a plain clone and the move.
  long pid = -1;
  p.in_cgroup2 = false;
  if (const int dir = p.cgroups.cgroup2_dir; dir >= 0) {
    struct clone_args args;
    std::memset(&args, 0, sizeof args);
    args.flags = flags | CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = static_cast<uint64_t>(dir);
    pid = ::syscall(SYS_clone3, &args, sizeof args);
    if (pid < 0 && errno != ENOSYS && errno != E2BIG) return SysError("clone init");
    p.in_cgroup2 = pid >= 0;
  }
  if (pid < 0) pid = ::syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (pid < 0) return SysError("clone init");
  if (pid == 0) RunInit(p);
  ::close(p.go_r);
  return static_cast<pid_t>(pid);
}

int WaitChild(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

// Network off, with the namespace made ahead by the caller: the supervisor enters it, and init
// (cloned next, without CLONE_NEWNET) inherits it. Creating a network namespace is the
// slowest step of a clone (~0.4 ms of the ~0.45 ms on this project's machines), and made
// ahead it runs beside the cgroups' creation, the fork and the scratch mount. Each run still
// gets a namespace of its own, made for it alone. If none came (its thread failed) or it
// cannot be entered (setns checks that it is a network namespace), init gets a new one at
// clone, as without.
void EnterNetworkMadeAhead(ChildPlan& p) {
  if (p.net_r < 0) return;
  Result<int> ns = ReceiveFd(p.net_r, 'N', /*timeout_ms=*/10000);
  ::close(p.net_r);
  p.net_r = -1;
  if (!ns.ok()) {
    TraceMark("supervisor: no network namespace made ahead");
    return;
  }
  // Not the one we are in (the host's): checked, not only argued.
  struct stat ours, theirs;
  const bool other = ::stat("/proc/self/ns/net", &ours) == 0 && ::fstat(*ns, &theirs) == 0 &&
                     (ours.st_dev != theirs.st_dev || ours.st_ino != theirs.st_ino);
  p.net_ready = other && ::setns(*ns, CLONE_NEWNET) == 0;
  ::close(*ns);
  TraceMark(p.net_ready ? "supervisor: network namespace entered"
                        : "supervisor: the network namespace made ahead was not entered");
}

// What a process that runs sandboxes one after another (airlock serve without its standby,
// the MCP gateway, a library caller) keeps ready for its next run, from its second run on:
//  * A network namespace, when runs have network off: made ahead on a thread of its own. A
//    spare namespace is one no process has been in; only its descriptor holds it
//    (close-on-exec, and closed in every supervisor by CloseAllFdsExcept).
//  * The cgroups of the run that ended last, when it left nothing in them and hit no limit
//    (RunCgroups::Reusable), for the next run with the same limits. A run that asks for other
//    limits makes its own and the spare is removed. They are never made ahead on a thread:
//    the caller forks its sandbox's supervisor meanwhile, and in the sanitizer build's CI a
//    run hung once just where such a thread first created cgroups beside that fork. (Creating
//    cgroups allocates, and a child forked while another thread holds a lock of the
//    allocator hangs on it: the sanitizer build's allocator has no fork handler. That was
//    later seen under a debugger in airlock serve, see launcher.h.) Spare cgroups are removed at
//    exit (std::atexit); a process killed, or ended by _exit, leaves them to CleanupStaleCgroups,
//    like a killed run's.
// The first run of a process (the CLI's only one) keeps nothing for later.
class Spares {
 public:
  struct Taken {
    Fd net;                               // -1: none ready
    std::unique_ptr<RunCgroups> cgroups;  // null: none ready for these limits
  };

  // Never destroyed: a maker still at work when the process exits ends with it, and a
  // Prepare on another thread at exit finds it whole.
  static Spares& Get() {
    static Spares* spares = [] {
      auto* s = new Spares();
      std::atexit([] { Get().RemoveCgroupsAtExit(); });
      return s;
    }();
    return *spares;
  }
  Spares(const Spares&) = delete;
  Spares& operator=(const Spares&) = delete;

  // In a child forked from the process that made them (a library caller's fork), nothing:
  // the spares are the parent's, and so is the maker thread.
  Taken Take(bool want_net, const CgroupLimits& limits) {
    Taken t;
    if (::getpid() != pid_) return t;
    std::unique_ptr<RunCgroups> stale;  // removed after the lock is released
    std::lock_guard<std::mutex> lock(mu_);
    ++runs_;
    if (want_net && net_ >= 0) {
      t.net = Fd(std::exchange(net_, -1));
      ++counts_.net_taken;
    }
    if (cgroups_ != nullptr) {
      if (SameLimits(cgroups_limits_, limits)) {
        t.cgroups = std::move(cgroups_);
        ++counts_.cgroups_taken;
      } else {
        stale = std::move(cgroups_);
      }
    }
    if (runs_ >= 2 && !making_ && !closing_ && want_net && net_ < 0 && !net_broken_) {
      // A maker that is not making has left its critical section: it ends without mu_.
      if (maker_.joinable()) maker_.join();
      making_ = true;
      try {
        maker_ = std::thread([this] { MakeNetwork(); });
      } catch (const std::system_error&) {
        making_ = false;  // no thread now: runs make their own
      }
    }
    return t;
  }

  // Keeps the cgroups of a run that has ended for the next run with the same limits, if
  // there is no spare yet and they are fit for it; else leaves them to the caller to remove.
  //
  // AIRLOCK_REUSE_CGROUPS=0 turns it off (for measuring). It was off by default for a while: a
  // sandbox that `airlock serve`'s standby built in kept cgroups now and then never got past
  // its init's first allocation in the sanitizer build. The cause was the fork, not the
  // cgroups: the supervisor was forked from a thread of the server while another thread held
  // a lock of the sanitizer's allocator (which has no fork handler), and keeping cgroups only
  // made that instant likelier by making the fork come sooner. Sandboxes of the server are now
  // forked by the launcher (launcher.h); serve_test.sh in the sanitizer build then passed 32
  // runs of 32 with the reuse on.
  bool Reuse(std::unique_ptr<RunCgroups>* cgroups, const CgroupLimits& limits) {
    const char* enabled = std::getenv("AIRLOCK_REUSE_CGROUPS");  // read each time: tests set it
    if (enabled != nullptr && std::strcmp(enabled, "0") == 0) return false;
    if (::getpid() != pid_ || *cgroups == nullptr) return false;
    auto room = [this] { return runs_ >= 2 && cgroups_ == nullptr && !closing_; };
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!room()) return false;
    }
    if (!(*cgroups)->Reusable()) return false;  // reads files: outside the lock
    std::lock_guard<std::mutex> lock(mu_);
    if (!room()) return false;
    cgroups_ = std::move(*cgroups);
    cgroups_limits_ = limits;
    ++counts_.cgroups_reused;
    return true;
  }

  SpareCounts counts() {
    std::lock_guard<std::mutex> lock(mu_);
    return counts_;
  }

  // Removes the spare cgroups (for tests that count cgroups).
  void DropCgroups() {
    if (::getpid() == pid_) (void)TakeCgroups();
  }

 private:
  Spares() = default;

  static bool SameLimits(const CgroupLimits& a, const CgroupLimits& b) {
    return a.memory_bytes == b.memory_bytes && a.pids == b.pids && a.cpus == b.cpus;
  }

  void MakeNetwork() {
    Result<int> ns = NewLoopbackNamespace();  // this thread ends in it, right after
    std::lock_guard<std::mutex> lock(mu_);
    making_ = false;
    if (!ns.ok()) {
      net_broken_ = true;  // it will not work later either: each run makes its own, as before
      return;
    }
    net_ = *ns;  // one maker at a time, and only after the last spare was taken
    ++counts_.net_made;
  }

  // The spare cgroups, to remove (after the lock is released).
  std::unique_ptr<RunCgroups> TakeCgroups() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::move(cgroups_);
  }

  void RemoveCgroupsAtExit() {
    if (::getpid() != pid_) return;  // a forked child's exit: the parent's spares stay
    std::unique_ptr<RunCgroups> spare;
    {
      std::lock_guard<std::mutex> lock(mu_);
      closing_ = true;  // nothing is kept from here on
      spare = std::move(cgroups_);
    }
  }

  const pid_t pid_ = ::getpid();
  std::mutex mu_;
  int net_ = -1;                         // GUARDED_BY(mu_)
  std::unique_ptr<RunCgroups> cgroups_;  // GUARDED_BY(mu_)
  CgroupLimits cgroups_limits_;          // GUARDED_BY(mu_)
  int64_t runs_ = 0;                     // GUARDED_BY(mu_)
  SpareCounts counts_;                   // GUARDED_BY(mu_)
  bool making_ = false;                  // GUARDED_BY(mu_)
  bool net_broken_ = false;              // GUARDED_BY(mu_)
  bool closing_ = false;                 // GUARDED_BY(mu_): the process is exiting
  std::thread maker_;                    // GUARDED_BY(mu_)
};

Status Supervise(ChildPlan& p) {
  // If airlock dies, the kernel kills us, init follows (its own parent-death signal) and
  // with init the whole pid namespace; our mount namespace, scratch tmpfs and all, goes too.
  RETURN_IF_ERROR(DieWithParent(p.caller));
  std::vector<int> keep = p.cgroup_fds;
  keep.insert(keep.end(), {p.stdout_w, p.stderr_w, p.status_w, p.control_r, p.stdin_r, p.egress_w,
                           p.start_r, p.net_r, TraceFd()});
  CloseAllFdsExcept(keep);
  TraceMark("supervisor: started");
  // Every mount from here on lives in this namespace only and disappears with it.
  RETURN_IF_ERROR(EnterPrivateMountNamespace());
  TraceMark("supervisor: mount namespace");
  RETURN_IF_ERROR(MountScratch(p.scratch_dir, p.spec->upper_size_bytes, p.spec->upper_inodes));
  TraceMark("supervisor: scratch mounted");
  EnterNetworkMadeAhead(p);
  ASSIGN_OR_RETURN(pid_t init, CloneInit(p));
  TraceMark("supervisor: init cloned");
  // Only init may hold these: the caller reads EOF if init fails before sending the socket,
  // and init reads EOF on "start" if the caller goes away.
  if (p.egress_w >= 0) ::close(p.egress_w);
  if (p.start_r >= 0) ::close(p.start_r);
  Send(p.status_w, Msg::kInitPid, &init, sizeof init);
  // Whatever clone3 did not do; init joins the v1 hierarchies itself after "go".
  Status admitted = p.in_cgroup2 ? Status::Ok() : p.cgroups.AdmitToCgroup2(init);
  if (!admitted.ok()) {
    ::kill(init, SIGKILL);  // still waiting for "go": it has done nothing yet
    WaitChild(init);
    return admitted;
  }
  if (::write(p.go_w, "g", 1) != 1) return SysError("start init");
  // go_w stays open until this process ends: its hang-up tells init we are gone (WaitForGo).
  ::close(p.stdout_w);
  ::close(p.stderr_w);
  if (p.stdin_r >= 0) ::close(p.stdin_r);
  int status = WaitChild(init);
  TraceMark("supervisor: init reaped");
  // init is reaped only after every other process of its pid namespace: the run is over.
  Send(p.status_w, Msg::kInitExited, &status, sizeof status);
  ::close(p.status_w);
  // Stay (and keep the upper layer mounted) while the caller reads it through
  // /proc/<our pid>/root; it closes the control pipe when done, or dies.
  char c;
  while (::read(p.control_r, &c, 1) < 0 && errno == EINTR) {
  }
  return Status::Ok();
}

[[noreturn]] void RunSupervisor(ChildPlan& p) {
  Status st = Supervise(p);
  if (!st.ok()) FailChild(p.status_w, st);
  ::_exit(0);
}

// ---- the supervisor forked by the launcher (launcher.h) -------------------------------------
//
// A plan crosses to the launcher as bytes (below) and a list of fds; its fd fields hold the
// caller's numbers, which the child maps to the ones it received. Bytes, not JSON: argv,
// env and paths are bytes, and need not be UTF-8.

std::vector<int> PlanFds(const ChildPlan& p) {
  std::vector<int> fds = p.cgroup_fds;
  for (int fd : {p.stdout_w, p.stderr_w, p.status_w, p.control_r, p.stdin_r, p.start_r, p.egress_w,
                 p.net_r}) {
    if (fd >= 0 && std::find(fds.begin(), fds.end(), fd) == fds.end()) fds.push_back(fd);
  }
  return fds;
}

// Fixed-width numbers in this machine's order (both ends are one binary), strings and lists
// with a length before them.
class WireWriter {
 public:
  void Int(int64_t v) { out_.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void Real(double v) { out_.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void Str(const std::string& v) {
    Int(static_cast<int64_t>(v.size()));
    out_ += v;
  }
  void Strs(const std::vector<std::string>& v) {
    Int(static_cast<int64_t>(v.size()));
    for (const std::string& x : v) Str(x);
  }
  void Ints(const std::vector<int>& v) {
    Int(static_cast<int64_t>(v.size()));
    for (int x : v) Int(x);
  }
  std::string& bytes() { return out_; }

 private:
  std::string out_;
};

// Reads what WireWriter wrote; a read past the end (or a bad length) makes done() false for
// good.
class WireReader {
 public:
  explicit WireReader(const std::string& in) : in_(in) {}
  int64_t Int() {
    int64_t v = 0;
    Take(&v, sizeof v);
    return v;
  }
  double Real() {
    double v = 0;
    Take(&v, sizeof v);
    return v;
  }
  std::string Str() {
    const int64_t n = Int();
    if (!ok_ || n < 0 || static_cast<uint64_t>(n) > in_.size() - pos_) {
      ok_ = false;
      return {};
    }
    std::string v = in_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return v;
  }
  std::vector<std::string> Strs() {
    std::vector<std::string> v(Count());
    for (std::string& x : v) x = Str();
    return v;
  }
  std::vector<int> Ints() {
    std::vector<int> v(Count());
    for (int& x : v) x = static_cast<int>(Int());
    return v;
  }
  bool done() const { return ok_ && pos_ == in_.size(); }

 private:
  size_t Count() {
    const int64_t n = Int();
    // Each element takes at least 8 bytes: a count larger than what is left is a bad blob.
    if (!ok_ || n < 0 || static_cast<uint64_t>(n) > (in_.size() - pos_) / 8) {
      ok_ = false;
      return 0;
    }
    return static_cast<size_t>(n);
  }
  void Take(void* out, size_t n) {
    if (!ok_ || in_.size() - pos_ < n) {
      ok_ = false;
      return;
    }
    std::memcpy(out, in_.data() + pos_, n);
    pos_ += n;
  }
  const std::string& in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

std::string PlanToWire(const ChildPlan& p, const std::vector<int>& fds) {
  WireWriter w;
  const SandboxSpec& s = *p.spec;
  w.Strs(s.argv);
  w.Str(s.workspace);
  w.Str(s.scratch_dir);
  w.Strs(s.hide);
  w.Strs(s.env);
  w.Int(s.network);
  w.Int(s.egress_port);
  w.Int(s.memory_bytes);
  w.Int(s.pids);
  w.Real(s.cpus);
  w.Int(s.timeout_ms);
  w.Int(s.upper_size_bytes);
  w.Int(s.upper_inodes);
  w.Int(s.output_cap_bytes);
  w.Strs(s.read_only_paths);
  w.Int(s.linger);
  w.Str(p.root.new_root);
  w.Str(p.root.workspace);
  w.Str(p.root.overlay_options);
  w.Str(p.root.tmp_options);
  w.Strs(p.root.read_only_paths);
  w.Int(p.cgroups.cgroup2_dir);
  w.Int(p.cgroups.cgroup2_procs);
  w.Ints(p.cgroups.v1_tasks);
  w.Int(p.caller);
  w.Int(p.last_cap);
  w.Str(p.scratch_dir);
  w.Strs(p.hide);
  w.Strs(p.writable);
  for (int fd : {p.stdout_w, p.stderr_w, p.status_w, p.control_r, p.stdin_r, p.start_r, p.egress_w,
                 p.net_r}) {
    w.Int(fd);
  }
  w.Ints(fds);
  return std::move(w.bytes());
}

// In the launcher's child. A blob that does not read back is a bug on the caller's side of
// one binary: the child exits, and the caller reads EOF on the status pipe ("the sandbox
// ended before ...") as for any child that died in its set-up.
[[noreturn]] void SupervisorFromWire(const std::string& blob, const std::vector<int>& received) {
  WireReader r(blob);
  // Never freed: this process ends in RunSupervisor.
  auto* spec = new SandboxSpec();
  spec->argv = r.Strs();
  spec->workspace = r.Str();
  spec->scratch_dir = r.Str();
  spec->hide = r.Strs();
  spec->env = r.Strs();
  spec->network = r.Int() != 0;
  spec->egress_port = static_cast<int>(r.Int());
  spec->memory_bytes = r.Int();
  spec->pids = r.Int();
  spec->cpus = r.Real();
  spec->timeout_ms = r.Int();
  spec->upper_size_bytes = r.Int();
  spec->upper_inodes = r.Int();
  spec->output_cap_bytes = r.Int();
  spec->read_only_paths = r.Strs();
  spec->linger = r.Int() != 0;
  auto* p = new ChildPlan();
  p->spec = spec;
  p->root.new_root = r.Str();
  p->root.workspace = r.Str();
  p->root.overlay_options = r.Str();
  p->root.tmp_options = r.Str();
  p->root.read_only_paths = r.Strs();
  const int cgroup2_dir = static_cast<int>(r.Int());
  const int cgroup2_procs = static_cast<int>(r.Int());
  const std::vector<int> v1_tasks = r.Ints();
  p->caller = static_cast<pid_t>(r.Int());
  p->last_cap = static_cast<int>(r.Int());
  p->scratch_dir = r.Str();
  p->hide = r.Strs();
  p->writable = r.Strs();
  int* const fd_fields[] = {&p->stdout_w, &p->stderr_w, &p->status_w, &p->control_r,
                            &p->stdin_r,  &p->start_r,  &p->egress_w, &p->net_r};
  for (int* field : fd_fields) *field = static_cast<int>(r.Int());
  const std::vector<int> sent = r.Ints();
  if (!r.done() || sent.size() != received.size()) ::_exit(kExitSetupFailed);
  auto fd = [&](int caller_fd) {
    if (caller_fd < 0) return -1;
    auto it = std::find(sent.begin(), sent.end(), caller_fd);
    if (it == sent.end()) ::_exit(kExitSetupFailed);
    return received[static_cast<size_t>(it - sent.begin())];
  };
  for (int* field : fd_fields) *field = fd(*field);
  p->cgroups.cgroup2_dir = fd(cgroup2_dir);
  p->cgroups.cgroup2_procs = fd(cgroup2_procs);
  for (int t : v1_tasks) p->cgroups.v1_tasks.push_back(fd(t));
  p->cgroup_fds = p->cgroups.fds();
  for (const std::string& a : spec->argv) p->argv.push_back(const_cast<char*>(a.c_str()));
  p->argv.push_back(nullptr);
  for (const std::string& e : spec->env) p->envp.push_back(const_cast<char*>(e.c_str()));
  p->envp.push_back(nullptr);
  ::prctl(PR_SET_NAME, "airlock", 0, 0, 0);  // not the launcher's name, which it inherited
  TraceMark("supervisor: forked by the launcher");
  RunSupervisor(*p);
}

// Forks the run's supervisor: through the launcher if this process started one, else here.
Result<pid_t> ForkSupervisor(ChildPlan& plan) {
  if (LauncherRunning()) {
    const std::vector<int> fds = PlanFds(plan);
    Result<pid_t> pid = Launch(PlanToWire(plan, fds), fds);
    if (pid.ok() || LauncherRunning()) return pid;
    // The launcher is gone (it dies only with us, or by someone's kill): every later run
    // forks here, as a process without a launcher does. Said once.
    static std::once_flag said;
    std::call_once(said, [&] {
      std::fprintf(stderr, "airlock: %s; from now on each sandbox is forked by its own thread\n",
                   pid.status().message().c_str());
    });
    return pid;
  }
  pid_t pid = ::fork();
  if (pid < 0) return SysError("fork the sandbox supervisor");
  if (pid == 0) RunSupervisor(plan);
  return pid;
}

// The caller's handle on the supervisor: killed and reaped on every exit path.
class SupervisorProcess {
 public:
  SupervisorProcess(pid_t pid, Fd control) : pid_(pid), control_(std::move(control)) {}
  SupervisorProcess(const SupervisorProcess&) = delete;
  SupervisorProcess& operator=(const SupervisorProcess&) = delete;
  ~SupervisorProcess() {
    if (pid_ > 0) {
      if (control_.get() >= 0) ::kill(pid_, SIGKILL);  // not let go: still holding the run
      Reap();
    }
  }
  pid_t pid() const { return pid_; }
  void Kill() const { ::kill(pid_, SIGKILL); }
  // Lets it exit (tearing down the upper layer with its mount namespace) and reaps it.
  void Release() {
    LetGo();
    Reap();
  }
  // Lets it exit; the destructor (or Release) reaps it.
  void LetGo() { control_.reset(); }

 private:
  void Reap() {
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
  pid_t pid_;
  Fd control_;
};

// ---- caller: validation ----------------------------------------------------------------------

Status CheckDir(const std::string& path, const char* what) {
  if (path.empty() || path[0] != '/') {
    return Status::InvalidArgument(std::string(what) + " must be an absolute path: '" + path + "'");
  }
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    return Status::InvalidArgument(std::string(what) + " " + path + ": " + std::strerror(errno));
  }
  if (S_ISLNK(st.st_mode)) {
    return Status::InvalidArgument(std::string(what) + " is a symlink: " + path);
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument(std::string(what) + " is not a directory: " + path);
  }
  char real[PATH_MAX];
  if (::realpath(path.c_str(), real) == nullptr || path != real) {
    return Status::InvalidArgument(std::string(what) +
                                   " must be a canonical path (no symlink, "
                                   "'..' or trailing '/'): " +
                                   path);
  }
  return Status::Ok();
}

bool IsBeneath(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         (dir == "/" || path[dir.size()] == '/'));
}

Status ValidateCommand(const std::vector<std::string>& argv) {
  if (argv.empty()) return Status::InvalidArgument("empty command: argv has no elements");
  if (argv[0].empty()) return Status::InvalidArgument("empty command name (argv[0] is '')");
  size_t total = 0;
  for (const std::string& a : argv) {
    if (a.find('\0') != std::string::npos) {
      return Status::InvalidArgument("an argument or variable contains a NUL byte");
    }
    total += a.size();
  }
  if (argv.size() > kMaxCommandArgs || total > kMaxCommandBytes) {
    return Status::InvalidArgument("command too long: " + std::to_string(argv.size()) +
                                   " arguments of " + std::to_string(total) + " bytes (at most " +
                                   std::to_string(kMaxCommandArgs) + " arguments, " +
                                   std::to_string(kMaxCommandBytes) + " bytes)");
  }
  return Status::Ok();
}

// `need_command`: false for a run prepared before its command is known (PreparedRun), whose
// command is checked by Run.
Status ValidateSpec(const SandboxSpec& spec, bool need_command = true) {
  if (need_command || !spec.argv.empty()) RETURN_IF_ERROR(ValidateCommand(spec.argv));
  for (const std::string& s : spec.env) {
    if (s.find('\0') != std::string::npos) {
      return Status::InvalidArgument("an argument or variable contains a NUL byte");
    }
  }
  RETURN_IF_ERROR(CheckDir(spec.workspace, "workspace"));
  if (spec.workspace == "/") return Status::InvalidArgument("workspace must not be /");
  RETURN_IF_ERROR(CheckDir(spec.scratch_dir, "scratch dir"));
  if (IsBeneath(spec.scratch_dir, spec.workspace) || IsBeneath(spec.workspace, spec.scratch_dir)) {
    return Status::InvalidArgument("the scratch dir and the workspace must not contain each other");
  }
  for (const std::string& h : spec.hide) {
    if (h.empty() || h[0] != '/') {
      return Status::InvalidArgument("hide paths must be absolute: '" + h + "'");
    }
  }
  if (spec.timeout_ms <= 0) return Status::InvalidArgument("timeout_ms must be positive");
  if (spec.egress_port != 0 && (spec.network || spec.egress_port < 1 || spec.egress_port > 65535)) {
    return Status::InvalidArgument("an egress port needs network off and a port 1-65535");
  }
  if (spec.upper_size_bytes <= 0 || spec.upper_inodes <= 0) {
    return Status::InvalidArgument("upper_size_bytes and upper_inodes must be positive");
  }
  if (spec.memory_bytes < 0 || spec.pids < 0 || spec.cpus < 0 || spec.output_cap_bytes < 0) {
    return Status::InvalidArgument("negative limit in the sandbox spec");
  }
  return Status::Ok();
}

// ---- caller: collecting output and messages ------------------------------------------------

struct Collected {
  std::string setup_error;
  int exec_errno = 0;
  pid_t init_pid = 0;
  bool have_baseline = false, have_report = false, init_exited = false, started = false;
  NetCounters baseline;
  ReportMsg report{};
  int init_status = 0;
  bool timed_out = false;
  bool force_killed = false;
  NetCounters at_timeout;  // read from init's /proc at the timeout, before the kill
};

void ParseMessages(std::string* buf, Collected* c) {
  while (buf->size() >= kMsgHeader) {
    uint16_t len;
    std::memcpy(&len, buf->data() + 1, sizeof len);
    if (buf->size() < kMsgHeader + len) return;
    Msg type = static_cast<Msg>((*buf)[0]);
    const char* payload = buf->data() + kMsgHeader;
    auto take = [&](void* out, size_t size) {
      if (len == size) std::memcpy(out, payload, size);
      return len == size;
    };
    switch (type) {
      case Msg::kInitPid:
        take(&c->init_pid, sizeof c->init_pid);
        break;
      case Msg::kSetupError:
        if (c->setup_error.empty()) c->setup_error.assign(payload, len);
        break;
      case Msg::kBaseline:
        c->have_baseline = take(&c->baseline, sizeof c->baseline);
        break;
      case Msg::kExecError:
        take(&c->exec_errno, sizeof c->exec_errno);
        break;
      case Msg::kReport:
        c->have_report = take(&c->report, sizeof c->report);
        break;
      case Msg::kInitExited:
        c->init_exited = take(&c->init_status, sizeof c->init_status);
        break;
      case Msg::kStarted:
        c->started = true;
        break;
    }
    buf->erase(0, kMsgHeader + len);
  }
}

class OutputSink {
 public:
  OutputSink(std::string* data, int64_t* bytes, bool* truncated, int64_t cap)
      : data_(data), bytes_(bytes), truncated_(truncated), cap_(cap) {}
  void Append(const char* p, size_t n) {
    *bytes_ += static_cast<int64_t>(n);
    size_t room =
        static_cast<size_t>(std::max<int64_t>(0, cap_ - static_cast<int64_t>(data_->size())));
    data_->append(p, std::min(room, n));
    if (n > room) *truncated_ = true;
  }

 private:
  std::string* data_;
  int64_t* bytes_;
  bool* truncated_;
  int64_t cap_;
};

int PollTimeoutMs(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, INT_MAX));
}

// Reads output and messages until every writer is gone (the run is over, or was killed).
// At the deadline the whole cgroup is SIGKILLed; if even that does not end the run, the
// supervisor is.
void Collect(const SandboxSpec& spec, int out_fd, int err_fd, int status_fd,
             const RunCgroups& cgroups, const SupervisorProcess& supervisor,
             SandboxOutcome* outcome, Collected* c) {
  OutputSink sinks[2] = {{&outcome->stdout_data, &outcome->stdout_bytes, &outcome->stdout_truncated,
                          spec.output_cap_bytes},
                         {&outcome->stderr_data, &outcome->stderr_bytes, &outcome->stderr_truncated,
                          spec.output_cap_bytes}};
  pollfd fds[3] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}, {status_fd, POLLIN, 0}};
  std::string messages;
  auto deadline = Clock::now() + std::chrono::milliseconds(spec.timeout_ms);
  // On the heap, not in static TLS: a thread_local array would be zeroed for every thread of
  // the process at its start, and for the main thread at exec (64 KiB: 16 page faults each).
  // Only the bytes a read returns are written here.
  constexpr size_t kBufBytes = 64 * 1024;
  const std::unique_ptr<char[]> buf(new char[kBufBytes]);
  // Until the output pipes are closed and init has reported (every process of the run but
  // init is gone by then; init's own exit need not be waited for), or every writer is gone.
  while (fds[0].fd >= 0 || fds[1].fd >= 0 || (fds[2].fd >= 0 && !c->have_report)) {
    const bool waiting_forever = deadline == Clock::time_point::max();
    int timeout = waiting_forever ? -1 : PollTimeoutMs(deadline);
    if (timeout == 0) {
      if (c->timed_out) {
        supervisor.Kill();
        c->force_killed = true;
        deadline = Clock::time_point::max();
        continue;
      }
      if (c->init_pid > 0 && !spec.network) {
        c->at_timeout = ReadNetCounters("/proc/" + std::to_string(c->init_pid));
      }
      cgroups.KillAll();
      c->timed_out = true;
      deadline = Clock::now() + kKillGrace;
      continue;
    }
    int n = ::poll(fds, 3, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 3; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t got = ::read(fds[i].fd, buf.get(), kBufBytes);
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got <= 0) {
        fds[i].fd = -1;
        continue;
      }
      if (i < 2) {
        sinks[i].Append(buf.get(), static_cast<size_t>(got));
      } else {
        messages.append(buf.get(), static_cast<size_t>(got));
        ParseMessages(&messages, c);
      }
    }
  }
}

// ---- caller: the outcome -------------------------------------------------------------------

std::string UpperFull(const std::string& upper) {
  struct statvfs vfs;
  if (::statvfs(upper.c_str(), &vfs) != 0) return "";
  if (vfs.f_bfree == 0) return "size";
  if (vfs.f_ffree == 0) return "files";
  return "";
}

void FillExit(int wait_status, SandboxOutcome* out) {
  if (WIFEXITED(wait_status)) {
    out->exit_code = WEXITSTATUS(wait_status);
  } else if (WIFSIGNALED(wait_status)) {
    out->term_signal = WTERMSIG(wait_status);
    out->exit_code = 128 + out->term_signal;
  }
}

Status RunFailure(const std::string& command, const Collected& c) {
  if (!c.setup_error.empty()) return Status::Internal(c.setup_error);
  if (c.exec_errno == ENOENT) return Status::InvalidArgument("command not found: " + command);
  if (c.exec_errno != 0) {
    return Status::InvalidArgument("cannot execute " + command + ": " +
                                   std::strerror(c.exec_errno));
  }
  if (c.force_killed) {
    return Status::Internal("sandbox did not stop after its cgroup was killed; supervisor killed");
  }
  // A prepared run's init that got no whole command (SendStart gave up) ran nothing.
  if (!c.have_report && c.init_exited && WIFEXITED(c.init_status) &&
      WEXITSTATUS(c.init_status) == kExitNotStarted) {
    return Status::Internal("the sandbox never received the whole command; it did not run");
  }
  if (!c.init_exited && !c.have_report) {
    return Status::Internal("sandbox supervisor exited unexpectedly");
  }
  return Status::Ok();
}

// `proxied`: connections the egress proxy accepted. They are TCP connects of the command
// that went to airlock (and were decided there), not attempts to get out.
void FillNetwork(const SandboxSpec& spec, const Collected& c, int64_t proxied,
                 SandboxOutcome* out) {
  if (spec.network || !c.have_baseline) return;
  NetCounters after = c.have_report ? c.report.after : c.at_timeout;
  after.tcp_active_opens -= proxied;
  out->network_attempt = DescribeNetworkUse(c.baseline, after, &out->network_detail);
}

// Held (shared) for the whole run: CleanupStale in another airlock process skips a scratch
// dir it cannot lock exclusively, instead of rmdir-ing a mountpoint of a live run.
Result<Fd> LockScratchDir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) return SysError("open scratch dir " + dir);
  if (::flock(fd.get(), LOCK_SH) != 0) return SysError("lock scratch dir " + dir);
  return fd;
}

Result<int> Preflight() {
  if (LandlockAbi() < 1) {
    return Status::FailedPrecondition(
        "landlock is not available in this kernel; refusing to run commands without it");
  }
  return LastCapability();
}

// The AF_UNIX pair that carries the egress socket from init to the caller.
Result<Pipe> MakeEgressChannel(const SandboxSpec& spec) {
  if (spec.egress_port == 0) return Pipe{};
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
    return SysError("egress socketpair");
  }
  return Pipe{Fd(fds[0]), Fd(fds[1])};
}

// "start" and the command: 's', the argument count, then each argument's length and bytes
// (native byte order: init is this program). Read by init's WaitForStart.
std::string EncodeStart(const std::vector<std::string>& argv) {
  std::string msg = "s";
  auto put32 = [&msg](uint32_t v) { msg.append(reinterpret_cast<const char*>(&v), sizeof v); };
  put32(static_cast<uint32_t>(argv.size()));
  for (const std::string& a : argv) {
    put32(static_cast<uint32_t>(a.size()));
    msg += a;
  }
  return msg;
}

// Sends it whole, or gives up at `deadline` (an init stuck before it reads) or on an error
// (init gone). Giving up shuts the socket for writing: init reads a cut message as EOF and
// exits without the command, and Collect reports why.
void SendStart(int fd, const std::vector<std::string>& argv, Clock::time_point deadline) {
  const std::string msg = EncodeStart(argv);
  size_t sent = 0;
  while (sent < msg.size()) {
    const ssize_t n = ::send(fd, msg.data() + sent, msg.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd pfd = {fd, POLLOUT, 0};
      const int timeout = PollTimeoutMs(deadline);
      if (timeout > 0) {
        if (::poll(&pfd, 1, timeout) >= 0 || errno == EINTR) continue;
      }
    }
    ::shutdown(fd, SHUT_WR);
    return;
  }
}

}  // namespace

// ---- a run, prepared then started ----------------------------------------------------------

struct PreparedRun::State {
  SandboxSpec spec;
  Fd scratch_lock;
  std::unique_ptr<RunCgroups> cgroups;
  std::unique_ptr<SupervisorProcess> supervisor;
  Fd out, err, status, egress_channel, start;
  bool ran = false;
  bool let_go = false;  // Run got to the end: the supervisor exits on its own
  bool finished = false;
  // Network off: the thread making the run's network namespace (Prepare). It may still be
  // at work when Prepare returns; joined last, when the run goes.
  std::jthread net_maker;
};

PreparedRun::PreparedRun() : state_(std::make_unique<State>()) {}

// Destroyed unrun (or after a failed Run): Finish() tells init to exit without the command,
// kills and reaps the supervisor (every mount of the run goes with it) and removes the
// cgroups.
PreparedRun::~PreparedRun() {
  (void)Finish();
}

const SandboxSpec& PreparedRun::spec() const {
  return state_->spec;
}

bool PreparedRun::Alive() const {
  const State& st = *state_;
  if (st.ran || st.finished || st.start.get() < 0) return false;
  // init holds the other end of "start" until it exits: a hang-up means it is gone (a
  // failed setup step, a kill). Its files are released last in its exit, after its
  // namespaces: an init killed just before this look passes it, and the command then
  // "runs" in a sandbox that is going, and is reported killed by that signal.
  pollfd pfd = {st.start.get(), 0, 0};
  return PollNow(&pfd) == 0;
}

namespace {

// Makes a network namespace with loopback up on the calling thread (which ends in it) and
// sends it on fd ('N'), or 'F' when it cannot: init then gets one at clone. `mark` is traced
// once it is made.
void MakeAndSendNetwork(int fd, const char* mark) {
  Result<int> ns = NewLoopbackNamespace();
  TraceMark(mark);
  (void)SendFd(fd, ns.ok() ? 'N' : 'F', ns.ok() ? *ns : -1);
  if (ns.ok()) ::close(*ns);
}

// MakeNetworkNamespaceEarly's namespace: the read end its maker sends it to, and the maker,
// until a run takes both (the run then joins the maker when it ends, as its own). Never
// destroyed: a maker still at work when the process exits ends with it.
struct EarlyNetwork {
  std::mutex mu;
  bool started = false;  // GUARDED_BY(mu)
  Fd read;               // GUARDED_BY(mu): -1 once taken
  std::jthread maker;    // GUARDED_BY(mu)
  pid_t pid = -1;        // GUARDED_BY(mu): the process that made it
};

EarlyNetwork& Early() {
  static EarlyNetwork* early = new EarlyNetwork();
  return *early;
}

// The namespace made early, as Prepare's own maker would hand it over; false if there is
// none (never asked for, taken already, or asked for in another process: a forked child's
// copy of the slot is its parent's).
bool TakeEarlyNetwork(Pipe* net, std::jthread* maker) {
  EarlyNetwork& e = Early();
  std::lock_guard<std::mutex> lock(e.mu);
  if (e.read.get() < 0 || e.pid != ::getpid()) return false;
  net->read = std::move(e.read);
  *maker = std::move(e.maker);
  return true;
}

// For a run that does not use the namespace made early (network on): closes it and joins its
// maker, so that the run's fork finds no other thread (see the join before ForkSupervisor).
// A maker still at work finishes first: its send then fails (EPIPE, MSG_NOSIGNAL) and it ends.
void DropEarlyNetwork() {
  EarlyNetwork& e = Early();
  std::jthread maker;
  {
    std::lock_guard<std::mutex> lock(e.mu);
    if (e.read.get() < 0 || e.pid != ::getpid()) return;
    e.read.reset();
    maker = std::move(e.maker);
  }
  if (maker.joinable()) maker.join();
}

}  // namespace

void MakeNetworkNamespaceEarly() {
  EarlyNetwork& e = Early();
  std::lock_guard<std::mutex> lock(e.mu);
  if (e.started) return;
  e.started = true;
  Result<Pipe> pair = MakeSocketPair();
  if (!pair.ok()) return;  // the run makes its own
  try {
    e.maker = std::jthread([fd = std::move(pair->write)] {
      MakeAndSendNetwork(fd.get(), "sandbox: network namespace made early");
    });
    (void)PlaceAwayFromCaller(e.maker.native_handle());
  } catch (const std::system_error&) {
    return;  // no thread: the run makes its own
  }
  e.read = std::move(pair->read);
  e.pid = ::getpid();
}

Result<std::unique_ptr<PreparedRun>> PreparedRun::Prepare(const SandboxSpec& spec) {
  TraceMark("sandbox: start");
  std::unique_ptr<PreparedRun> run(new PreparedRun());
  State& st = *run->state_;
  st.spec = spec;
  RETURN_IF_ERROR(ValidateSpec(st.spec, /*need_command=*/false));
  // Network off: the run's network namespace is the spare one if it is ready (SpareNetwork),
  // the one made early (MakeNetworkNamespaceEarly), or one made on a thread of its own while
  // this one goes on; each is handed to the supervisor (EnterNetworkMadeAhead). Declared
  // after what it uses: an exit before the fork joins it first; after the fork, the run
  // keeps it.
  Pipe net;
  std::jthread net_maker;
  const CgroupLimits limits{st.spec.memory_bytes, st.spec.pids, st.spec.cpus};
  Spares::Taken spare = Spares::Get().Take(!st.spec.network, limits);
  if (spare.net.get() >= 0) {
    ASSIGN_OR_RETURN(net, MakeSocketPair());
    // Queued in the pair until the supervisor reads it (a failed send: init gets one at clone).
    (void)SendFd(net.write.get(), 'N', spare.net.get());
    net.write.reset();
    spare.net.reset();
    TraceMark("sandbox: spare network namespace taken");
  } else if (!st.spec.network && TakeEarlyNetwork(&net, &net_maker)) {
    // Made before this process knew the run (MakeNetworkNamespaceEarly): the same empty
    // namespace with loopback, handed over the same way.
    TraceMark("sandbox: network namespace made early taken");
  } else if (!st.spec.network) {
    ASSIGN_OR_RETURN(net, MakeSocketPair());
    try {
      net_maker = std::jthread([fd = std::move(net.write)] {
        MakeAndSendNetwork(fd.get(), "sandbox: network namespace made");
      });
      (void)PlaceAwayFromCaller(net_maker.native_handle());
    } catch (const std::system_error&) {
      net = Pipe{};  // no thread (at a limit of threads): init gets one at clone, as before
    }
  }
  DropEarlyNetwork();  // not this run's (network on): gone before the fork, maker joined
  ASSIGN_OR_RETURN(st.scratch_lock, LockScratchDir(st.spec.scratch_dir));
  ASSIGN_OR_RETURN(int last_cap, Preflight());
  TraceMark("sandbox: validated, locked, prepared");
  if (spare.cgroups != nullptr) {
    st.cgroups = std::move(spare.cgroups);
    TraceMark("sandbox: spare cgroups taken");
  } else {
    ASSIGN_OR_RETURN(st.cgroups, RunCgroups::Create(limits));
    TraceMark("sandbox: cgroups created");
  }
  ASSIGN_OR_RETURN(Pipe out, MakePipe());
  ASSIGN_OR_RETURN(Pipe err, MakePipe());
  ASSIGN_OR_RETURN(Pipe status, MakePipe());
  ASSIGN_OR_RETURN(Pipe control, MakePipe());
  ASSIGN_OR_RETURN(Pipe egress_channel, MakeEgressChannel(st.spec));
  // A socket pair, not a pipe: "start" is sent with MSG_NOSIGNAL, so a run whose init has
  // already failed is an error to read, not a SIGPIPE.
  int start_fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, start_fds) != 0) {
    return SysError("start socketpair");
  }
  Pipe start{Fd(start_fds[0]), Fd(start_fds[1])};
  ChildPlan plan = MakePlan(st.spec, *st.cgroups, last_cap);
  plan.net_r = net.read.get();
  plan.stdout_w = out.write.get();
  plan.stderr_w = err.write.get();
  plan.status_w = status.write.get();
  plan.control_r = control.read.get();
  plan.egress_w = egress_channel.write.get();
  plan.start_r = start.read.get();

  // A maker that has sent its namespace is ending: joined here, so that the fork finds one
  // thread (an ending thread frees memory, and a fork in the middle of that is what the
  // launcher exists to avoid; launcher.h). One still making it goes on beside the fork, as
  // it always did: it makes system calls only (and allocates only to describe a failure).
  // The namespace waits in the socket.
  pollfd sent = {net.read.get(), POLLIN, 0};
  if (net_maker.joinable() && PollNow(&sent) > 0) net_maker.join();
  ASSIGN_OR_RETURN(pid_t pid, ForkSupervisor(plan));
  TraceMark("sandbox: supervisor forked");
  net.read.reset();  // the supervisor's now
  st.net_maker = std::move(net_maker);
  st.supervisor = std::make_unique<SupervisorProcess>(pid, std::move(control.write));
  // Only the sandbox holds the write ends now: EOF on them means it is done.
  st.out = std::move(out.read);
  st.err = std::move(err.read);
  st.status = std::move(status.read);
  st.egress_channel = std::move(egress_channel.read);
  st.start = std::move(start.write);
  return run;
}

Result<SandboxOutcome> PreparedRun::Run(const std::function<Status(const std::string&)>& inspect,
                                        EgressListener* egress) {
  return Run(state_->spec.argv, inspect, egress);
}

Result<SandboxOutcome> PreparedRun::Run(const std::vector<std::string>& argv,
                                        const std::function<Status(const std::string&)>& inspect,
                                        EgressListener* egress) {
  State& st = *state_;
  const SandboxSpec& spec = st.spec;
  if (st.ran) return Status::FailedPrecondition("a prepared sandbox runs its command once");
  RETURN_IF_ERROR(ValidateCommand(argv));
  st.ran = true;
  st.spec.argv = argv;
  const auto start = Clock::now();
  if (spec.egress_port != 0 && egress == nullptr) {
    return Status::InvalidArgument("an egress port needs a listener to serve it");
  }
  // init sends the egress socket before it waits for "start". No socket (init failed
  // first) is not an error here: Collect reads why the setup failed.
  if (spec.egress_port != 0) {
    Result<int> listener = ReceiveListener(st.egress_channel.get(), spec.timeout_ms);
    if (listener.ok()) {
      egress->Serve(*listener);
    } else if (listener.status().code() != StatusCode::kNotFound) {
      return listener.status();  // the supervisor is killed on the way out
    }
  }
  // A failed send means init is gone already; Collect learns why from the status pipe.
  // Lingering, "start" stays open: init waits for its end after the report (Finish closes
  // it). Otherwise init exits once it has reported.
  SendStart(st.start.get(), argv, start + std::chrono::milliseconds(spec.timeout_ms));
  if (!spec.linger) ::shutdown(st.start.get(), SHUT_WR);
  SandboxOutcome outcome;
  Collected c;
  Collect(spec, st.out.get(), st.err.get(), st.status.get(), *st.cgroups, *st.supervisor, &outcome,
          &c);
  TraceMark("sandbox: output collected");
  // Every process of the run is gone: nothing can make another request.
  const int64_t proxied = spec.egress_port != 0 ? egress->Stop() : 0;
  RETURN_IF_ERROR(RunFailure(spec.argv[0], c));
  FillExit(c.have_report ? c.report.wait_status : c.init_status, &outcome);
  FillNetwork(spec, c, proxied, &outcome);

  // The supervisor keeps its mount namespace (and the upper layer) alive until Release().
  std::string upper = "/proc/" + std::to_string(st.supervisor->pid()) + "/root" +
                      ScratchLayout(spec.scratch_dir).upper;
  outcome.upper_full = UpperFull(upper);
  Status inspected = inspect ? inspect(upper) : Status::Ok();
  TraceMark("sandbox: upper inspected");
  // Done with the upper layer: the supervisor may go, and unmount everything as it does.
  st.supervisor->LetGo();
  st.let_go = true;
  RETURN_IF_ERROR(inspected);

  outcome.killed_by = st.cgroups->LimitHit();
  if (outcome.killed_by.empty() && c.timed_out) outcome.killed_by = "timeout";
  outcome.duration_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  return outcome;
}

Status PreparedRun::Finish() {
  State& st = *state_;
  if (st.finished) return Status::Ok();
  st.finished = true;
  // Never run: EOF on "start" tells init to exit without the command; after a run, init
  // waits for it after its report (WaitForFinish). Closed before the
  // status pipe is read to its end, which needs init gone: init's parent-death signal
  // (set by init itself after clone) misses a supervisor killed before init first ran, and
  // such an init would otherwise wait for "start" forever.
  st.start.reset();
  // Never run, or a Run that failed: the supervisor is killed (and init, and the command,
  // with it) before the cgroups go.
  if (!st.let_go) st.supervisor.reset();
  // After a whole Run: init reported once it was alone, and may still be exiting. The
  // status pipe ends when it is gone (the supervisor closes its end after reaping it); then
  // the cgroups are empty, whatever the supervisor is still doing.
  char buf[256];
  while (st.status.get() >= 0) {
    const ssize_t n = ::read(st.status.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
  }
  st.status.reset();
  if (st.let_go && st.cgroups) {
    // A whole run's cgroups may be kept for the next run (Spares::Reuse), once nothing of
    // this one is charged to them: the supervisor reaped, its mount namespace (the upper
    // layer's tmpfs) is gone. (A run that never ran or failed: its init may not be reaped
    // yet, so its cgroups go.)
    st.supervisor.reset();
    TraceMark("sandbox: supervisor reaped");
    const CgroupLimits limits{st.spec.memory_bytes, st.spec.pids, st.spec.cpus};
    if (Spares::Get().Reuse(&st.cgroups, limits)) {
      TraceMark("sandbox: cgroups kept for the next run");
      return Status::Ok();
    }
  }
  Status removed = st.cgroups ? st.cgroups->Remove() : Status::Ok();
  st.cgroups.reset();
  TraceMark("sandbox: cgroups removed");
  st.supervisor.reset();  // reaped: its mount namespace, the upper layer with it, is gone
  TraceMark("sandbox: supervisor reaped");
  return removed;
}

Status StartSandboxLauncher() {
  // What every run works out once per process (the last capability's number), worked out
  // before the fork, so that the launcher and its clones inherit it. An error here is each
  // run's to report, from its own Preflight.
  (void)Preflight();
  return StartLauncher(&SupervisorFromWire);
}

SpareCounts SpareCountsSoFar() {
  return Spares::Get().counts();
}

void DropSpareCgroups() {
  Spares::Get().DropCgroups();
}

Result<SandboxOutcome> RunSandboxed(const SandboxSpec& spec,
                                    const std::function<Status(const std::string&)>& inspect,
                                    EgressListener* egress) {
  if (spec.egress_port != 0 && egress == nullptr) {
    return Status::InvalidArgument("an egress port needs a listener to serve it");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<PreparedRun> run, PreparedRun::Prepare(spec));
  ASSIGN_OR_RETURN(SandboxOutcome outcome, run->Run(inspect, egress));
  RETURN_IF_ERROR(run->Finish());
  return outcome;
}

Status CleanupStale(const std::string& scratch_root) {
  Status cgroups = CleanupStaleCgroups();
  // A run's scratch dir only ever holds mounts of its supervisor's private namespace, so
  // from here a stale one is an empty directory; rmdir leaves anything else alone. A live
  // run (of another airlock process) holds a shared flock on its dir: rmdir of a directory
  // that is a mountpoint in another namespace would detach that run's upper layer.
  DIR* dir = ::opendir(scratch_root.c_str());
  if (dir == nullptr) return errno == ENOENT ? cgroups : SysError("open " + scratch_root);
  while (dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    Fd entry(::openat(::dirfd(dir), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (entry.get() < 0 || ::flock(entry.get(), LOCK_EX | LOCK_NB) != 0) continue;
    ::unlinkat(::dirfd(dir), name.c_str(), AT_REMOVEDIR);
  }
  ::closedir(dir);
  return cgroups;
}

// ---- a long-lived run -------------------------------------------------------------------------
//
// The same supervisor and init as RunSandboxed, with the command's stdin a pipe and no
// Collect(): the caller talks to the command instead, and reads the status pipe only to learn
// that the command started, and at the end how it ended.

struct SandboxedProcess::State {
  SandboxSpec spec;
  Fd scratch_lock;
  std::unique_ptr<RunCgroups> cgroups;
  std::unique_ptr<SupervisorProcess> supervisor;
  Fd in, out, status;
  Collected collected;
  std::string messages;
  std::string upper;
  std::mutex mu;  // Stop() from any thread
  bool stopped = false;
  std::string exit_text;

  // Reads the status pipe until `done` or EOF or the deadline. false: EOF (every sandbox
  // process is gone) or the deadline.
  bool ReadStatus(Clock::time_point deadline, const std::function<bool()>& done) {
    char buf[512];
    while (!done()) {
      if (status.get() < 0) return false;
      pollfd pfd{status.get(), POLLIN, 0};
      const int timeout = deadline == Clock::time_point::max() ? -1 : PollTimeoutMs(deadline);
      const int n = ::poll(&pfd, 1, timeout);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      const ssize_t got = ::read(status.get(), buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        status.reset();
        return done();
      }
      messages.append(buf, static_cast<size_t>(got));
      ParseMessages(&messages, &collected);
    }
    return true;
  }
};

SandboxedProcess::SandboxedProcess() : state_(std::make_unique<State>()) {}

SandboxedProcess::~SandboxedProcess() {
  Stop(std::chrono::milliseconds(0));
}

int SandboxedProcess::stdin_fd() const {
  return state_->in.get();
}
int SandboxedProcess::stdout_fd() const {
  return state_->out.get();
}
const std::string& SandboxedProcess::upper_path() const {
  return state_->upper;
}

Result<std::unique_ptr<SandboxedProcess>> SandboxedProcess::Start(const SandboxSpec& spec) {
  std::unique_ptr<SandboxedProcess> proc(new SandboxedProcess());
  State& st = *proc->state_;
  st.spec = spec;
  RETURN_IF_ERROR(ValidateSpec(st.spec));
  ASSIGN_OR_RETURN(st.scratch_lock, LockScratchDir(st.spec.scratch_dir));
  ASSIGN_OR_RETURN(int last_cap, Preflight());
  ASSIGN_OR_RETURN(st.cgroups,
                   RunCgroups::Create({st.spec.memory_bytes, st.spec.pids, st.spec.cpus}));
  ASSIGN_OR_RETURN(Pipe in, MakePipe());
  ASSIGN_OR_RETURN(Pipe out, MakePipe());
  ASSIGN_OR_RETURN(Pipe status, MakePipe());
  ASSIGN_OR_RETURN(Pipe control, MakePipe());
  // The command's stderr is ours (the MCP client's log), as for an unsandboxed server.
  Fd err(::fcntl(2, F_DUPFD_CLOEXEC, 3));
  if (err.get() < 0) return SysError("dup stderr");
  ChildPlan plan = MakePlan(st.spec, *st.cgroups, last_cap);
  plan.stdout_w = out.write.get();
  plan.stderr_w = err.get();
  plan.status_w = status.write.get();
  plan.control_r = control.read.get();
  plan.stdin_r = in.read.get();

  ASSIGN_OR_RETURN(pid_t pid, ForkSupervisor(plan));
  st.supervisor = std::make_unique<SupervisorProcess>(pid, std::move(control.write));
  in.read.reset();
  out.write.reset();
  err.reset();
  status.write.reset();
  control.read.reset();
  st.in = std::move(in.write);
  st.out = std::move(out.read);
  st.status = std::move(status.read);

  Collected& c = st.collected;
  const bool started = st.ReadStatus(Clock::time_point::max(), [&] {
    return c.started || c.init_exited;
  }) && c.started;
  if (!started) {
    Status why = RunFailure(st.spec.argv[0], c);
    proc->Stop(std::chrono::milliseconds(0));
    if (!why.ok()) return why;
    return Status::Internal("the sandbox ended before the command started");
  }
  st.upper = "/proc/" + std::to_string(pid) + "/root" + ScratchLayout(st.spec.scratch_dir).upper;
  return proc;
}

std::string SandboxedProcess::Stop(std::chrono::milliseconds grace) {
  State& st = *state_;
  std::lock_guard<std::mutex> lock(st.mu);
  if (st.stopped) return st.exit_text;
  st.stopped = true;
  st.in.reset();  // EOF on its stdin: a well-behaved server exits
  Collected& c = st.collected;
  auto ended = [&] { return c.init_exited; };
  if (!st.ReadStatus(Clock::now() + grace, ended)) {
    if (st.cgroups) st.cgroups->KillAll();
    st.ReadStatus(Clock::now() + kKillGrace, ended);
  }
  if (st.supervisor) {
    if (!c.init_exited) st.supervisor->Kill();
    st.supervisor->Release();  // the mount namespace, the upper layer with it, goes
  }
  if (st.cgroups) (void)st.cgroups->Remove();
  st.scratch_lock.reset();
  const int w = c.have_report ? c.report.wait_status : c.init_status;
  if (!c.init_exited && !c.have_report) {
    st.exit_text = "killed";
  } else if (WIFEXITED(w)) {
    st.exit_text = "exited " + std::to_string(WEXITSTATUS(w));
  } else if (WIFSIGNALED(w)) {
    st.exit_text = "killed by signal " + std::to_string(WTERMSIG(w));
  } else {
    st.exit_text = "ended";
  }
  return st.exit_text;
}

}  // namespace airlock::shell
