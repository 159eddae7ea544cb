// Benchmarks 1 and 2: the dry-run + classification of a one-row UPDATE, against
//   - plain SQLite running the same UPDATE for real (autocommit, durable: WAL +
//     synchronous=FULL), opening the file per statement and with the connection kept open;
//   - plain SQLite doing the same work without committing (BEGIN, UPDATE, ROLLBACK on a
//     connection kept open, as airlock's connector keeps its own): not a target, it shows
//     what airlock's own machinery costs on top of SQLite;
//   - "copy the database first": a backup-API copy of the database, then the UPDATE on it.
// Every iteration picks a random row id K (same seed on every side) and a fresh payload.
#include <unistd.h>

#include <chrono>
#include <memory>
#include <random>

#include "bench_common.h"
#include "connectors/sqlite/sqlite_connector.h"
#include "policy/policy.h"

namespace airlock::bench {
namespace {

using Clock = std::chrono::steady_clock;

int64_t Ns(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
}

// Folds the WAL back into the database before each benchmark, so that no side inherits
// the other's WAL.
bool Checkpoint(benchmark::State& state, const std::string& path) {
  sqlite3* db = nullptr;
  bool ok = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK &&
            Exec(state, db, "PRAGMA wal_checkpoint(TRUNCATE)");
  sqlite3_close(db);
  if (!ok && !state.error_occurred()) state.SkipWithError(("cannot open " + path).c_str());
  return ok;
}

// The synchronous level a fresh connection gets: the database default the plain side runs
// with. 2 = FULL, which is what the benchmark promises; anything else is set explicitly.
int DefaultSynchronous(const std::string& path) {
  sqlite3* db = nullptr;
  int level = -1;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, "PRAGMA synchronous", -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      level = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return level;
}

constexpr const char* kTokenA = "1111111111111111111111111111111111111111111111111111111111111111";

// A small realistic policy: one SQLite target, one agent, a few rules (none matches t).
std::string SmallPolicy(const std::string& db_path) {
  return std::string("version: 1\n") +
         "targets:\n"
         "  app-db: {kind: sqlite, path: \"" + db_path + "\", environment: production}\n"
         "agents:\n"
         "  - {name: support-bot, token_sha256: \"" + kTokenA + "\", scopes: [app-db]}\n"
         "rules:\n"
         "  - {match: {target: app-db, table: payments}, risk: high, reason: \"payments are money\"}\n"
         "  - {match: {op: delete, rows_gt: 10}, risk: critical}\n"
         "  - {match: {table: users, op: update}, risk: high}\n";
}

// airlock: the connector made once, then per call DryRun (open, BEGIN, session + authorizer,
// execute, build the effect and its hash, ROLLBACK, close) + Classify.
void BM_AirlockDryRunClassify(benchmark::State& state) {
  const BenchDb& d = Db(static_cast<int>(state.range(0)));
  if (!Checkpoint(state, d.path)) return;
  auto policy = LoadPolicyText(SmallPolicy(d.path), "bench-policy.yaml");
  if (!policy.ok()) return state.SkipWithError(policy.status().ToString().c_str());
  Classifier classifier(*policy);
  auto conn = CreateSqliteConnector({"app-db", "sqlite", Json{{"path", d.path}}});
  if (!conn.ok()) return state.SkipWithError(conn.status().ToString().c_str());
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<int64_t> pick(1, d.rows);
  uint64_t serial = 0;
  Samples samples;
  int64_t risk_sum = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    std::string sql = UpdateSql(pick(rng), ++serial);
    auto dr = (*conn)->DryRun(Json{{"sql", sql}});
    if (!dr.ok()) return state.SkipWithError(dr.status().ToString().c_str());
    Classification c = classifier.Classify("support-bot", "app-db", dr->effect);
    auto t1 = Clock::now();
    samples.Add(Ns(t0, t1));
    if (dr->effect.RowsChanged() != 1 || c.risk != Risk::kLow) {
      return state.SkipWithError(("unexpected dry-run result: rows=" +
                                  std::to_string(dr->effect.RowsChanged()) + " risk=" +
                                  RiskName(c.risk))
                                     .c_str());
    }
    risk_sum += static_cast<int64_t>(c.risk);
    benchmark::DoNotOptimize(risk_sum);
  }
  samples.Report(state);
  state.counters["db_mb"] = static_cast<double>(d.size_mb);
}

// Plain SQLite, durable, the way a script would do it: open the file, run the UPDATE in
// autocommit (WAL, synchronous=FULL: the commit is on disk when it returns), close.
void BM_PlainOpenUpdateClose(benchmark::State& state) {
  const BenchDb& d = Db(static_cast<int>(state.range(0)));
  if (!Checkpoint(state, d.path)) return;
  const int sync = DefaultSynchronous(d.path);
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<int64_t> pick(1, d.rows);
  uint64_t serial = 1000000000;
  Samples samples;
  for (auto _ : state) {
    auto t0 = Clock::now();
    std::string sql = UpdateSql(pick(rng), ++serial);
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(d.path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      sqlite3_close(db);
      return state.SkipWithError("open failed");
    }
    if (sync != 2 && !Exec(state, db, "PRAGMA synchronous=FULL")) return (void)sqlite3_close(db);
    if (!Exec(state, db, sql)) return (void)sqlite3_close(db);
    if (sqlite3_changes(db) != 1) {
      sqlite3_close(db);
      return state.SkipWithError("UPDATE changed no row");
    }
    sqlite3_close(db);
    samples.Add(Ns(t0, Clock::now()));
  }
  samples.Report(state);
  state.counters["db_mb"] = static_cast<double>(d.size_mb);
  state.counters["default_synchronous"] = sync;
}

// Plain SQLite, durable, with the connection kept open across statements (the fairest
// peer for a long-running program: no open/close, no schema parse per statement).
void BM_PlainKeptOpenUpdate(benchmark::State& state) {
  const BenchDb& d = Db(static_cast<int>(state.range(0)));
  if (!Checkpoint(state, d.path)) return;
  const int sync = DefaultSynchronous(d.path);
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(d.path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return state.SkipWithError("open failed");
  }
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> guard(db, sqlite3_close);
  if (sync != 2 && !Exec(state, db, "PRAGMA synchronous=FULL")) return;
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<int64_t> pick(1, d.rows);
  uint64_t serial = 2000000000;
  Samples samples;
  for (auto _ : state) {
    auto t0 = Clock::now();
    std::string sql = UpdateSql(pick(rng), ++serial);
    if (!Exec(state, db, sql)) return;
    if (sqlite3_changes(db) != 1) return state.SkipWithError("UPDATE changed no row");
    samples.Add(Ns(t0, Clock::now()));
  }
  samples.Report(state);
  state.counters["db_mb"] = static_cast<double>(d.size_mb);
  state.counters["default_synchronous"] = sync;
}

// Not a target peer: the bare SQLite work a dry-run contains (BEGIN, UPDATE, ROLLBACK on a
// connection kept open, as airlock's connector keeps its own), without the session
// extension, authorizer, effect or classification. The difference to the airlock row is what
// airlock's own machinery costs.
void BM_PlainKeptOpenUpdateRollback(benchmark::State& state) {
  const BenchDb& d = Db(static_cast<int>(state.range(0)));
  if (!Checkpoint(state, d.path)) return;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(d.path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return state.SkipWithError("open failed");
  }
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> guard(db, sqlite3_close);
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<int64_t> pick(1, d.rows);
  uint64_t serial = 3000000000;
  Samples samples;
  for (auto _ : state) {
    auto t0 = Clock::now();
    std::string sql = UpdateSql(pick(rng), ++serial);
    if (!(Exec(state, db, "BEGIN") && Exec(state, db, sql) && Exec(state, db, "ROLLBACK"))) return;
    samples.Add(Ns(t0, Clock::now()));
  }
  samples.Report(state);
  state.counters["db_mb"] = static_cast<double>(d.size_mb);
}

void RemoveDb(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) ::unlink((path + suffix).c_str());
}

