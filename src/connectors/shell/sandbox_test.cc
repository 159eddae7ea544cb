// Runs real commands in the real sandbox (needs root, Landlock, cgroups, overlayfs). Every
// test uses a fresh workspace and scratch dir and asserts both that the host is untouched
// and that the command (or the outcome) shows why.
#include "connectors/shell/sandbox.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "connectors/shell/proc_test_util.h"

namespace airlock::shell {
namespace {

namespace fs = std::filesystem;
using test::ChildrenOf;
using test::HasExited;
using test::ReadFile;
using test::WriteFile;

std::string MakeTempDir(const std::string& base) {
  std::string tmpl = base + "/airlock-sbx-XXXXXX";
  char* dir = ::mkdtemp(tmpl.data());
  EXPECT_NE(dir, nullptr) << base << ": " << std::strerror(errno);
  return dir ? dir : "";
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Mounts in this (the host's) namespace under `dir`, or made by airlock (tmpfs sources named
// airlock-*). Other tests run in parallel and mount things of their own, so the whole
// mountinfo is not compared.
int MountsOf(const std::string& dir) {
  std::string text = ReadFile("/proc/self/mountinfo");
  int n = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    std::string line = text.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    if (line.find(" " + dir) != std::string::npos || line.find(" airlock-") != std::string::npos) ++n;
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return n;
}


// Host processes whose command line contains `needle` (NULs shown as spaces).
std::vector<pid_t> HostProcessesMatching(const std::string& needle) {
  std::vector<pid_t> found;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = ReadFile(e.path() / "cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(needle) != std::string::npos) found.push_back(std::stoi(name));
  }
  return found;
}

// Directories named like the per-run cgroups of process `pid`, anywhere under /sys/fs/cgroup.
std::vector<std::string> CgroupsNamedFor(pid_t pid) {
  std::vector<std::string> found;
  std::string prefix = "airlock-" + std::to_string(pid) + "-";
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(
           "/sys/fs/cgroup", fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it.depth() > 6) it.disable_recursion_pending();
    if (!it->is_directory(ec) || it->is_symlink(ec)) continue;
    if (it->path().filename().string().rfind(prefix, 0) == 0) found.push_back(it->path());
  }
  return found;
}

// This process's per-run cgroups. The spare cgroups kept for the next run are removed first:
// they belong to no run.
std::vector<std::string> OurCgroups() {
  DropSpareCgroups();
  return CgroupsNamedFor(::getpid());
}

// Keeping a run's cgroups for the next is on unless AIRLOCK_REUSE_CGROUPS=0 (sandbox.cc,
// Spares::Reuse): the tests of that path make sure it is on, whatever the environment says.
class ReuseCgroups {
 public:
  ReuseCgroups() {
    if (const char* v = std::getenv("AIRLOCK_REUSE_CGROUPS")) saved_ = v;
    ::unsetenv("AIRLOCK_REUSE_CGROUPS");
  }
  ~ReuseCgroups() {
    if (!saved_.empty()) ::setenv("AIRLOCK_REUSE_CGROUPS", saved_.c_str(), 1);
  }

 private:
  std::string saved_;
};

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the sandbox needs root";
    ws_ = MakeTempDir("/tmp");
    scratch_ = MakeTempDir("/tmp");
  }
  void TearDown() override {
    for (const std::string& dir : cleanup_) fs::remove_all(dir);
    if (!ws_.empty()) fs::remove_all(ws_);
    if (!scratch_.empty()) {
      EXPECT_TRUE(fs::is_empty(scratch_)) << "the scratch dir must be left empty";
      fs::remove_all(scratch_);
    }
  }

  SandboxSpec Spec(std::vector<std::string> argv) {
    SandboxSpec s;
    s.argv = std::move(argv);
    s.workspace = ws_;
    s.scratch_dir = scratch_;
    s.env = {"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG=C"};
    s.timeout_ms = 20'000;
    return s;
  }

  // sh -c SCRIPT, expected to run (whatever its exit code).
  SandboxOutcome Sh(const std::string& script) { return Run(Spec({"sh", "-c", script})); }

  SandboxOutcome Run(const SandboxSpec& spec,
                     const std::function<Status(const std::string&)>& inspect = nullptr) {
    Result<SandboxOutcome> r = RunSandboxed(spec, inspect);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : SandboxOutcome();
  }

  // A directory outside /tmp (which is private inside the sandbox), under the read-only
  // /var bind: what the sandbox sees of the host there is the real thing.
  std::string HostDir() {
    std::string dir = MakeTempDir("/var/tmp");
    cleanup_.push_back(dir);
    return dir;
  }

  // No mount, cgroup, scratch entry, workspace change or child process is left.
  void ExpectNothingLeftBehind(int mounts_before) {
    EXPECT_EQ(MountsOf(ws_) + MountsOf(scratch_), mounts_before);
    EXPECT_TRUE(OurCgroups().empty());
    // (The `airlock` parent inside our own memory cgroup is removed by the last run that
    // uses it; other tests may be running sandboxes at the same time, so it is not checked.)
    EXPECT_TRUE(fs::is_empty(scratch_));
    EXPECT_TRUE(fs::is_empty(ws_));
    int status;
    EXPECT_EQ(::waitpid(-1, &status, WNOHANG), -1) << "a child process is left";
    EXPECT_EQ(errno, ECHILD);
  }

  std::string ws_, scratch_;
  std::vector<std::string> cleanup_;
};

TEST_F(SandboxTest, ExitCodeOutputAndIdentityComeThrough) {
  SandboxOutcome out = Sh("echo out; echo err >&2; exit 7");
  EXPECT_EQ(out.exit_code, 7);
  EXPECT_EQ(out.term_signal, 0);
  EXPECT_EQ(out.stdout_data, "out\n");
  EXPECT_EQ(out.stderr_data, "err\n");
  EXPECT_EQ(out.killed_by, "");
  EXPECT_FALSE(out.network_attempt);

  // uid 0 without a single capability, no_new_privs, seccomp, own pid namespace and cwd.
  out =
      Sh("id -u; grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' "
         "/proc/self/status; hostname; pwd; ls /proc | grep -c '^[0-9]'; echo ${HOME-nohome}");
  EXPECT_EQ(out.exit_code, 0) << out.stderr_data;
  EXPECT_EQ(out.stdout_data,
            "0\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n"
            "CapEff:\t0000000000000000\nCapBnd:\t0000000000000000\n"
            "CapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n"
            "airlock\n" +
                ws_ + "\n4\nnohome\n");
}

TEST_F(SandboxTest, WritesLandInTheUpperLayerNotTheWorkspace) {
  WriteFile(ws_ + "/existing.txt", "orig\n");
  WriteFile(ws_ + "/gone.txt", "bye\n");
  bool inspected = false;
  SandboxOutcome out =
      Run(Spec({"sh", "-c",
                "echo new > new.txt && echo changed > existing.txt && rm gone.txt && "
                "cat existing.txt && ls"}),
          [&](const std::string& upper) {
            inspected = true;
            EXPECT_EQ(upper.rfind("/proc/", 0), 0u) << upper;
            EXPECT_EQ(ReadFile(upper + "/new.txt"), "new\n");
            EXPECT_EQ(ReadFile(upper + "/existing.txt"), "changed\n");
            struct stat st;
            EXPECT_EQ(::lstat((upper + "/gone.txt").c_str(), &st), 0) << "no whiteout";
            EXPECT_TRUE(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) << "not a whiteout";
            return Status::Ok();
          });
  EXPECT_TRUE(inspected);
  EXPECT_EQ(out.exit_code, 0) << out.stderr_data;
  EXPECT_EQ(out.stdout_data, "changed\nexisting.txt\nnew.txt\n");
  EXPECT_EQ(ReadFile(ws_ + "/existing.txt"), "orig\n");
  EXPECT_EQ(ReadFile(ws_ + "/gone.txt"), "bye\n");
  EXPECT_FALSE(Exists(ws_ + "/new.txt"));
}

TEST_F(SandboxTest, InspectErrorIsReturnedAndEverythingIsCleanedUp) {
  Result<SandboxOutcome> r = RunSandboxed(Spec({"true"}), [](const std::string&) {
    return Status::IoError("reading the layer failed");
  });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "reading the layer failed");
  EXPECT_TRUE(OurCgroups().empty());
}

