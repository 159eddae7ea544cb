#include "connectors/shell/landlock.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace airlock::shell {
namespace {

// Debian 12's <linux/landlock.h> stops at ABI 2; the kernel here speaks ABI 7. The values
// are the kernel's UAPI and never change.
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif
constexpr uint32_t kCreateRulesetVersion = 1U << 0;
constexpr int kRulePathBeneath = 1;

constexpr uint64_t kWriteFile = 1ULL << 1;
constexpr uint64_t kRemoveDir = 1ULL << 4;
constexpr uint64_t kRemoveFile = 1ULL << 5;
constexpr uint64_t kMakeChar = 1ULL << 6;
constexpr uint64_t kMakeDir = 1ULL << 7;
constexpr uint64_t kMakeReg = 1ULL << 8;
constexpr uint64_t kMakeSock = 1ULL << 9;
constexpr uint64_t kMakeFifo = 1ULL << 10;
constexpr uint64_t kMakeBlock = 1ULL << 11;
constexpr uint64_t kMakeSym = 1ULL << 12;
constexpr uint64_t kRefer = 1ULL << 13;     // ABI 2
constexpr uint64_t kTruncate = 1ULL << 14;  // ABI 3
constexpr uint64_t kIoctlDev = 1ULL << 15;  // ABI 5

constexpr uint64_t kScopeAbstractUnixSocket = 1ULL << 0;  // ABI 6
constexpr uint64_t kScopeSignal = 1ULL << 1;              // ABI 6

// struct landlock_ruleset_attr as of ABI 6; older kernels get a prefix of it (the size
// argument tells the kernel which fields we pass).
struct RulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};

struct __attribute__((packed)) PathBeneathAttr {
  uint64_t allowed_access;
  int32_t parent_fd;
};

Status SysError(const std::string& what, int err = errno) {
  return Status::IoError(what + ": " + std::strerror(err));
}

uint64_t WriteRights(int abi) {
  uint64_t rights = kWriteFile | kRemoveDir | kRemoveFile | kMakeChar | kMakeDir | kMakeReg |
                    kMakeSock | kMakeFifo | kMakeBlock | kMakeSym;
  if (abi >= 2) rights |= kRefer;
  if (abi >= 3) rights |= kTruncate;
  if (abi >= 5) rights |= kIoctlDev;
  return rights;
}

class RulesetFd {
 public:
  explicit RulesetFd(int fd) : fd_(fd) {}
  ~RulesetFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  RulesetFd(const RulesetFd&) = delete;
  RulesetFd& operator=(const RulesetFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Status AllowBeneath(int ruleset, const std::string& path, uint64_t rights) {
  int fd = ::open(path.c_str(), O_PATH | O_CLOEXEC);
  if (fd < 0) return SysError("landlock: open " + path);
  PathBeneathAttr rule{rights, fd};
  long rc = ::syscall(SYS_landlock_add_rule, ruleset, kRulePathBeneath, &rule, 0);
  int err = errno;
  ::close(fd);
  if (rc != 0) return SysError("landlock: allow writes beneath " + path, err);
  return Status::Ok();
}

}  // namespace

int LandlockAbi() {
  long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, kCreateRulesetVersion);
  return abi < 0 ? 0 : static_cast<int>(abi);
}

Status RestrictWritesTo(const std::vector<std::string>& writable) {
  int abi = LandlockAbi();
  if (abi < 1) {
    return Status::FailedPrecondition(
        "landlock: not available in this kernel (needs Linux 5.13+ with landlock in the lsm= "
        "list); refusing to run the command without it");
  }
  uint64_t rights = WriteRights(abi);
  RulesetAttr attr{rights, 0, 0};
  size_t attr_size = sizeof attr.handled_access_fs;
  if (abi >= 6) {
    attr.scoped = kScopeAbstractUnixSocket | kScopeSignal;
    attr_size = sizeof attr;
  }
  RulesetFd ruleset(static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0)));
  if (ruleset.get() < 0) return SysError("landlock: create ruleset");
  for (const std::string& path : writable) {
    RETURN_IF_ERROR(AllowBeneath(ruleset.get(), path, rights));
  }
  if (::syscall(SYS_landlock_restrict_self, ruleset.get(), 0) != 0) {
    return SysError("landlock: restrict self");
  }
  return Status::Ok();
}

}  // namespace airlock::shell
