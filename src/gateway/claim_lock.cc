#include "gateway/claim_lock.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>

namespace airlock {
namespace {
// Distinct actions rarely share a byte; when they do, one waits for the other (harmless).
constexpr off_t kLockSlots = 1000003;
}  // namespace

ClaimLock::~ClaimLock() {
  if (fd_ >= 0) close(fd_);
  if (release_) release_();
}

ClaimLock::ClaimLock(ClaimLock&& other) noexcept
    : fd_(other.fd_), release_(std::move(other.release_)) {
  other.fd_ = -1;
  other.release_ = nullptr;
}

ClaimLock& ClaimLock::operator=(ClaimLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    if (release_) release_();
    fd_ = other.fd_;
    release_ = std::move(other.release_);
    other.fd_ = -1;
    other.release_ = nullptr;
  }
  return *this;
}

ClaimLock ClaimLock::Held(std::function<void()> release) {
  ClaimLock lock;
  lock.release_ = std::move(release);
  return lock;
}

Result<ClaimLock> ClaimLock::Acquire(const std::string& lock_file, const std::string& action_id,
                                     bool wait) {
  ClaimLock lock;
  lock.fd_ = open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock.fd_ < 0) {
    return Status::IoError("open " + lock_file + ": " + std::strerror(errno));
  }
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(std::hash<std::string>{}(action_id) % kLockSlots);
  fl.l_len = 1;
  // OFD locks belong to the open file description, not the process, so two threads of one
  // server also exclude each other.
  while (fcntl(lock.fd_, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) != 0) {
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EACCES) {
      return Status::FailedPrecondition(action_id + " is being worked on by another process");
    }
    return Status::IoError("lock " + lock_file + ": " + std::strerror(errno));
  }
  return lock;
}

}  // namespace airlock