TEST_F(SandboxTest, WritesOutsideTheWorkspaceFail) {
  // The workspace sits under the read-only /var bind, so its parent is host territory.
  fs::remove_all(ws_);
  ws_ = HostDir();
  std::string parent = fs::path(ws_).parent_path();
  std::string name = "airlock-escape-" + std::to_string(::getpid());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/etc/" + name, "/etc/" + name},
      {"/root/" + name, "/root/" + name},
      {"../" + name, parent + "/" + name},
      {parent + "/" + name, parent + "/" + name},
      {"/proc/self/root/etc/" + name, "/etc/" + name},
      {"/proc/1/cwd/../" + name, parent + "/" + name},
      {"/usr/bin/" + name, "/usr/bin/" + name},
  };
  for (const auto& [target, host_path] : cases) {
    SCOPED_TRACE(target);
    SandboxOutcome out = Run(Spec({"sh", "-c", "echo pwned > \"$1\"", "sh", target}));
    EXPECT_NE(out.exit_code, 0);
    EXPECT_TRUE(out.stderr_data.find("Read-only file system") != std::string::npos ||
                out.stderr_data.find("nonexistent") != std::string::npos ||
                out.stderr_data.find("Permission denied") != std::string::npos)
        << out.stderr_data;
    EXPECT_FALSE(Exists(host_path));
  }
}

TEST_F(SandboxTest, PlantedSymlinksDoNotReachTheHost) {
  std::string host = HostDir();
  WriteFile(host + "/target", "orig\n");
  std::string tmp_target = "/tmp/airlock-sbx-target-" + std::to_string(::getpid());
  ::unlink(tmp_target.c_str());
  ASSERT_EQ(::symlink((host + "/target").c_str(), (ws_ + "/to_var").c_str()), 0);
  ASSERT_EQ(::symlink(tmp_target.c_str(), (ws_ + "/to_tmp").c_str()), 0);
  SandboxOutcome out = Sh("echo pwned > to_var; echo pwned > to_tmp; cat to_tmp");
  EXPECT_NE(out.stderr_data.find("to_var: Read-only file system"), std::string::npos)
      << out.stderr_data;
  // /tmp inside is private: the write succeeds there and nowhere else.
  EXPECT_EQ(out.stdout_data, "pwned\n");
  EXPECT_EQ(ReadFile(host + "/target"), "orig\n");
  EXPECT_FALSE(Exists(tmp_target));
}

TEST_F(SandboxTest, HardLinksDeviceNodesAndSetuidAreContained) {
  struct stat env_before;
  ASSERT_EQ(::stat("/usr/bin/env", &env_before), 0);
  SandboxOutcome out =
      Sh("ln /etc/passwd passwd-link; echo \"ln=$?\"; mknod node c 1 3; echo \"mknod=$?\"; "
         "cp /bin/true t && chmod u+s t && stat -c %A t; ./t; echo \"run=$?\"; "
         "chmod u+s /usr/bin/env; echo \"chmod=$?\"; "
         "grep -c \" $PWD .*nosuid\" /proc/self/mountinfo");
  EXPECT_NE(out.stdout_data.find("ln=1\n"), std::string::npos) << out.stdout_data;
  EXPECT_NE(out.stdout_data.find("mknod=1\n"), std::string::npos);
  EXPECT_NE(out.stdout_data.find("-rwsr-xr-x\nrun=0\n"), std::string::npos);
  EXPECT_NE(out.stdout_data.find("chmod=1\n1\n"), std::string::npos) << out.stdout_data;
  EXPECT_NE(out.stderr_data.find("Invalid cross-device link"), std::string::npos)
      << out.stderr_data;
  EXPECT_NE(out.stderr_data.find("mknod: node: Operation not permitted"), std::string::npos);
  EXPECT_NE(out.stderr_data.find("Read-only file system"), std::string::npos);
  EXPECT_FALSE(Exists(ws_ + "/passwd-link"));
  EXPECT_FALSE(Exists(ws_ + "/node"));
  EXPECT_FALSE(Exists(ws_ + "/t"));
  struct stat env_after;
  ASSERT_EQ(::stat("/usr/bin/env", &env_after), 0);
  EXPECT_EQ(env_before.st_mode, env_after.st_mode);
}

TEST_F(SandboxTest, MountsAndNamespacesAreRefused) {
  const int mounts_before = MountsOf(ws_) + MountsOf(scratch_);
  const std::vector<std::string> commands = {
      "mount -t tmpfs none /tmp", "unshare -r true",      "unshare -n true",
      "unshare -m true",          "nsenter -t 1 -m true",
  };
  for (const std::string& cmd : commands) {
    SCOPED_TRACE(cmd);
    SandboxOutcome out = Sh(cmd);
    EXPECT_NE(out.exit_code, 0);
    std::string err = out.stderr_data;
    std::transform(err.begin(), err.end(), err.begin(), ::tolower);
    EXPECT_TRUE(err.find("operation not permitted") != std::string::npos ||
                err.find("permission denied") != std::string::npos)
        << out.stderr_data;
  }
  EXPECT_EQ(MountsOf(ws_) + MountsOf(scratch_), mounts_before);
}

// Each of these would succeed or fail differently without the seccomp filter: keyctl works
// unprivileged, bpf(9999) is EINVAL, TIOCSTI on /dev/null is ENOTTY, attaching to one's own
// child is allowed, a user namespace needs no capability, clone3 is EFAULT with NULL args.
TEST_F(SandboxTest, SeccompDeniesDangerousSyscalls) {
  const char* script = R"PERL(
    sub show { my ($name, $ok) = @_; print "$name=", ($ok ? "ok" : $!+0), "\n"; }
    my $pid = fork(); if ($pid == 0) { sleep 5; exit 0; }
    show("ptrace", syscall(101, 16, $pid, 0, 0) != -1);
    kill 9, $pid; waitpid($pid, 0);
    show("bpf", syscall(321, 9999, 0, 0) != -1);
    show("keyctl", syscall(250, 0, -3, 0) != -1);
    my $c = "x"; show("tiocsti", defined ioctl(STDIN, 0x5412, $c));
    show("unshare_user", syscall(272, 0x10000000) != -1);
    show("clone_newuser", syscall(56, 0x10000000 | 17, 0, 0, 0, 0) != -1);
    show("clone3", syscall(435, 0, 0) != -1);
  )PERL";
  SandboxOutcome out = Run(Spec({"perl", "-e", script}));
  EXPECT_EQ(out.stdout_data,
            "ptrace=1\nbpf=1\nkeyctl=1\ntiocsti=1\nunshare_user=1\nclone_newuser=1\n"
            "clone3=38\n")
      << out.stderr_data;
}

TEST_F(SandboxTest, HiddenPathsShowNothing) {
  std::string host = HostDir();
  WriteFile(host + "/policy.yaml", "secret-policy\n");
  fs::create_directory(host + "/secrets");
  WriteFile(host + "/secrets/key", "secret-key\n");
  WriteFile(ws_ + "/.env", "secret-env\n");
  fs::create_directory(ws_ + "/private");
  WriteFile(ws_ + "/private/token", "secret-token\n");
  SandboxSpec spec = Spec({"sh", "-c",
                           "cat \"$1/policy.yaml\"; ls -A \"$1/secrets\"; cat \"$1/secrets/key\";"
                           "cat .env; ls -A private; cat private/token; echo x > .env;"
                           "ls /root/.ssh; ls /home; echo done",
                           "sh", host});
  spec.hide = {host + "/policy.yaml", host + "/secrets", ws_ + "/.env",
               ws_ + "/private",      "/root/.ssh",      "/nonexistent/path"};
  SandboxOutcome out = Run(spec);
  EXPECT_EQ(out.stdout_data, "done\n") << out.stdout_data;
  EXPECT_EQ(out.stdout_data.find("secret"), std::string::npos);
  EXPECT_NE(out.stderr_data.find("secrets/key: No such file or directory"), std::string::npos)
      << out.stderr_data;
  EXPECT_NE(out.stderr_data.find("private/token: No such file or directory"), std::string::npos);
  EXPECT_NE(out.stderr_data.find(".env: Read-only file system"), std::string::npos);
  EXPECT_NE(out.stderr_data.find("/root/.ssh"), std::string::npos);
  EXPECT_NE(out.stderr_data.find("/home"), std::string::npos);
  EXPECT_EQ(ReadFile(ws_ + "/.env"), "secret-env\n");
}

class HostListener {
 public:
  HostListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 8), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~HostListener() { ::close(fd_); }
  int port() const { return port_; }
  bool GotConnection() const {
    int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c >= 0) ::close(c);
    return c >= 0;
  }

 private:
  int fd_;
  int port_;
};

TEST_F(SandboxTest, NetworkIsUnreachableAndAttemptsAreCounted) {
  HostListener listener;
  struct Case {
    std::string target, error, detail;
  };
  const std::vector<Case> cases = {
      {"/dev/tcp/127.0.0.1/" + std::to_string(listener.port()), "Connection refused",
       "1 TCP connection attempt"},
      {"/dev/udp/1.1.1.1/53", "Network is unreachable", "1 packet without a route"},
      {"/dev/tcp/93.184.216.34/80", "Network is unreachable", "1 packet without a route"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.target);
    SandboxOutcome out = Run(Spec({"bash", "-c", "echo hi > " + c.target}));
    EXPECT_NE(out.exit_code, 0);
    EXPECT_NE(out.stderr_data.find(c.error), std::string::npos) << out.stderr_data;
    EXPECT_TRUE(out.network_attempt);
    EXPECT_NE(out.network_detail.find(c.detail), std::string::npos) << out.network_detail;
  }
  EXPECT_FALSE(listener.GotConnection());
  SandboxOutcome quiet = Sh("cat /etc/hostname >/dev/null; echo local > f");
  EXPECT_FALSE(quiet.network_attempt) << quiet.network_detail;
  EXPECT_EQ(quiet.network_detail, "");
}

