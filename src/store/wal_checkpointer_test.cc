#include "store/wal_checkpointer.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "store/sqlite_db.h"
#include "store/sqlite_schema.h"

namespace airlock {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kFrameBytes = 4096 + 24;  // a page and its frame header

class WalCheckpointerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "airlock-ckpt-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = (dir_ / "t.db").string();
    writer_ = OpenWriter();
    ASSERT_NE(writer_, nullptr);
    Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t(v);");
  }
  void TearDown() override {
    writer_.reset();
    fs::remove_all(dir_);
  }

  // A writer as the store opens one: through its VFS, WAL mode, synchronous=FULL.
  std::unique_ptr<sqlite::Db> OpenWriter() {
    auto db =
        sqlite::Db::Open(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, sqlite::kBusyTimeoutMs);
    EXPECT_TRUE(db.ok()) << db.status().ToString();
    if (!db.ok()) return nullptr;
    EXPECT_TRUE((*db)->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL").ok());
    return std::move(db).value();
  }
  void Exec(const std::string& sql) {
    Status st = writer_->Exec(sql.c_str());
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  // `n` commits of one row each (a row and an index entry: a few frames a commit).
  void Commit(int n) {
    for (int i = 0; i < n; ++i) {
      Exec("INSERT INTO t(v) VALUES (hex(randomblob(100)))");
    }
  }
  int64_t WalBytes() {
    struct stat st {};
    return ::stat((path_ + "-wal").c_str(), &st) == 0 ? st.st_size : -1;
  }
  int64_t Rows() {
    auto s = writer_->Prepare("SELECT count(*) FROM t");
    EXPECT_TRUE(s.ok());
    if (!s.ok()) return -1;
    auto row = s->Step();
    return row.ok() && *row ? s->Int(0) : -1;
  }

  fs::path dir_;
  std::string path_;
  std::unique_ptr<sqlite::Db> writer_;
};

// The case an earlier try lost: commits that never pause. The thread's passes alone cannot
// take the whole WAL, so without the finish on the committing thread the WAL would grow by
// every commit (3,000 commits of a few frames each: 6,000 frames or more).
TEST_F(WalCheckpointerTest, CommitsThatNeverPauseStillLetTheWalStartOver) {
  WalCheckpointer::Limits limits;
  limits.pass_frames = 100;
  limits.restart_frames = 400;
  limits.inline_frames = 1 << 30;  // never: the thread alone keeps the WAL short
  WalCheckpointer c(path_, limits);
  ASSERT_TRUE(c.Start().ok());
  c.Attach(writer_->raw());
  Commit(3000);
  const WalCheckpointer::Counts n = c.counts();
  EXPECT_GE(n.passes, 1u);
  EXPECT_GE(n.restarts, 2u) << "the WAL started over";
  EXPECT_EQ(n.inline_runs, 0u);
  EXPECT_EQ(n.failures, 0u);
  // Generous: a thread kept from running for a while on a loaded machine lets the WAL run on.
  EXPECT_LT(n.most_wal_frames, 4000) << "the WAL stayed short";
  EXPECT_LT(WalBytes(), 4000 * kFrameBytes);
  EXPECT_TRUE(c.error().ok());
  c.Stop();
  EXPECT_EQ(Rows(), 3000);
  auto check = writer_->Prepare("PRAGMA integrity_check");
  ASSERT_TRUE(check.ok());
  ASSERT_TRUE(*check->Step());
  EXPECT_EQ(check->Text(0), "ok");
}

// A reader that keeps an old snapshot holds every pass back to the frames it sees. The
// thread still passes only once per pass_frames new frames, not back to back.
TEST_F(WalCheckpointerTest, AReaderHoldingAnOldSnapshotDoesNotMakeThePassesSpin) {
  auto reader = sqlite::Db::Open(path_, SQLITE_OPEN_READONLY, sqlite::kBusyTimeoutMs);
  ASSERT_TRUE(reader.ok());
  Commit(10);
  ASSERT_TRUE((*reader)->Exec("BEGIN; SELECT count(*) FROM t;").ok());
  WalCheckpointer::Limits limits;
  limits.pass_frames = 100;
  limits.restart_frames = 1 << 30;
  limits.inline_frames = 1 << 30;
  WalCheckpointer c(path_, limits);
  ASSERT_TRUE(c.Start().ok());
  c.Attach(writer_->raw());
  Commit(1000);
  const WalCheckpointer::Counts n = c.counts();
  EXPECT_GE(n.passes, 1u);
  EXPECT_LE(n.passes, static_cast<uint64_t>(n.most_wal_frames / limits.pass_frames + 1))
      << "one pass per " << limits.pass_frames << " frames at most";
  EXPECT_EQ(n.restarts, 0u) << "the reader's snapshot keeps the WAL";
  ASSERT_TRUE((*reader)->Exec("COMMIT").ok());
}

// A thread that never gets to run (here: its pass limit is never reached) does not let the
// WAL grow without bound: a commit past the inline limit checkpoints in place.
TEST_F(WalCheckpointerTest, TheInlineLimitBoundsTheWalWhenTheThreadFallsBehind) {
  WalCheckpointer::Limits limits;
  limits.pass_frames = 1 << 30;
  limits.inline_frames = 200;
  WalCheckpointer c(path_, limits);
  ASSERT_TRUE(c.Start().ok());
  c.Attach(writer_->raw());
  Commit(600);
  const WalCheckpointer::Counts n = c.counts();
  EXPECT_EQ(n.passes, 0u);
  EXPECT_GE(n.inline_runs, 2u);
  EXPECT_LT(n.most_wal_frames, 400);
  EXPECT_LT(WalBytes(), 400 * kFrameBytes);
  EXPECT_EQ(Rows(), 600);
}

// Attached, the writer no longer checkpoints at SQLite's 1,000 frames: the thread does, and
// below that nothing does.
TEST_F(WalCheckpointerTest, AnAttachedWriterNoLongerCheckpointsItself) {
  WalCheckpointer::Limits limits;
  limits.pass_frames = 1 << 30;
  limits.inline_frames = 1 << 30;
  WalCheckpointer c(path_, limits);
  ASSERT_TRUE(c.Start().ok());
  c.Attach(writer_->raw());
  Commit(1000);  // ~2,000 frames: past SQLite's 1,000
  EXPECT_GT(c.counts().most_wal_frames, 1200) << "no automatic checkpoint let the WAL start over";
  EXPECT_EQ(c.counts().passes, 0u);
}

// Stop closes the thread's connection, so that the writer is the last to close: its close
// checkpoints the rest and empties the WAL (the store's way, sqlite_db.cc; a WAL this small
// keeps its size with its header zeroed, store_vfs.h).
TEST_F(WalCheckpointerTest, StopLeavesTheLastCloseToTheWriter) {
  WalCheckpointer c(path_, WalCheckpointer::Limits{});
  ASSERT_TRUE(c.Start().ok());
  c.Attach(writer_->raw());
  Commit(50);
  EXPECT_GT(WalBytes(), 0);
  c.Stop();
  c.Stop();  // idempotent
  const int64_t open_bytes = WalBytes();
  writer_.reset();
  std::string magic(4, '\0');
  std::ifstream((path_ + "-wal").c_str(), std::ios::binary).read(magic.data(), 4);
  EXPECT_EQ(magic, std::string(4, '\0')) << "the writer closed last: checkpointed and emptied";
  EXPECT_EQ(WalBytes(), open_bytes) << "a WAL under 1 MiB keeps its size";
  writer_ = OpenWriter();
  EXPECT_EQ(Rows(), 50);
}

TEST_F(WalCheckpointerTest, AStoreFileThatCannotBeOpenedIsAnError) {
  WalCheckpointer c((dir_ / "missing" / "x.db").string(), WalCheckpointer::Limits{});
  EXPECT_FALSE(c.Start().ok());
  c.Stop();
}

}  // namespace
}  // namespace airlock
