// Resource limits of one run (nsjail's cgroup2.cc, plus cgroup v1): memory, pids and CPU,
// a way to kill everything the command started, and which limit it hit.
//
// Two layouts are supported:
//  * cgroup v2 with controllers (/sys/fs/cgroup is cgroup2): one cgroup per run with
//    memory.max, pids.max, cpu.max; memory.events/pids.events tell what was hit;
//    cgroup.kill ends everything.
//  * hybrid (systemd's legacy layout, and this CI): v1 memory, pids and cpu hierarchies
//    carry the limits (memory.limit_in_bytes, pids.max, cpu.cfs_quota_us), and the cgroup2
//    hierarchy at /sys/fs/cgroup/unified, which has no controllers, carries membership and
//    cgroup.kill. Without any cgroup2 mount, processes are killed from cgroup.procs.
//
// Per-run cgroups are named airlock-<airlock pid>-<random> and live under an `airlock`
// parent, nested under airlock's own cgroup where the hierarchy allows it (so a limit put on
// airlock also bounds its sandboxes), else under the hierarchy's root. A nested parent is
// removed when its last run ends, so that it never keeps airlock's own cgroup from being
// removed by whoever manages it; a parent at a root stays.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace airlock::shell {

struct CgroupLimits {
  int64_t memory_bytes = 0;  // 0 = no limit
  int64_t pids = 0;          // 0 = no limit
  double cpus = 0;           // cores; 0 = no limit
};

// A run's cgroups as its supervisor and init see them: open descriptors and nothing else, so
// that they can be handed to another process (the sandbox launcher, launcher.h) and used
// there.
//
// Moving a process into a cgroup by writing its pid to cgroup.procs takes the kernel's
// global cgroup_threadgroup_rwsem for writing, which waits for an RCU grace period unless
// one has just passed: 0.1 ms at the median, 10-35 ms at p90 on the machines this is
// built on. A run's init gets in without it:
//  * the cgroup2 directory, by clone3(CLONE_INTO_CGROUP) with cgroup2_dir: the child
//    starts inside it (on a kernel without clone3, AdmitToCgroup2 moves it by pid);
//  * the v1 hierarchies, by moving its own (only) thread: "0" to `tasks` (AdmitSelf). The
//    kernel skips the global lock for a thread moving itself.
struct CgroupHandles {
  int cgroup2_dir = -1;       // the run's cgroup2 directory (O_DIRECTORY); -1 if none
  int cgroup2_procs = -1;     // its cgroup.procs (write-only); -1 if none
  std::vector<int> v1_tasks;  // `tasks` of each v1 hierarchy with a limit (write-only)

  // Moves `pid` into the run's cgroup2 directory, if it has one. Called by the supervisor.
  Status AdmitToCgroup2(pid_t pid) const;
  // Moves the calling thread, which must be its process's only one, into the run's v1
  // cgroups (a no-op on a cgroup2-only layout). Called by init in the sandbox.
  Status AdmitSelf() const;
  // Every descriptor above (the supervisor and init keep them open).
  std::vector<int> fds() const;
};

class RunCgroups {
 public:
  // Creates the run's cgroups, writes the limits and opens what init joins them by. Fails
  // (closed) when a requested limit has no controller to enforce it.
  static Result<std::unique_ptr<RunCgroups>> Create(const CgroupLimits& limits);
  // Kills whatever is left and removes the cgroups (best effort; Remove() reports errors).
  ~RunCgroups();
  RunCgroups(const RunCgroups&) = delete;
  RunCgroups& operator=(const RunCgroups&) = delete;

  // What the run's supervisor and init join its cgroups by (CgroupHandles): descriptors
  // opened by Create, which must outlive their use.
  CgroupHandles handles() const;

  // SIGKILLs every process in the run's cgroups (cgroup.kill where there is a cgroup2
  // directory, else a pidfd per listed process until the list is empty).
  void KillAll() const;

  // The limit the run ran into: "memory" (the OOM killer killed something), "pids" (a fork
  // failed at pids.max) or "".
  std::string LimitHit() const;

  // Removes the run's directories; they must be empty (every process reaped).
  Status Remove();
  // Whether another run with the same limits may use these cgroups after this one: every
  // directory is empty, no limit was hit (the counters LimitHit reads are still zero, so
  // they tell the next run's), and no more than 1 MiB of anonymous or tmpfs memory is still
  // counted against them (the kernel's statistics lag by a few pages). A reused cgroup's other
  // statistics (peaks, CPU time) add up over its runs; airlock reads none of them. Never after
  // KillAll: on this kernel (6.18) a cgroup once killed through cgroup.kill kills every process
  // later cloned into it with CLONE_INTO_CGROUP.
  bool Reusable() const;

  const std::string& name() const { return name_; }

 private:
  enum Role : unsigned {
    kV2 = 1,      // a cgroup2 directory (cgroup.kill, memory.events, cpu.max...)
    kMemory = 2,  // carries the memory limit
    kPids = 4,    // carries the pids limit
    kCpu = 8,     // carries the CPU quota
  };
  struct Dir {
    std::string path;
    unsigned roles = 0;
    int procs_fd = -1;  // v2: cgroup.procs, for AdmitToCgroup2
    int tasks_fd = -1;  // v1: `tasks`, for AdmitSelf
    int dir_fd = -1;    // v2: the directory, for CLONE_INTO_CGROUP
    bool remove_parent = false;  // the parent sits in our own cgroup: remove it when empty
    bool v2() const { return roles & kV2; }
  };
  RunCgroups() = default;
  Status AddDir(const std::string& parent, unsigned roles, const CgroupLimits& limits);

  std::string name_;
  std::vector<Dir> dirs_;
  bool removed_ = false;
  mutable bool killed_ = false;  // KillAll was called
};

// Removes the per-run cgroups of airlock processes that are gone (a killed airlock cannot
// remove its own), killing any process still in them.
Status CleanupStaleCgroups();

}  // namespace airlock::shell
