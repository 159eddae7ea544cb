#include "server/serve.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "audit/checkpoint.h"
#include "core/audit_event.h"
#include "core/clock.h"
#include "gateway/gateway.h"
#include "notify/notify.h"
#include "server/api.h"
#include "server/events.h"
#include "server/http.h"
#include "server/metrics.h"

namespace airlock::server {
namespace {

// Workers for blocking gateway calls: enough that a group commit gathers many requests and
// that a few slow sandbox runs do not hold up reads.
constexpr int kWorkers = 64;
constexpr int64_t kDrainMs = 10000;
constexpr auto kExpiryInterval = std::chrono::seconds(1);

// Runs `task` every `every` on a thread of its own until destroyed; never when `every` is
// zero. The first run comes after `every` or a minute, whichever is sooner, so that a server
// restarted more often than `every` still runs it. `task` returns "" or what went wrong, which
// is said on stderr after `what`, once until it changes (not at every run). The destructor
// waits for a run in progress up to kDrainMs, then ends the process as the drain does: a run
// cannot be interrupted, and every task here is safe to cut short by a kill.
class Periodic {
 public:
  Periodic(std::string what, std::chrono::milliseconds every, std::function<std::string()> task)
      : what_(std::move(what)), every_(every), task_(std::move(task)) {
    if (every_.count() > 0) thread_ = std::thread([this] { Loop(); });
  }
  ~Periodic() {
    if (!thread_.joinable()) return;
    {
      std::unique_lock<std::mutex> lock(mu_);
      stop_ = true;
      cv_.notify_all();
      if (!cv_.wait_for(lock, std::chrono::milliseconds(kDrainMs), [this] { return !running_; })) {
        std::cerr << "airlock: " << what_ << " still running after " << kDrainMs / 1000
                  << " s; exiting without it" << std::endl;
        std::_Exit(0);
      }
    }
    thread_.join();
  }
  Periodic(const Periodic&) = delete;
  Periodic& operator=(const Periodic&) = delete;

 private:
  void Loop() {
    std::string last_error;
    std::unique_lock<std::mutex> lock(mu_);
    auto wait = std::min<std::chrono::milliseconds>(every_, std::chrono::minutes(1));
    while (!cv_.wait_for(lock, wait, [this] { return stop_; })) {
      wait = every_;
      running_ = true;
      lock.unlock();
      const std::string error = task_();
      if (error != last_error && !error.empty()) {
        std::cerr << "airlock: serve: " << what_ << ": " << error << std::endl;
      }
      last_error = error;
      lock.lock();
      running_ = false;
      cv_.notify_all();
    }
  }

  const std::string what_;
  const std::chrono::milliseconds every_;
  const std::function<std::string()> task_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;     // GUARDED_BY(mu_)
  bool running_ = false;  // GUARDED_BY(mu_): task_ is at work
  std::thread thread_;    // last: starts once the rest is built
};

// Expires pending actions past their timeout, so that an action nobody decides becomes
// `expired` (denied) without anyone asking about it, and moves the reads `airlock mcp stdio`
// sessions staged into the chain (and this server's views).
std::string ExpireAndIngestOnce(Gateway& gateway) {
  auto expired = gateway.ExpireDue();
  Status ingested = gateway.IngestStaged();
  return !expired.ok() ? expired.status().ToString() : !ingested.ok() ? ingested.ToString() : "";
}

// Every connection is a descriptor, and the gateway needs its own (store, targets, sandbox
// pipes): a soft limit of 1024 would refuse connections well below --max-connections.
void RaiseDescriptorLimit(int max_connections) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  const rlim_t want = static_cast<rlim_t>(max_connections) * 2 + 256;
  if (lim.rlim_cur >= want) return;
  lim.rlim_cur = std::min(want, lim.rlim_max);
  ::setrlimit(RLIMIT_NOFILE, &lim);
}

int DefaultIoThreads() {
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  return std::clamp(cores, 1, 4);
}

std::string UrlHost(const std::string& host) {
  return host.find(':') == std::string::npos ? host : "[" + host + "]";
}

}  // namespace

// `airlock store gc` on a schedule (ServeOptions::gc_every_ms): a long-lived gateway would
// otherwise keep the previews of every rejected, expired or rolled-back shell command
// forever. gc keeps whatever a record may still need and anything younger than its age
// (at least an hour), so it is safe beside running commands and other processes. A run that
// removed something says so on stderr.
std::string CollectGarbageOnce(Gateway& gateway, int64_t older_than_s) {
  Result<Json> out = gateway.CollectGarbage(older_than_s, /*dry_run=*/false);
  if (!out.ok()) return out.status().ToString();
  int64_t blobs = 0, bytes = 0, held = 0;
  for (const Json& t : (*out)["targets"]) {
    blobs += t.value("blobs_removed", int64_t{0});
    bytes += t.value("bytes_removed", int64_t{0});
    held += t.value("held_answers_removed", int64_t{0});
  }
  if (blobs > 0 || held > 0) {
    std::cerr << "airlock: serve: store gc removed " << blobs << " stored file content(s), "
              << bytes << " bytes, and " << held << " held MCP answer(s)" << std::endl;
  }
  return (*out)["errors"].empty() ? "" : (*out)["errors"].dump();
}

