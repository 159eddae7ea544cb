#include "server/serve.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
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

// Expires pending actions past their timeout about every second, so that an action nobody
// decides becomes `expired` (denied) without anyone asking about it.
class Expirer {
 public:
  explicit Expirer(Gateway& gateway) : gateway_(gateway), thread_([this] { Loop(); }) {}
  ~Expirer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, kExpiryInterval, [this] { return stop_; })) {
      lock.unlock();
      auto expired = gateway_.ExpireDue();
      // The reads `airlock mcp stdio` sessions staged reach the chain, and this server's views.
      Status ingested = gateway_.IngestStaged();
      // Said once per distinct error, not every second.
      const std::string error = !expired.ok()    ? expired.status().ToString()
                                : !ingested.ok() ? ingested.ToString()
                                                 : "";
      if (error != last_error_ && !error.empty()) {
        std::cerr << "airlock: serve: expiring pending actions, moving staged reads: " << error
                  << std::endl;
      }
      last_error_ = error;
      lock.lock();
    }
  }

  Gateway& gateway_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // GUARDED_BY(mu_)
  std::string last_error_;
  std::thread thread_;  // last: starts once the rest is built
};

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
// (at least an hour), so it is safe beside running commands and other processes. Each run
// that removed something, and each new error, is said on stderr.
class GarbageCollector {
 public:
  GarbageCollector(Gateway& gateway, int64_t every_ms, int64_t older_than_s)
      : gateway_(gateway), every_(every_ms), older_than_s_(older_than_s) {
    if (every_ms > 0) thread_ = std::thread([this] { Loop(); });
  }
  ~GarbageCollector() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, every_, [this] { return stop_; })) {
      lock.unlock();
      Result<Json> out = gateway_.CollectGarbage(older_than_s_, /*dry_run=*/false);
      std::string error = out.ok() ? "" : out.status().ToString();
      if (out.ok()) {
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
        if (!(*out)["errors"].empty()) error = (*out)["errors"].dump();
      }
      if (error != last_error_ && !error.empty()) {
        std::cerr << "airlock: serve: store gc: " << error << std::endl;
      }
      last_error_ = error;
      lock.lock();
    }
  }

  Gateway& gateway_;
  const std::chrono::milliseconds every_;
  const int64_t older_than_s_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // GUARDED_BY(mu_)
  std::string last_error_;
  std::thread thread_;  // last: starts once the rest is built
};

// Appends one line and syncs it: a checkpoint that is said to be written is on the disk.
Status AppendLineSynced(const std::string& path, const std::string& line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IoError("open " + path + ": " + std::strerror(errno));
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
  ::close(fd);
  return st;
}

// `airlock audit checkpoint` on a schedule (ServeOptions::checkpoint_every_ms): the chain is
// verified whole, and its head signed and appended to the checkpoint file, whenever it has
// grown since the last checkpoint this server wrote. A broken chain is never signed: that is
// said on stderr instead (once until it changes), as is any other error.
class Checkpointer {
 public:
  Checkpointer(Gateway& gateway, const ServeOptions& options)
      : gateway_(gateway),
        every_(options.checkpoint_every_ms),
        key_(options.checkpoint_key),
        file_(options.checkpoint_file) {
    if (options.checkpoint_every_ms > 0) thread_ = std::thread([this] { Loop(); });
  }
  ~Checkpointer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, every_, [this] { return stop_; })) {
      lock.unlock();
      const std::string error = Once();
      if (error != last_error_ && !error.empty()) {
        std::cerr << "airlock: serve: audit checkpoint: " << error << std::endl;
      }
      last_error_ = error;
      lock.lock();
    }
  }

  // "" when a checkpoint was written or none was due; what went wrong otherwise.
  std::string Once() {
    Result<audit::VerifyReport> rep = gateway_.VerifyAudit();
    if (!rep.ok()) return rep.status().ToString();
    if (!rep->ok) {
      return "the audit chain is broken at event " + std::to_string(rep->first_bad_seq) + " (" +
             rep->problem + "); it is not signed";
    }
    if (rep->last_seq == last_seq_) return "";
    const std::string hash = rep->last_hash.empty() ? kGenesisHash : rep->last_hash;
    Result<audit::Checkpoint> c = audit::SignCheckpoint(key_, rep->last_seq, hash, NowMs());
    if (!c.ok()) return c.status().ToString();
    Status st = AppendLineSynced(file_, audit::CheckpointLine(*c));
    if (!st.ok()) return st.ToString();
    last_seq_ = rep->last_seq;
    std::cerr << "airlock: serve: audit checkpoint at event " << rep->last_seq << " written to "
              << file_ << std::endl;
    return "";
  }

  Gateway& gateway_;
  const std::chrono::milliseconds every_;
  const std::string key_, file_;
  int64_t last_seq_ = -1;  // the checkpoint thread's own
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // GUARDED_BY(mu_)
  std::string last_error_;
  std::thread thread_;  // last: starts once the rest is built
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
  Expirer expirer(*gateway);
  GarbageCollector collector(*gateway, options.gc_every_ms, options.gc_older_than_s);
  Checkpointer checkpointer(*gateway, options);

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