// The namespace is made ahead, on a thread of the caller or as the process's spare for the
// next run (EnterNetworkMadeAhead, SpareNetwork): still one of its own for each run, never
// the host's, and its loopback is up (the first case above is refused by 127.0.0.1, not
// unreachable). The three runs are all built before any runs, so that their namespaces
// exist together: a namespace's inode number is free for the next one once it is gone. The
// third is built once the spare made since the second is ready.
TEST_F(SandboxTest, EachRunHasANetworkNamespaceOfItsOwn) {
  char host[64] = {};
  ASSERT_GT(::readlink("/proc/self/ns/net", host, sizeof host - 1), 0);
  std::vector<std::unique_ptr<PreparedRun>> runs;
  // A spare is ready when more were made than runs took (nothing else takes one).
  auto spare_ready = [] {
    const SpareCounts c = SpareCountsSoFar();
    return c.net_made > c.net_taken;
  };
  int64_t taken_before_third = 0;
  for (int i = 0; i < 3; ++i) {
    SandboxSpec spec = Spec({});
    spec.scratch_dir = MakeTempDir("/tmp");
    cleanup_.push_back(spec.scratch_dir);
    spec.linger = true;  // each keeps its namespaces until Finish
    if (i == 2) {
      // The spare made since the second (on a thread of its own): waited for, as a run on a
      // loaded machine would not.
      for (int w = 0; w < 1000 && !spare_ready(); ++w) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      ASSERT_TRUE(spare_ready()) << "no spare network namespace was made in 10 s";
      taken_before_third = SpareCountsSoFar().net_taken;
    }
    Result<std::unique_ptr<PreparedRun>> prepared = PreparedRun::Prepare(spec);
    ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
    runs.push_back(std::move(*prepared));
  }
  EXPECT_GT(SpareCountsSoFar().net_taken, taken_before_third) << "the third took no spare";
  std::set<std::string> seen = {host};
  for (size_t i = 0; i < runs.size(); ++i) {
    Result<SandboxOutcome> out = runs[i]->Run({"readlink", "/proc/self/ns/net"}, nullptr);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    ASSERT_EQ(out->exit_code, 0) << out->stderr_data;
    ASSERT_EQ(out->stdout_data.rfind("net:[", 0), 0u) << out->stdout_data;
    EXPECT_TRUE(seen.insert(out->stdout_data.substr(0, out->stdout_data.find('\n'))).second)
        << "run " << i << " shares a network namespace: " << out->stdout_data;
  }
  for (auto& run : runs) EXPECT_TRUE(run->Finish().ok());
}

// The cgroups kept for the next run (Spares) carry the limits they were made for: a run that
// asks for other ones makes its own, and both are enforced. A run's cgroups are kept for the
// next only if no limit was hit in them, so that a limit hit is always the run's own.
TEST_F(SandboxTest, SpareCgroupsAreTakenOnlyForTheSameLimits) {
  ReuseCgroups reuse;
  // Twelve processes at once beside the shell: fine under 64 pids, a fork refused under 8.
  SandboxSpec roomy = Spec({"sh", "-c",
                            "i=0; while [ $i -lt 12 ]; do sleep 1 & i=$((i+1)); done; wait; "
                            "echo ok"});
  roomy.pids = 64;
  SandboxSpec tight = roomy;
  tight.pids = 8;
  const auto fine = [](const SandboxOutcome& o) {
    return ::testing::AssertionResult(o.stdout_data == "ok\n" && o.killed_by.empty())
           << "exit " << o.exit_code << ", killed_by '" << o.killed_by << "', stdout '"
           << o.stdout_data << "', stderr '" << o.stderr_data << "'";
  };
  const auto stopped = [](const SandboxOutcome& o) {
    return ::testing::AssertionResult(o.killed_by == "pids")
           << "exit " << o.exit_code << ", killed_by '" << o.killed_by << "', stdout '"
           << o.stdout_data << "', stderr '" << o.stderr_data << "'";
  };
  EXPECT_TRUE(fine(Run(roomy)));
  EXPECT_TRUE(fine(Run(roomy)));  // the second run: its cgroups are kept for the next
  SpareCounts n = SpareCountsSoFar();
  EXPECT_TRUE(fine(Run(roomy)));  // the cgroups the second run kept, for 64 pids
  EXPECT_EQ(SpareCountsSoFar().cgroups_taken, n.cgroups_taken + 1);
  EXPECT_EQ(SpareCountsSoFar().cgroups_reused, n.cgroups_reused + 1) << "kept for the next";
  n = SpareCountsSoFar();
  EXPECT_TRUE(fine(Run(roomy)));  // the same cgroups again
  EXPECT_EQ(SpareCountsSoFar().cgroups_taken, n.cgroups_taken + 1);
  n = SpareCountsSoFar();
  EXPECT_TRUE(stopped(Run(tight)));  // not the spare kept for 64: cgroups of its own, with 8
  EXPECT_EQ(SpareCountsSoFar().cgroups_taken, n.cgroups_taken);
  n = SpareCountsSoFar();
  EXPECT_TRUE(stopped(Run(tight)));  // none kept: a limit was hit in the last run's
  EXPECT_EQ(SpareCountsSoFar().cgroups_taken, n.cgroups_taken);
  EXPECT_EQ(SpareCountsSoFar().cgroups_reused, n.cgroups_reused) << "a limit was hit in them";
  EXPECT_TRUE(fine(Run(roomy)));  // whatever it gets, no limit hit is reported that was not its own
  ExpectNothingLeftBehind(0);
}

// A run's cgroups are kept for the next only once nothing of it is charged to them: 60 MB
// written into its upper layer (a tmpfs) would leave the next run, under a 96 MB limit, too
// little room for 60 MB of its own.
TEST_F(SandboxTest, AKeptCgroupCarriesNoMemoryOfTheRunBefore) {
  ReuseCgroups reuse;
  SandboxSpec spec = Spec({"true"});
  spec.memory_bytes = 96ll << 20;
  Run(spec);
  Run(spec);  // from here on cgroups are kept
  SandboxSpec fill = spec;
  fill.argv = {"sh", "-c", "head -c 60000000 /dev/zero > big && echo ok"};
  const SpareCounts before = SpareCountsSoFar();
  SandboxOutcome a = Run(fill);
  EXPECT_EQ(a.stdout_data, "ok\n") << a.stderr_data;
  EXPECT_EQ(SpareCountsSoFar().cgroups_reused, before.cgroups_reused + 1);
  fill.argv = {"sh", "-c", "head -c 60000000 /dev/zero > /tmp/big && echo ok"};
  SandboxOutcome b = Run(fill);  // in the cgroups the first one used
  EXPECT_EQ(SpareCountsSoFar().cgroups_taken, before.cgroups_taken + 2);
  EXPECT_EQ(b.stdout_data, "ok\n") << b.stderr_data;
  EXPECT_EQ(b.killed_by, "");
  ExpectNothingLeftBehind(0);
}

