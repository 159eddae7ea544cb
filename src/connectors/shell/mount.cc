#include "connectors/shell/mount.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace airlock::shell {
namespace {

// mount_setattr(2) (Linux 5.12): glibc 2.36 declares it, older headers do not; the raw
// syscall with our own struct works with both.
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
struct MountAttr {
  uint64_t attr_set;
  uint64_t attr_clr;
  uint64_t propagation;
  uint64_t userns_fd;
};
constexpr uint64_t kMountAttrRdonly = 0x1;
constexpr uint64_t kMountAttrNosuid = 0x2;
constexpr uint64_t kMountAttrNodev = 0x4;
constexpr unsigned kAtRecursive = 0x8000;

// Bound read-only into the new root when they exist. Home directories, /root, /mnt, /media,
// /run and /sys are left out on purpose: they are invisible because they are not there.
constexpr const char* kSystemDirs[] = {"/usr",    "/bin", "/sbin", "/lib", "/lib32", "/lib64",
                                       "/libx32", "/etc", "/opt",  "/var", "/srv"};
// The only devices in the sandbox's /dev (major, minor of the host's).
struct DevNode {
  const char* name;
  unsigned major, minor;
};
constexpr DevNode kDevNodes[] = {{"null", 1, 3},   {"zero", 1, 5},    {"full", 1, 7},
                                 {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
// Where file hides get their empty content from; unlinked before the root is sealed.
constexpr const char* kEmptyFile = "/.airlock-empty";

Status SysError(const std::string& what, int err = errno) {
  return Status::IoError(what + ": " + std::strerror(err));
}

Status Mount(const char* source, const std::string& target, const char* fstype, unsigned long flags,
             const char* data, const char* what) {
  if (::mount(source, target.c_str(), fstype, flags, data) != 0) {
    return SysError(std::string("mount ") + what + " on " + target);
  }
  return Status::Ok();
}

// mkdir -p; components that exist (also inside a read-only bind) are fine.
Status MakeDirs(const std::string& path, mode_t mode) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string prefix = path.substr(0, pos);
    struct stat st;
    if (::stat(prefix.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) continue;
    if (::mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) {
      return SysError("create mountpoint " + prefix);
    }
  }
  return Status::Ok();
}

Status CreateEmptyFile(const std::string& path, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return SysError("create " + path);
  ::close(fd);
  return Status::Ok();
}

// A recursive bind made read-only, nosuid and nodev on every submount too (a plain
// MS_REMOUNT|MS_RDONLY would only change the top mount).
Status BindReadOnly(const std::string& source, const std::string& target) {
  RETURN_IF_ERROR(Mount(source.c_str(), target, nullptr, MS_BIND | MS_REC, nullptr,
                        ("bind " + source).c_str()));
  MountAttr attr{kMountAttrRdonly | kMountAttrNosuid | kMountAttrNodev, 0, 0, 0};
  if (::syscall(SYS_mount_setattr, AT_FDCWD, target.c_str(), kAtRecursive, &attr, sizeof attr) !=
      0) {
    return SysError("make " + target + " read-only");
  }
  return Status::Ok();
}

Status BindSystemDirs(const std::string& root) {
  for (const char* dir : kSystemDirs) {
    struct stat st;
    if (::lstat(dir, &st) != 0) continue;  // /lib32, /libx32 on most systems
    std::string target = root + dir;
    if (S_ISLNK(st.st_mode)) {
      // Merged-/usr systems: /bin -> usr/bin. The same symlink resolves inside the new root.
      char link[4096];
      ssize_t n = ::readlink(dir, link, sizeof link - 1);
      if (n < 0) return SysError(std::string("readlink ") + dir);
      link[n] = '\0';
      if (::symlink(link, target.c_str()) != 0) return SysError("symlink " + target);
    } else if (S_ISDIR(st.st_mode)) {
      if (::mkdir(target.c_str(), 0755) != 0) return SysError("mkdir " + target);
      RETURN_IF_ERROR(BindReadOnly(dir, target));
    }
  }
  return Status::Ok();
}

// Extra directories (an MCP server's code) at their own path. A path inside a bound system
// directory is already readable and is skipped (its mountpoint would be read-only).
Status BindReadOnlyPaths(const std::string& root, const std::string& workspace,
                         const std::vector<std::string>& paths) {
  auto under = [](const std::string& path, const std::string& dir) {
    const size_t n = dir.size();
    return path.compare(0, n, dir) == 0 && (path.size() == n || path[n] == '/');
  };
  for (const std::string& path : paths) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    bool in_system_dir = false;
    for (const char* dir : kSystemDirs) {
      if (under(path, dir)) in_system_dir = true;
    }
    // Inside the workspace it is visible already, through the overlay (a mountpoint made
    // there would be a change in the upper layer).
    if (in_system_dir || under(path, workspace)) continue;
    // Bound over the workspace's parent, it would hide the overlay below it.
    if (under(workspace, path)) {
      return Status::InvalidArgument("read_paths entry " + path +
                                     " holds the workspace; name the directories beside it");
    }
    RETURN_IF_ERROR(MakeDirs(root + path, 0755));
    RETURN_IF_ERROR(BindReadOnly(path, root + path));
  }
  return Status::Ok();
}

// mknod instead of binding the host's nodes: init is real root, and a node costs no mount
// (neither here nor when the namespace is torn down). SealRoot makes /dev read-only, so no
// other node can appear; the command could not create one anyway (no CAP_MKNOD).
Status MountDev(const std::string& root, const std::string& tmp_options) {
  std::string dev = root + "/dev";
  RETURN_IF_ERROR(Mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC,
                        "mode=0755,size=64k,nr_inodes=64", "tmpfs"));
  for (const DevNode& node : kDevNodes) {
    std::string target = dev + "/" + node.name;
    if (::mknod(target.c_str(), S_IFCHR | 0666, makedev(node.major, node.minor)) != 0 ||
        ::chmod(target.c_str(), 0666) != 0) {  // mknod's mode is masked by the umask
      return SysError("mknod " + target);
    }
  }
  const char* const links[][2] = {{"/proc/self/fd", "fd"},
                                  {"/proc/self/fd/0", "stdin"},
                                  {"/proc/self/fd/1", "stdout"},
                                  {"/proc/self/fd/2", "stderr"}};
  for (const auto& link : links) {
    std::string target = dev + "/" + link[1];
    if (::symlink(link[0], target.c_str()) != 0) return SysError("symlink " + target);
  }
  std::string shm = dev + "/shm";
  if (::mkdir(shm.c_str(), 01777) != 0) return SysError("mkdir " + shm);
  return Mount("tmpfs", shm, "tmpfs", MS_NOSUID | MS_NODEV, tmp_options.c_str(), "tmpfs");
}

