// A shell target kept warm (Connector::KeepWarm, as airlock serve does): the next command's
// sandbox is built ahead, and is used only while it still stands on what the host has.
// Runs real sandboxes (needs root, Landlock, cgroups, overlayfs).
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "connectors/shell/proc_test_util.h"
#include "connectors/shell/shell_connector.h"
#include "core/json.h"

namespace airlock {
namespace {

namespace fs = std::filesystem;
using shell::test::ChildrenOf;
using shell::test::HasExited;
using shell::test::ReadFile;
using shell::test::WriteFile;

// The children of this process's threads other than `main_tid`: the supervisors of
// sandboxes the connector's standby thread built.
std::vector<pid_t> StandbySupervisors(pid_t main_tid) {
  std::vector<pid_t> supervisors;
  for (const auto& task : fs::directory_iterator("/proc/self/task")) {
    const pid_t tid = static_cast<pid_t>(std::stoi(task.path().filename().string()));
    if (tid == main_tid) continue;
    for (pid_t pid : ChildrenOf(::getpid(), tid)) supervisors.push_back(pid);
  }
  return supervisors;
}

// The network namespace of a sandbox built ahead whose supervisor is not in `old`, or "";
// *init_pid is its init. (Namespace numbers are reused once a namespace is gone; pids are
// not, this soon.)
std::string StandbyNetns(pid_t main_tid, const std::set<pid_t>& old, pid_t* init_pid = nullptr) {
  for (pid_t supervisor : StandbySupervisors(main_tid)) {
    if (old.count(supervisor)) continue;
    for (pid_t init : ChildrenOf(supervisor)) {
      std::error_code ec;
      fs::path ns = fs::read_symlink("/proc/" + std::to_string(init) + "/ns/net", ec);
      if (ec) continue;
      if (init_pid != nullptr) *init_pid = init;
      return ns.string();
    }
  }
  return "";
}

class StandbyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the sandbox needs root";
    root_ = fs::temp_directory_path() / ("airlock-standby-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "ws");
    fs::create_directories(root_ / "state");
    // Outside /tmp (private in the sandbox): the sandbox shows the host's /var as it is.
    secret_dir_ = fs::path("/var/tmp") / ("airlock-standby-" + std::to_string(::getpid()));
    fs::remove_all(secret_dir_);
    config_.name = "repo";
    config_.kind = "shell";
    config_.fields = {{"workspace", (root_ / "ws").string()},
                      {"state_dir", (root_ / "state").string()},
                      {"hide", Json::array({(secret_dir_ / "keys").string()})}};
    auto c = CreateShellConnector(config_);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    connector_ = std::move(*c);
    standbys_seen_ = ShellStandbysReadySoFar();
    connector_->KeepWarm();
  }
  void TearDown() override {
    connector_.reset();
    fs::remove_all(root_);
    fs::remove_all(secret_dir_);
  }

  // sh -c SCRIPT in the target; its stdout. The first line of every command's output is
  // its network namespace (last_netns_), which is not returned.
  std::string Sh(const std::string& script) {
    // Every sandbox built ahead so far is used, or found stale, by this command.
    for (pid_t pid : StandbySupervisors(::gettid())) old_.insert(pid);
    auto r = connector_->DryRun({{"argv", {"sh", "-c", "readlink /proc/self/ns/net; " + script}}});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return "";
    last_ = *r;
    std::string out = r->result["stdout"].get<std::string>();
    const size_t nl = out.find('\n');
    last_netns_ = out.substr(0, nl);
    EXPECT_EQ(last_netns_.rfind("net:[", 0), 0u) << "the command's result: " << r->result.dump();
    return nl == std::string::npos ? "" : out.substr(nl + 1);
  }

