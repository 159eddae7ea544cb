// A count of changes to one part of a store, shared by every process that uses the store
// through a small file beside it (mapped into memory), so that a process can keep that part
// in a cache and know, with two loads and no read of the store, whether it is still current.
//
// A writer calls Begin before its transaction that changes the part commits, and End once
// that transaction has ended (committed or rolled back). Version is the number of ended
// changes while none is under way, else nullopt. A reader takes Version before it reads the
// part, and may answer from what it read for as long as Version stays the same: a change
// committed after the first Version began after it too (Begin comes before the commit), so
// Version is no longer the same; one committed before was in the read.
//
// A process that dies between Begin and End leaves the counts apart for good: every reader
// then reads afresh, which is slower and still right. A writer that cannot count must not
// write (the store refuses it), or the others would keep answering from their caches.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace airlock {

class ChangeCounter {
 public:
  // Maps `path`, made if missing with the owner and permission bits of `like` (the store
  // file), as SQLite makes its -wal and -shm. nullptr if it cannot be opened, made or mapped.
  static std::unique_ptr<ChangeCounter> Open(const std::string& path, const std::string& like);
  ~ChangeCounter();
  ChangeCounter(const ChangeCounter&) = delete;
  ChangeCounter& operator=(const ChangeCounter&) = delete;

  void Begin() { begun().fetch_add(1); }
  void End() { ended().fetch_add(1); }
  std::optional<uint64_t> Version() const {
    // Ended first: ended <= begun always, so equal here means equal at the second load.
    const uint64_t e = ended().load();
    const uint64_t b = begun().load();
    if (b != e) return std::nullopt;
    return e;
  }
  // Whether `path` still names the mapped file: one deleted and made anew by another process
  // is another counter, and this one must be opened again. Once false, false for good.
  // A file deleted or replaced by a rename over it is seen at once (its link count, from an
  // fstat of the descriptor kept open); one renamed away, or a directory above it replaced,
  // within kPathEvery (an lstat of the path). An lstat on every lookup walked the path once
  // per MCP read call, ~5 us of its decision under perf.
  bool StillNamed() const;

  static constexpr std::chrono::milliseconds kPathEvery{100};

 private:
  ChangeCounter(std::string path, uint64_t* words, dev_t dev, ino_t ino, int fd)
      : path_(std::move(path)), words_(words), dev_(dev), ino_(ino), fd_(fd) {}
  bool StatSaysNamed() const;
  std::atomic_ref<uint64_t> begun() const { return std::atomic_ref<uint64_t>(words_[0]); }
  std::atomic_ref<uint64_t> ended() const { return std::atomic_ref<uint64_t>(words_[1]); }

  const std::string path_;
  uint64_t* words_;  // two, in a shared mapping of the file
  const dev_t dev_;
  const ino_t ino_;
  const int fd_;  // the mapped file (close-on-exec)
  mutable std::mutex check_mu_;
  mutable bool gone_ = false;                                      // GUARDED_BY(check_mu_)
  mutable std::chrono::steady_clock::time_point last_path_check_;  // GUARDED_BY(check_mu_)
};

}  // namespace airlock