// overlayfs splits its options on ',' and lowerdir on ':'; a backslash escapes both.
std::string EscapeOverlayPath(const std::string& path) {
  std::string out;
  for (char c : path) {
    if (c == ',' || c == ':' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

// ---- supervisor ------------------------------------------------------------------------

Status EnterPrivateMountNamespace() {
  if (::unshare(CLONE_NEWNS) != 0) return SysError("unshare mount namespace");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return SysError("make / private");
  }
  return Status::Ok();
}

Status MountScratch(const std::string& scratch_dir, int64_t size_bytes, int64_t inodes) {
  std::string options =
      "mode=0700,size=" + std::to_string(size_bytes) + ",nr_inodes=" + std::to_string(inodes);
  RETURN_IF_ERROR(Mount("airlock-scratch", scratch_dir, "tmpfs", MS_NOSUID | MS_NODEV,
                        options.c_str(), "scratch tmpfs"));
  ScratchLayout layout(scratch_dir);
  for (const std::string* dir : {&layout.upper, &layout.work, &layout.root}) {
    if (::mkdir(dir->c_str(), 0755) != 0) return SysError("mkdir " + *dir);
  }
  return Status::Ok();
}

// ---- init, before pivot_root -------------------------------------------------------------

std::string OverlayOptions(const std::string& workspace, const ScratchLayout& scratch) {
  // redirect_dir/metacopy/index off: the upper layer stays self-describing (whole copied-up
  // files, whiteouts and opaque dirs only), which is all the layer capture understands.
  return "lowerdir=" + EscapeOverlayPath(workspace) +
         ",upperdir=" + EscapeOverlayPath(scratch.upper) +
         ",workdir=" + EscapeOverlayPath(scratch.work) + ",redirect_dir=off,metacopy=off,index=off";
}

std::string TmpfsOptions(int64_t size_bytes, int64_t inodes) {
  return "mode=1777,size=" + std::to_string(size_bytes) + ",nr_inodes=" + std::to_string(inodes);
}

Status BuildNewRoot(const NewRootSpec& spec) {
  const std::string& root = spec.new_root;
  // Only directories, symlinks and mountpoints live here; SealRoot makes it read-only.
  RETURN_IF_ERROR(Mount("airlock-root", root, "tmpfs", MS_NOSUID | MS_NODEV,
                        "mode=0755,size=1m,nr_inodes=4096", "root tmpfs"));
  RETURN_IF_ERROR(BindSystemDirs(root));
  for (const char* dir : {"/tmp", "/dev", "/proc"}) {
    std::string path = root + dir;
    if (::mkdir(path.c_str(), 0755) != 0) return SysError("mkdir " + path);
  }
  RETURN_IF_ERROR(Mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
                        spec.tmp_options.c_str(), "tmpfs"));
  // The mountpoint lands on the skeleton or the private /tmp when the workspace lives under
  // /root, /home or /tmp, and already exists when it lives under a bound dir such as /var.
  std::string ws_target = root + spec.workspace;
  // A workspace below a directory of /tmp (/tmp/build-1/repo): that directory gets a small
  // tmpfs of its own, sealed read-only below, so `../x` from the workspace fails with EROFS
  // (and the command sees why) instead of landing silently in the private /tmp.
  std::string tmp_parent;
  if (spec.workspace.rfind("/tmp/", 0) == 0) {
    size_t slash = spec.workspace.find('/', 5);
    if (slash != std::string::npos) tmp_parent = root + spec.workspace.substr(0, slash);
  }
  if (!tmp_parent.empty()) {
    RETURN_IF_ERROR(MakeDirs(tmp_parent, 0755));
    RETURN_IF_ERROR(Mount("airlock-parent", tmp_parent, "tmpfs", MS_NOSUID | MS_NODEV,
                          "mode=0755,size=64k,nr_inodes=1024", "workspace parent tmpfs"));
  }
  RETURN_IF_ERROR(MakeDirs(ws_target, 0755));
  RETURN_IF_ERROR(Mount("overlay", ws_target, "overlay", MS_NOSUID | MS_NODEV,
                        spec.overlay_options.c_str(), "overlay"));
  // After the private /tmp and the workspace's parent (and before that parent is sealed):
  // a path under /tmp (a source tree in /tmp/src, say) lands inside them, visible.
  RETURN_IF_ERROR(BindReadOnlyPaths(root, spec.workspace, spec.read_only_paths));
  if (!tmp_parent.empty()) {
    RETURN_IF_ERROR(Mount(nullptr, tmp_parent, nullptr,
                          MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr,
                          "read-only workspace parent"));
  }
  return MountDev(root, spec.tmp_options);
}

Status PivotInto(const std::string& new_root) {
  int fd = ::open(new_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return SysError("open " + new_root);
  int rc = ::fchdir(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return SysError("chdir " + new_root, err);
  // pivot_root(".", "."): the old root ends up stacked on the new one and is detached right
  // away, so no directory for it is needed in the new root.
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return SysError("pivot_root");
  if (::umount2(".", MNT_DETACH) != 0) return SysError("detach old root");
  if (::chdir("/") != 0) return SysError("chdir /");
  return Status::Ok();
}

// ---- init, after pivot_root --------------------------------------------------------------

Status MountProc() {
  RETURN_IF_ERROR(
      Mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr, "proc"));
  // uid 0 keeps the owner's write bit on these without any capability: core_pattern or
  // sysrq-trigger would reach the host kernel. Landlock denies those writes too; this is
  // the second wall.
  for (const char* path : {"/proc/sys", "/proc/sysrq-trigger"}) {
    if (::access(path, F_OK) != 0) continue;  // kernels without CONFIG_MAGIC_SYSRQ
    RETURN_IF_ERROR(BindReadOnly(path, path));
  }
  return Status::Ok();
}

Status HidePaths(const std::vector<std::string>& hide) {
  bool have_empty_file = false;
  for (const std::string& path : hide) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) continue;  // not in the new root: invisible already
    if (S_ISDIR(st.st_mode)) {
      RETURN_IF_ERROR(Mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                            "mode=0755,size=4k,nr_inodes=4", "empty tmpfs"));
      continue;
    }
    if (!have_empty_file) {
      RETURN_IF_ERROR(CreateEmptyFile(kEmptyFile, 0444));
      have_empty_file = true;
    }
    RETURN_IF_ERROR(BindReadOnly(kEmptyFile, path));
  }
  // The binds keep the inode alive; the name must not show in the root.
  if (have_empty_file && ::unlink(kEmptyFile) != 0) return SysError("unlink empty file");
  return Status::Ok();
}

Status SealRoot() {
  constexpr unsigned long kFlags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV;
  RETURN_IF_ERROR(Mount(nullptr, "/", nullptr, kFlags, nullptr, "read-only remount"));
  // /dev keeps its nodes usable (no MS_NODEV); read-only, no new ones can appear.
  return Mount(nullptr, "/dev", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC,
               nullptr, "read-only remount");
}

}  // namespace airlock::shell
