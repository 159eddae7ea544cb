// Checkpoints a SQLite store's WAL on a thread of its own, for a process whose committer must
// not stop for them (`airlock serve`: every audited answer waits for the next group commit).
//
// By default SQLite checkpoints inside the commit that takes the WAL past 1,000 frames: that
// commit writes the pages back to the database file and syncs it before it returns, and on a
// disk taking 0.5-0.9 ms per synced write that made the p99 of the server's answers
// (docs/BENCHMARKS.md, 2026-11-29 and 2026-12-02). Here the writers' connections report
// each commit's WAL length (a WAL hook, which replaces SQLite's automatic checkpoint on
// them) and this thread, on a connection of its own, runs PASSIVE checkpoints that take no
// lock the writers wait for, every `pass_frames` frames.
//
// A PASSIVE checkpoint cannot finish while the committer keeps appending, and the WAL only
// starts over from its beginning at a commit that finds every frame in it checkpointed; an
// earlier try with PASSIVE checkpoints alone let the WAL grow to ~20 MB. So once a pass of
// this thread finds the WAL `restart_frames` long, the next commit finishes it in place: a
// checkpoint of the few frames appended since that pass, on the committing thread, with no
// commit between (tried again at each commit until no reader's older snapshot holds it
// back). The commit after it starts the WAL over. SQLite syncs the database file only at a
// checkpoint that takes the whole WAL, so the thread syncs it after each of its passes:
// the finish then syncs only its own few pages. The committer waits for one short
// checkpoint per `restart_frames` frames instead of a full one per 1,000.
//
// If this thread cannot keep up, a commit that finds the WAL past `inline_frames`
// checkpoints in place, as SQLite would have (it gets SQLITE_BUSY, and the WAL grows on,
// while the thread's own checkpoint is running: a disk that stalls a pass stalls both).
// A failed checkpoint or sync stops all of them for good (see error()).
#pragma once

#include <sqlite3.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/status.h"
#include "store/store.h"

namespace airlock {
namespace sqlite {
class Db;
}

class WalCheckpointer {
 public:
  struct Limits {
    int pass_frames = 1000;     // a pass once this many frames are not checkpointed
    int restart_frames = 8192;  // 32 MiB of 4 KiB pages: then the next commit finishes it
    int inline_frames = 32768;  // 128 MiB: a commit past it checkpoints in place
  };
  // passes, finishes, inline_runs, failures (the first stops them all), restarts, and the
  // longest WAL a commit reported (store.h).
  using Counts = CheckpointStats;

  WalCheckpointer(std::string db_file, Limits limits)
      : db_file_(std::move(db_file)), limits_(limits) {}
  ~WalCheckpointer() { Stop(); }
  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

  // Opens the thread's connection (read-write: a checkpoint writes the database file) and
  // starts the thread. Until it returns OK, Attach is not to be called: the writers keep
  // SQLite's automatic checkpoint.
  Status Start();
  // Replaces `writer`'s automatic checkpoint with reports to this thread. `writer` is a
  // connection of the same database whose commits are serialised with the other attached
  // writers' (the store's write mutex), and commits nothing after Stop.
  void Attach(sqlite3* writer);
  // Ends the thread and closes its connection, so that the writers' own close (the last
  // connection's) checkpoints the rest and empties the WAL. Idempotent.
  void Stop();
  Counts counts();
  // The first failed checkpoint (but SQLITE_BUSY) or sync of the database file after a
  // pass, kept for good: from then on nothing is checkpointed here (the WAL grows), and the
  // store is to refuse writes and keep its WAL at close, as after a failed sync of its WAL.
  Status error();

 private:
  static int Hook(void* self, sqlite3* db, const char* schema, int frames);
  // After each commit of an attached writer, on the committing thread.
  void Reported(sqlite3* db, int frames);
  void Loop();
  // One PASSIVE checkpoint on `db`: SQLite's result code (SQLITE_BUSY: another checkpoint
  // runs), the WAL's length and how much of it is checkpointed now.
  static int Pass(sqlite3* db, int* log, int* done);
  // Syncs the database file through the thread's connection.
  Status SyncDatabaseFile();
  // REQUIRES(mu_): a pass is due.
  bool PassDue() const;
  // REQUIRES(mu_): a checkpoint returned `rc` (neither OK nor BUSY): sets the error for good.
  void Failed(int rc, const char* where);

  const std::string db_file_;
  const Limits limits_;
  std::unique_ptr<sqlite::Db> db_;  // the thread's alone while it runs

  std::mutex mu_;
  std::condition_variable cv_;
  // All GUARDED_BY(mu_). The WAL's length at the last commit, and how often it started over.
  int frames_ = 0;
  uint64_t generation_ = 0;
  // Of the WAL as it is now: how much is checkpointed (last known), and its length when the
  // thread's last pass began.
  int checkpointed_ = 0;
  int attempted_ = 0;
  bool finish_wanted_ = false;  // the next commit finishes the checkpoint
  bool stop_ = false;
  Status error_;
  Counts counts_;
  std::thread thread_;
};

}  // namespace airlock
