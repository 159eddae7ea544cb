#include "connectors/shell/caps.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace airlock::shell {
namespace {

Status SysError(const std::string& what, int err = errno) {
  return Status::IoError(what + ": " + std::strerror(err));
}

// Root loses its special treatment on execve, and nothing can turn it back on.
constexpr unsigned long kLockedSecurebits =
    SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED |
    SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;

Result<int> ReadLastCapability() {
  int fd = ::open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return SysError("open /proc/sys/kernel/cap_last_cap");
  char buf[32] = {};
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  int err = errno;
  ::close(fd);
  if (n <= 0) return SysError("read /proc/sys/kernel/cap_last_cap", n < 0 ? err : EIO);
  int last = std::atoi(buf);
  if (last < CAP_SETPCAP || last > 63) {
    return Status::Internal("implausible /proc/sys/kernel/cap_last_cap: " + std::string(buf));
  }
  return last;
}

}  // namespace

Result<int> LastCapability() {
  static const Result<int> last = ReadLastCapability();
  return last;
}

Status DropAllCapabilities(int last_cap) {
  // Securebits and the bounding set need CAP_SETPCAP, which the capset below removes.
  if (::prctl(PR_SET_SECUREBITS, kLockedSecurebits, 0, 0, 0) != 0) {
    return SysError("lock securebits");
  }
  for (int cap = 0; cap <= last_cap; ++cap) {
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      return SysError("drop capability " + std::to_string(cap) + " from the bounding set");
    }
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) {
    return SysError("clear ambient capabilities");
  }
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capset, &header, data) != 0) return SysError("capset");
  return Status::Ok();
}

Status SetNoNewPrivs() {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return SysError("set no_new_privs");
  return Status::Ok();
}

Status DetachFromTerminal() {
  if (::setsid() < 0) return SysError("setsid");
  return Status::Ok();
}

}  // namespace airlock::shell