// Spare cgroups are removed when the process exits. Run in a process of its own: this test
// binary started again with only SpareCgroupsChild.RunsSandboxesAndExits, which runs three
// sandboxes (from the second on, a spare is kept) and exits while one is kept.
TEST(SpareCgroupsChild, RunsSandboxesAndExits) {
  ReuseCgroups reuse;
  const char* scratch = std::getenv("AIRLOCK_TEST_SPARE_CHILD");
  if (scratch == nullptr) GTEST_SKIP() << "only as the child of SpareCgroupsAreRemovedAtExit";
  SandboxSpec spec;
  spec.argv = {"true"};
  spec.workspace = scratch + std::string("/ws");
  spec.scratch_dir = scratch + std::string("/scratch");
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.timeout_ms = 20'000;
  for (int i = 0; i < 3; ++i) {
    Result<SandboxOutcome> out = RunSandboxed(spec, nullptr);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    ASSERT_EQ(out->exit_code, 0) << out->stderr_data;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_GE(SpareCountsSoFar().cgroups_taken, 1);
}

TEST_F(SandboxTest, SpareCgroupsAreRemovedAtExit) {
  ReuseCgroups reuse;
  fs::create_directory(scratch_ + "/ws");
  fs::create_directory(scratch_ + "/scratch");
  const std::string out_file = scratch_ + "/child.out";
  const std::string cmd = "AIRLOCK_TEST_SPARE_CHILD=" + scratch_ + " /proc/" +
                          std::to_string(::getpid()) +
                          "/exe --gtest_filter=SpareCgroupsChild.RunsSandboxesAndExits >" +
                          out_file + " 2>&1 & echo $!; wait $!";
  FILE* sh = ::popen(cmd.c_str(), "r");
  ASSERT_NE(sh, nullptr);
  char line[32] = {};
  ASSERT_NE(std::fgets(line, sizeof line, sh), nullptr);
  const int child = std::atoi(line);
  const int status = ::pclose(sh);
  const std::string output = ReadFile(out_file);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << output;
  EXPECT_NE(output.find("[  PASSED  ] 1 test"), std::string::npos) << output;
  for (const std::string& dir : CgroupsNamedFor(child)) {
    ADD_FAILURE() << "left behind by the child: " << dir;
  }
  fs::remove_all(scratch_ + "/ws");
  fs::remove_all(scratch_ + "/scratch");
  fs::remove(out_file);
}

// The sandbox launcher (launcher.h), in a process of its own: this binary started again with
// only LauncherChild.RunsSandboxesWhileOtherThreadsAllocate. That child starts the launcher
// (refused while it has a second thread), keeps three threads allocating and freeing, and
// runs sandboxes one after another. Forked from such a process, a supervisor could inherit a
// lock of the allocator held by one of those threads: in the sanitizer build, whose
// allocator has no fork handler, init then hung in its first allocation now and then.
TEST(LauncherChild, RunsSandboxesWhileOtherThreadsAllocate) {
  const char* scratch = std::getenv("AIRLOCK_TEST_LAUNCHER_CHILD");
  if (scratch == nullptr) GTEST_SKIP() << "only as the child of SandboxesComeFromTheLauncher";
  {
    std::atomic<bool> go{false};
    std::thread waiter([&] {
      while (!go) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    Status refused = StartSandboxLauncher();
    go = true;
    waiter.join();
    EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition) << refused.ToString();
    EXPECT_NE(refused.message().find("one thread"), std::string::npos) << refused.message();
  }
  // A joined thread is still counted until the kernel has released it (join returns once it
  // has left its memory, before that): seen in the sanitizer build's CI.
  auto threads = [] {
    std::istringstream in(ReadFile("/proc/self/status"));
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
    }
    return -1;
  };
  for (int i = 0; i < 1000 && threads() != 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(threads(), 1);
  ASSERT_TRUE(StartSandboxLauncher().ok());
  EXPECT_EQ(StartSandboxLauncher().code(), StatusCode::kFailedPrecondition);

  std::atomic<bool> stop{false};
  std::vector<std::thread> busy;
  for (int t = 0; t < 3; ++t) {
    busy.emplace_back([&stop, t] {
      std::vector<std::string> keep(64);
      for (size_t i = 0; !stop; ++i)
        keep[i % keep.size()] = std::string(16 + (i * 37 + t) % 400, 'x');
    });
  }
  SandboxSpec spec;
  spec.workspace = scratch + std::string("/ws");
  spec.scratch_dir = scratch + std::string("/scratch");
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.timeout_ms = 20'000;
  for (int i = 0; i < 12; ++i) {
    spec.argv = {"sh", "-c",
                 "echo run " + std::to_string(i) + "; echo new > f" + std::to_string(i)};
    std::vector<std::string> upper;
    Result<SandboxOutcome> out = RunSandboxed(spec, [&](const std::string& dir) {
      for (const auto& e : fs::directory_iterator(dir)) upper.push_back(e.path().filename());
      return Status::Ok();
    });
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ(out->exit_code, 0) << out->stderr_data;
    EXPECT_EQ(out->stdout_data, "run " + std::to_string(i) + "\n");
    EXPECT_EQ(upper, std::vector<std::string>{"f" + std::to_string(i)});
  }
  // The plan crosses as bytes: an argument and an environment value that are not UTF-8
  // arrive as they were.
  spec.argv = {"sh", "-c", "printf %s \"$1$V\" | od -An -tx1 | tr -d ' '", "sh", "\xff\xfe"};
  spec.env = {"PATH=/usr/bin:/bin", "V=\xc3"};
  Result<SandboxOutcome> bytes = RunSandboxed(spec, nullptr);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  EXPECT_EQ(bytes->stdout_data, "fffec3\n") << bytes->stderr_data;
  stop = true;
  for (std::thread& t : busy) t.join();
  // Every supervisor was this process's child (the launcher clones with CLONE_PARENT), and
  // was reaped by it: the launcher has no children, and no zombie is left.
  // (The main thread started the launcher; the launcher's clones count as that thread's.)
  int launchers = 0;
  for (pid_t kid : ChildrenOf(::getpid())) {
    const std::string stat = ReadFile("/proc/" + std::to_string(kid) + "/stat");
    const size_t open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close + 2 >= stat.size()) {
      continue;  // gone meanwhile
    }
    if (stat.substr(open + 1, close - open - 1) == "airlock-launch") {
      ++launchers;
      EXPECT_TRUE(ChildrenOf(kid).empty()) << "the launcher has children";
    } else {
      EXPECT_NE(stat[close + 2], 'Z') << "not reaped: " << stat;
    }
  }
  EXPECT_EQ(launchers, 1);

  // A launcher that is gone costs the run that finds it so (an error, nothing run), and the
  // runs after it fork from their own thread.
  pid_t launcher = -1;
  for (pid_t kid : ChildrenOf(::getpid())) {
    if (ReadFile("/proc/" + std::to_string(kid) + "/comm") == "airlock-launch\n") launcher = kid;
  }
  ASSERT_GT(launcher, 0);
  ASSERT_EQ(::kill(launcher, SIGKILL), 0);
  spec.argv = {"sh", "-c", "echo after"};
  spec.env = {"PATH=/usr/bin:/bin"};
  Result<SandboxOutcome> lost = RunSandboxed(spec, nullptr);
  ASSERT_FALSE(lost.ok());
  EXPECT_NE(lost.status().message().find("sandbox launcher"), std::string::npos)
      << lost.status().ToString();
  Result<SandboxOutcome> after = RunSandboxed(spec, nullptr);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->stdout_data, "after\n");
}

TEST_F(SandboxTest, SandboxesComeFromTheLauncher) {
  fs::create_directory(scratch_ + "/ws");
  fs::create_directory(scratch_ + "/scratch");
  const std::string out_file = scratch_ + "/child.out";
  const std::string trace = scratch_ + "/trace";
  const std::string cmd = "AIRLOCK_TRACE=" + trace + " AIRLOCK_TEST_LAUNCHER_CHILD=" + scratch_ +
                          " /proc/" + std::to_string(::getpid()) +
                          "/exe --gtest_filter=LauncherChild.RunsSandboxesWhileOtherThreadsAllocate"
                          " >" +
                          out_file + " 2>&1";
  const int status = std::system(cmd.c_str());
  const std::string output = ReadFile(out_file);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << output;
  EXPECT_NE(output.find("[  PASSED  ] 1 test"), std::string::npos) << output;
  // Each of the child's 13 runs before the launcher was killed had its supervisor forked by
  // the launcher; the one after it, by its own thread.
  std::istringstream lines(ReadFile(trace));
  int launched = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("supervisor: forked by the launcher") != std::string::npos) ++launched;
  }
  EXPECT_EQ(launched, 13) << ReadFile(trace).substr(0, 4000);
  // The launcher's loss was said, once.
  const std::string said = "from now on each sandbox is forked by its own thread";
  const size_t at = output.find(said);
  EXPECT_NE(at, std::string::npos) << output;
  if (at != std::string::npos) {
    EXPECT_EQ(output.find(said, at + 1), std::string::npos) << output;
  }
  fs::remove_all(scratch_ + "/ws");
  fs::remove_all(scratch_ + "/scratch");
  fs::remove(out_file);
  fs::remove(trace);
}

TEST_F(SandboxTest, NetworkOnSharesTheHostNetwork) {
  HostListener listener;
  SandboxSpec spec =
      Spec({"bash", "-c", "echo hi > /dev/tcp/127.0.0.1/" + std::to_string(listener.port())});
  spec.network = true;
  SandboxOutcome out = Run(spec);
  EXPECT_EQ(out.exit_code, 0) << out.stderr_data;
  EXPECT_TRUE(listener.GotConnection());
  EXPECT_FALSE(out.network_attempt);  // only measured when the network is off
}

// The caller's side of network: proxy, reduced to one exchange: accepts one connection on
// the socket the sandbox hands over, answers "pong" to a line, and counts.
class PongEgress : public EgressListener {
 public:
  void Serve(int fd) override {
    fd_ = fd;
    thread_ = std::thread([this] {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      ++accepted_;
      char buf[64];
      ssize_t n = ::read(c, buf, sizeof buf);
      if (n > 0) received_.assign(buf, static_cast<size_t>(n));
      (void)!::write(c, "pong\n", 5);
      ::close(c);
    });
  }
  int64_t Stop() override {
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);  // wakes a blocked accept
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    return accepted_;
  }
  ~PongEgress() override { Stop(); }
  std::string received_;

 private:
  int fd_ = -1;
  int64_t accepted_ = 0;
  std::thread thread_;
};

