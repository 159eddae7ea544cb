#include "connectors/shell/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string_view>
#include <thread>

namespace airlock::shell {
namespace {

constexpr const char* kParentName = "airlock";
constexpr const char* kRunPrefix = "airlock-";
constexpr int64_t kCpuPeriodUs = 100'000;

Status SysError(const std::string& what, int err = errno) {
  return Status::IoError("cgroup: " + what + ": " + std::strerror(err));
}

Result<std::string> ReadFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return SysError("open " + path);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  int err = errno;
  ::close(fd);
  if (n < 0) return SysError("read " + path, err);
  return out;
}

Status WriteFile(const std::string& path, const std::string& value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return SysError("open " + path);
  ssize_t n = ::write(fd, value.data(), value.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(value.size()))
    return SysError("write " + value + " to " + path, err);
  return Status::Ok();
}

// The number after `key ` in a flat keyed file (memory.events, pids.events, oom_control).
int64_t KeyedValue(const std::string& text, std::string_view key) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ' ') {
      return std::atoll(std::string(line.substr(key.size() + 1)).c_str());
    }
    pos = end + 1;
  }
  return 0;
}

bool HasToken(std::string_view list, std::string_view token, char sep) {
  while (!list.empty()) {
    size_t end = list.find(sep);
    if (list.substr(0, end) == token) return true;
    if (end == std::string_view::npos) break;
    list.remove_prefix(end + 1);
  }
  return false;
}

// ---- where the hierarchies are and where airlock sits in them ---------------------------

struct Hierarchy {
  std::string mount;  // e.g. /sys/fs/cgroup/memory
  std::string root;   // the mount's root inside the hierarchy ("/" unless in a container)
  std::string own;    // our cgroup inside the hierarchy, from /proc/self/cgroup

  bool found() const { return !mount.empty(); }
  // Our own cgroup's directory, when it is visible through this mount.
  std::string OwnDir() const {
    if (root == "/") return own == "/" ? mount : mount + own;
    if (own.compare(0, root.size(), root) == 0 &&
        (own.size() == root.size() || own[root.size()] == '/')) {
      return mount + own.substr(root.size());
    }
    return mount;
  }
};

struct Layout {
  Status status;
  bool pure_v2 = false;   // memory/pids/cpu live in the cgroup2 hierarchy
  bool v2_cpu = false;    // pure_v2 and the cpu controller is there
  std::string v2_parent;  // "<cgroup2>/.../airlock", "" without a cgroup2 mount
  std::string memory_parent, pids_parent, cpu_parent;  // v1 parents ("" if unavailable)
  // Parents inside our own (not a root) cgroup: whoever manages that cgroup (systemd, a
  // job runner) must be able to remove it, so they are removed again when empty.
  std::vector<std::string> nested;
};

std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> out;
  while (!line.empty()) {
    size_t end = line.find(' ');
    if (end != 0) out.push_back(line.substr(0, end));
    if (end == std::string_view::npos) break;
    line.remove_prefix(end + 1);
  }
  return out;
}

// /proc/self/mountinfo: "id parent maj:min root mountpoint opts [optional...] - fstype src
// superopts". Mount points of cgroup file systems never contain escaped characters worth
// handling here.
void FindMounts(const std::string& mountinfo, Hierarchy* v2, Hierarchy* memory, Hierarchy* pids,
                Hierarchy* cpu) {
  std::string_view text(mountinfo);
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::vector<std::string_view> f = Fields(text.substr(0, end));
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    size_t dash = 6;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (dash + 2 >= f.size()) continue;  // no "- fstype source"
    std::string_view fstype = f[dash + 1];
    std::string_view superopts = dash + 3 < f.size() ? f[dash + 3] : std::string_view();
    auto set = [&](Hierarchy* h) {
      if (h->found()) return;
      h->mount = std::string(f[4]);
      h->root = std::string(f[3]);
    };
    if (fstype == "cgroup2") set(v2);
    if (fstype != "cgroup") continue;
    if (HasToken(superopts, "memory", ',')) set(memory);
    if (HasToken(superopts, "pids", ',')) set(pids);
    if (HasToken(superopts, "cpu", ',')) set(cpu);
  }
}

