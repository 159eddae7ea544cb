// ClaimLock: proof that the process holding it is alive and working on an action.
//
// An action in `applying` or `rolling_back` is either being worked on right now or was left
// by a process that died. Crash recovery must tell the two apart, or it would declare a
// running apply failed. The worker holds an open-file-description lock on one byte of a lock
// file (chosen by the action id) for as long as it works; the kernel drops the lock when the
// process dies, even by kill -9. Recovery resolves only actions whose byte it can lock.
#pragma once

#include <functional>
#include <string>

#include "core/status.h"

namespace airlock {

class ClaimLock {
 public:
  ClaimLock() = default;
  ~ClaimLock();
  ClaimLock(ClaimLock&& other) noexcept;
  ClaimLock& operator=(ClaimLock&& other) noexcept;
  ClaimLock(const ClaimLock&) = delete;
  ClaimLock& operator=(const ClaimLock&) = delete;

  // wait=true blocks until the byte is free; wait=false returns FailedPrecondition at once
  // if another worker holds it.
  static Result<ClaimLock> Acquire(const std::string& lock_file, const std::string& action_id,
                                   bool wait);
  // A claim the store holds (Store::ClaimAction: a PostgreSQL advisory lock, which every
  // instance of a shared store sees); `release` lets it go.
  static ClaimLock Held(std::function<void()> release);

 private:
  int fd_ = -1;
  std::function<void()> release_;
};

}  // namespace airlock