TEST_F(SandboxTest, EgressSocketIsServedFromOutsideAndNotCountedAsAnAttempt) {
  HostListener host;
  // The first connect reaches the egress socket (served here, outside the sandbox); the
  // second tries the host's listener, which the sandbox's namespace cannot reach.
  SandboxSpec spec = Spec({"bash", "-c",
                           "exec 3<>/dev/tcp/127.0.0.1/3128; echo ping >&3; read -r l <&3; "
                           "echo \"got $l\"; echo hi > /dev/tcp/127.0.0.1/" +
                               std::to_string(host.port())});
  spec.egress_port = 3128;
  PongEgress egress;
  Result<SandboxOutcome> r = RunSandboxed(spec, nullptr, &egress);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_NE(r->stdout_data.find("got pong"), std::string::npos) << r->stderr_data;
  EXPECT_EQ(egress.received_, "ping\n");
  EXPECT_FALSE(host.GotConnection());
  // Two connects in the namespace, one of them to airlock: one attempt to get out.
  EXPECT_TRUE(r->network_attempt);
  EXPECT_EQ(r->network_detail, "1 TCP connection attempt");

  SandboxOutcome quiet = [&] {
    SandboxSpec s = Spec({"bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/3128; echo ping >&3; cat <&3"});
    s.egress_port = 3128;
    PongEgress e;
    Result<SandboxOutcome> q = RunSandboxed(s, nullptr, &e);
    EXPECT_TRUE(q.ok()) << q.status().ToString();
    return q.ok() ? *q : SandboxOutcome();
  }();
  EXPECT_EQ(quiet.stdout_data, "pong\n");
  EXPECT_FALSE(quiet.network_attempt) << quiet.network_detail;
}

TEST_F(SandboxTest, EgressPortNeedsAListenerAndNetworkOff) {
  SandboxSpec spec = Spec({"true"});
  spec.egress_port = 3128;
  EXPECT_EQ(RunSandboxed(spec, nullptr, nullptr).status().code(), StatusCode::kInvalidArgument);
  spec.network = true;
  PongEgress egress;
  EXPECT_EQ(RunSandboxed(spec, nullptr, &egress).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SandboxTest, ForkBombHitsThePidsLimit) {
  SandboxSpec spec = Spec({"sh", "-c", "while :; do sleep 1000.4321 & done"});
  spec.pids = 32;
  spec.timeout_ms = 5000;
  auto start = std::chrono::steady_clock::now();
  SandboxOutcome out = Run(spec);
  EXPECT_EQ(out.killed_by, "pids") << out.stderr_data;
  EXPECT_NE(out.stderr_data.find("fork"), std::string::npos) << out.stderr_data;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(8));
  EXPECT_TRUE(HostProcessesMatching("sleep 1000.4321").empty());
  EXPECT_EQ(std::system("true"), 0) << "the host can still fork";
}

TEST_F(SandboxTest, MemoryBombIsKilledByTheMemoryLimit) {
  SandboxSpec spec = Spec({"perl", "-e", "$x = 'a' x (512 << 20); print qq(survived\\n)"});
  spec.memory_bytes = 64LL << 20;
  SandboxOutcome out = Run(spec);
  EXPECT_EQ(out.killed_by, "memory");
  EXPECT_EQ(out.term_signal, SIGKILL);
  EXPECT_EQ(out.exit_code, 128 + SIGKILL);
  EXPECT_EQ(out.stdout_data, "");
}

TEST_F(SandboxTest, TimeoutKillsACommandThatIgnoresSigterm) {
  SandboxSpec spec = Spec({"sh", "-c", "trap '' TERM; echo started; sleep 100"});
  spec.timeout_ms = 1000;
  SandboxOutcome out = Run(spec);
  EXPECT_EQ(out.killed_by, "timeout");
  EXPECT_EQ(out.exit_code, 128 + SIGKILL);
  EXPECT_EQ(out.stdout_data, "started\n");
  EXPECT_GE(out.duration_ms, 1000);
  EXPECT_LT(out.duration_ms, 2500);
}

TEST_F(SandboxTest, NothingTheCommandStartsSurvivesIt) {
  SandboxOutcome out =
      Sh("setsid sh -c 'sleep 1000.1234 &'; sh -c 'sleep 1000.1234 & sleep 1000.1234 &'; "
         "nohup sleep 1000.1234 >/dev/null 2>&1 & echo started");
  EXPECT_EQ(out.exit_code, 0) << out.stderr_data;
  EXPECT_EQ(out.stdout_data, "started\n");
  EXPECT_LT(out.duration_ms, 5000);
  EXPECT_TRUE(HostProcessesMatching("sleep 1000.1234").empty());
}

TEST_F(SandboxTest, FullUpperLayerIsReported) {
  SandboxSpec spec = Spec({"sh", "-c", "head -c 20971520 /dev/zero > big"});
  spec.upper_size_bytes = 8LL << 20;
  SandboxOutcome out = Run(spec);
  EXPECT_NE(out.exit_code, 0);
  EXPECT_NE(out.stderr_data.find("No space left on device"), std::string::npos) << out.stderr_data;
  EXPECT_EQ(out.upper_full, "size");
  EXPECT_FALSE(Exists(ws_ + "/big"));

  spec = Spec({"perl", "-e",
               "for my $i (1..5000) { open(my $f, '>', qq(f$i)) or die qq(file $i: $!\\n) }"});
  spec.upper_inodes = 2000;
  out = Run(spec);
  EXPECT_NE(out.exit_code, 0);
  EXPECT_NE(out.stderr_data.find("No space left on device"), std::string::npos) << out.stderr_data;
  EXPECT_EQ(out.upper_full, "files");
  EXPECT_TRUE(fs::is_empty(ws_));
}

TEST_F(SandboxTest, StdioDevicesAndTmpAreWritable) {
  SandboxOutcome out =
      Sh("echo to-stdout > /dev/stdout; echo to-stderr > /dev/stderr; "
         "echo x > /dev/null; echo y > /dev/shm/f && cat /dev/shm/f; "
         "t=$(mktemp) && echo z > \"$t\" && cat \"$t\"; "
         "head -c 4 /dev/urandom | wc -c; read line; echo \"stdin=$?\"; "
         "ls /dev | tr '\\n' ' '; echo; touch /dev/new 2>&1 | sed 's/.*: //'");
  EXPECT_EQ(out.exit_code, 0) << out.stderr_data;
  EXPECT_EQ(out.stdout_data,
            "to-stdout\ny\nz\n4\nstdin=1\n"
            "fd full null random shm stderr stdin stdout tty urandom zero \n"
            "Read-only file system\n");
  EXPECT_EQ(out.stderr_data, "to-stderr\n");
}

TEST_F(SandboxTest, WorkspaceUnderRootIsMountedAtItsOwnPath) {
  fs::remove_all(ws_);
  ws_ = MakeTempDir("/root");
  WriteFile(ws_ + "/in-ws", "hello\n");
  SandboxOutcome out = Sh("pwd; cat in-ws; ls -A /root; echo new > new");
  EXPECT_EQ(out.exit_code, 0) << out.stderr_data;
  EXPECT_EQ(out.stdout_data, ws_ + "\nhello\n" + fs::path(ws_).filename().string() + "\n");
  EXPECT_FALSE(Exists(ws_ + "/new"));
}