// Appends one line and syncs it: a checkpoint that is said to be written is on the disk.
Status AppendLineSynced(const std::string& path, const std::string& line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IoError("open " + path + ": " + std::strerror(errno));
  struct stat before;
  const bool sized = ::fstat(fd, &before) == 0;
  const std::string text = line + "\n";
  size_t done = 0;
  Status st;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      st = Status::IoError("write " + path + ": " + std::strerror(errno));
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (st.ok() && ::fdatasync(fd) != 0) {
    st = Status::IoError("sync " + path + ": " + std::strerror(errno));
  }
  // A line cut short would join the next one: what was appended goes again.
  if (!st.ok() && sized) (void)!::ftruncate(fd, before.st_size);
  ::close(fd);
  return st;
}

// `airlock audit checkpoint` on a schedule (ServeOptions::checkpoint_every_ms): the chain is
// verified whole, and its head signed and appended to the checkpoint file, whenever it has
// grown since the last checkpoint this server wrote. A broken chain is never signed.
struct CheckpointSigner {
  Gateway& gateway;
  std::string key, file;
  // Of the last line this server wrote (a restart writes the current head once more); used
  // by the Periodic's thread only.
  int64_t last_seq = -1;

  // "" when a checkpoint was written or none was due; what went wrong otherwise.
  std::string Once() {
    // The whole chain is read only when it has grown since the last line.
    Result<AuditHead> head = gateway.AuditHeadNow();
    if (head.ok() && head->seq == last_seq) return "";
    Result<audit::VerifyReport> rep = gateway.VerifyAudit();
    if (!rep.ok()) return rep.status().ToString();
    if (!rep->ok) {
      return "the audit chain is broken at event " + std::to_string(rep->first_bad_seq) + " (" +
             rep->problem + "); it is not signed";
    }
    if (rep->last_seq == last_seq) return "";
    const std::string hash = rep->last_hash.empty() ? kGenesisHash : rep->last_hash;
    Result<audit::Checkpoint> c = audit::SignCheckpoint(key, rep->last_seq, hash, NowMs());
    if (!c.ok()) return c.status().ToString();
    Status st = AppendLineSynced(file, audit::CheckpointLine(*c));
    if (!st.ok()) return st.ToString();
    last_seq = rep->last_seq;
    std::cerr << "airlock: serve: audit checkpoint at event " << rep->last_seq << " written to "
              << file << std::endl;
    return "";
  }
};

Result<std::pair<std::string, uint16_t>> ParseListen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 == listen.size()) {
    return Status::InvalidArgument("--listen '" + listen + "': expected HOST:PORT");
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") host = "127.0.0.1";
  if (host.empty()) return Status::InvalidArgument("--listen '" + listen + "': no host");
  const std::string port_text = listen.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    return Status::InvalidArgument("--listen '" + listen + "': bad port '" + port_text + "'");
  }
  return std::make_pair(host, static_cast<uint16_t>(port));
}

