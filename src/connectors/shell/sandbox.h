// Runs one command contained: new mount/pid/net/ipc/uts/cgroup namespaces, an overlayfs over
// the workspace whose upper layer is a size-capped tmpfs, a read-only rest of the system,
// Landlock, seccomp, no capabilities, cgroup limits and a wall-clock timeout.
//
// Process model (why three processes):
//   airlock (caller) ── fork ─▶ supervisor: unshare(CLONE_NEWNS), mounts the scratch tmpfs
//                                │          (upper + work dirs), waits, enforces the timeout
//                                └ clone(NEWPID|NEWNET|NEWIPC|NEWUTS|NEWNS) ─▶ init (pid 1):
//                                     builds the new root, pivot_root, drops privileges,
//                                     forks and execs the command, reaps, reports.
// Every mount lives in the supervisor's mount namespace, so when the supervisor exits
// (normally, by timeout, or because airlock crashed and the kernel killed it through
// PR_SET_PDEATHSIG) every mount, the upper layer with it, disappears. The caller reads the
// upper layer through /proc/<supervisor>/root/... while the supervisor waits for it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace airlock::shell {

struct SandboxSpec {
  std::vector<std::string> argv;  // argv[0] is looked up on PATH inside the sandbox
  std::string workspace;          // absolute real path of an existing directory
  // An existing directory owned by airlock (inside its state directory); the supervisor
  // mounts its private scratch tmpfs here. Never visible inside the sandbox.
  std::string scratch_dir;
  // Absolute paths made invisible inside the sandbox (a directory becomes an empty
  // read-only tmpfs, a file an empty read-only file). Paths that do not exist are skipped.
  std::vector<std::string> hide;
  std::vector<std::string> env;  // "K=V"; the command gets exactly these
  bool network = false;          // false: a new, empty network namespace (loopback only)
  // network false only: init listens on 127.0.0.1:egress_port inside the sandbox's own
  // namespace before the command starts, and hands the socket to the caller's
  // EgressListener, which serves it from the host's namespace. 0 = no such socket.
  int egress_port = 0;
  int64_t memory_bytes = 512LL << 20;    // 0 = no limit
  int64_t pids = 128;                    // 0 = no limit
  double cpus = 1.0;                     // CPU quota in cores; 0 = no limit
  int64_t timeout_ms = 60'000;           // wall clock; the whole cgroup is killed at expiry
  int64_t upper_size_bytes = 1LL << 30;  // cap of the upper layer (tmpfs size=)
  int64_t upper_inodes = 100'000;        // cap of files in the upper layer (tmpfs nr_inodes=)
  int64_t output_cap_bytes = 1LL << 20;  // per stream; the rest is counted, not kept
  // Absolute paths bound read-only at the same path besides the system directories (an MCP
  // server's own code). Paths that do not exist are skipped. Default: none.
  std::vector<std::string> read_only_paths;
  // PreparedRun only. false: init exits right after its report, and the run's teardown (its
  // pid namespace, then its mounts) overlaps what the caller does next. true: init waits
  // until Finish, so that the teardown happens there instead (a server that answers first
  // and tears down after).
  bool linger = false;
};

struct SandboxOutcome {
  int exit_code = -1;       // the command's exit status; 128+N when killed by signal N
  int term_signal = 0;      // N when killed by a signal, else 0
  std::string stdout_data;  // at most output_cap_bytes
  std::string stderr_data;
  int64_t stdout_bytes = 0;  // everything the command wrote, kept or not
  int64_t stderr_bytes = 0;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  // Which limit ended the command: "" (none), "timeout", "memory", "pids".
  std::string killed_by;
  // The upper layer filled up (the command saw ENOSPC): "", "size" or "files".
  std::string upper_full;
  // The command tried the network (off): TCP connects, UDP sends or unroutable packets
  // counted in the sandbox's own network namespace (/proc/net/snmp, before vs after).
  bool network_attempt = false;
  std::string network_detail;  // e.g. "2 TCP connection attempts, 1 UDP datagram"
  int64_t duration_ms = 0;
};

// The caller's side of a sandbox's egress socket (connectors/shell/egress.h).
class EgressListener {
 public:
  virtual ~EgressListener() = default;
  // Takes ownership of the listening socket (bound in the sandbox's network namespace) and
  // starts serving it on its own threads; returns at once.
  virtual void Serve(int listen_fd) = 0;
  // Stops serving (open connections are cut), joins every thread, and returns how many
  // connections it accepted: those are the command's TCP connects that went to airlock,
  // not out.
  virtual int64_t Stop() = 0;
};

// Runs spec.argv contained. `inspect(upper_path)` is called in this process after the
// command (and everything it started) has ended and before the upper layer is torn down;
// upper_path is readable from this process (a /proc/<pid>/root/... path).
// Errors: InvalidArgument for a bad spec or a command that cannot be executed ("command not
// found: foo"); Internal/IoError for a setup step that failed, with the child's reason
// ("sandbox setup: mount overlay on /ws: Invalid argument"). The command never runs when a
// setup step failed.
// With spec.egress_port, `egress` serves the proxy socket while the command runs (required).
Result<SandboxOutcome> RunSandboxed(const SandboxSpec& spec,
                                    const std::function<Status(const std::string&)>& inspect,
                                    EgressListener* egress = nullptr);

