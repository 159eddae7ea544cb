// The benchmark executable's main: makes sure the cached databases exist, then runs Google
// Benchmark. Flags of its own (removed before Google Benchmark sees the rest):
//   --bench_data=DIR   where the databases live (default: ./bench-data); created if missing
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <random>

#include "bench_common.h"

namespace airlock::bench {
namespace {

std::string g_data_dir = "bench-data";
BenchDb g_dbs[2];

int64_t FileSize(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
}

bool Check(int rc, sqlite3* db, const char* what) {
  if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) return true;
  std::fprintf(stderr, "bench: %s: %s\n", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  return false;
}

bool ExecOrDie(sqlite3* db, const char* sql) {
  return Check(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), db, sql);
}

// Single-value query, -1 on any failure.
int64_t QueryInt(sqlite3* db, const char* sql) {
  sqlite3_stmt* st = nullptr;
  int64_t v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    v = sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  return v;
}

std::string QueryText(sqlite3* db, const char* sql) {
  sqlite3_stmt* st = nullptr;
  std::string v;
  if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    const unsigned char* t = sqlite3_column_text(st, 0);
    if (t) v = reinterpret_cast<const char*>(t);
  }
  sqlite3_finalize(st);
  return v;
}

// A cached database is reused when it has exactly the expected rows, is in WAL mode and
// is at least as large as its nominal size.
bool IsValid(const BenchDb& d) {
  if (FileSize(d.path) < static_cast<int64_t>(d.size_mb) * 1000 * 1000) return false;
  sqlite3* db = nullptr;
  bool ok = sqlite3_open_v2(d.path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK &&
            QueryInt(db, "SELECT max(id) FROM t") == d.rows &&
            QueryInt(db, "SELECT count(*) FROM sqlite_schema WHERE name='t_k'") == 1 &&
            QueryText(db, "PRAGMA journal_mode") == "wal";
  sqlite3_close(db);
  return ok;
}

// One transaction, one prepared INSERT, the secondary index built after the load; written
// to a temporary name and renamed when complete, so a killed run leaves no half database.
bool Generate(const BenchDb& d) {
  auto t0 = std::chrono::steady_clock::now();
  std::string tmp = d.path + ".tmp";
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) ::unlink((tmp + suffix).c_str());
  sqlite3* db = nullptr;
  if (!Check(sqlite3_open(tmp.c_str(), &db), db, tmp.c_str())) return false;
  bool ok = ExecOrDie(db, "PRAGMA page_size=4096") && ExecOrDie(db, "PRAGMA journal_mode=OFF") &&
            ExecOrDie(db, "PRAGMA synchronous=OFF") && ExecOrDie(db, "PRAGMA cache_size=-262144") &&
            ExecOrDie(db,
                      "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER NOT NULL, "
                      "name TEXT NOT NULL, payload TEXT NOT NULL)") &&
            ExecOrDie(db, "BEGIN");
  sqlite3_stmt* ins = nullptr;
  ok = ok && Check(sqlite3_prepare_v2(db, "INSERT INTO t VALUES(?1, ?2, ?3, ?4)", -1, &ins, nullptr),
                   db, "prepare INSERT");
  std::mt19937_64 rng(42);
  char name[17];
  char payload[201];
  for (int64_t id = 1; ok && id <= d.rows; ++id) {
    uint64_t r = rng();
    for (int i = 0; i < 16; ++i) name[i] = static_cast<char>('a' + ((r >> (i * 4)) & 15));
    name[16] = '\0';
    uint64_t x = rng();
    for (int i = 0; i < 200; ++i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;  // xorshift: fast, good enough for filler
      payload[i] = static_cast<char>(' ' + 1 + x % 94);
      if (payload[i] == '\'') payload[i] = 'q';
    }
    payload[200] = '\0';
    sqlite3_bind_int64(ins, 1, id);
    sqlite3_bind_int64(ins, 2, static_cast<int64_t>(rng() % 1000000));
    sqlite3_bind_text(ins, 3, name, 16, SQLITE_STATIC);
    sqlite3_bind_text(ins, 4, payload, 200, SQLITE_STATIC);
    ok = Check(sqlite3_step(ins), db, "INSERT");
    sqlite3_reset(ins);
  }
  sqlite3_finalize(ins);
  ok = ok && ExecOrDie(db, "COMMIT") && ExecOrDie(db, "CREATE INDEX t_k ON t(k)") &&
       ExecOrDie(db, "PRAGMA journal_mode=WAL") && ExecOrDie(db, "PRAGMA synchronous=FULL") &&
       ExecOrDie(db, "PRAGMA wal_checkpoint(TRUNCATE)");
  if (sqlite3_close(db) != SQLITE_OK) ok = false;
  if (!ok) return false;
  // Make the file itself durable before it is published under its real name.
  if (FILE* f = std::fopen(tmp.c_str(), "rb")) {
    ::fsync(fileno(f));
    std::fclose(f);
  }
  for (const char* suffix : {"-wal", "-shm"}) ::unlink((d.path + suffix).c_str());
  if (std::rename(tmp.c_str(), d.path.c_str()) != 0) {
    std::fprintf(stderr, "bench: rename %s: %s\n", tmp.c_str(), std::strerror(errno));
    return false;
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "bench: generated %s: %lld rows, %.1f MB in %.1f s\n", d.path.c_str(),
               static_cast<long long>(d.rows), FileSize(d.path) / 1e6, s);
  return true;
}

}  // namespace

const std::string& DataDir() { return g_data_dir; }

const BenchDb& Db(int size_mb) { return size_mb == 200 ? g_dbs[1] : g_dbs[0]; }

bool EnsureDatabases() {
  std::error_code ec;
  std::filesystem::create_directories(g_data_dir, ec);
  g_data_dir = std::filesystem::absolute(g_data_dir).lexically_normal().string();
  // ~240 bytes a row including the index: 100k rows ~ 25 MB, 1M rows ~ 250 MB.
  g_dbs[0] = {20, 100000, g_data_dir + "/db-20mb.sqlite"};
  g_dbs[1] = {200, 1000000, g_data_dir + "/db-200mb.sqlite"};
  for (const BenchDb& d : g_dbs) {
    if (IsValid(d)) {
      std::fprintf(stderr, "bench: reusing %s (%.1f MB, %lld rows)\n", d.path.c_str(),
                   FileSize(d.path) / 1e6, static_cast<long long>(d.rows));
      continue;
    }
    if (!Generate(d) || !IsValid(d)) {
      std::fprintf(stderr, "bench: could not generate %s\n", d.path.c_str());
      return false;
    }
  }
  return true;
}

}  // namespace airlock::bench

int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (i > 0 && std::strncmp(argv[i], "--bench_data=", 13) == 0) {
      airlock::bench::g_data_dir = argv[i] + 13;
    } else {
      rest.push_back(argv[i]);
    }
  }
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  if (benchmark::ReportUnrecognizedArguments(n, rest.data())) return 2;
  if (!airlock::bench::EnsureDatabases()) return 1;
  benchmark::AddCustomContext("db_20mb_bytes", std::to_string(airlock::bench::FileSize(
                                                   airlock::bench::Db(20).path)));
  benchmark::AddCustomContext("db_200mb_bytes", std::to_string(airlock::bench::FileSize(
                                                    airlock::bench::Db(200).path)));
  benchmark::AddCustomContext("sqlite_version", sqlite3_libversion());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