Status Serve(std::shared_ptr<const Policy> policy, const ServeOptions& options) {
  // A client or webhook receiver that closes its end early must cost a write error, not the
  // process: libcurl (NOSIGNAL) and Asio leave SIGPIPE to the program.
  ::signal(SIGPIPE, SIG_IGN);
  ASSIGN_OR_RETURN(auto listen, ParseListen(options.listen));
  if (options.checkpoint_every_ms > 0) {
    // Both files are tried now, so that a wrong path or key is an error at start, not a
    // line on stderr an hour later: a test signature, and the file opened for appending.
    if (options.checkpoint_key.empty() || options.checkpoint_file.empty()) {
      return Status::InvalidArgument(
          "--checkpoint-every needs --checkpoint-key KEY and --checkpoint-file FILE");
    }
    Result<audit::Checkpoint> test =
        audit::SignCheckpoint(options.checkpoint_key, 0, kGenesisHash, NowMs());
    if (!test.ok()) {
      return Status::InvalidArgument("--checkpoint-key " + options.checkpoint_key + ": " +
                                     test.status().message());
    }
    const int fd =
        ::open(options.checkpoint_file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return Status::InvalidArgument("--checkpoint-file " + options.checkpoint_file + ": " +
                                     std::strerror(errno));
    }
    ::close(fd);
    // A file made just now: its directory entry is synced too.
    const std::string& file = options.checkpoint_file;
    const size_t slash = file.rfind('/');
    const std::string dir = slash == std::string::npos ? "."
                            : slash == 0               ? "/"
                                                       : file.substr(0, slash);
    if (const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); d >= 0) {
      (void)::fsync(d);
      ::close(d);
    }
  }
  GatewayOptions gateway_options = GatewayOptions::WithGroupCommit();
  gateway_options.keep_warm = options.standby_sandboxes;
  auto opened = Gateway::Open(policy, gateway_options);
  if (!opened.ok()) return opened.status().Annotate("cannot open the airlock store");
  std::unique_ptr<Gateway> gateway = std::move(*opened);

  // Declared in the order they may be destroyed in reverse: each refers only to those above.
  Metrics metrics;
  std::unique_ptr<notify::Notifier> notifier;
  if (!policy->notify.empty()) notifier = std::make_unique<notify::Notifier>(policy->notify);
  EventHub::Options hub_options;
  if (options.events_poll_ms > 0) hub_options.poll_ms = static_cast<int>(options.events_poll_ms);
  EventHub hub(*gateway, hub_options);
  // Another instance's commit to a shared store wakes the hub at once (PostgreSQL's
  // LISTEN/NOTIFY); the guard stops that before the hub goes away.
  gateway->WatchStoreChanges([&hub] { hub.Poke(); });
  struct StopWatching {
    Gateway* g;
    ~StopWatching() { g->WatchStoreChanges(nullptr); }
  } stop_watching{gateway.get()};
  gateway->SetObserver([&hub, &metrics](const Action& action, const std::string& event) {
    hub.Poke();
    // Only the events that decide an action: a refused rollback or a vote short of the
    // quorum must not count the same action's latency again.
    static const std::set<std::string> kDecisions = {
        "read", "submitted", "applied", "denied", "expired", "failed", "effect_changed", "vote"};
    if (kDecisions.count(event) != 0) metrics.ObserveDecision(action);
  });
  if (notifier) {
    hub.OnEvent([n = notifier.get()](const HubEvent& e) {
      auto note = notify::NotificationFor(e.raw, {e.status, e.risk, e.target, e.agent});
      if (note) n->Post(*note);
    });
  }

  ApiOptions api_options;
  api_options.max_wait_ms = options.max_wait_ms;
  api_options.mcp.allowed_origins = options.mcp_allowed_origins;
  api_options.mcp.listen_host = listen.first;
  Api api(*gateway, hub, metrics, notifier.get(), api_options);

  HttpServerOptions http;
  http.host = listen.first;
  http.port = listen.second;
  http.limits.max_body = options.max_body;
  http.max_connections = options.max_connections;
  http.header_timeout_ms = options.header_timeout_ms;
  http.body_timeout_ms = options.body_timeout_ms;
  http.io_threads = options.threads > 0 ? options.threads : DefaultIoThreads();
  http.workers = kWorkers;
  // Every wait and stream the API admits gets a thread at once.
  http.long_workers = api_options.max_streams + api_options.max_waits + api_options.mcp.max_streams;
  http.drain_ms = kDrainMs;
  HttpServer server(http, api);
  server.OnResponse([&metrics](std::string_view target, int status) {
    metrics.ObserveRequest(Api::RouteLabel(target), status);
  });
  RaiseDescriptorLimit(http.max_connections);
  RETURN_IF_ERROR(server.Listen());
  server.ShutdownOnSignals();
  Gateway& g = *gateway;
  Periodic expirer("expiring pending actions, moving staged reads", kExpiryInterval,
                   [&g] { return ExpireAndIngestOnce(g); });
  Periodic collector("store gc", std::chrono::milliseconds(options.gc_every_ms),
                     [&g, age = options.gc_older_than_s] { return CollectGarbageOnce(g, age); });
  CheckpointSigner signer{g, options.checkpoint_key, options.checkpoint_file};
  Periodic checkpoints("audit checkpoint", std::chrono::milliseconds(options.checkpoint_every_ms),
                       [&signer] { return signer.Once(); });

  std::cerr << "airlock: serving http://" << UrlHost(http.host) << ":" << server.port()
            << " (policy " << policy->source_path << ")" << std::endl;
  if (!server.Run()) {
    // A request still inside the gateway (a long sandbox run, say) cannot be interrupted
    // safely; leaving like a kill is safe: the gateway's recovery resolves it at next open.
    std::cerr << "airlock: requests still running after " << kDrainMs / 1000
              << " s; exiting without them" << std::endl;
    std::_Exit(0);
  }
  std::cerr << "airlock: stopped" << std::endl;
  return Status::Ok();
}

}  // namespace airlock::server
