#include "store/wal_checkpointer.h"

#include <algorithm>
#include <string>
#include <system_error>
#include <utility>

#include "store/sqlite_db.h"
#include "store/sqlite_schema.h"

namespace airlock {

Status WalCheckpointer::Start() {
  ASSIGN_OR_RETURN(db_, sqlite::Db::Open(db_file_, SQLITE_OPEN_READWRITE, sqlite::kBusyTimeoutMs));
  // A checkpoint syncs the WAL before it writes pages back (and, one that takes the whole
  // WAL, the database file after), unless synchronous is OFF; FULL says so whatever the
  // build's default.
  Status st = db_->Exec("PRAGMA synchronous=FULL");
  // A first read opens the connection's view of the WAL, which a checkpoint needs, and its
  // database file, which SyncDatabaseFile syncs.
  if (st.ok()) st = db_->Exec("SELECT count(*) FROM sqlite_schema");
  if (st.ok()) {
    try {
      thread_ = std::thread([this] { Loop(); });
    } catch (const std::system_error& e) {
      st = Status::Internal(std::string("starting the checkpoint thread: ") + e.what());
    }
  }
  if (!st.ok()) db_.reset();
  return st;
}

void WalCheckpointer::Attach(sqlite3* writer) {
  // Replaces the automatic checkpoint, which SQLite implements as a WAL hook of its own.
  sqlite3_wal_hook(writer, &WalCheckpointer::Hook, this);
}

Status WalCheckpointer::SyncDatabaseFile() {
  // Through the connection's own file, not a descriptor of our own: SQLite's locks are POSIX
  // record locks, which the process loses on the file when it closes any descriptor of it.
  sqlite3_file* file = nullptr;
  int rc = sqlite3_file_control(db_->raw(), "main", SQLITE_FCNTL_FILE_POINTER, &file);
  if (rc == SQLITE_OK && (file == nullptr || file->pMethods == nullptr)) rc = SQLITE_MISUSE;
  if (rc == SQLITE_OK) rc = file->pMethods->xSync(file, SQLITE_SYNC_NORMAL);
  if (rc == SQLITE_OK) return Status::Ok();
  return Status::IoError("syncing " + db_file_ + " after a checkpoint: " + sqlite3_errstr(rc) +
                         " (SQLite code " + std::to_string(rc) + ")");
}

void WalCheckpointer::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  db_.reset();
}

WalCheckpointer::Counts WalCheckpointer::counts() {
  std::lock_guard lock(mu_);
  return counts_;
}

Status WalCheckpointer::error() {
  std::lock_guard lock(mu_);
  return error_;
}

int WalCheckpointer::Hook(void* self, sqlite3* db, const char* /*schema*/, int frames) {
  static_cast<WalCheckpointer*>(self)->Reported(db, frames);
  return SQLITE_OK;  // a failed checkpoint is not the commit's failure: it is committed
}

int WalCheckpointer::Pass(sqlite3* db, int* log, int* done) {
  *log = 0;
  *done = 0;
  return sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_PASSIVE, log, done);
}

bool WalCheckpointer::PassDue() const {
  // Also while a finish is wanted: a reader that holds the finish back for long would
  // otherwise leave the whole backlog to the commit that finally gets it (the two
  // checkpoints never run at once: the second gets SQLITE_BUSY and tries again later).
  return error_.ok() && frames_ - std::max(checkpointed_, attempted_) >= limits_.pass_frames;
}

void WalCheckpointer::Failed(int rc, const char* where) {
  // Any error of a checkpoint but SQLITE_BUSY (another one runs) may be a failed sync of
  // the WAL or the database file inside it, and Linux reports a failed writeback once per
  // open file: a later sync of the same file could succeed without the pages on disk, and
  // a checkpoint that then took the whole WAL would let it start over on top of frames
  // still needed. So nothing more is checkpointed here, and the store refuses writes and
  // keeps its WAL at close (fail closed).
  ++counts_.failures;
  finish_wanted_ = false;
  if (error_.ok()) {
    error_ = Status::IoError(std::string("checkpointing ") + db_file_ + " " + where + ": " +
                             sqlite3_errstr(rc) + " (SQLite code " + std::to_string(rc) + ")");
  }
}

