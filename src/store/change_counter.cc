#include "store/change_counter.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace airlock {

namespace {
constexpr size_t kBytes = 2 * sizeof(uint64_t);
static_assert(std::atomic_ref<uint64_t>::is_always_lock_free,
              "the counts are shared between processes: they must be lock-free");
}  // namespace

std::unique_ptr<ChangeCounter> ChangeCounter::Open(const std::string& path,
                                                   const std::string& like) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return nullptr;
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return nullptr;
  }
  if (st.st_size < static_cast<off_t>(kBytes)) {
    // New (or never extended): every process that uses the store must be able to count.
    struct stat store {};
    if (stat(like.c_str(), &store) == 0) {
      if (geteuid() == 0) (void)!fchown(fd, store.st_uid, store.st_gid);
      (void)fchmod(fd, store.st_mode & 0666);
    }
    // Zeros once extended; two processes extending it at once both write zeros, and one that
    // finds it extended already leaves it as it is. Allocated, not only sized: a write through
    // the mapping to a block a full disk cannot give would be a SIGBUS.
    if (posix_fallocate(fd, 0, kBytes) != 0) {
      close(fd);
      return nullptr;
    }
  }
  void* p = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    close(fd);
    return nullptr;
  }
  // The descriptor is kept: StillNamed asks it for the file's link count.
  return std::unique_ptr<ChangeCounter>(
      new ChangeCounter(path, static_cast<uint64_t*>(p), st.st_dev, st.st_ino, fd));
}

ChangeCounter::~ChangeCounter() {
  munmap(words_, kBytes);
  close(fd_);
}

bool ChangeCounter::StillNamed() const {
  std::lock_guard<std::mutex> lock(check_mu_);
  if (gone_) return false;
  // Deleted, or another file renamed over it: no link left, seen at once.
  struct stat st {};
  if (fstat(fd_, &st) != 0 || st.st_nlink == 0) {
    gone_ = true;
    return false;
  }
  // Renamed away, or a directory above it replaced: the path, looked at every kPathEvery.
  const auto now = std::chrono::steady_clock::now();
  if (now - last_path_check_ < kPathEvery) return true;
  last_path_check_ = now;
  gone_ = !StatSaysNamed();
  return !gone_;
}

bool ChangeCounter::StatSaysNamed() const {
  struct stat st {};
  return lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_;
}

}  // namespace airlock
