#include "store/change_counter.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/inotify.h>
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
  close(fd);  // the mapping keeps the file
  if (p == MAP_FAILED) return nullptr;
  // The watch: unlinking the file (its link count: IN_ATTRIB, also when another file is
  // renamed over it) and renaming it away (IN_MOVE_SELF) queue an event. It is made on the
  // path, so it is checked to be on the mapped file: one replaced in between gets no watch.
  int watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (watch >= 0) {
    struct stat now {};
    if (inotify_add_watch(watch, path.c_str(),
                          IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF | IN_DONT_FOLLOW) < 0 ||
        lstat(path.c_str(), &now) != 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
      close(watch);
      watch = -1;
    }
  }
  return std::unique_ptr<ChangeCounter>(
      new ChangeCounter(path, static_cast<uint64_t*>(p), st.st_dev, st.st_ino, watch));
}

ChangeCounter::~ChangeCounter() {
  munmap(words_, kBytes);
  if (watch_fd_ >= 0) close(watch_fd_);
}

bool ChangeCounter::StillNamed() const {
  std::lock_guard<std::mutex> lock(watch_mu_);
  if (gone_) return false;
  if (watch_fd_ >= 0) {
    alignas(inotify_event) char events[sizeof(inotify_event) + NAME_MAX + 1];
    ssize_t n = read(watch_fd_, events, sizeof events);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;  // nothing happened
    // An event (or the queue overflowed, or a read error): the path decides.
  }
  gone_ = !StatSaysNamed();
  return !gone_;
}

bool ChangeCounter::StatSaysNamed() const {
  struct stat st {};
  return lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_;
}

}  // namespace airlock