// /proc/self/cgroup: "0::/path" (v2) and "N:memory:/path", "N:cpu,cpuacct:/path" (v1).
void FindOwnCgroups(const std::string& cgroups, Hierarchy* v2, Hierarchy* memory, Hierarchy* pids,
                    Hierarchy* cpu) {
  std::string_view text(cgroups);
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    size_t c1 = line.find(':');
    size_t c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    std::string_view controllers = line.substr(c1 + 1, c2 - c1 - 1);
    std::string path(line.substr(c2 + 1));
    if (line.substr(0, c1) == "0" && controllers.empty()) v2->own = path;
    if (HasToken(controllers, "memory", ',')) memory->own = path;
    if (HasToken(controllers, "pids", ',')) pids->own = path;
    if (HasToken(controllers, "cpu", ',')) cpu->own = path;
  }
}

bool MakeDir(const std::string& path) {
  return ::mkdir(path.c_str(), 0755) == 0 || errno == EEXIST;
}

// The `airlock` parent under our own cgroup, else under the root of the hierarchy.
std::string MakeParent(const Hierarchy& h, Layout* layout) {
  if (!h.found()) return "";
  for (const std::string& base : {h.OwnDir(), h.mount}) {
    std::string parent = base + "/" + kParentName;
    if (!MakeDir(parent)) continue;
    if (base != h.mount) layout->nested.push_back(parent);
    return parent;
  }
  return "";
}

// cgroup2's "no internal processes" rule: controllers can only be enabled for the children
// of a cgroup without processes (the root excepted). Our own cgroup has us in it, so this
// usually ends at <root>/airlock.
std::string MakeV2ParentWithControllers(const Hierarchy& h, const std::string& enable) {
  for (const std::string& base : {h.OwnDir(), h.mount}) {
    std::string parent = base + "/" + kParentName;
    if (!MakeDir(parent)) continue;
    if (WriteFile(base + "/cgroup.subtree_control", enable).ok() &&
        WriteFile(parent + "/cgroup.subtree_control", enable).ok()) {
      return parent;
    }
  }
  return "";
}

Layout DetectLayout() {
  Layout layout;
  Result<std::string> mountinfo = ReadFile("/proc/self/mountinfo");
  Result<std::string> own = ReadFile("/proc/self/cgroup");
  if (!mountinfo.ok() || !own.ok()) {
    layout.status = mountinfo.ok() ? own.status() : mountinfo.status();
    return layout;
  }
  Hierarchy v2, memory, pids, cpu;
  FindMounts(*mountinfo, &v2, &memory, &pids, &cpu);
  FindOwnCgroups(*own, &v2, &memory, &pids, &cpu);
  if (v2.found()) {
    Result<std::string> controllers = ReadFile(v2.mount + "/cgroup.controllers");
    std::string list = controllers.ok() ? *controllers : "";
    while (!list.empty() && list.back() == '\n') list.pop_back();
    layout.pure_v2 = HasToken(list, "memory", ' ') && HasToken(list, "pids", ' ');
    layout.v2_cpu = layout.pure_v2 && HasToken(list, "cpu", ' ');
  }
  if (layout.pure_v2) {
    layout.v2_parent =
        MakeV2ParentWithControllers(v2, layout.v2_cpu ? "+memory +pids +cpu" : "+memory +pids");
    if (layout.v2_parent.empty()) {
      layout.status = Status::FailedPrecondition(
          "cgroup: cannot enable the memory and pids controllers for an airlock/ cgroup in " +
          v2.mount);
    }
    return layout;
  }
  layout.v2_parent = MakeParent(v2, &layout);
  layout.memory_parent = MakeParent(memory, &layout);
  layout.pids_parent = MakeParent(pids, &layout);
  layout.cpu_parent = MakeParent(cpu, &layout);
  return layout;
}

const Layout& GetLayout() {
  // Once per process, and never destroyed: another thread (a server's worker running a
  // sandbox) may still create or remove cgroups while the process exits, and so may the
  // exit handler that removes the spare ones (sandbox.cc, Spares).
  static const Layout& layout = *new Layout(DetectLayout());
  return layout;
}

std::vector<pid_t> ListProcs(const std::string& dir) {
  std::vector<pid_t> pids;
  Result<std::string> text = ReadFile(dir + "/cgroup.procs");
  if (!text.ok()) return pids;
  const char* p = text->c_str();
  char* end = nullptr;
  for (long v = std::strtol(p, &end, 10); end != p; v = std::strtol(p, &end, 10)) {
    pids.push_back(static_cast<pid_t>(v));
    p = end;
  }
  return pids;
}