TEST_F(SandboxTest, FailedSetupIsAnErrorAndTheCommandNeverRuns) {
  // One inode: the scratch tmpfs has no room for its upper/ directory.
  SandboxSpec spec = Spec({"sh", "-c", "echo ran > /dev/stdout"});
  spec.upper_inodes = 1;
  Result<SandboxOutcome> r = RunSandboxed(spec, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  EXPECT_NE(r.status().message().find("sandbox setup: mkdir " + scratch_ +
                                      "/upper: No space "
                                      "left on device"),
            std::string::npos)
      << r.status().ToString();
  EXPECT_TRUE(OurCgroups().empty());
}

TEST_F(SandboxTest, BadInputIsAnInvalidArgument) {
  auto expect_invalid = [&](const SandboxSpec& spec, const std::string& message) {
    Result<SandboxOutcome> r = RunSandboxed(spec, nullptr);
    ASSERT_FALSE(r.ok()) << message;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
    EXPECT_NE(r.status().message().find(message), std::string::npos) << r.status().ToString();
  };
  expect_invalid(Spec({}), "empty command");
  expect_invalid(Spec({""}), "empty command name");
  expect_invalid(Spec({"airlock-no-such-command", "x"}),
                 "command not found: airlock-no-such-command");
  WriteFile(ws_ + "/script.sh", "#!/bin/sh\necho hi\n");
  ::chmod((ws_ + "/script.sh").c_str(), 0644);
  expect_invalid(Spec({"./script.sh"}), "cannot execute ./script.sh: Permission denied");

  SandboxSpec spec = Spec({"true"});
  spec.workspace = ws_ + "/missing";
  expect_invalid(spec, "No such file or directory");
  spec.workspace = "relative/ws";
  expect_invalid(spec, "workspace must be an absolute path");
  std::string link = scratch_ + "-link";
  ASSERT_EQ(::symlink(ws_.c_str(), link.c_str()), 0);
  spec.workspace = link;
  expect_invalid(spec, "workspace is a symlink");
  ::unlink(link.c_str());
  spec.workspace = ws_ + "/script.sh";
  expect_invalid(spec, "workspace is not a directory");
  spec.workspace = "/";
  expect_invalid(spec, "workspace must not be /");
  spec = Spec({"true"});
  spec.scratch_dir = scratch_ + "/missing";
  expect_invalid(spec, "scratch dir");
  EXPECT_TRUE(OurCgroups().empty());
}

TEST_F(SandboxTest, OutputIsCappedButCounted) {
  SandboxSpec spec = Spec({"sh", "-c", "head -c 3145728 /dev/zero; echo tail >&2"});
  spec.output_cap_bytes = 1 << 20;
  SandboxOutcome out = Run(spec);
  EXPECT_EQ(out.exit_code, 0);
  EXPECT_EQ(out.stdout_data.size(), 1u << 20);
  EXPECT_EQ(out.stdout_bytes, 3 << 20);
  EXPECT_TRUE(out.stdout_truncated);
  EXPECT_EQ(out.stderr_data, "tail\n");
  EXPECT_EQ(out.stderr_bytes, 5);
  EXPECT_FALSE(out.stderr_truncated);
}

TEST_F(SandboxTest, EnvironmentIsExactlyTheSpecs) {
  SandboxSpec spec = Spec({"env"});
  spec.env = {"PATH=/usr/bin", "FOO=bar baz"};
  SandboxOutcome out = Run(spec);
  EXPECT_EQ(out.stdout_data, "PATH=/usr/bin\nFOO=bar baz\n");
  // PATH is looked up in spec.env: no /bin, /sbin or /usr/sbin here.
  spec = Spec({"mkfs"});
  spec.env = {"PATH=/nonexistent"};
  Result<SandboxOutcome> r = RunSandboxed(spec, nullptr);
  EXPECT_EQ(r.status().message(), "command not found: mkfs");
}

// init reports only once every process the command started is gone (here one that let go
// of the output pipes, so their end says nothing), and the caller reads the upper layer
// while init itself still exits: nothing writes to it after that.
TEST_F(SandboxTest, TheUpperLayerIsFinalWhenInspected) {
  SandboxSpec spec =
      Spec({"sh", "-c",
            "(trap '' TERM HUP; exec >/dev/null 2>&1; while :; do echo x >> log; done) & "
            "sleep 0.2"});
  int64_t first = -1, second = -1;
  auto size_of_log = [](const std::string& upper) -> int64_t {
    struct stat st;
    return ::stat((upper + "/log").c_str(), &st) == 0 ? st.st_size : -1;
  };
  SandboxOutcome out = Run(spec, [&](const std::string& upper) -> Status {
    first = size_of_log(upper);
    ::usleep(200 * 1000);
    second = size_of_log(upper);
    return Status::Ok();
  });
  EXPECT_EQ(out.exit_code, 0) << out.stderr_data;
  EXPECT_GT(first, 0) << "the loop ran";
  EXPECT_EQ(first, second) << "something wrote to the upper layer while it was read";
}

TEST_F(SandboxTest, RunsLeaveNothingBehind) {
  const int mounts_before = MountsOf(ws_) + MountsOf(scratch_);
  for (int i = 0; i < 5; ++i) {
    SandboxOutcome out = Sh("echo x > f; mkdir d; sleep 0.01 &");
    EXPECT_EQ(out.exit_code, 0);
  }
  SandboxSpec slow = Spec({"sleep", "100"});
  slow.timeout_ms = 200;
  EXPECT_EQ(Run(slow).killed_by, "timeout");
  Result<SandboxOutcome> missing = RunSandboxed(Spec({"airlock-no-such-command"}), nullptr);
  EXPECT_FALSE(missing.ok());

  ExpectNothingLeftBehind(mounts_before);
}

// Runs after one killed at its timeout run as before. (A cgroup killed through cgroup.kill
// kills what is later cloned into it on this kernel, so it is never kept for a later run.)
TEST_F(SandboxTest, RunsAfterOneKilledAtItsTimeoutRunWhole) {
  ReuseCgroups reuse;
  for (int i = 0; i < 3; ++i) Sh("true");  // from the second on, cgroups are kept
  SandboxSpec slow = Spec({"sleep", "100"});
  slow.timeout_ms = 200;
  EXPECT_EQ(Run(slow).killed_by, "timeout");
  for (int i = 0; i < 3; ++i) {
    SandboxOutcome o = Sh("echo hi");
    EXPECT_EQ(o.stdout_data, "hi\n") << o.exit_code << " " << o.killed_by << " " << o.stderr_data;
  }
}

TEST_F(SandboxTest, APreparedRunStartsItsCommandOnlyInRunAndTimesItFromThere) {
  SandboxSpec spec = Spec({"sh", "-c", "echo ran; sleep 1000.4321"});
  spec.timeout_ms = 300;
  Result<std::unique_ptr<PreparedRun>> prepared = PreparedRun::Prepare(spec);
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  // Twice the timeout: a command started by Prepare would be running now, or killed.
  ::usleep(600 * 1000);
  EXPECT_TRUE(HostProcessesMatching("sleep 1000.4321").empty());
  Result<SandboxOutcome> out = (*prepared)->Run(nullptr);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->stdout_data, "ran\n");
  EXPECT_EQ(out->killed_by, "timeout");
  EXPECT_GE(out->duration_ms, 300);
  Result<SandboxOutcome> again = (*prepared)->Run(nullptr);
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition);
  prepared->reset();
  EXPECT_TRUE(OurCgroups().empty());
}

TEST_F(SandboxTest, APreparedRunGivenUpNeverRunsItsCommandAndLeavesNothing) {
  const int mounts_before = MountsOf(ws_) + MountsOf(scratch_);
  for (int wait_ms : {0, 200}) {
    Result<std::unique_ptr<PreparedRun>> prepared =
        PreparedRun::Prepare(Spec({"sh", "-c", "sleep 1000.5678; echo x > f"}));
    ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
    ::usleep(wait_ms * 1000);
    EXPECT_TRUE(HostProcessesMatching("sleep 1000.5678").empty());
  }
  EXPECT_TRUE(HostProcessesMatching("sleep 1000.5678").empty());
  ExpectNothingLeftBehind(mounts_before);
}

// A sandbox built before its command is known (airlock serve's standby): the command comes
// with "start", whole, however long, and nothing runs before it.
TEST_F(SandboxTest, ARunPreparedWithoutACommandRunsTheOneItIsGiven) {
  const int mounts_before = MountsOf(ws_) + MountsOf(scratch_);
  Result<std::unique_ptr<PreparedRun>> prepared = PreparedRun::Prepare(Spec({}));
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  // Nine arguments of 100,000 bytes each: more than a socket buffer holds, so "start" is
  // sent in pieces while init reads it.
  std::vector<std::string> argv = {"sh", "-c", "printf %s \"$@\" | wc -c; echo x > made", "sh"};
  for (char c = 'a'; c < 'j'; ++c) argv.push_back(std::string(100'000, c));
  std::string upper_file;
  Result<SandboxOutcome> out = (*prepared)->Run(argv, [&](const std::string& upper) {
    upper_file = ReadFile(upper + "/made");
    return Status::Ok();
  });
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->stdout_data, "900000\n");
  EXPECT_EQ(out->exit_code, 0);
  EXPECT_EQ(upper_file, "x\n");
  EXPECT_EQ((*prepared)->spec().argv, argv);
  EXPECT_TRUE((*prepared)->Finish().ok());
  prepared->reset();
  ExpectNothingLeftBehind(mounts_before);
}

TEST_F(SandboxTest, ARunPreparedWithoutACommandRefusesABadOneAndRunsNothing) {
  const int mounts_before = MountsOf(ws_) + MountsOf(scratch_);
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{}, std::vector<std::string>{""},
        std::vector<std::string>{"sh", std::string("a\0b", 3)},
        std::vector<std::string>{"sh", std::string(1 << 20, 'x')},
        std::vector<std::string>(70'000, "x")}) {
    Result<std::unique_ptr<PreparedRun>> prepared = PreparedRun::Prepare(Spec({}));
    ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
    Result<SandboxOutcome> out = (*prepared)->Run(bad, nullptr);
    EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument) << out.status().ToString();
    // Refused before "start": the run may still be given a good command.
    Result<SandboxOutcome> good = (*prepared)->Run({"sh", "-c", "echo fine"}, nullptr);
    ASSERT_TRUE(good.ok()) << good.status().ToString();
    EXPECT_EQ(good->stdout_data, "fine\n");
  }
  // RunSandboxed still needs one.
  EXPECT_EQ(RunSandboxed(Spec({}), nullptr).status().code(), StatusCode::kInvalidArgument);
  ExpectNothingLeftBehind(mounts_before);
}

