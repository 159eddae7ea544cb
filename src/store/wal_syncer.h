// Syncs a SQLite store's WAL file on a thread of its own, for commits made with
// synchronous=NORMAL (Store::TransactUnsynced): the committing thread hands its frames to the
// operating system and goes on; this thread makes them durable when asked (Start), without
// holding up the one who asks.
//
// Syncs asked for with Start are spaced at least `spacing` apart (from one's start to the
// next's): a steady stream of commits (an agent's read calls, one every half millisecond) then
// shares one fdatasync per interval instead of paying one each (less CPU per call: ~360
// against ~400 us with calls back to back on 2 vCPUs; no change in latency was measurable;
// docs/BENCHMARKS.md). The first request after a quiet spell is synced at once. WaitSynced
// and Stop never wait for the spacing. What this costs: a power cut or kernel crash can lose
// the commits of the last interval and of the sync running then (a crash of the process
// loses none of them).
//
// It syncs through a descriptor of its own: fdatasync(2) flushes the file's inode, whichever
// descriptor names it, so no SQLite lock is held while the disk works, and the next commit
// never waits behind a sync. The WAL is never removed while the store's connections are
// open (a WAL-mode connection holds a shared lock on the database for its lifetime, and
// the store keeps its WAL between processes); the path is still checked before each sync,
// and a replaced file is opened again.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/status.h"

namespace airlock {

class WalSyncer {
 public:
  static constexpr std::chrono::milliseconds kDefaultSpacing{10};

  explicit WalSyncer(std::string wal_path,
                     std::chrono::steady_clock::duration spacing = kDefaultSpacing)
      : wal_path_(std::move(wal_path)), spacing_(spacing) {}
  ~WalSyncer() { Stop(); }
  WalSyncer(const WalSyncer&) = delete;
  WalSyncer& operator=(const WalSyncer&) = delete;

  // After a commit, which Start or WaitSynced then syncs.
  void Committed();
  // Syncs what was committed before the call, on the thread (started on first use), once the
  // sync running (if any) has ended and `spacing` has passed since it started; returns at
  // once.
  void Start();
  // Blocks until everything committed before the call is synced, without waiting for the
  // spacing. The first failed sync's error, kept for good: the commits it covered may be
  // lost, and the file's later syncs cannot tell (Linux reports a writeback error once).
  Status WaitSynced();
  // The sticky error, without waiting.
  Status error();
  // How many syncs ran so far.
  uint64_t syncs();
  // Syncs what was committed, then ends the thread. Idempotent; no other call may run at the
  // same time or after.
  void Stop();

 private:
  void Loop();
  Status SyncOnce();  // on the thread only
  // Requires mu_. Starts the thread if need be; if it cannot, error_ says so.
  void StartLocked();

  const std::string wal_path_;
  const std::chrono::steady_clock::duration spacing_;
  int fd_ = -1;              // the thread's alone
  bool dir_synced_ = false;  // the thread's alone
  // When the last sync started; none yet: the first is never held back (the steady clock's
  // zero is the boot, so a default time point would hold it back after a recent boot).
  std::optional<std::chrono::steady_clock::time_point> last_start_;  // the thread's alone

  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t committed_ = 0;  // GUARDED_BY(mu_)
  uint64_t requested_ = 0;  // GUARDED_BY(mu_): the commits a sync was asked for
  uint64_t synced_ = 0;     // GUARDED_BY(mu_)
  uint64_t syncs_ = 0;      // GUARDED_BY(mu_)
  uint64_t urgent_upto_ = 0;  // GUARDED_BY(mu_): a WaitSynced waits for these; no spacing
  Status error_;            // GUARDED_BY(mu_)
  bool stop_ = false;       // GUARDED_BY(mu_)
  std::thread thread_;      // GUARDED_BY(mu_)
};

}  // namespace airlock
