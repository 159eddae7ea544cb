#include "connectors/shell/seccomp_rules.h"

#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace airlock::shell {
namespace {

// Denied outright. Most would fail anyway without capabilities; the filter makes that
// independent of the capability code and closes what needs none (keyctl, bpf on kernels
// with unprivileged BPF, user namespaces via unshare/clone, userfaultfd, io_uring, which
// bypasses this filter for the operations it submits).
constexpr const char* kDenied[] = {
    "mount",
    "umount2",
    "pivot_root",
    "ptrace",
    "process_vm_writev",
    "bpf",
    "keyctl",
    "add_key",
    "request_key",
    "perf_event_open",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "setns",
    "unshare",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "mount_setattr",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "chroot",
    "acct",
    "quotactl",
    "lookup_dcookie",
};

// Namespace flags of clone(2): a new user namespace would give the command capabilities
// inside it, the others only help an escape.
constexpr unsigned long kNamespaceFlags[] = {CLONE_NEWUSER,  CLONE_NEWNS,  CLONE_NEWPID,
                                             CLONE_NEWNET,   CLONE_NEWIPC, CLONE_NEWUTS,
                                             CLONE_NEWCGROUP};

struct CtxDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using Ctx = std::unique_ptr<void, CtxDeleter>;

std::string LibError(const std::string& what, int rc) {
  return "seccomp: " + what + ": " + std::strerror(-rc);
}

// Empty, or what failed.
std::string AddRule(scmp_filter_ctx ctx, uint32_t action, const char* name,
                    const std::vector<scmp_arg_cmp>& args = {}) {
  int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR) return {};  // unknown to this libseccomp/arch
  int rc = seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(args.size()),
                                  args.empty() ? nullptr : args.data());
  if (rc < 0) return LibError(std::string("rule for ") + name, rc);
  return {};
}

std::string AddRules(scmp_filter_ctx ctx) {
  const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
  std::string error;
  for (const char* name : kDenied) {
    if (!(error = AddRule(ctx, eperm, name)).empty()) return error;
  }
  // TIOCSTI pushes bytes into a terminal's input queue, TIOCLINUX reads/writes a console:
  // both reach outside the sandbox if a terminal fd ever leaks in. The request is an int,
  // so only the low 32 bits count (the upper ones may be garbage).
  for (unsigned long request :
       {static_cast<unsigned long>(TIOCSTI), static_cast<unsigned long>(TIOCLINUX)}) {
    error = AddRule(ctx, eperm, "ioctl", {SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffULL, request)});
    if (!error.empty()) return error;
  }
  for (unsigned long flag : kNamespaceFlags) {
    error = AddRule(ctx, eperm, "clone", {SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag)});
    if (!error.empty()) return error;
  }
  // clone3 passes its flags in memory, which BPF cannot read: ENOSYS makes glibc fall back
  // to clone, whose flags are checked above.
  return AddRule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3");
  // personality(2) is left alone: libseccomp 2.5 cannot express "neither 0 nor the
  // 0xffffffff query" in one rule, and ADDR_NO_RANDOMIZE only weakens the command itself.
}

// libseccomp 2.5 exports BPF only to an fd; a memfd keeps it off the file system.
std::string ExportProgram(scmp_filter_ctx ctx, std::vector<sock_filter>* program) {
  int fd = ::memfd_create("airlock-seccomp", MFD_CLOEXEC);
  if (fd < 0) return std::string("seccomp: memfd: ") + std::strerror(errno);
  std::string bytes;
  int rc = seccomp_export_bpf(ctx, fd);
  if (rc == 0 && ::lseek(fd, 0, SEEK_SET) == 0) {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) bytes.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (rc < 0) return LibError("export", rc);
  if (bytes.empty() || bytes.size() % sizeof(sock_filter) != 0) {
    return "seccomp: exported program has an odd size";
  }
  program->resize(bytes.size() / sizeof(sock_filter));
  std::memcpy(program->data(), bytes.data(), bytes.size());
  return {};
}

}  // namespace

bool CompileSeccompRules(std::vector<sock_filter>* program, std::string* error) {
  Ctx ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) {
    *error = "seccomp: seccomp_init failed";
    return false;
  }
  *error = AddRules(ctx.get());
  if (error->empty()) *error = ExportProgram(ctx.get(), program);
  return error->empty();
}

}  // namespace airlock::shell
