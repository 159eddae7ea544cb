// Shared helpers of the airlock benchmarks (bench/*_bench.cc): the cached test databases,
// per-call latency percentiles, and the SQL both sides run.
#pragma once

#include <benchmark/benchmark.h>
#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace airlock::bench {

// The directory that holds the generated databases (set by main from --bench_data=DIR).
const std::string& DataDir();

// A generated database: `t(id INTEGER PRIMARY KEY, k INTEGER, name TEXT, payload TEXT)` with
// an index on k, WAL mode. Created once by main (EnsureDatabase) and reused by every run.
struct BenchDb {
  int size_mb;        // nominal size: 20 or 200
  int64_t rows;       // ids 1..rows
  std::string path;   // absolute
};

// The two databases the SQLite benchmarks use, in DataDir(). size_mb must be 20 or 200.
const BenchDb& Db(int size_mb);

// Creates (or validates and reuses) every database; prints what it did to stderr.
bool EnsureDatabases();

// Latency samples of one benchmark run, in nanoseconds.
class Samples {
 public:
  void Reserve(size_t n) { ns_.reserve(n); }
  void Add(int64_t ns) { ns_.push_back(ns); }
  size_t size() const { return ns_.size(); }
  // The q-quantile (0..1) by the nearest-rank method: a real sample, not an interpolation.
  double QuantileUs(double q) {
    if (ns_.empty()) return 0;
    std::sort(ns_.begin(), ns_.end());
    size_t rank = static_cast<size_t>(q * static_cast<double>(ns_.size()));
    if (rank >= ns_.size()) rank = ns_.size() - 1;
    return static_cast<double>(ns_[rank]) / 1000.0;
  }
  double MeanUs() const {
    if (ns_.empty()) return 0;
    long double sum = 0;
    for (int64_t v : ns_) sum += v;
    return static_cast<double>(sum / ns_.size()) / 1000.0;
  }
  // Sets p50_us, p99_us, mean_us and samples as counters of the benchmark.
  void Report(benchmark::State& state) {
    state.counters["p50_us"] = QuantileUs(0.50);
    state.counters["p99_us"] = QuantileUs(0.99);
    state.counters["mean_us"] = MeanUs();
    state.counters["samples"] = static_cast<double>(ns_.size());
  }

 private:
  std::vector<int64_t> ns_;
};

// The one-row UPDATE both sides run: a fresh ~200-byte payload for row `id`. Built inside
// the timed loop on both sides (same cost).
inline std::string UpdateSql(int64_t id, uint64_t serial) {
  char payload[201];
  // 200 printable bytes that differ per call, so every UPDATE really changes the row.
  std::snprintf(payload, sizeof payload, "%016llx", static_cast<unsigned long long>(serial));
  for (int i = 16; i < 200; ++i) payload[i] = static_cast<char>('a' + (i * 7 + serial) % 26);
  payload[200] = '\0';
  return "UPDATE t SET payload = '" + std::string(payload) + "' WHERE id = " + std::to_string(id);
}

// sqlite3_exec that reports failure on the benchmark and returns false.
inline bool Exec(benchmark::State& state, sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = "sqlite: " + sql.substr(0, 60) + ": " + (err ? err : sqlite3_errstr(rc));
    sqlite3_free(err);
    state.SkipWithError(msg.c_str());
    return false;
  }
  return true;
}

}  // namespace airlock::bench
