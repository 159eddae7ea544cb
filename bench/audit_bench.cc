// Benchmark 4: durable audit appends (hash-chained, SQLite store in WAL mode with
// synchronous=FULL: every commit is on disk before its future resolves / Transact returns).
//
//   grouped (the claim): kProducers threads call Store::TransactGrouped, each keeping up to
//     kWindow futures outstanding; the store's committer batches them into one commit.
//   per-event (the peer): the same threads call Store::Transact, one transaction and one
//     durable commit per event: what a store without group commit does.
//
// Each producer runs for kSeconds, then waits for everything it submitted. events/s counts
// events whose future resolved OK, over the wall time until the last one resolved. The chain
// is then verified end to end with audit::Verify; the result says whether it verified and
// that it holds exactly the events appended.
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "audit/audit.h"
#include "core/json.h"
#include "bench_common.h"
#include "store/store.h"

namespace airlock::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Overridable for experiments: AIRLOCK_BENCH_PRODUCERS, AIRLOCK_BENCH_WINDOW.
int EnvInt(const char* name, int def) {
  const char* v = std::getenv(name);
  return v && std::atoi(v) > 0 ? std::atoi(v) : def;
}
const int kProducers = EnvInt("AIRLOCK_BENCH_PRODUCERS", 8);
const int kWindow = EnvInt("AIRLOCK_BENCH_WINDOW", 256);
constexpr double kSeconds = 3.0;

// A realistic event: an agent submits a one-row UPDATE (~450 bytes of canonical JSON).
AuditEvent MakeEvent(int producer, int64_t n) {
  AuditEvent e;
  char id[32];
  std::snprintf(id, sizeof id, "act_%02x%014llx", producer, static_cast<unsigned long long>(n));
  e.action_id = id;
  e.principal = "agent:support-bot";
  e.event = "submitted";
  e.payload = {
      {"target", "app-db"},
      {"kind", "sql"},
      {"args", {{"sql", "UPDATE orders SET status = 'refunded', note = 'customer asked' WHERE id = " +
                            std::to_string(n)}}},
      {"risk", "low"},
      {"reasons", {"changes 1 row in orders (at most 100) is low"}},
      {"effect", {{"kind", "sql"},
                  {"tables", {{{"table", "orders"}, {"updated", 1}}}},
                  {"effect_hash", std::string(64, 'c')}}},
  };
  return e;
}

struct RunOutcome {
  int64_t events = 0;
  double seconds = 0;
  double cpu_seconds = 0;  // user + system CPU of the whole process during the run
  std::string error;
};

double ProcessCpuSeconds() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

std::unique_ptr<Store> OpenFresh(benchmark::State& state, const std::string& name) {
  const std::string path = DataDir() + "/" + name + "-" + std::to_string(::getpid()) + ".db";
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) ::unlink((path + suffix).c_str());
  StoreOptions options;
  options.create_if_missing = true;
  options.synchronous_full = true;
  auto store = OpenSqliteStore(path, options);
  if (!store.ok()) {
    state.SkipWithError(store.status().ToString().c_str());
    return nullptr;
  }
  return std::move(*store);
}

void RemoveStore(const std::string& name) {
  const std::string path = DataDir() + "/" + name + "-" + std::to_string(::getpid()) + ".db";
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) ::unlink((path + suffix).c_str());
}

template <typename Producer>
RunOutcome RunProducers(Producer producer) {
  std::atomic<int64_t> total{0};
  std::mutex error_mu;
  std::string first_error;
  const double cpu0 = ProcessCpuSeconds();
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(kSeconds));
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      std::string err;
      total += producer(p, deadline, &err);
      if (!err.empty()) {
        std::lock_guard lock(error_mu);
        if (first_error.empty()) first_error = err;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  RunOutcome out;
  out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  out.cpu_seconds = ProcessCpuSeconds() - cpu0;
  out.events = total.load();
  out.error = first_error;
  return out;
}

// Verifies the chain and reports it; false (and the benchmark marked failed) if it does
// not verify or does not hold exactly `appended` events.
bool VerifyAndReport(benchmark::State& state, Store& store, int64_t appended) {
  auto t0 = Clock::now();
  auto report = audit::Verify(store);
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!report.ok()) {
    state.SkipWithError(("audit::Verify failed: " + report.status().ToString()).c_str());
    return false;
  }
  state.counters["verified"] = report->ok && report->events == appended ? 1 : 0;
  state.counters["verified_events"] = static_cast<double>(report->events);
  state.counters["verify_s"] = secs;
  std::fprintf(stderr, "bench: audit chain %s: %lld events (appended %lld), verified in %.2f s%s%s\n",
               report->ok && report->events == appended ? "VERIFIED" : "DID NOT VERIFY",
               static_cast<long long>(report->events), static_cast<long long>(appended), secs,
               report->ok ? "" : ": ", report->problem.c_str());
  if (!report->ok || report->events != appended) {
    state.SkipWithError(("chain did not verify: " + report->problem).c_str());
    return false;
  }
  return true;
}

