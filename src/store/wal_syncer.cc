#include "store/wal_syncer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace airlock {

void WalSyncer::Committed() {
  std::lock_guard lock(mu_);
  ++committed_;
}

void WalSyncer::Start() {
  std::lock_guard lock(mu_);
  StartLocked();
}

void WalSyncer::StartLocked() {
  if (requested_ == committed_) return;  // nothing new since the last request
  if (!thread_.joinable()) {
    if (stop_) return;
    try {
      thread_ = std::thread([this] { Loop(); });
    } catch (const std::system_error& e) {
      // Fail closed: what was committed cannot be synced here.
      if (error_.ok())
        error_ = Status::Internal(std::string("cannot start the thread that syncs ") + wal_path_ +
                                  ": " + e.what());
      return;
    }
  }
  requested_ = committed_;
  cv_.notify_all();
}

Status WalSyncer::WaitSynced() {
  std::unique_lock lock(mu_);
  StartLocked();
  const uint64_t want = requested_;
  if (synced_ < want && urgent_upto_ < want) {
    urgent_upto_ = want;
    cv_.notify_all();
  }
  if (!thread_.joinable()) {
    // Stopped (everything was synced then), or never started: then nothing was committed,
    // or the thread could not start and error_ says so.
    if (committed_ > synced_ && error_.ok()) {
      return Status::Internal("commits to " + wal_path_ + " are not synced: the store is closing");
    }
    return error_;
  }
  cv_.wait(lock, [&] { return synced_ >= want; });
  return error_;
}

Status WalSyncer::error() {
  std::lock_guard lock(mu_);
  return error_;
}

uint64_t WalSyncer::syncs() {
  std::lock_guard lock(mu_);
  return syncs_;
}

void WalSyncer::Stop() {
  std::thread thread;
  {
    std::lock_guard lock(mu_);
    StartLocked();  // what was committed and not yet asked for
    stop_ = true;
    thread = std::move(thread_);
    cv_.notify_all();
  }
  if (thread.joinable()) thread.join();
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
}

void WalSyncer::Loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || requested_ > synced_; });
    if (requested_ == synced_) return;  // stopping, with nothing left to sync
    // The spacing: commits asked for meanwhile join this sync.
    if (last_start_) {
      cv_.wait_until(lock, *last_start_ + spacing_,
                     [&] { return stop_ || urgent_upto_ > synced_; });
    }
    const uint64_t upto = requested_;
    last_start_ = std::chrono::steady_clock::now();
    lock.unlock();
    Status st = SyncOnce();
    lock.lock();
    if (!st.ok() && error_.ok()) error_ = st;
    synced_ = upto;
    ++syncs_;
    cv_.notify_all();
  }
}

Status WalSyncer::SyncOnce() {
  struct stat named {};
  struct stat held {};
  if (stat(wal_path_.c_str(), &named) != 0) {
    return Status::IoError("syncing " + wal_path_ + ": " + std::strerror(errno));
  }
  if (fd_ >= 0 &&
      (fstat(fd_, &held) != 0 || held.st_ino != named.st_ino || held.st_dev != named.st_dev)) {
    close(fd_);
    fd_ = -1;
  }
  if (fd_ < 0) {
    // Read-only suffices: Linux syncs through any descriptor of the file.
    fd_ = open(wal_path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return Status::IoError("opening " + wal_path_ + ": " + std::strerror(errno));
  }
  int rc;
  do {
    rc = fdatasync(fd_);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return Status::IoError("syncing " + wal_path_ + ": " + std::strerror(errno));
  if (!dir_synced_) {
    // SQLite syncs the directory on a new WAL's first sync; this may be that sync.
    std::string dir = std::filesystem::path(wal_path_).parent_path().string();
    int dfd = open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return Status::IoError("opening " + dir + ": " + std::strerror(errno));
    do {
      rc = fsync(dfd);
    } while (rc != 0 && errno == EINTR);
    const int err = errno;
    close(dfd);
    if (rc != 0) return Status::IoError("syncing " + dir + ": " + std::strerror(err));
    dir_synced_ = true;
  }
  return Status::Ok();
}

}  // namespace airlock
