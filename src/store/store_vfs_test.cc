#include "store/store_vfs.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace airlock::sqlite {
namespace {

namespace fs = std::filesystem;

class StoreVfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(StoreVfsName(), nullptr);
    vfs_ = sqlite3_vfs_find(StoreVfsName());
    ASSERT_NE(vfs_, nullptr);
    std::string tmpl = (fs::temp_directory_path() / "airlock-vfs-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A file opened through the store's VFS as SQLite opens a WAL.
  struct OpenFile {
    std::unique_ptr<char[]> space;
    sqlite3_file* file = nullptr;
  };
  OpenFile OpenAsWal(const std::string& path) {
    OpenFile f;
    f.space = std::make_unique<char[]>(static_cast<size_t>(vfs_->szOsFile));
    f.file = reinterpret_cast<sqlite3_file*>(f.space.get());
    int out = 0;
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_WAL;
    EXPECT_EQ(vfs_->xOpen(vfs_, path.c_str(), f.file, flags, &out), SQLITE_OK);
    return f;
  }

  static std::string Bytes(size_t n, char c) { return std::string(n, c); }

  // A connection through the store's VFS, in WAL mode, never checkpointing (so that its
  // frames stay in the WAL), at the given synchronous level.
  sqlite3* OpenThroughStoreVfs(const std::string& path, const std::string& synchronous) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                              StoreVfsName()),
              SQLITE_OK);
    Exec(db, "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; PRAGMA synchronous=" +
                 synchronous + ";");
    return db;
  }

  static void Exec(sqlite3* db, const std::string& sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    std::string msg = err ? err : "";
    sqlite3_free(err);
    EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << msg;
  }

  // Copies `path` and its WAL while their connection is still open (so the WAL is not
  // checkpointed away), opens the copy with SQLite's default VFS, whose recovery reads and
  // checks every frame, and returns the first row of `query` there as integers, followed by
  // the copy's integrity_check answer.
  std::pair<std::vector<int64_t>, std::string> QueryRecoveredCopy(const std::string& path,
                                                                  const std::string& query) {
    const std::string copy = path + ".copy";
    fs::copy_file(path, copy);
    fs::copy_file(path + "-wal", copy + "-wal");
    sqlite3* plain = nullptr;
    EXPECT_EQ(sqlite3_open_v2(copy.c_str(), &plain, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    std::vector<int64_t> row;
    std::string integrity;
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(plain, query.c_str(), -1, &s, nullptr) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
      for (int i = 0; i < sqlite3_column_count(s); ++i) row.push_back(sqlite3_column_int64(s, i));
    }
    sqlite3_finalize(s);
    if (sqlite3_prepare_v2(plain, "PRAGMA integrity_check", -1, &s, nullptr) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
      integrity = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    }
    sqlite3_finalize(s);
    sqlite3_close(plain);
    return {row, integrity};
  }

  sqlite3_vfs* vfs_ = nullptr;
  fs::path dir_;
};

TEST_F(StoreVfsTest, OnlyAnAppendedHeaderIsHeldAndAnyOtherCallWritesItFirst) {
  // The unix VFS gives a new WAL its database's mode, so the database must exist.
  std::ofstream(dir_ / "x.db").put('\0');
  const std::string path = (dir_ / "x.db-wal").string();
  OpenFile f = OpenAsWal(path);
  ASSERT_NE(f.file->pMethods, nullptr);
  const sqlite3_io_methods* m = f.file->pMethods;
  // What is in the file, read past the VFS.
  auto on_disk = [&path](off_t offset, size_t n) {
    std::string out(n, '\0');
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    ssize_t got = fd < 0 ? -1 : ::pread(fd, out.data(), n, offset);
    if (fd >= 0) ::close(fd);
    out.resize(got < 0 ? 0 : static_cast<size_t>(got));
    return out;
  };
  const WalWriteCounts before = StoreVfsWalWriteCounts();
  const std::string wal_header = Bytes(32, 'w');
  const std::string page = Bytes(4096, 'p');

  // The WAL's own header, at 0: written at once.
  ASSERT_EQ(m->xWrite(f.file, wal_header.data(), 32, 0), SQLITE_OK);
  EXPECT_EQ(on_disk(0, 32), wal_header);

  // A frame appended: its header is held, then goes out with its page.
  const std::string h1 = Bytes(24, 'a');
  ASSERT_EQ(m->xWrite(f.file, h1.data(), 24, 32), SQLITE_OK);
  EXPECT_EQ(on_disk(32, 24), "") << "held";
  ASSERT_EQ(m->xWrite(f.file, page.data(), 4096, 56), SQLITE_OK);
  EXPECT_EQ(on_disk(32, 24 + 4096), h1 + page);
  sqlite3_int64 end = 32 + 24 + 4096;

  // A header written over a frame already written (a checksum rewritten at a commit):
  // written at once, with nothing after it.
  const std::string h2 = Bytes(24, 'b');
  ASSERT_EQ(m->xWrite(f.file, h2.data(), 24, 32), SQLITE_OK);
  EXPECT_EQ(on_disk(32, 24), h2);

  // Each call but a continuing write writes an appended header first.
  struct Call {
    const char* name;
    std::function<int()> run;
  };
  sqlite3_int64 size = 0;
  int reserved = 0;
  std::string buf(24, '\0');
  const std::vector<Call> calls = {
      {"xRead", [&] { return m->xRead(f.file, buf.data(), 24, 32); }},
      {"xSync", [&] { return m->xSync(f.file, SQLITE_SYNC_NORMAL); }},
      {"xFileSize", [&] { return m->xFileSize(f.file, &size); }},
      {"xLock", [&] { return m->xLock(f.file, SQLITE_LOCK_SHARED); }},
      {"xUnlock", [&] { return m->xUnlock(f.file, SQLITE_LOCK_NONE); }},
      {"xCheckReservedLock", [&] { return m->xCheckReservedLock(f.file, &reserved); }},
      {"xFileControl", [&] { return m->xFileControl(f.file, SQLITE_FCNTL_LOCKSTATE, &reserved); }},
      {"xTruncate", [&] { return m->xTruncate(f.file, end + 24); }},
      {"xWrite elsewhere", [&] { return m->xWrite(f.file, page.data(), 10, 40); }},
  };
  for (const Call& c : calls) {
    const std::string h = Bytes(24, 'c');
    ASSERT_EQ(m->xWrite(f.file, h.data(), 24, end), SQLITE_OK) << c.name;
    EXPECT_EQ(on_disk(end, 24), "") << c.name << ": held";
    (void)c.run();  // some (a lock on a WAL) may refuse; the header is written either way
    EXPECT_EQ(on_disk(end, 24), h) << c.name << ": written first";
    end += 24;
  }

  // A header held at close is written by the close.
  const std::string h3 = Bytes(24, 'd');
  ASSERT_EQ(m->xWrite(f.file, h3.data(), 24, end), SQLITE_OK);
  ASSERT_EQ(m->xClose(f.file), SQLITE_OK);
  EXPECT_EQ(on_disk(end, 24), h3);

  const WalWriteCounts after = StoreVfsWalWriteCounts();
  EXPECT_EQ(after.combined - before.combined, 1u);
  EXPECT_EQ(after.alone - before.alone, calls.size() + 1);
}

