#include "connectors/shell/shell_connector.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "connectors/shell/egress.h"
#include "connectors/shell/layer.h"
#include "connectors/shell/layer_fs.h"
#include "connectors/shell/sandbox.h"
#include "core/cpu_placement.h"
#include "core/glob.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/trace.h"

namespace airlock {
namespace {

namespace fs = std::filesystem;
using shell::BlobStore;
using shell::CapturedLayer;
using shell::Layer;
using shell::PathState;
using shell::layer_detail::UniqueFd;

std::atomic<int64_t> standbys_ready{0};  // ShellStandbysReadySoFar

constexpr size_t kMaxArgvBytes = 1 << 20;  // the whole command line
constexpr size_t kMaxArgs = 4096;
constexpr size_t kListedPaths = 50;         // protected / refused / symlink paths named
constexpr int64_t kOutputHeadBytes = 4096;  // output shown to approvers in the effect
constexpr int64_t kMaxManifestBytes = 1LL << 30;
// A sandbox built ahead (KeepWarm) older than this is rebuilt before use rather than trusted.
constexpr auto kMaxStandbyAge = std::chrono::seconds(60);
// How long after a command the next one's sandbox starts being built (KeepStandby).
constexpr auto kStandbyDelay = std::chrono::milliseconds(30);

// A layer manifest from the blob store. The store is content-addressed: a manifest that does
// not hash to its name was altered or damaged, and is neither applied nor trusted.
Result<Layer> ReadStoredLayer(const BlobStore& blobs, const std::string& key) {
  ASSIGN_OR_RETURN(std::string bytes, blobs.ReadAll(key, kMaxManifestBytes));
  if (Sha256Hex(bytes) != key) {
    return Status::Corruption("the stored effect " + key + " does not match its hash");
  }
  ASSIGN_OR_RETURN(Json j, ParseJson(bytes, 16));
  return shell::LayerFromJson(j);
}
// The proxy's port on the sandbox's own loopback. The namespace is new and empty, so any
// port is free; a fixed one keeps the command's environment the same from run to run.
constexpr int kEgressProxyPort = 3128;

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

struct ShellConfig {
  std::string name;
  std::string workspace;
  std::string state_dir;
  shell::SandboxSpec base;  // everything but argv
  std::vector<std::string> protect;
  int64_t max_preview_files = 50;
  bool egress_proxy = false;  // network: proxy
  std::vector<shell::EgressAllow> egress_allow;
};

Result<ShellConfig> ParseConfig(const ConnectorConfig& c) {
  const Json& f = c.fields;
  ShellConfig s;
  s.name = c.name;
  auto str = [&](const char* key) -> std::string {
    return f.contains(key) && f[key].is_string() ? f[key].get<std::string>() : std::string();
  };
  auto num = [&](const char* key, int64_t def) -> int64_t {
    return f.contains(key) && f[key].is_number_integer() ? f[key].get<int64_t>() : def;
  };
  s.workspace = str("workspace");
  s.state_dir = str("state_dir");
  if (s.workspace.empty() || s.workspace[0] != '/') {
    return Status::InvalidArgument("target '" + c.name + "': workspace must be an absolute path");
  }
  if (s.state_dir.empty() || s.state_dir[0] != '/') {
    return Status::Internal("target '" + c.name + "': no state directory for the shell sandbox");
  }
  shell::SandboxSpec& b = s.base;
  b.network = str("network") == "on";
  s.egress_proxy = str("network") == "proxy";
  if (f.contains("egress") && f["egress"].is_array()) {
    for (const auto& e : f["egress"]) {
      if (!e.is_string()) return Status::InvalidArgument("target '" + c.name + "': bad egress");
      auto allow = shell::ParseEgressAllow(e.get<std::string>());
      if (!allow.ok()) return allow.status().Annotate("target '" + c.name + "': egress");
      s.egress_allow.push_back(*allow);
    }
  }
  b.memory_bytes = num("memory_bytes", b.memory_bytes);
  b.pids = num("pids", b.pids);
  if (f.contains("cpu") && f["cpu"].is_number()) b.cpus = f["cpu"].get<double>();
  b.timeout_ms = num("timeout_ms", b.timeout_ms);
  b.upper_size_bytes = num("max_upper_size_bytes", b.upper_size_bytes);
  b.upper_inodes = num("max_upper_files", b.upper_inodes);
  b.output_cap_bytes = num("max_output_bytes", b.output_cap_bytes);
  for (const char* key : {"hide", "hide_always"}) {
    if (!f.contains(key) || !f[key].is_array()) continue;
    for (const auto& h : f[key]) {
      if (h.is_string()) b.hide.push_back(h.get<std::string>());
    }
  }
  b.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOME=/tmp", "LANG=C.UTF-8", "TERM=dumb", "PWD=" + s.workspace,
           "AIRLOCK_SANDBOX=1"};
  if (s.egress_proxy) {
    b.egress_port = kEgressProxyPort;
    // Both spellings: curl reads only the lower-case http_proxy, other tools the upper. An
    // empty no_proxy: nothing bypasses the proxy (and a bypass finds no route anyway).
    const std::string url = "http://127.0.0.1:" + std::to_string(kEgressProxyPort);
    for (const char* name : {"http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"}) {
      b.env.push_back(std::string(name) + "=" + url);
    }
    b.env.push_back("no_proxy=");
    b.env.push_back("NO_PROXY=");
  }
  if (f.contains("protect") && f["protect"].is_array()) {
    for (const auto& p : f["protect"]) {
      if (p.is_string()) s.protect.push_back(p.get<std::string>());
    }
  }
  s.max_preview_files = num("max_preview_files", 50);
  return s;
}

Result<std::vector<std::string>> ParseArgv(const Json& args) {
  if (!args.is_object() || !args.contains("argv") || !args["argv"].is_array()) {
    return Status::InvalidArgument("a shell action needs {\"argv\": [\"command\", ...]}");
  }
  const Json& a = args["argv"];
  if (a.empty()) return Status::InvalidArgument("empty command: give the command after --");
  if (a.size() > kMaxArgs) return Status::InvalidArgument("more than 4,096 arguments");
  std::vector<std::string> argv;
  size_t total = 0;
  for (const auto& v : a) {
    if (!v.is_string()) return Status::InvalidArgument("every argument must be a string");
    std::string s = v.get<std::string>();
    if (s.find('\0') != std::string::npos) {
      return Status::InvalidArgument("an argument contains a NUL byte");
    }
    total += s.size() + 1;
    argv.push_back(std::move(s));
  }
  if (argv[0].empty()) return Status::InvalidArgument("empty command name");
  if (total > kMaxArgvBytes) return Status::InvalidArgument("the command line is over 1 MiB");
  return argv;
}

// The workspace must be a real directory: a symlink could be re-pointed between the preview
// and the commit, so it is refused rather than resolved.
Status CheckWorkspace(const std::string& ws) {
  struct stat st;
  if (::lstat(ws.c_str(), &st) != 0) {
    return Status::InvalidArgument("workspace " + ws + " does not exist (" +
                                   std::strerror(errno) + ")");
  }
  if (S_ISLNK(st.st_mode)) {
    return Status::InvalidArgument("workspace " + ws +
                                   " is a symlink; name the real directory instead");
  }
  if (!S_ISDIR(st.st_mode)) return Status::InvalidArgument("workspace " + ws + " is not a directory");
  std::error_code ec;
  fs::path canon = fs::canonical(ws, ec);
  if (ec || canon.string() != fs::path(ws).lexically_normal().string()) {
    return Status::InvalidArgument("workspace " + ws +
                                   " has a symlink in its path; name the real directory (" +
                                   (ec ? ec.message() : canon.string()) + ")");
  }
  return Status::Ok();
}

Result<int> OpenWorkspace(const std::string& ws) {
  RETURN_IF_ERROR(CheckWorkspace(ws));
  int fd = ::open(ws.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Status::IoError(Errno("open workspace " + ws));
  return fd;
}

Status MakeDirs(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::IoError("create " + dir + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  return Status::Ok();
}

// A symlink whose target leaves the workspace: absolute, or climbing above the root by "..".
bool PointsOutside(const std::string& link_path, const std::string& target) {
  if (target.empty() || target[0] == '/') return true;
  int depth = 0;
  for (char c : link_path) depth += c == '/';
  size_t start = 0;
  while (start <= target.size()) {
    size_t slash = target.find('/', start);
    std::string comp = target.substr(start, slash == std::string::npos ? std::string::npos
                                                                        : slash - start);
    if (comp == "..") {
      if (--depth < 0) return true;
    } else if (!comp.empty() && comp != ".") {
      ++depth;
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return false;
}

void AddListed(Json& extra, const char* key, const std::string& value) {
  std::string count_key = std::string(key) + "_count";
  extra[count_key] = extra.value(count_key, 0) + 1;
  if (extra[key].size() < kListedPaths) extra[key].push_back(value);
}

std::string Head(const std::string& s) {
  return s.size() <= static_cast<size_t>(kOutputHeadBytes) ? s : s.substr(0, kOutputHeadBytes);
}

// The file part of a shell effect (shared with an MCP server run in the target's sandbox):
// the changed paths, their counts, protected paths, symlinks leaving the workspace, what a
// commit refuses, and the layer a commit applies (stored; its key is returned).
Result<std::string> AddFileEffect(const ShellConfig& config, BlobStore& blobs,
                                  const CapturedLayer& cap, Effect* e) {
  e->files_changed = static_cast<int64_t>(cap.changes.size());
  for (const FileChange& c : cap.changes) {
    if (static_cast<int64_t>(e->files.size()) < config.max_preview_files) e->files.push_back(c);
  }
  e->preview_omitted = e->files_changed - static_cast<int64_t>(e->files.size());
  Json& x = e->extra;
  x["workspace"] = config.workspace;
  x["added"] = cap.added;
  x["changed"] = cap.changed;
  x["deleted"] = cap.deleted;
  for (const char* key : {"protected", "outside_symlinks", "refused"}) {
    x[key] = Json::array();
    x[std::string(key) + "_count"] = 0;
  }
  for (const FileChange& c : cap.changes) {
    for (const std::string& glob : config.protect) {
      if (GlobMatch(glob, c.path)) {
        AddListed(x, "protected", c.path);
        break;
      }
    }
    if (c.op != "deleted" && c.type == "symlink" && PointsOutside(c.path, c.link_target)) {
      AddListed(x, "outside_symlinks", c.path + " -> " + c.link_target);
    }
  }
  for (const std::string& r : cap.refused) AddListed(x, "refused", r);
  // Content-addressed, and a blob that exists is complete: the same layer (an empty one, for
  // every read) is stored once, not fsynced again for each action.
  const std::string manifest = LayerToJson(cap.layer).dump();
  std::string key = Sha256Hex(manifest);
  if (!blobs.Reuse(key)) {
    ASSIGN_OR_RETURN(key, blobs.PutBytes(manifest));
  }
  x["layer"] = key;
  x["layer_paths"] = cap.layer.after.size();
  return key;
}

class ShellConnector : public Connector {
 public:
  explicit ShellConnector(ShellConfig config)
      : config_(std::move(config)), blobs_(config_.state_dir + "/blobs") {}
  ~ShellConnector() override {
    {
      std::lock_guard<std::mutex> lock(standby_mu_);
      stopping_ = true;
    }
    standby_cv_.notify_all();
    if (standby_thread_.joinable()) standby_thread_.join();
    retired_.clear();
    standby_.reset();  // its command never runs
    std::lock_guard<std::mutex> lock(teardown_mu_);
    if (teardown_.joinable()) teardown_.join();
  }

  // One sandbox is kept built for the next command, by a thread of its own: a sandbox's
  // supervisor dies with the thread that forked it (PR_SET_PDEATHSIG), and this one lives
  // as long as the connector.
  void KeepWarm() override {
    // Now, before two sandboxes may be built at once (the standby and the first command's):
    // the clean-up removes scratch dirs it can lock, and a new one is locked only after it
    // was made.
    (void)CleanUpStaleOnce();
    // Where a file system cannot name its inodes (no file handles), whether a sandbox still
    // stands on what the host has cannot be told (HostIdentities): no sandbox is built ahead.
    for (const std::string& id : HostIdentities()) {
      if (id.rfind(kUnknownIdentity, 0) == 0) return;
    }
    std::lock_guard<std::mutex> lock(standby_mu_);
    if (standby_thread_.joinable()) return;
    standby_wanted_ = true;
    standby_thread_ = std::thread([this] { KeepStandby(); });
  }

  Result<DryRunResult> DryRun(const Json& args) override { return DryRunWithEgress(args, nullptr); }

  // The sandbox for `args`, built while the gateway opens its store and decides whether the
  // command may run at all; DryRunWithEgress with the same args starts it.
  void Prestart(const Json& args) override {
    std::lock_guard<std::mutex> lock(prepared_mu_);
    prepared_.reset();
    auto argv = ParseArgv(args);
    if (!argv.ok()) return;
    auto sandbox = PrepareSandbox(*argv);
    if (!sandbox.ok()) return;  // DryRun tries again and reports why
    (*sandbox)->args = args;
    prepared_ = std::move(*sandbox);
  }

  Result<DryRunResult> DryRunWithEgress(const Json& args, EgressGate* gate) override {
    ASSIGN_OR_RETURN(std::vector<std::string> argv, ParseArgv(args));
    // Fail closed: without a gate nothing could decide the command's requests.
    if (config_.egress_proxy && gate == nullptr) {
      return Status::FailedPrecondition("target '" + config_.name +
                                        "': network: proxy needs the gateway to decide requests");
    }
    std::unique_ptr<PreparedSandbox> sandbox = TakePrestarted(args);
    if (!sandbox) sandbox = TakeStandby();
    if (sandbox) {
      // Checked again now: the workspace may have been replaced since the sandbox was built.
      RETURN_IF_ERROR(CheckWorkspace(config_.workspace));
    } else {
      ASSIGN_OR_RETURN(sandbox, PrepareSandbox(argv));
    }
    Result<CapturedLayer> captured = Status::Internal("the sandbox did not report its layer");
    auto inspect = [&](const std::string& upper) -> Status {
      captured = shell::CaptureLayer(upper, config_.workspace, blobs_, shell::CaptureOptions());
      return captured.status();
    };
    std::unique_ptr<shell::EgressProxy> proxy;
    if (config_.egress_proxy) {
      shell::EgressOptions options;
      options.target = config_.name;
      options.allow = config_.egress_allow;
      proxy = std::make_unique<shell::EgressProxy>(options, gate);
    }
    // The proxy is stopped by Run when the run ends, and again (a no-op) by its destructor
    // on every path out of here.
    Result<shell::SandboxOutcome> ran = sandbox->run->Run(argv, inspect, proxy.get());
    // Kept warm: the next command's sandbox is wanted now, and built once this one's record
    // and reply are out (KeepStandby).
    WantStandby();
    ASSIGN_OR_RETURN(shell::SandboxOutcome run, std::move(ran));
    TearDownLater(std::move(sandbox));
    if (!captured.ok()) return captured.status().Annotate("reading the command's effect");
    ASSIGN_OR_RETURN(DryRunResult out, BuildEffect(argv, run, *captured));
    TraceMark("shell: effect built");
    // Each request was its own http action, recorded when it was made; the command's
    // action lists them for the approver.
    if (proxy) out.effect.extra["egress"] = proxy->Summary();
    return out;
  }

  Result<ApplyOutcome> Apply(const std::string& action_id, const Json& /*args*/,
                             const Effect& expected,
                             const std::function<Status(const UndoRecord&)>& before_commit)
      override {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Layer layer, LoadLayer(expected));
    ASSIGN_OR_RETURN(int raw_fd, OpenWorkspace(config_.workspace));
    UniqueFd ws(raw_fd);
    ApplyOutcome out;
    out.effect = expected;
    // The preview is only valid for the workspace it saw: any touched path that changed
    // since (content, type, mode, mtime or inode) means the approved effect is not what a
    // commit would do now.
    std::vector<std::string> differing;
    RETURN_IF_ERROR(shell::CheckState(ws.get(), layer.before, /*strict=*/true, &differing));
    if (!differing.empty()) {
      out.effect_matched = false;
      out.effect.effect_hash = Sha256Hex(CanonicalJson(differing));
      out.effect.extra["changed_since_preview"] = Json(differing);
      return out;
    }
    // Pre-images first: the undo must be durable before the workspace changes.
    ASSIGN_OR_RETURN(std::vector<PathState> pre, shell::SnapshotState(ws.get(), layer.before, blobs_));
    Layer undo_layer{pre, layer.after};
    ASSIGN_OR_RETURN(std::string undo_key, blobs_.PutBytes(LayerToJson(undo_layer).dump()));
    UndoRecord undo;
    undo.kind = "shell";
    undo.data = Json{{"layer", undo_key}, {"workspace", config_.workspace}}.dump();
    undo.reversible = true;
    RETURN_IF_ERROR(before_commit(undo));
    shell::Committer committer(config_.state_dir, ws.get(), &blobs_);
    RETURN_IF_ERROR(committer.Apply(action_id, pre, layer.after));
    out.effect_matched = true;
    out.undo = undo;
    return out;
  }

  Status Rollback(const std::string& action_id, const UndoRecord& undo, Json* report) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto data = ParseJson(undo.data);
    if (!data.ok() || !data->is_object() || !(*data)["layer"].is_string()) {
      return Status::Corruption("the undo record of " + action_id + " is not a shell undo");
    }
    ASSIGN_OR_RETURN(Layer layer, ReadLayer((*data)["layer"].get<std::string>()));
    ASSIGN_OR_RETURN(int raw_fd, OpenWorkspace(config_.workspace));
    UniqueFd ws(raw_fd);
    // Only what the commit wrote may be replaced: a path changed since by someone else
    // stops the rollback, and nothing is touched.
    std::vector<std::string> differing;
    RETURN_IF_ERROR(shell::CheckState(ws.get(), layer.after, /*strict=*/false, &differing));
    if (!differing.empty()) {
      if (report) *report = {{"changed_since_commit", differing}};
      return Status::Conflict(std::to_string(differing.size()) +
                              " path(s) changed since the commit; nothing was rolled back: " +
                              differing.front());
    }
    shell::Committer committer(config_.state_dir, ws.get(), &blobs_);
    return committer.Rollback(action_id, layer.after, layer.before);
  }

  Result<bool> IsApplied(const std::string& action_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(int raw_fd, OpenWorkspace(config_.workspace));
    UniqueFd ws(raw_fd);
    shell::Committer committer(config_.state_dir, ws.get(), &blobs_);
    return committer.IsApplied(action_id);
  }

  Result<bool> IsRolledBack(const std::string& action_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(int raw_fd, OpenWorkspace(config_.workspace));
    UniqueFd ws(raw_fd);
    shell::Committer committer(config_.state_dir, ws.get(), &blobs_);
    return committer.IsRolledBack(action_id);
  }

 private:
  // A sandbox built for one command (PreparedRun), in a scratch dir of its own that goes
  // with it.
  struct PreparedSandbox {
    Json args;  // what it was built for (Prestart)
    std::string scratch_dir;
    std::unique_ptr<shell::PreparedRun> run;
    // A standby's (KeepWarm) view of the host when it was built, to tell whether it still
    // holds: when, and the workspace's and every hidden path's identity.
    std::chrono::steady_clock::time_point built;
    std::vector<std::string> identities;
    ~PreparedSandbox() {
      // First: its supervisor's mounts are on the scratch dir. A failed removal of the
      // run's cgroups is retried by the next CleanupStale.
      if (run) (void)run->Finish();
      run.reset();
      ::rmdir(scratch_dir.c_str());
    }
  };

  // `linger`: the run's teardown waits for Finish (SandboxSpec::linger), which the standby
  // thread calls after the record and the reply.
  Result<std::unique_ptr<PreparedSandbox>> PrepareSandbox(const std::vector<std::string>& argv,
                                                          bool linger = false) {
    RETURN_IF_ERROR(CheckWorkspace(config_.workspace));
    TraceMark("shell: workspace checked");
    RETURN_IF_ERROR(EnsureStateDirs());
    TraceMark("shell: state dirs ensured");
    shell::SandboxSpec spec = config_.base;
    spec.argv = argv;
    spec.workspace = config_.workspace;
    spec.scratch_dir = config_.state_dir + "/scratch/" + RandomHex(8);
    spec.linger = linger;
    auto sandbox = std::make_unique<PreparedSandbox>();
    RETURN_IF_ERROR(MakeDirs(spec.scratch_dir));
    sandbox->scratch_dir = spec.scratch_dir;
    TraceMark("shell: state dirs");
    ASSIGN_OR_RETURN(sandbox->run, shell::PreparedRun::Prepare(spec));
    // While the sandbox is being built: this run's scratch dir is locked and its cgroups
    // carry a live pid, so the clean-up leaves them alone.
    RETURN_IF_ERROR(CleanUpStaleOnce());
    return sandbox;
  }

  // A finished run's teardown (its cgroups, its mounts, its scratch dir) goes on while the
  // gateway records the action. The next one, and the connector's end, wait for it: no
  // command's sandbox outlives the process, or piles up in a long-lived one.
  // Kept warm, the standby thread does it, after the record and the reply (KeepStandby).
  void TearDownLater(std::unique_ptr<PreparedSandbox> sandbox) {
    {
      std::lock_guard<std::mutex> lock(standby_mu_);
      if (standby_thread_.joinable()) {
        retired_.push_back(std::move(sandbox));
        last_run_ = std::chrono::steady_clock::now();
      }
    }
    if (!sandbox) {
      standby_cv_.notify_one();
      return;
    }
    std::lock_guard<std::mutex> lock(teardown_mu_);
    if (teardown_.joinable()) teardown_.join();
    teardown_ = std::thread([s = std::move(sandbox)]() mutable { s.reset(); });
    // Beside the caller's record of the action, not in turns with it on one core.
    (void)PlaceAwayFromCaller(teardown_.native_handle());
  }

  // What the mounts of a sandbox built now would stand on: the workspace (the overlay's
  // lower layer) and each hidden path ("" for one that does not exist). A path removed and
  // made again on the host is a new inode, which a sandbox built before does not hide (the
  // kernel detaches mounts on a removed path in every namespace).
  std::vector<std::string> HostIdentities() const {
    std::vector<std::string> ids;
    ids.push_back(PathIdentity(config_.workspace));
    for (const std::string& h : config_.base.hide) ids.push_back(PathIdentity(h));
    return ids;
  }

  // An inode as the file system names it: device, inode number and its file handle, which
  // holds the inode's generation (a directory removed and made again often gets the same
  // inode number back, but not the same generation). Where the file system gives no handle
  // (some FUSE and overlay file systems), nothing tells the inode apart from one made later
  // in its place: the identity is then unique to this call, and never matches.
  static constexpr const char* kUnknownIdentity = "unknown:";
  static std::string PathIdentity(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return "";
    std::string id = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":";
    union {
      struct file_handle fh;
      char bytes[sizeof(struct file_handle) + MAX_HANDLE_SZ];
    } h;
    h.fh.handle_bytes = MAX_HANDLE_SZ;
    int mount_id = 0;
    if (::name_to_handle_at(AT_FDCWD, path.c_str(), &h.fh, &mount_id, AT_SYMLINK_FOLLOW) == 0) {
      id += std::to_string(h.fh.handle_type) + ":";
      id.append(reinterpret_cast<const char*>(h.fh.f_handle), h.fh.handle_bytes);
    } else {
      id = kUnknownIdentity + RandomHex(8);
    }
    return id;
  }

  // The standby thread (KeepWarm): tears down the sandboxes of finished commands and builds
  // one for the next command whenever one is wanted and none is ready. Not at once: the last
  // command's record and reply go first (kStandbyDelay). Building a sandbox takes both CPUs
  // of a small machine for a few ms, and forking a large process stalls its other threads'
  // page faults meanwhile. A failed build is not retried until the next command wants one;
  // that command builds its own sandbox and reports the error, if it persists.
  void KeepStandby() {
    std::unique_lock<std::mutex> lock(standby_mu_);
    for (;;) {
      auto work = [this] {
        return stopping_ || !retired_.empty() || (standby_wanted_ && !standby_);
      };
      if (standby_) {
        // One kept past kMaxStandbyAge is rebuilt even when no command comes: it pins what
        // it was built on (its mount namespace is a copy of the host's at that time). A
        // command may have taken it meanwhile: then there is nothing to rebuild yet.
        if (!standby_cv_.wait_until(lock, standby_->built + kMaxStandbyAge, work)) {
          if (!standby_ || std::chrono::steady_clock::now() - standby_->built < kMaxStandbyAge) {
            continue;
          }
          retired_.push_back(std::move(standby_));
          standby_wanted_ = true;
        }
      } else {
        standby_cv_.wait(lock, work);
      }
      if (stopping_) return;
      if (standby_cv_.wait_until(lock, last_run_ + kStandbyDelay, [this] { return stopping_; })) {
        return;
      }
      std::vector<std::unique_ptr<PreparedSandbox>> retired = std::move(retired_);
      retired_.clear();
      const bool build = standby_wanted_ && !standby_;
      standby_wanted_ = false;
      lock.unlock();
      retired.clear();
      Result<std::unique_ptr<PreparedSandbox>> built = Status::FailedPrecondition("not wanted");
      std::vector<std::string> ids;
      if (build) {
        ids = HostIdentities();
        built = PrepareSandbox({}, /*linger=*/true);
      }
      lock.lock();
      if (!built.ok()) continue;
      (*built)->built = std::chrono::steady_clock::now();
      (*built)->identities = std::move(ids);
      standby_ = std::move(*built);
      standbys_ready.fetch_add(1);
    }
  }

  void WantStandby() {
    {
      std::lock_guard<std::mutex> lock(standby_mu_);
      if (!standby_thread_.joinable()) return;
      standby_wanted_ = true;
      last_run_ = std::chrono::steady_clock::now();
    }
    standby_cv_.notify_one();
  }

  // The standby if it still stands on what the host has now; one built before the host
  // changed under it, or too long ago, is discarded unrun.
  std::unique_ptr<PreparedSandbox> TakeStandby() {
    std::unique_ptr<PreparedSandbox> s;
    {
      std::lock_guard<std::mutex> lock(standby_mu_);
      s = std::move(standby_);
    }
    if (!s) return nullptr;
    if (std::chrono::steady_clock::now() - s->built > kMaxStandbyAge || !s->run->Alive() ||
        s->identities != HostIdentities()) {
      TearDownLater(std::move(s));
      return nullptr;
    }
    TraceMark("shell: standby taken");
    return s;
  }

  // The prestarted sandbox if it was built for exactly these args; any other is discarded
  // (its command never runs).
  std::unique_ptr<PreparedSandbox> TakePrestarted(const Json& args) {
    std::lock_guard<std::mutex> lock(prepared_mu_);
    std::unique_ptr<PreparedSandbox> p = std::move(prepared_);
    if (p && p->args != args) p.reset();
    return p;
  }

  Status EnsureStateDirs() {
    RETURN_IF_ERROR(MakeDirs(config_.state_dir + "/blobs"));
    return MakeDirs(config_.state_dir + "/scratch");
  }

  // Once per connector (so once per target and process): what a killed airlock left behind,
  // cgroups and scratch dirs.
  Status CleanUpStaleOnce() {
    Status st = Status::Ok();
    std::call_once(cleaned_, [&] { st = shell::CleanupStale(config_.state_dir + "/scratch"); });
    return st;
  }

  Result<DryRunResult> BuildEffect(const std::vector<std::string>& argv,
                                   const shell::SandboxOutcome& run, const CapturedLayer& cap) {
    Effect e;
    e.kind = "shell";
    Json& x = e.extra;
    x["command"] = argv;
    x["exit_code"] = run.exit_code;
    x["signal"] = run.term_signal;
    x["killed_by"] = run.killed_by;
    x["upper_full"] = run.upper_full;
    x["network_attempt"] = run.network_attempt;
    x["network_detail"] = run.network_detail;
    ASSIGN_OR_RETURN(std::string key, AddFileEffect(config_, blobs_, cap, &e));
    // Output is bytes; CanonicalJson writes invalid UTF-8 as U+FFFD (the CLI prints the
    // command's own bytes from the in-memory result).
    x["stdout_head"] = Head(run.stdout_data);
    x["stderr_head"] = Head(run.stderr_data);
    x["output_head_bytes"] = kOutputHeadBytes;
    e.effect_hash = Sha256Hex(CanonicalJson(Json{{"layer", key},
                                                 {"refused", x["refused_count"]},
                                                 {"killed_by", run.killed_by},
                                                 {"upper_full", run.upper_full},
                                                 {"network", run.network_attempt}}));
    DryRunResult out;
    out.effect = std::move(e);
    out.result = {{"exit_code", run.exit_code},
                  {"signal", run.term_signal},
                  {"stdout", run.stdout_data},
                  {"stderr", run.stderr_data},
                  {"stdout_bytes", run.stdout_bytes},
                  {"stderr_bytes", run.stderr_bytes},
                  {"stdout_truncated", run.stdout_truncated},
                  {"stderr_truncated", run.stderr_truncated},
                  {"output_cap_bytes", config_.base.output_cap_bytes},
                  {"killed_by", run.killed_by},
                  {"duration_ms", run.duration_ms}};
    return out;
  }

  Result<Layer> ReadLayer(const std::string& key) { return ReadStoredLayer(blobs_, key); }

  Result<Layer> LoadLayer(const Effect& expected) {
    auto it = expected.extra.find("layer");
    if (it == expected.extra.end() || !it->is_string()) {
      return Status::Corruption("the approved effect names no layer to commit");
    }
    return ReadLayer(it->get<std::string>());
  }

  ShellConfig config_;
  BlobStore blobs_;
  std::mutex mu_;  // one commit or rollback at a time per target in this process
  std::once_flag cleaned_;
  std::mutex prepared_mu_;
  std::unique_ptr<PreparedSandbox> prepared_;  // Prestart's
  std::mutex teardown_mu_;
  std::thread teardown_;  // TearDownLater's
  // KeepWarm's: one sandbox built ahead, and the thread that builds it.
  std::mutex standby_mu_;
  std::condition_variable standby_cv_;
  bool standby_wanted_ = false;
  bool stopping_ = false;
  std::vector<std::unique_ptr<PreparedSandbox>> retired_;  // for the standby thread to tear down
  std::chrono::steady_clock::time_point last_run_;         // when the last command ended
  std::unique_ptr<PreparedSandbox> standby_;
  std::thread standby_thread_;
};

}  // namespace

int64_t ShellStandbysReadySoFar() { return standbys_ready.load(); }

Result<std::unique_ptr<Connector>> CreateShellConnector(const ConnectorConfig& config) {
  ASSIGN_OR_RETURN(ShellConfig c, ParseConfig(config));
  return std::unique_ptr<Connector>(new ShellConnector(std::move(c)));
}

Result<shell::SandboxSpec> ShellSandboxFor(const ConnectorConfig& target,
                                           const std::vector<std::string>& argv,
                                           const std::map<std::string, std::string>& env,
                                           const std::vector<std::string>& read_only_paths) {
  ASSIGN_OR_RETURN(ShellConfig c, ParseConfig(target));
  RETURN_IF_ERROR(CheckWorkspace(c.workspace));
  RETURN_IF_ERROR(MakeDirs(c.state_dir + "/blobs"));
  RETURN_IF_ERROR(MakeDirs(c.state_dir + "/scratch"));
  shell::SandboxSpec spec = c.base;
  spec.argv = argv;
  spec.workspace = c.workspace;
  spec.read_only_paths = read_only_paths;
  // The server's own variables win over the target's defaults (PATH, HOME, ...).
  for (const auto& [k, v] : env) {
    // (A named copy: clang before 16 cannot capture a structured binding.)
    const std::string prefix = k + "=";
    std::erase_if(spec.env, [&prefix](const std::string& e) { return e.rfind(prefix, 0) == 0; });
    spec.env.push_back(prefix + v);
  }
  spec.scratch_dir = c.state_dir + "/scratch/mcp-" + RandomHex(8);
  RETURN_IF_ERROR(MakeDirs(spec.scratch_dir));
  return spec;
}

Result<shell::CapturedLayer> CaptureShellLayer(const ConnectorConfig& target,
                                               const std::string& upper) {
  ASSIGN_OR_RETURN(ShellConfig c, ParseConfig(target));
  BlobStore blobs(c.state_dir + "/blobs");
  return shell::CaptureLayer(upper, c.workspace, blobs, shell::CaptureOptions());
}

Result<std::string> AddShellFileEffect(const ConnectorConfig& target,
                                       const shell::CapturedLayer& cap, Effect* e) {
  ASSIGN_OR_RETURN(ShellConfig c, ParseConfig(target));
  BlobStore blobs(c.state_dir + "/blobs");
  return AddFileEffect(c, blobs, cap, e);
}

Result<Json> CollectShellGarbage(const ConnectorConfig& target, const ShellLiveRecords& live,
                                 int64_t cutoff_s, bool dry_run) {
  ASSIGN_OR_RETURN(ShellConfig c, ParseConfig(target));
  // A commit that a crash interrupted names blobs in its journal only. The gateway's recovery
  // at open finishes it (its action is applying or rolling back); one that is still there
  // failed to, and until it is finished nothing is taken.
  const std::string journal = c.state_dir + "/journal";
  if (DIR* d = ::opendir(journal.c_str())) {
    bool pending = false;
    while (struct dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') pending = true;
    }
    ::closedir(d);
    if (pending) {
      return Status::FailedPrecondition("an interrupted commit of shell target '" + target.name +
                                        "' waits for recovery in " + journal +
                                        "; nothing was removed");
    }
  }
  BlobStore blobs(c.state_dir + "/blobs");
  std::set<std::string> keep;
  auto mark_layer = [&](const std::string& key) -> Status {
    if (!keep.insert(key).second) return Status::Ok();
    auto layer = ReadStoredLayer(blobs, key);
    if (!layer.ok() && layer.status().code() == StatusCode::kNotFound) {
      return Status::Ok();  // nothing to keep: its record fails on its own when used
    }
    if (!layer.ok()) {
      return Status::Corruption("the stored layer " + key + " of shell target '" + target.name +
                                "' cannot be read (" + layer.status().message() +
                                "), so what it names is unknown; nothing was removed");
    }
    for (const auto* states : {&layer->before, &layer->after}) {
      for (const shell::PathState& s : *states) {
        if (!s.sha256.empty()) keep.insert(s.sha256);
      }
    }
    return Status::Ok();
  };
  for (const std::string& key : live.layers) RETURN_IF_ERROR(mark_layer(key));
  for (const std::string& key : live.undo_layers) RETURN_IF_ERROR(mark_layer(key));
  ASSIGN_OR_RETURN(shell::BlobSweep swept, shell::SweepBlobs(blobs.dir(), keep, cutoff_s, dry_run));
  // Held answers: one file each, named by their hash; a pending call's is kept.
  int64_t held_removed = 0;
  const std::string held_dir = c.state_dir + "/held";
  const std::set<std::string> held_live(live.held_answers.begin(), live.held_answers.end());
  if (DIR* d = ::opendir(held_dir.c_str())) {
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(std::move(n));
    }
    ::closedir(d);
    for (const std::string& n : names) {
      const std::string key =
          n.size() > 4 && n.compare(n.size() - 4, 4, ".tmp") == 0 ? n.substr(0, n.size() - 4) : n;
      if (held_live.count(key) != 0) continue;
      const std::string path = held_dir + "/" + n;
      struct stat st;
      if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      if (static_cast<int64_t>(st.st_mtim.tv_sec) >= cutoff_s) continue;
      if (!dry_run && ::unlink(path.c_str()) != 0 && errno != ENOENT) {
        return Status::IoError("remove " + path + ": " + std::strerror(errno));
      }
      ++held_removed;
    }
  }
  return Json{{"target", target.name},
              {"blobs_kept", swept.kept},
              {"blobs_removed", swept.removed},
              {"bytes_removed", swept.bytes_removed},
              {"temporaries_removed", swept.temporaries_removed},
              {"held_answers_removed", held_removed}};
}

}  // namespace airlock