// This process's only child (the supervisor Prepare just forked), or 0.
pid_t OnlyChild() {
  const std::vector<pid_t> kids = ChildrenOf(::getpid(), ::gettid());
  return kids.size() == 1 ? kids[0] : 0;
}

// A lingering run keeps its init (and with it the pid namespace) until Finish; otherwise
// init goes once it has reported, whether or not the caller has finished.
TEST_F(SandboxTest, ALingeringRunKeepsItsInitUntilFinish) {
  for (bool linger : {true, false}) {
    SandboxSpec spec = Spec({});
    spec.linger = linger;
    Result<std::unique_ptr<PreparedRun>> prepared = PreparedRun::Prepare(spec);
    ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
    const pid_t supervisor = OnlyChild();
    ASSERT_GT(supervisor, 0);
    Result<SandboxOutcome> out = (*prepared)->Run({"true"}, nullptr);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    auto init_alive = [&] { return !ChildrenOf(supervisor).empty(); };
    bool alive = init_alive();
    for (int i = 0; i < 50 && alive; ++i) {
      ::usleep(20 * 1000);
      alive = init_alive();
    }
    EXPECT_EQ(alive, linger) << (linger ? "init left before Finish" : "init waited for Finish");
    EXPECT_TRUE((*prepared)->Finish().ok());
    EXPECT_FALSE(fs::exists("/proc/" + std::to_string(supervisor)));
  }
  EXPECT_TRUE(OurCgroups().empty());
}

// The run's cgroup2 directory (the one clone3 puts init into), or "".
std::string OurCgroup2Dir() {
  for (const std::string& d : OurCgroups()) {
    if (Exists(d + "/cgroup.freeze")) return d;
  }
  return "";
}

// A prepared run caught at its most fragile point: init cloned into a frozen cgroup (it has
// run nothing, its parent-death prctl included) while its supervisor has said "go" and waits
// for it. `skip` says why a machine cannot set this up (then `run` is empty).
struct FrozenStart {
  std::unique_ptr<PreparedRun> run;
  pid_t supervisor = 0;
  std::string cgroup;  // the run's cgroup2 directory, frozen
  std::string skip;
};

void StartWithInitFrozen(const SandboxSpec& spec, FrozenStart* out) {
  // Stop the supervisor before it clones init (retried if it got that far first).
  for (int attempt = 0; attempt < 20 && !out->run; ++attempt) {
    Result<std::unique_ptr<PreparedRun>> prepared = PreparedRun::Prepare(spec);
    ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
    out->supervisor = OnlyChild();
    ASSERT_NE(out->supervisor, 0);
    ASSERT_EQ(::kill(out->supervisor, SIGSTOP), 0);
    int status;
    ASSERT_EQ(::waitpid(out->supervisor, &status, WUNTRACED), out->supervisor);
    if (ChildrenOf(out->supervisor).empty()) {
      out->run = std::move(*prepared);  // else: destroyed, and tried again
    }
  }
  if (!out->run) {
    out->skip = "the supervisor always cloned init before it could be stopped";
    return;
  }
  // init is cloned into a frozen cgroup: it runs nothing, its prctl included, until thawed.
  out->cgroup = OurCgroup2Dir();
  if (out->cgroup.empty()) {
    out->run.reset();
    out->skip = "no cgroup2 directory to freeze init in";
    return;
  }
  WriteFile(out->cgroup + "/cgroup.freeze", "1");
  ASSERT_EQ(::kill(out->supervisor, SIGCONT), 0);
  const std::string syscall_file = "/proc/" + std::to_string(out->supervisor) + "/syscall";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (ReadFile(syscall_file).rfind(std::to_string(SYS_wait4) + " ", 0) != 0) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the supervisor never waited for init";
    ::usleep(1000);
  }
}

// init's parent-death signal is set by init itself, after clone: an init that gets no CPU
// until its supervisor was killed (a denied exec discarding its prestarted sandbox on a
// loaded machine) outlives it. Finish() of the run, never started, must still end: init is
// told (EOF on "start") that the command will not run. Before, init waited for "start"
// forever and Finish() for init's end of the status pipe.
TEST_F(SandboxTest, AGivenUpRunEndsEvenIfItsInitOutlivesTheSupervisor) {
  FrozenStart f;
  ASSERT_NO_FATAL_FAILURE(StartWithInitFrozen(Spec({"sh", "-c", "echo x > f"}), &f));
  if (!f.skip.empty()) GTEST_SKIP() << f.skip;
  std::atomic<bool> finished{false};
  std::thread finish([&] {
    (void)f.run->Finish();  // as the shell connector discards a prestarted sandbox
    finished = true;
  });
  ::usleep(100 * 1000);  // the supervisor is killed meanwhile, before init has run at all
  WriteFile(f.cgroup + "/cgroup.freeze", "0");
  const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!finished && std::chrono::steady_clock::now() < limit) ::usleep(10 * 1000);
  EXPECT_TRUE(finished) << "Finish() of a run never started waited for an init that waits for it";
  if (!finished) WriteFile(f.cgroup + "/cgroup.kill", "1");  // lets the test end
  finish.join();
  f.run.reset();
  EXPECT_TRUE(HostProcessesMatching("echo x > f").empty());
  EXPECT_TRUE(OurCgroups().empty());
}

// The same start, but the supervisor dies while its caller still holds the run (no Finish,
// so "start" stays open): init, thawed after its supervisor is gone, must not go on to wait
// for a "start" that nobody will send. The go pipe's hang-up tells it.
// A command that cannot be sent whole before the run's deadline (init stuck before it reads
// it) is an error, not a run that exited 126: init gets a cut message and runs nothing.
TEST_F(SandboxTest, ACommandNotSentInTimeIsAnErrorAndNeverRuns) {
  SandboxSpec spec = Spec({});
  spec.timeout_ms = 3000;
  FrozenStart f;
  ASSERT_NO_FATAL_FAILURE(StartWithInitFrozen(spec, &f));
  if (!f.skip.empty()) GTEST_SKIP() << f.skip;
  // More than a socket buffer: the send blocks while init is frozen, and gives up at 3 s.
  std::vector<std::string> argv = {"sh", "-c", "echo ran > ran; echo ran", "sh"};
  for (char c = 'a'; c < 'j'; ++c) argv.push_back(std::string(100'000, c));
  Result<SandboxOutcome> out = Status::Internal("not run");
  std::atomic<int64_t> run_start_ns{0};
  std::thread run([&] {
    run_start_ns = std::chrono::steady_clock::now().time_since_epoch().count();
    out = f.run->Run(argv, nullptr);
  });
  // Thawed after the send gave up (3 s from the run's start) and before the run's own
  // deadline (3 s after that): 1.5 s from each, counted from when the run started, however
  // late its thread got a CPU.
  while (run_start_ns == 0) ::usleep(1000);
  std::this_thread::sleep_until(
      std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(run_start_ns)) +
      std::chrono::milliseconds(4500));
  WriteFile(f.cgroup + "/cgroup.freeze", "0");
  run.join();
  EXPECT_EQ(out.status().code(), StatusCode::kInternal) << out.status().ToString();
  EXPECT_NE(out.status().message().find("never received"), std::string::npos)
      << out.status().ToString();
  f.run.reset();
  EXPECT_TRUE(OurCgroups().empty());
}

TEST_F(SandboxTest, AnInitWhoseSupervisorDiedBeforeItsPrctlEndsByItself) {
  FrozenStart f;
  ASSERT_NO_FATAL_FAILURE(StartWithInitFrozen(Spec({"sh", "-c", "echo y > g"}), &f));
  if (!f.skip.empty()) GTEST_SKIP() << f.skip;
  const std::vector<pid_t> kids = ChildrenOf(f.supervisor);
  ASSERT_EQ(kids.size(), 1u);
  const pid_t init = kids[0];
  // Killed after saying "go", before init has run at all (its prctl included).
  ASSERT_EQ(::kill(f.supervisor, SIGKILL), 0);
  ::usleep(50 * 1000);
  WriteFile(f.cgroup + "/cgroup.freeze", "0");
  // init now has no parent-death signal and no supervisor: only the go pipe can tell it.
  const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!HasExited(init) && std::chrono::steady_clock::now() < limit) ::usleep(10 * 1000);
  EXPECT_TRUE(HasExited(init)) << "init went on without its supervisor and waits for a start";
  if (!HasExited(init)) WriteFile(f.cgroup + "/cgroup.kill", "1");  // lets the test end
  f.run.reset();
  EXPECT_TRUE(HostProcessesMatching("echo y > g").empty());
  EXPECT_TRUE(OurCgroups().empty());
}

