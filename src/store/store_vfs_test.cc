#include "store/store_vfs.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
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

  sqlite3_vfs* vfs_ = nullptr;
  fs::path dir_;
};

TEST_F(StoreVfsTest, AHeldHeaderIsWrittenBeforeAnyOtherCallLooksAtTheFile) {
  // The unix VFS gives a new WAL its database's mode, so the database must exist.
  std::ofstream(dir_ / "x.db").put('\0');
  const std::string path = (dir_ / "x.db-wal").string();
  OpenFile f = OpenAsWal(path);
  ASSERT_NE(f.file->pMethods, nullptr);
  const sqlite3_io_methods* m = f.file->pMethods;
  const WalWriteCounts before = StoreVfsWalWriteCounts();

  // A 24-byte write, then a read of it: the read sees it.
  const std::string h1 = Bytes(24, 'a');
  ASSERT_EQ(m->xWrite(f.file, h1.data(), 24, 0), SQLITE_OK);
  std::string back(24, '\0');
  ASSERT_EQ(m->xRead(f.file, back.data(), 24, 0), SQLITE_OK);
  EXPECT_EQ(back, h1);

  // A 24-byte write, then the file's size: the size counts it.
  const std::string h2 = Bytes(24, 'b');
  ASSERT_EQ(m->xWrite(f.file, h2.data(), 24, 100), SQLITE_OK);
  sqlite3_int64 size = 0;
  ASSERT_EQ(m->xFileSize(f.file, &size), SQLITE_OK);
  EXPECT_EQ(size, 124);

  // A header and the page right after it: one write, and both are there.
  const std::string h3 = Bytes(24, 'c');
  const std::string page = Bytes(4096, 'p');
  ASSERT_EQ(m->xWrite(f.file, h3.data(), 24, 200), SQLITE_OK);
  ASSERT_EQ(m->xWrite(f.file, page.data(), 4096, 224), SQLITE_OK);
  std::string frame(24 + 4096, '\0');
  ASSERT_EQ(m->xRead(f.file, frame.data(), static_cast<int>(frame.size()), 200), SQLITE_OK);
  EXPECT_EQ(frame, h3 + page);

  // A header and a write elsewhere: the header first, alone, then the other.
  const std::string h4 = Bytes(24, 'd');
  const std::string other = Bytes(10, 'o');
  ASSERT_EQ(m->xWrite(f.file, h4.data(), 24, 5000), SQLITE_OK);
  ASSERT_EQ(m->xWrite(f.file, other.data(), 10, 6000), SQLITE_OK);
  std::string got(24, '\0');
  ASSERT_EQ(m->xRead(f.file, got.data(), 24, 5000), SQLITE_OK);
  EXPECT_EQ(got, h4);

  // Two headers apart: the first is written before the second is held; a sync writes the
  // second.
  ASSERT_EQ(m->xWrite(f.file, h1.data(), 24, 7000), SQLITE_OK);
  ASSERT_EQ(m->xWrite(f.file, h2.data(), 24, 7100), SQLITE_OK);
  ASSERT_EQ(m->xSync(f.file, SQLITE_SYNC_NORMAL), SQLITE_OK);
  std::string two(124, '\0');
  ASSERT_EQ(m->xRead(f.file, two.data(), 124, 7000), SQLITE_OK);
  EXPECT_EQ(two.substr(0, 24), h1);
  EXPECT_EQ(two.substr(100, 24), h2);

  // A header held at close is written by the close.
  ASSERT_EQ(m->xWrite(f.file, h3.data(), 24, 8000), SQLITE_OK);
  ASSERT_EQ(m->xClose(f.file), SQLITE_OK);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 8024);

  const WalWriteCounts after = StoreVfsWalWriteCounts();
  // Combined: the frame at 200 only. Alone: the headers at 0, 100, 5000, 7000, 7100, 8000.
  EXPECT_EQ(after.combined - before.combined, 1u);
  EXPECT_EQ(after.alone - before.alone, 6u);
}

// Through SQLite: every frame of a run of commits goes out as one write, none alone, and the
// WAL it leaves is one SQLite's default VFS recovers whole (a frame whose bytes were wrong
// would fail its checksum, and recovery would stop there, losing the commits after it).
TEST_F(StoreVfsTest, SqlitesFramesGoOutWholeAndTheWalRecoversWithTheDefaultVfs) {
  const std::string path = (dir_ / "a.db").string();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                            StoreVfsName()),
            SQLITE_OK);
  auto exec = [](sqlite3* d, const std::string& sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(d, sql.c_str(), nullptr, nullptr, &err);
    std::string msg = err ? err : "";
    sqlite3_free(err);
    EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << msg;
  };
  exec(db, "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; PRAGMA synchronous=FULL;");
  exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t(v);");
  const WalWriteCounts before = StoreVfsWalWriteCounts();
  constexpr int kCommits = 50;
  constexpr int kRowsEach = 20;
  for (int c = 0; c < kCommits; ++c) {
    std::string sql = "BEGIN;";
    for (int r = 0; r < kRowsEach; ++r) {
      sql += "INSERT INTO t(v) VALUES (printf('%d-%d-%s', " + std::to_string(c) + ", " +
             std::to_string(r) + ", hex(randomblob(100))));";
    }
    exec(db, sql + "COMMIT;");
  }
  const WalWriteCounts after = StoreVfsWalWriteCounts();
  const std::string wal = path + "-wal";
  const auto wal_bytes = static_cast<int64_t>(fs::file_size(wal));
  const int64_t frames = (wal_bytes - 32) / (24 + 4096);
  ASSERT_GT(frames, kCommits) << "every commit wrote at least one frame";
  // The frames of this loop (the CREATE's came before `before`).
  EXPECT_GE(after.combined - before.combined, static_cast<uint64_t>(kCommits));
  EXPECT_LE(after.combined - before.combined, static_cast<uint64_t>(frames));
  EXPECT_EQ(after.alone, before.alone) << "no frame header went out alone";

  // A copy of the database and its WAL, taken while the connection is open (so the WAL is
  // not checkpointed away), opened with the default VFS: recovery reads every frame.
  const std::string copy = (dir_ / "b.db").string();
  fs::copy_file(path, copy);
  fs::copy_file(wal, copy + "-wal");
  sqlite3* plain = nullptr;
  ASSERT_EQ(sqlite3_open_v2(copy.c_str(), &plain, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(plain, "SELECT count(*), count(DISTINCT v) FROM t", -1, &s, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(s, 0), kCommits * kRowsEach);
  EXPECT_EQ(sqlite3_column_int(s, 1), kCommits * kRowsEach);
  sqlite3_finalize(s);
  ASSERT_EQ(sqlite3_prepare_v2(plain, "PRAGMA integrity_check", -1, &s, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)), "ok");
  sqlite3_finalize(s);
  sqlite3_close(plain);
  sqlite3_close(db);
}

}  // namespace
}  // namespace airlock::sqlite