  // Waits (up to 20 s) until a sandbox built ahead since the last command is there and
  // ready for the next (the connector has it, not only its processes), and returns its
  // network namespace: a command run in it prints the same.
  std::string AwaitStandby(pid_t* init_pid = nullptr) {
    const pid_t main_tid = ::gettid();
    for (int i = 0; i < 2000; ++i) {
      std::string ns = StandbyNetns(main_tid, old_, init_pid);
      if (!ns.empty() && ShellStandbysReadySoFar() > standbys_seen_) {
        standbys_seen_ = ShellStandbysReadySoFar();
        return ns;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "no sandbox was built ahead";
    return "";
  }

  DryRunResult last_;
  std::string last_netns_;
  std::set<pid_t> old_;
  int64_t standbys_seen_ = 0;  // ShellStandbysReadySoFar at the last AwaitStandby
  fs::path root_, secret_dir_;
  ConnectorConfig config_;
  std::unique_ptr<Connector> connector_;
};

TEST_F(StandbyTest, TheNextCommandRunsInTheSandboxBuiltAheadAndSeesTheWorkspaceAsItIsThen) {
  for (int i = 0; i < 3; ++i) {
    const std::string standby = AwaitStandby();
    ASSERT_FALSE(standby.empty());
    // Changed after the sandbox was built: the command sees the workspace of now.
    WriteFile(root_ / "ws/f", "v" + std::to_string(i) + "\n");
    EXPECT_EQ(Sh("cat f; echo x > g"), "v" + std::to_string(i) + "\n");
    EXPECT_EQ(last_netns_, standby) << "run " << i << " did not use the sandbox built ahead";
    // Its effect is its own: one added file, the workspace untouched.
    EXPECT_EQ(last_.effect.files_changed, 1);
    EXPECT_FALSE(fs::exists(root_ / "ws/g"));
  }
}

TEST_F(StandbyTest, AHiddenPathMadeAfterTheSandboxWasBuiltIsStillHidden) {
  const std::string standby = AwaitStandby();
  ASSERT_FALSE(standby.empty());
  // Did not exist when the standby was built, so it hides nothing there.
  fs::create_directories(secret_dir_ / "keys");
  WriteFile(secret_dir_ / "keys/id", "secret\n");
  EXPECT_EQ(Sh("cat " + (secret_dir_ / "keys/id").string() + " 2>/dev/null"), "");
  EXPECT_NE(last_netns_, standby) << "the stale standby must not be used";
  // The next one is built with it hidden, and used.
  const std::string next = AwaitStandby();
  EXPECT_EQ(Sh("cat " + (secret_dir_ / "keys/id").string() + " 2>/dev/null"), "");
  EXPECT_EQ(last_netns_, next);
}

TEST_F(StandbyTest, AHiddenDirectoryMadeAgainIsStillHidden) {
  fs::create_directories(secret_dir_ / "keys");
  ASSERT_FALSE(AwaitStandby().empty());  // built before the directory was there, or after
  Sh("true");
  const std::string standby = AwaitStandby();
  ASSERT_FALSE(standby.empty());
  // Removed and made again on the host: the standby's mount over the old one is gone.
  fs::remove_all(secret_dir_ / "keys");
  fs::create_directories(secret_dir_ / "keys");
  WriteFile(secret_dir_ / "keys/id", "secret\n");
  EXPECT_EQ(Sh("cat " + (secret_dir_ / "keys/id").string() + " 2>/dev/null"), "");
  EXPECT_NE(last_netns_, standby) << "the stale standby must not be used";
}

TEST_F(StandbyTest, AWorkspaceReplacedAfterTheSandboxWasBuiltIsTheOneSeen) {
  WriteFile(root_ / "ws/f", "old\n");
  const std::string standby = AwaitStandby();
  ASSERT_FALSE(standby.empty());
  fs::rename(root_ / "ws", root_ / "ws.old");
  fs::create_directories(root_ / "ws");
  WriteFile(root_ / "ws/f", "new\n");
  EXPECT_EQ(Sh("cat f"), "new\n");
  EXPECT_NE(last_netns_, standby) << "the stale standby must not be used";
}

TEST_F(StandbyTest, ASandboxBuiltAheadWhoseInitDiedIsNotUsed) {
  pid_t init = 0;
  const std::string standby = AwaitStandby(&init);
  ASSERT_FALSE(standby.empty());
  ASSERT_GT(init, 0);
  ASSERT_EQ(::kill(init, SIGKILL), 0);
  // Until init has wholly exited: its namespaces go before its files are released (the
  // last fput runs as task work after them), and only that release is the hang-up the
  // connector sees. A take racing with it would run the command in the dying sandbox.
  for (int i = 0; i < 500 && !HasExited(init); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(HasExited(init));
  EXPECT_EQ(Sh("echo ran"), "ran\n") << "the command's result: " << last_.result.dump();
  EXPECT_NE(last_netns_, standby);
}

TEST_F(StandbyTest, TheConnectorsEndTakesItsStandbyWithIt) {
  ASSERT_FALSE(AwaitStandby().empty());
  Sh("true");
  ASSERT_FALSE(AwaitStandby().empty());
  connector_.reset();
  EXPECT_TRUE(StandbySupervisors(::gettid()).empty());
  // No scratch dir of a run is left: each is removed with its sandbox, once its mounts
  // (which live only in its supervisor's namespace) are gone.
  std::error_code ec;
  EXPECT_TRUE(fs::is_empty(root_ / "state/scratch", ec));
}

}  // namespace
}  // namespace airlock
