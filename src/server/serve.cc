#include "server/serve.h"

#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <set>
#include <string>
#include <thread>

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