void SetCounters(benchmark::State& state, const RunOutcome& r) {
  state.counters["events"] = static_cast<double>(r.events);
  state.counters["events_per_s"] = static_cast<double>(r.events) / r.seconds;
  state.counters["wall_s"] = r.seconds;
  state.counters["cpu_s"] = r.cpu_seconds;
  state.counters["producers"] = kProducers;
}

void BM_AuditAppendGrouped(benchmark::State& state) {
  const std::string name = "audit-grouped";
  std::unique_ptr<Store> store = OpenFresh(state, name);
  if (!store) return;
  RunOutcome r;
  for (auto _ : state) {
    r = RunProducers([&](int p, Clock::time_point deadline, std::string* err) -> int64_t {
      std::deque<std::future<Status>> pending;
      int64_t ok = 0, n = 0;
      auto settle = [&] {
        Status st = pending.front().get();
        pending.pop_front();
        if (st.ok()) {
          ++ok;
        } else if (err->empty()) {
          *err = st.ToString();
        }
      };
      while (Clock::now() < deadline && err->empty()) {
        AuditEvent ev = MakeEvent(p, ++n);
        // Serialized here, on the producer's thread, as a server's request threads would:
        // the one writer thread then only hashes and inserts.
        ev.canonical_payload = CanonicalJson(ev.payload);
        ev.payload = nullptr;
        pending.push_back(store->TransactGrouped(
            [ev = std::move(ev)](StoreTxn& t) { return t.AppendAudit(ev).status(); }));
        if (pending.size() >= static_cast<size_t>(kWindow)) settle();
      }
      while (!pending.empty()) settle();
      return ok;
    });
  }
  if (!r.error.empty()) return state.SkipWithError(r.error.c_str());
  SetCounters(state, r);
  state.counters["window"] = kWindow;
  VerifyAndReport(state, *store, r.events);
  store.reset();
  RemoveStore(name);
}

void BM_AuditAppendPerEvent(benchmark::State& state) {
  const std::string name = "audit-per-event";
  std::unique_ptr<Store> store = OpenFresh(state, name);
  if (!store) return;
  RunOutcome r;
  for (auto _ : state) {
    r = RunProducers([&](int p, Clock::time_point deadline, std::string* err) -> int64_t {
      int64_t ok = 0, n = 0;
      while (Clock::now() < deadline) {
        AuditEvent ev = MakeEvent(p, ++n);
        Status st = store->Transact([&](StoreTxn& t) { return t.AppendAudit(ev).status(); });
        if (!st.ok()) {
          *err = st.ToString();
          break;
        }
        ++ok;
      }
      return ok;
    });
  }
  if (!r.error.empty()) return state.SkipWithError(r.error.c_str());
  SetCounters(state, r);
  VerifyAndReport(state, *store, r.events);
  store.reset();
  RemoveStore(name);
}

// Not a target: the single writer's CPU ceiling. One thread appends kOneTxnEvents events
// inside ONE transaction (one commit at the end), so no fsync per event or per batch: what
// the committer thread could reach if commits were free.
constexpr int kOneTxnEvents = 20000;
void BM_AuditAppendOneTxn(benchmark::State& state) {
  const std::string name = "audit-one-txn";
  std::unique_ptr<Store> store = OpenFresh(state, name);
  if (!store) return;
  RunOutcome r;
  for (auto _ : state) {
    const double cpu0 = ProcessCpuSeconds();
    auto t0 = Clock::now();
    Status st = store->Transact([&](StoreTxn& t) {
      for (int i = 0; i < kOneTxnEvents; ++i) {
        auto res = t.AppendAudit(MakeEvent(0, i + 1));
        if (!res.ok()) return res.status();
      }
      return Status::Ok();
    });
    r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    r.cpu_seconds = ProcessCpuSeconds() - cpu0;
    if (!st.ok()) return state.SkipWithError(st.ToString().c_str());
    r.events = kOneTxnEvents;
  }
  state.counters["events"] = static_cast<double>(r.events);
  state.counters["events_per_s"] = static_cast<double>(r.events) / r.seconds;
  state.counters["wall_s"] = r.seconds;
  state.counters["cpu_s"] = r.cpu_seconds;
  state.counters["us_per_event"] = r.seconds * 1e6 / static_cast<double>(r.events);
  VerifyAndReport(state, *store, r.events);
  store.reset();
  RemoveStore(name);
}

BENCHMARK(BM_AuditAppendGrouped)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AuditAppendPerEvent)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AuditAppendOneTxn)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace airlock::bench