// "Copy the database first": the SQLite backup API copies every page into a new file in the
// same directory, then the UPDATE runs on the copy. The copy is a throw-away sandbox, so it
// is written with synchronous=OFF (no fsync): the cheapest honest copy, which favours this
// peer. Deleting the copy afterwards is not timed.
void BM_CopyThenUpdate(benchmark::State& state) {
  const BenchDb& d = Db(static_cast<int>(state.range(0)));
  if (!Checkpoint(state, d.path)) return;
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<int64_t> pick(1, d.rows);
  uint64_t serial = 4000000000;
  Samples samples;
  int n = 0;
  const std::string copy_base = DataDir() + "/copy-" + std::to_string(::getpid()) + "-";
  for (auto _ : state) {
    const std::string copy = copy_base + std::to_string(++n) + ".sqlite";
    auto t0 = Clock::now();
    std::string sql = UpdateSql(pick(rng), ++serial);
    sqlite3* src = nullptr;
    sqlite3* dst = nullptr;
    bool ok = sqlite3_open_v2(d.path.c_str(), &src, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK &&
              sqlite3_open_v2(copy.c_str(), &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                              nullptr) == SQLITE_OK &&
              Exec(state, dst, "PRAGMA synchronous=OFF");
    if (ok) {
      sqlite3_backup* b = sqlite3_backup_init(dst, "main", src, "main");
      ok = b != nullptr && sqlite3_backup_step(b, -1) == SQLITE_DONE;
      ok = sqlite3_backup_finish(b) == SQLITE_OK && ok;
      if (!ok) state.SkipWithError(("backup failed: " + std::string(sqlite3_errmsg(dst))).c_str());
    }
    ok = ok && Exec(state, dst, sql) && sqlite3_changes(dst) == 1;
    sqlite3_close(dst);
    sqlite3_close(src);
    auto t1 = Clock::now();
    state.PauseTiming();
    RemoveDb(copy);
    state.ResumeTiming();
    if (!ok) {
      if (!state.error_occurred()) state.SkipWithError("copy or UPDATE failed");
      return;
    }
    samples.Add(Ns(t0, t1));
  }
  samples.Report(state);
  state.counters["db_mb"] = static_cast<double>(d.size_mb);
}

// Durable commits have heavy tails: at least 2 s per benchmark on the fast rows.
BENCHMARK(BM_AirlockDryRunClassify)->Arg(200)->Arg(20)->Unit(benchmark::kMicrosecond)
    ->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_PlainOpenUpdateClose)->Arg(200)->Arg(20)->Unit(benchmark::kMicrosecond)
    ->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_PlainKeptOpenUpdate)->Arg(200)->Arg(20)->Unit(benchmark::kMicrosecond)
    ->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_PlainKeptOpenUpdateRollback)->Arg(200)->Arg(20)->Unit(benchmark::kMicrosecond)
    ->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_CopyThenUpdate)->Arg(200)->Iterations(5)->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_CopyThenUpdate)->Arg(20)->Iterations(20)->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace airlock::bench