// For hierarchies without cgroup.kill. A pid read from cgroup.procs may be reaped and reused
// before we signal it, so each is pinned with a pidfd first and only signalled if it is
// still listed afterwards (then the pidfd is that member).
void KillListedProcs(const std::string& dir) {
  for (int round = 0; round < 1000; ++round) {
    std::vector<pid_t> listed = ListProcs(dir);
    if (listed.empty()) return;
    std::vector<std::pair<pid_t, int>> pinned;
    for (pid_t pid : listed) {
      int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
      if (fd >= 0) pinned.emplace_back(pid, fd);
    }
    std::vector<pid_t> still = ListProcs(dir);
    for (auto [pid, fd] : pinned) {
      if (std::find(still.begin(), still.end(), pid) != still.end()) {
        ::syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0);
      }
      ::close(fd);
    }
    if (round > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void KillCgroup(const std::string& dir, bool v2) {
  if (v2 && WriteFile(dir + "/cgroup.kill", "1").ok()) return;
  KillListedProcs(dir);
}

// rmdir fails with EBUSY while a killed process is still exiting; that takes microseconds.
Status RemoveDir(const std::string& dir) {
  for (int attempt = 0;; ++attempt) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return Status::Ok();
    if (errno != EBUSY || attempt >= 200) return SysError("rmdir " + dir);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

std::string RandomHex() {
  uint32_t r = 0;
  if (::getrandom(&r, sizeof r, 0) != sizeof r)
    r = static_cast<uint32_t>(::getpid() ^ ::time(nullptr));
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", r);
  return buf;
}

}  // namespace

Status RunCgroups::AddDir(const std::string& parent, unsigned roles, const CgroupLimits& limits) {
  const std::vector<std::string>& nested = GetLayout().nested;
  Dir dir{parent + "/" + name_, roles};
  dir.remove_parent = std::find(nested.begin(), nested.end(), parent) != nested.end();
  // A nested parent is removed when the last run using it ends; recreate it if needed.
  int rc = ::mkdir(dir.path.c_str(), 0755);
  for (int attempt = 0; rc != 0 && errno == ENOENT && attempt < 3; ++attempt) {
    MakeDir(parent);
    rc = ::mkdir(dir.path.c_str(), 0755);
  }
  if (rc != 0) return SysError("mkdir " + dir.path);
  dirs_.push_back(dir);  // from here on the destructor removes it
  const std::string& p = dir.path;
  if ((roles & kMemory) && limits.memory_bytes > 0) {
    std::string bytes = std::to_string(limits.memory_bytes);
    if (dir.v2()) {
      RETURN_IF_ERROR(WriteFile(p + "/memory.max", bytes));
      // No swap: otherwise the limit only moves memory to swap instead of ending the run.
      Status swap = WriteFile(p + "/memory.swap.max", "0");
      (void)swap;  // no swap controller: nothing to limit
    } else {
      RETURN_IF_ERROR(WriteFile(p + "/memory.limit_in_bytes", bytes));
      struct stat st;
      if (::stat((p + "/memory.memsw.limit_in_bytes").c_str(), &st) == 0) {
        RETURN_IF_ERROR(WriteFile(p + "/memory.memsw.limit_in_bytes", bytes));
      }
    }
  }
  if ((roles & kPids) && limits.pids > 0) {
    RETURN_IF_ERROR(WriteFile(p + "/pids.max", std::to_string(limits.pids)));
  }
  if ((roles & kCpu) && limits.cpus > 0) {
    int64_t quota = std::max<int64_t>(1000, std::llround(limits.cpus * kCpuPeriodUs));
    if (dir.v2()) {
      RETURN_IF_ERROR(
          WriteFile(p + "/cpu.max", std::to_string(quota) + " " + std::to_string(kCpuPeriodUs)));
    } else {
      RETURN_IF_ERROR(WriteFile(p + "/cpu.cfs_period_us", std::to_string(kCpuPeriodUs)));
      RETURN_IF_ERROR(WriteFile(p + "/cpu.cfs_quota_us", std::to_string(quota)));
    }
  }
  Dir& d = dirs_.back();
  if (d.v2()) {
    d.dir_fd = ::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d.dir_fd < 0) return SysError("open " + p);
    d.procs_fd = ::open((p + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    if (d.procs_fd < 0) return SysError("open " + p + "/cgroup.procs");
  } else {
    d.tasks_fd = ::open((p + "/tasks").c_str(), O_WRONLY | O_CLOEXEC);
    if (d.tasks_fd < 0) return SysError("open " + p + "/tasks");
  }
  return Status::Ok();
}

Result<std::unique_ptr<RunCgroups>> RunCgroups::Create(const CgroupLimits& limits) {
  const Layout& layout = GetLayout();
  RETURN_IF_ERROR(layout.status);
  std::unique_ptr<RunCgroups> run(new RunCgroups());
  run->name_ = kRunPrefix + std::to_string(::getpid()) + "-" + RandomHex();
  if (layout.pure_v2) {
    if (limits.cpus > 0 && !layout.v2_cpu) {
      return Status::FailedPrecondition(
          "cgroup: a CPU limit was asked for, but the cgroup2 "
          "hierarchy has no cpu controller");
    }
    unsigned roles = kV2 | kMemory | kPids | (layout.v2_cpu ? kCpu : 0u);
    RETURN_IF_ERROR(run->AddDir(layout.v2_parent, roles, limits));
    return run;
  }
  auto need = [](const std::string& parent, const char* controller) -> Status {
    if (!parent.empty()) return Status::Ok();
    return Status::FailedPrecondition(std::string("cgroup: a ") + controller +
                                      " limit was asked for, but there is no " + controller +
                                      " controller mounted");
  };
  if (limits.memory_bytes > 0) RETURN_IF_ERROR(need(layout.memory_parent, "memory"));
  if (limits.pids > 0) RETURN_IF_ERROR(need(layout.pids_parent, "pids"));
  if (limits.cpus > 0) RETURN_IF_ERROR(need(layout.cpu_parent, "cpu"));
  // One directory per v1 hierarchy; controllers mounted together (cpu,memory) share it.
  std::vector<std::pair<std::string, unsigned>> wanted;
  auto want = [&](const std::string& parent, unsigned roles) {
    for (auto& [p, r] : wanted) {
      if (p == parent) {
        r |= roles;
        return;
      }
    }
    wanted.emplace_back(parent, roles);
  };
  if (!layout.v2_parent.empty()) want(layout.v2_parent, kV2);
  if (limits.memory_bytes > 0) want(layout.memory_parent, kMemory);
  // The pids cgroup is also how a system without cgroup2 finds the processes to kill.
  if (!layout.pids_parent.empty()) want(layout.pids_parent, kPids);
  if (limits.cpus > 0) want(layout.cpu_parent, kCpu);
  for (const auto& [parent, roles] : wanted) RETURN_IF_ERROR(run->AddDir(parent, roles, limits));
  if (run->dirs_.empty()) {
    return Status::FailedPrecondition("cgroup: no cgroup hierarchy to hold the sandbox");
  }
  return run;
}

RunCgroups::~RunCgroups() {
  if (!removed_) {
    KillAll();
    Status st = Remove();
    (void)st;  // best effort on an error path; CleanupStaleCgroups retries later
  }
  for (const Dir& d : dirs_) {
    for (int fd : {d.procs_fd, d.tasks_fd, d.dir_fd}) {
      if (fd >= 0) ::close(fd);
    }
  }
}

Status CgroupHandles::AdmitToCgroup2(pid_t pid) const {
  if (cgroup2_procs < 0) return Status::Ok();
  char buf[16];
  int len = std::snprintf(buf, sizeof buf, "%d", static_cast<int>(pid));
  if (::write(cgroup2_procs, buf, static_cast<size_t>(len)) != len) {
    return SysError("move the sandbox into its cgroup2 directory");
  }
  return Status::Ok();
}

Status CgroupHandles::AdmitSelf() const {
  for (int fd : v1_tasks) {
    // "0" is the writer itself; through `tasks`, only its own thread (the kernel then
    // skips cgroup_threadgroup_rwsem, see above).
    if (::write(fd, "0", 1) != 1) return SysError("move the sandbox into its v1 cgroups");
  }
  return Status::Ok();
}

std::vector<int> CgroupHandles::fds() const {
  std::vector<int> out = v1_tasks;
  for (int fd : {cgroup2_dir, cgroup2_procs}) {
    if (fd >= 0) out.push_back(fd);
  }
  return out;
}

CgroupHandles RunCgroups::handles() const {
  CgroupHandles h;
  for (const Dir& d : dirs_) {
    if (d.v2()) {
      if (h.cgroup2_dir < 0) {
        h.cgroup2_dir = d.dir_fd;
        h.cgroup2_procs = d.procs_fd;
      }
    } else if (d.tasks_fd >= 0) {
      h.v1_tasks.push_back(d.tasks_fd);
    }
  }
  return h;
}

void RunCgroups::KillAll() const {
  killed_ = true;
  for (const Dir& d : dirs_) {
    if (d.v2()) {
      KillCgroup(d.path, true);
      return;  // one cgroup.kill reaches every process of the run
    }
  }
  if (!dirs_.empty()) KillCgroup(dirs_.front().path, false);
}

std::string RunCgroups::LimitHit() const {
  for (const Dir& d : dirs_) {
    if (!(d.roles & kMemory)) continue;
    Result<std::string> events =
        ReadFile(d.path + (d.v2() ? "/memory.events" : "/memory.oom_control"));
    if (events.ok() && KeyedValue(*events, "oom_kill") > 0) return "memory";
  }
  for (const Dir& d : dirs_) {
    if (!(d.roles & kPids)) continue;
    Result<std::string> events = ReadFile(d.path + "/pids.events");
    if (events.ok() && KeyedValue(*events, "max") > 0) return "pids";
  }
  return "";
}

bool RunCgroups::Reusable() const {
  if (removed_ || killed_ || dirs_.empty()) return false;
  // Each value must be read and be at most `most` (a key that is missing is not). No keys: the
  // file is one number.
  auto at_most = [](const std::string& path, std::initializer_list<std::string_view> keys,
                    int64_t most) {
    Result<std::string> text = ReadFile(path);
    if (!text.ok() || text->empty()) return false;
    if (keys.size() == 0) return std::strtoll(text->c_str(), nullptr, 10) <= most;
    const std::string padded = "\n" + *text;
    for (std::string_view key : keys) {
      if (padded.find("\n" + std::string(key) + " ") == std::string::npos) return false;
      if (KeyedValue(*text, key) > most) return false;
    }
    return true;
  };
  auto zero = [&](const std::string& path, std::initializer_list<std::string_view> keys) {
    return at_most(path, keys, 0);
  };
  // memory.stat lags behind: the kernel folds each CPU's recent changes in only in batches (of
  // up to 64 pages a CPU), and right after a run its anonymous memory read 24-28 KiB here now
  // and then, with every process gone. A few pages are let through; what a run could leave
  // that matters (a filled tmpfs, a process's heap) is megabytes.
  constexpr int64_t kStatSlack = 1 << 20;
  bool counted = false;  // a pids.current of 0 was read
  for (const Dir& d : dirs_) {
    if (d.roles & kMemory) {
      // No limit hit, and nothing of the run's left charged that cannot be reclaimed:
      // anonymous memory and tmpfs pages (its upper layer and /tmp are gone with its mount
      // namespaces by now). Page cache may stay charged: it is reclaimed under the limit.
      const bool v2 = d.v2();
      if (!zero(d.path + (v2 ? "/memory.events" : "/memory.oom_control"), {"oom_kill"}) ||
          !at_most(d.path + "/memory.stat", {v2 ? "anon" : "rss", "shmem"}, kStatSlack)) {
        return false;
      }
    }
    if (d.roles & kPids) {
      // pids.current counts every task not yet released, zombies included.
      if (!zero(d.path + "/pids.events", {"max"}) || !zero(d.path + "/pids.current", {})) {
        return false;
      }
      counted = true;
    }
  }
  if (!counted) {
    Result<std::string> procs = ReadFile(dirs_.front().path + "/cgroup.procs");
    if (!procs.ok() || !procs->empty()) return false;
  }
  return true;
}

Status RunCgroups::Remove() {
  Status first;
  for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
    Status st = RemoveDir(it->path);
    if (!st.ok() && first.ok()) first = st;
    // Fails (ENOTEMPTY/EBUSY) while another run uses it; the last one removes it.
    if (st.ok() && it->remove_parent) ::rmdir(it->path.substr(0, it->path.rfind('/')).c_str());
  }
  removed_ = first.ok();
  return first;
}

Status CleanupStaleCgroups() {
  const Layout& layout = GetLayout();
  RETURN_IF_ERROR(layout.status);
  Status first;
  for (const std::string* parent :
       {&layout.v2_parent, &layout.memory_parent, &layout.pids_parent, &layout.cpu_parent}) {
    if (parent->empty()) continue;
    DIR* dir = ::opendir(parent->c_str());
    if (dir == nullptr) continue;
    std::vector<std::string> stale;
    while (dirent* e = ::readdir(dir)) {
      std::string name = e->d_name;
      if (name.rfind(kRunPrefix, 0) != 0) continue;
      pid_t owner = static_cast<pid_t>(std::atoi(name.c_str() + std::strlen(kRunPrefix)));
      // A live owner (or a pid reused since) keeps its cgroups; they go on a later run.
      if (owner <= 0 || ::kill(owner, 0) == 0 || errno == EPERM) continue;
      stale.push_back(*parent + "/" + name);
    }
    ::closedir(dir);
    for (const std::string& path : stale) {
      KillCgroup(path, parent == &layout.v2_parent);
      Status st = RemoveDir(path);
      if (!st.ok() && first.ok()) first = st;
    }
  }
  for (const std::string& parent : layout.nested) ::rmdir(parent.c_str());  // if empty
  return first;
}

}  // namespace airlock::shell