void WalCheckpointer::Reported(sqlite3* db, int frames) {
  bool here = false;
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    // A shorter WAL than at the last commit: this commit started it over, and what was
    // known of the old one says nothing of the new. (A restart whose first commit is longer
    // than the whole old WAL goes unseen: a pass then comes later, or a finish that was no
    // longer needed runs; both are harmless.)
    if (frames < frames_) {
      ++generation_;
      checkpointed_ = 0;
      attempted_ = 0;
      finish_wanted_ = false;
      ++counts_.restarts;
    }
    frames_ = frames;
    counts_.most_wal_frames = std::max<int64_t>(counts_.most_wal_frames, frames);
    if (!error_.ok()) return;  // no checkpoint after a failure (see Failed)
    here = finish_wanted_ || frames >= limits_.inline_frames;
    wake = !here && PassDue();
  }
  if (wake) cv_.notify_one();
  if (!here) return;
  // On the committing thread, between two of its commits: nothing is appended meanwhile, so
  // this checkpoint can take the whole WAL (unless a reader still holds an older snapshot),
  // and the next commit starts the WAL over.
  int log = 0;
  int done = 0;
  const int rc = Pass(db, &log, &done);
  {
    std::lock_guard lock(mu_);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      Failed(rc, "after a commit");
      return;
    }
    // A reader whose snapshot is older than this commit keeps its frames from being
    // written back, and another checkpoint running (SQLITE_BUSY: the thread's, or another
    // process's) keeps this one from starting; then the next commit tries again, as
    // SQLite's own checkpoint does (each try costs only the frames since the last).
    if (rc == SQLITE_OK) {
      checkpointed_ = std::max(checkpointed_, done);
      if (finish_wanted_ && done == log) {
        finish_wanted_ = false;
        ++counts_.finishes;
      } else if (!finish_wanted_) {
        ++counts_.inline_runs;
      }
    }
    wake = PassDue();
  }
  if (wake) cv_.notify_one();
}

void WalCheckpointer::Loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || PassDue(); });
    if (stop_) return;
    // The next pass waits for pass_frames beyond this one's start, whatever it achieves:
    // a reader's old snapshot, or another process's frames, never make passes back to back.
    attempted_ = frames_;
    const uint64_t generation = generation_;
    lock.unlock();
    int log = 0;
    int done = 0;
    const int rc = Pass(db_->raw(), &log, &done);
    // SQLite syncs the database file only at a checkpoint that takes the whole WAL as it
    // is when the checkpoint ends (until then the WAL holds every page written back), which
    // under steady commits is never the thread's. It would be the next commit's finish,
    // which then waited for every page of the passes since the last: 12-25 ms once the WAL
    // was 16,000 frames long (docs/BENCHMARKS.md). So the thread syncs them itself, and
    // the finish syncs only its own few. (After a checkpoint that synced, this one finds
    // nothing to write.)
    Status synced = rc == SQLITE_OK ? SyncDatabaseFile() : Status::Ok();
    lock.lock();
    ++counts_.passes;
    if (!synced.ok()) {
      Failed(SQLITE_IOERR_FSYNC, "after a pass");  // see Failed
      return;
    }
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      Failed(rc, "on its thread");
      return;
    }
    // The WAL started over while the pass ran: its numbers are of the old one.
    if (rc != SQLITE_OK || generation != generation_) continue;
    checkpointed_ = std::max(checkpointed_, done);
    // A long WAL that this pass could not take whole: the next commit finishes it. (If the
    // pass took it whole, the next commit starts it over, which clears the wish unused.)
    if (frames_ >= limits_.restart_frames) finish_wanted_ = true;
  }
}

}  // namespace airlock