// Through SQLite: every frame of a run of commits goes out as one write, none alone, and the
// WAL it leaves is one SQLite's default VFS recovers whole (a frame whose bytes were wrong
// would fail its checksum, and recovery would stop there, losing the commits after it).
TEST_F(StoreVfsTest, SqlitesFramesGoOutWholeAndTheWalRecoversWithTheDefaultVfs) {
  const std::string path = (dir_ / "a.db").string();
  sqlite3* db = OpenThroughStoreVfs(path, "FULL");
  Exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t(v);");
  const WalWriteCounts before = StoreVfsWalWriteCounts();
  constexpr int kCommits = 50;
  constexpr int kRowsEach = 20;
  for (int c = 0; c < kCommits; ++c) {
    std::string sql = "BEGIN;";
    for (int r = 0; r < kRowsEach; ++r) {
      sql += "INSERT INTO t(v) VALUES (printf('%d-%d-%s', " + std::to_string(c) + ", " +
             std::to_string(r) + ", hex(randomblob(100))));";
    }
    Exec(db, sql + "COMMIT;");
  }
  const WalWriteCounts after = StoreVfsWalWriteCounts();
  const auto wal_bytes = static_cast<int64_t>(fs::file_size(path + "-wal"));
  const int64_t frames = (wal_bytes - 32) / (24 + 4096);
  ASSERT_GT(frames, kCommits) << "every commit wrote at least one frame";
  // The frames of this loop (the CREATE's came before `before`).
  EXPECT_GE(after.combined - before.combined, static_cast<uint64_t>(kCommits));
  EXPECT_LE(after.combined - before.combined, static_cast<uint64_t>(frames));
  EXPECT_EQ(after.alone, before.alone) << "no frame header went out alone";

  auto [row, integrity] = QueryRecoveredCopy(path, "SELECT count(*), count(DISTINCT v) FROM t");
  EXPECT_EQ(row, (std::vector<int64_t>{kCommits * kRowsEach, kCommits * kRowsEach}));
  EXPECT_EQ(integrity, "ok");
  sqlite3_close(db);
}

// A transaction larger than the page cache writes some pages to the WAL before its commit,
// and when such a page changes again SQLite rewrites the frame in place and, at the commit,
// rewrites the frames' checksums: it reads each frame and writes its 24-byte header alone,
// with no page after it. With synchronous=NORMAL no sync follows the commit. That header
// must reach the file with the commit, not wait for the connection's next call: a copy of
// the WAL taken while the connection sits open is recovered whole by the default VFS.
TEST_F(StoreVfsTest, ARewrittenChecksumIsWrittenAtOnceUnderNormalSync) {
  const std::string path = (dir_ / "n.db").string();
  sqlite3* db = OpenThroughStoreVfs(path, "NORMAL");
  Exec(db, "PRAGMA cache_size=10; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);");
  // One transaction: 2,000 rows (far more than 10 pages), then every row changed again.
  Exec(db,
       "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) "
       "INSERT INTO t(v) SELECT hex(randomblob(60)) FROM n; "
       "UPDATE t SET v = 'changed-' || id; COMMIT;");
  auto [row, integrity] = QueryRecoveredCopy(
      path, "SELECT count(*), count(*) FILTER (WHERE v LIKE 'changed-%') FROM t");
  EXPECT_EQ(row, (std::vector<int64_t>{2000, 2000}));
  EXPECT_EQ(integrity, "ok");
  sqlite3_close(db);
}

}  // namespace
}  // namespace airlock::sqlite