TEST_F(SandboxTest, APreparedRunReportsAFailedSetupWhenRun) {
  SandboxSpec spec = Spec({"true"});
  spec.hide = {"relative/path"};
  EXPECT_EQ(PreparedRun::Prepare(spec).status().code(), StatusCode::kInvalidArgument);
  SandboxSpec missing = Spec({"airlock-no-such-command"});
  Result<std::unique_ptr<PreparedRun>> prepared = PreparedRun::Prepare(missing);
  ASSERT_TRUE(prepared.ok());
  Result<SandboxOutcome> out = (*prepared)->Run(nullptr);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("command not found"), std::string::npos)
      << out.status().ToString();
}

TEST_F(SandboxTest, CleanupStaleRemovesWhatADeadAirlockLeft) {
  // A pid that is certainly dead: a reaped child's.
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  // Plant a stale sibling next to each cgroup of a live run (the parents this process uses).
  std::vector<std::string> planted;
  ASSERT_TRUE(RunSandboxed(Spec({"true"}), [&](const std::string&) {
                for (const std::string& live : OurCgroups()) {
                  std::string stale = fs::path(live).parent_path().string() + "/airlock-" +
                                      std::to_string(dead) + "-00000000";
                  if (::mkdir(stale.c_str(), 0755) == 0) planted.push_back(stale);
                }
                return Status::Ok();
              }).ok());
  ASSERT_FALSE(planted.empty());
  std::string root = MakeTempDir("/tmp");
  cleanup_.push_back(root);
  fs::create_directory(root + "/stale-run");
  fs::create_directory(root + "/not-ours");
  WriteFile(root + "/not-ours/file", "keep");

  fs::create_directory(root + "/live-run");
  int live = ::open((root + "/live-run").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_EQ(::flock(live, LOCK_SH), 0);  // what RunSandboxed holds while it runs

  ASSERT_TRUE(CleanupStale(root).ok());
  EXPECT_TRUE(Exists(root + "/live-run"));
  ::close(live);
  for (const std::string& dir : planted) EXPECT_FALSE(Exists(dir)) << dir;
  EXPECT_FALSE(Exists(root + "/stale-run"));
  EXPECT_EQ(ReadFile(root + "/not-ours/file"), "keep");
}

// ---- a long-lived run (SandboxedProcess: an MCP server in a sandbox) ---------------------------

// One line to the process's stdin, one line back from its stdout.
// The next line the process writes to its stdout, without the newline.
std::string ReadLine(SandboxedProcess& p) {
  std::string got;
  char c;
  while (::read(p.stdout_fd(), &c, 1) == 1 && c != '\n') got += c;
  return got;
}

std::string Exchange(SandboxedProcess& p, const std::string& line) {
  std::string out = line + "\n";
  EXPECT_EQ(::write(p.stdin_fd(), out.data(), out.size()), static_cast<ssize_t>(out.size()));
  return ReadLine(p);
}

TEST_F(SandboxTest, LongLivedProcessTalksOverPipesAndWritesOnlyItsUpperLayer) {
  WriteFile(ws_ + "/kept.txt", "lower\n");
  auto started = SandboxedProcess::Start(Spec(
      {"sh", "-c", "while read l; do echo \"$l\" > \"$l.txt\"; echo \"got $l $(id -u)\"; done"}));
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  SandboxedProcess& p = **started;
  EXPECT_EQ(Exchange(p, "a"), "got a 0");
  EXPECT_EQ(Exchange(p, "b"), "got b 0");
  // Its writes are in the upper layer, readable from here while it runs, not in the workspace.
  const std::string upper = p.upper_path();
  EXPECT_EQ(upper.rfind("/proc/", 0), 0u) << upper;
  EXPECT_EQ(ReadFile(upper + "/a.txt"), "a\n");
  EXPECT_EQ(ReadFile(upper + "/b.txt"), "b\n");
  EXPECT_FALSE(Exists(ws_ + "/a.txt"));
  EXPECT_FALSE(Exists(upper + "/kept.txt")) << "an untouched lower file is not copied up";
  ASSERT_FALSE(OurCgroups().empty());
  // EOF on its stdin ends the loop: a clean exit, and the sandbox is gone with it.
  EXPECT_EQ(p.Stop(std::chrono::seconds(20)), "exited 0");
  EXPECT_EQ(p.Stop(std::chrono::seconds(20)), "exited 0") << "idempotent";
  EXPECT_FALSE(Exists(upper + "/a.txt"));
  EXPECT_TRUE(OurCgroups().empty());
  EXPECT_EQ(MountsOf(scratch_), 0);
  EXPECT_EQ(ReadFile(ws_ + "/kept.txt"), "lower\n");
}

// init joins the cgroup2 directory by clone3(CLONE_INTO_CGROUP) and the v1 hierarchies by
// moving its own thread (CgroupHandles::AdmitSelf), not by pid: every cgroup of the run must
// still hold init and the command, and nothing else.
TEST_F(SandboxTest, InitAndTheCommandAreInEveryCgroupOfTheRun) {
  auto started = SandboxedProcess::Start(Spec({"sh", "-c", "echo ready; exec cat"}));
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  SandboxedProcess& p = **started;
  ASSERT_EQ(ReadLine(p), "ready");
  const std::vector<std::string> dirs = OurCgroups();
  // memory, pids and cpu limits are on by default: at least one directory per limit's
  // hierarchy, or one cgroup2 directory that carries them all.
  ASSERT_FALSE(dirs.empty());
  std::string first;
  for (const std::string& d : dirs) {
    std::vector<std::string> pids;
    std::istringstream in(ReadFile(d + "/cgroup.procs"));
    for (std::string pid; in >> pid;) pids.push_back(pid);
    std::sort(pids.begin(), pids.end());
    EXPECT_EQ(pids.size(), 2u) << d << ": init and the command";
    std::string joined;
    for (const std::string& pid : pids) joined += pid + " ";
    if (first.empty()) first = joined;
    EXPECT_EQ(joined, first) << d << " holds other processes than " << dirs.front();
  }
  EXPECT_EQ(p.Stop(std::chrono::seconds(20)), "exited 0");
  EXPECT_TRUE(OurCgroups().empty());
}

TEST_F(SandboxTest, LongLivedProcessThatIgnoresEofIsKilledWithEverythingItStarted) {
  auto started = SandboxedProcess::Start(
      Spec({"sh", "-c", "trap '' TERM HUP; (sleep 1000 &) ; echo ready; exec sleep 1000"}));
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  SandboxedProcess& p = **started;
  EXPECT_EQ(ReadLine(p), "ready");
  EXPECT_EQ(p.Stop(std::chrono::milliseconds(50)), "killed by signal 9");
  EXPECT_TRUE(OurCgroups().empty());
  EXPECT_EQ(MountsOf(scratch_), 0);
  // Its stdout ends: whoever reads it sees EOF, not a hang.
  char c;
  EXPECT_EQ(::read(p.stdout_fd(), &c, 1), 0);
}

TEST_F(SandboxTest, LongLivedProcessThatCannotStartIsAnError) {
  auto started = SandboxedProcess::Start(Spec({"airlock-no-such-command-x"}));
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.status().code(), StatusCode::kInvalidArgument) << started.status().ToString();
  EXPECT_NE(started.status().message().find("command not found"), std::string::npos)
      << started.status().ToString();
  EXPECT_TRUE(OurCgroups().empty());
  SandboxSpec bad = Spec({"cat"});
  bad.workspace = "relative";
  EXPECT_EQ(SandboxedProcess::Start(bad).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SandboxTest, ReadOnlyPathsAreVisibleButNotWritable) {
  if (!Exists("/mnt")) GTEST_SKIP() << "no /mnt to make a directory outside the system dirs in";
  std::string code = MakeTempDir("/mnt");
  cleanup_.push_back(code);
  WriteFile(code + "/server.js", "the server's code\n");
  SandboxSpec spec = Spec(
      {"sh", "-c",
       "cat " + code + "/server.js; echo x > " + code + "/planted && echo WROTE; ls /mnt | wc -l"});
  spec.read_only_paths = {code, "/nonexistent-airlock-path"};
  SandboxOutcome out = Run(spec);
  EXPECT_EQ(out.stdout_data, "the server's code\n1\n") << out.stderr_data;
  EXPECT_FALSE(Exists(code + "/planted"));
  // Without it, the directory is not there at all.
  out = Sh("cat " + code + "/server.js");
  EXPECT_NE(out.exit_code, 0);
  EXPECT_EQ(out.stdout_data, "");
}

// Speed is measured in bench/shell_bench.cc (make bench), not asserted here.

}  // namespace
}  // namespace airlock::shell