// RunSandboxed in three steps, so that the caller can do other work while the sandbox is
// built and while it is torn down (the CLI opens its store meanwhile, and records the
// action during the teardown). Prepare() returns at once; the supervisor and init build
// everything (namespaces, cgroups, the new root, Landlock, seccomp) and init then waits,
// contained, right before the command. Run() starts the command and is RunSandboxed from
// there up to and including `inspect`: the timeout counts from Run(), and the errors are
// the same. Finish() removes the cgroups and waits until every mount of the run is gone;
// the destructor does it if the caller did not. Destroying a run that was never started
// tears the sandbox down without the command ever running.
// The command need not be known when the sandbox is built: Prepare accepts a spec with an
// empty argv, and Run(argv, ...) hands init the command with "start" (airlock serve keeps a
// sandbox built ahead for the next command of a shell target).
class PreparedRun {
 public:
  static Result<std::unique_ptr<PreparedRun>> Prepare(const SandboxSpec& spec);
  ~PreparedRun();
  PreparedRun(const PreparedRun&) = delete;
  PreparedRun& operator=(const PreparedRun&) = delete;

  const SandboxSpec& spec() const;
  // Not run yet, and its init still there (a failed setup step or a kill ends it early).
  bool Alive() const;
  // Once only (FailedPrecondition after that). Runs spec().argv.
  Result<SandboxOutcome> Run(const std::function<Status(const std::string&)>& inspect,
                             EgressListener* egress = nullptr);
  // Runs `argv` (checked here: InvalidArgument for an empty or oversized command) instead.
  Result<SandboxOutcome> Run(const std::vector<std::string>& argv,
                             const std::function<Status(const std::string&)>& inspect,
                             EgressListener* egress = nullptr);
  // After Run: the cgroups are removed (an error if that failed; CleanupStale retries it)
  // and the supervisor is reaped. On a run never started, the same teardown as the
  // destructor's: the command never runs. Idempotent.
  Status Finish();

 private:
  PreparedRun();
  struct State;
  std::unique_ptr<State> state_;
};

// What this process's runs found ready for them (sandbox.cc, Spares): a process that runs
// sandboxes one after another keeps a network namespace and cgroups for its next run.
struct SpareCounts {
  int64_t net_made = 0;        // network namespaces made ahead (spares) so far
  int64_t net_taken = 0;       // runs that took a network namespace made ahead
  int64_t cgroups_taken = 0;   // runs that took the cgroups a run before kept
  int64_t cgroups_reused = 0;  // runs whose cgroups were kept for a later run
};
SpareCounts SpareCountsSoFar();

// Removes the spare cgroups now (they are the next run's, not a run's left-overs; for tests
// that count cgroups). They are also removed at exit.
void DropSpareCgroups();

// Starts making a network namespace (loopback only) on a thread of its own now, for this
// process's next run with network off to take, instead of one made when that run starts. For
// a process that will run one sandbox and has other work to do first (the CLI's `exec` calls
// it before it reads the policy: the namespace, the slowest kernel step of a sandbox, is then
// made while the policy loads, on an otherwise idle core). A run with network on does not use
// it: that run closes it and joins its thread before the run's fork. With no run at all it is
// closed at exit. At most one is made; later calls do nothing.
void MakeNetworkNamespaceEarly();

// Has this process's sandboxes forked by a launcher (launcher.h) from here on, not by the
// thread that asks for them: call it first thing in a process that will run sandboxes from
// many threads (airlock serve, the MCP proxy), while it has one thread. FailedPrecondition
// with more threads; then, and in a process that never calls it, each run forks its
// supervisor from the calling thread.
Status StartSandboxLauncher();

// Removes what a killed airlock left behind: cgroups of runs whose processes are gone, and
// stale entries under scratch_root. Mounts need no clean-up (they die with the supervisor).
// Only empty directories are removed, and none that a live run holds (RunSandboxed keeps a
// shared flock on its scratch_dir), so it is safe next to other airlock processes.
Status CleanupStale(const std::string& scratch_root);

// The same sandbox around a long-lived process (an MCP server, mcp/sandboxed_upstream.h):
// its stdin and stdout are pipes to this process, its stderr is this process's, and it runs
// until Stop() (no wall-clock timeout: it lives as long as its session). The upper layer is
// readable at upper_path() while it runs. Every limit of the spec but timeout_ms applies.
// The supervisor dies with the *thread* that called Start (PR_SET_PDEATHSIG): call it from
// a thread that lives as long as the process.
class SandboxedProcess {
 public:
  // Returns once the command was executed inside the sandbox. Errors as RunSandboxed's.
  static Result<std::unique_ptr<SandboxedProcess>> Start(const SandboxSpec& spec);
  ~SandboxedProcess();  // Stop(0)
  SandboxedProcess(const SandboxedProcess&) = delete;
  SandboxedProcess& operator=(const SandboxedProcess&) = delete;

  int stdin_fd() const;   // we write; closed by Stop()
  int stdout_fd() const;  // we read; stays open until destruction (EOF once it is gone)
  // The overlay's upper layer as this process sees it (a /proc/<supervisor>/root/... path).
  const std::string& upper_path() const;
  // Closes its stdin, waits up to `grace` for it to exit, then kills its cgroup; unmounts
  // everything (the upper layer goes with it) and removes the cgroup. Returns how it ended
  // ("exited 0", "killed by signal 9"). Idempotent.
  std::string Stop(std::chrono::milliseconds grace);

 private:
  SandboxedProcess();
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace airlock::shell
