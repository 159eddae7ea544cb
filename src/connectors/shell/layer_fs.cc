#include "connectors/shell/layer_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/hash.h"

#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#else
struct open_how {
  uint64_t flags;
  uint64_t mode;
  uint64_t resolve;
};
#define RESOLVE_NO_XDEV 0x01
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_NO_SYMLINKS 0x04
#define RESOLVE_BENEATH 0x08
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

namespace airlock::shell::layer_detail {

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    fd_ = o.release();
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) close(fd_);
}

Status ErrnoStatus(const std::string& what, int err) {
  return Status::IoError(what + ": " + std::strerror(err));
}

std::string TmpNameFor(const std::string& leaf) {
  return std::string(kTmpPrefix) + Sha256Hex(leaf).substr(0, 24);
}

// RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF. The same rules
// nlohmann::json applies when it dumps strictly.
bool IsValidUtf8(std::string_view s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (i + len > n) return false;
    auto c1 = static_cast<unsigned char>(s[i + 1]);
    if (c1 < lo || c1 > hi) return false;
    for (size_t k = 2; k < len; ++k) {
      auto ck = static_cast<unsigned char>(s[i + k]);
      if (ck < 0x80 || ck > 0xBF) return false;
    }
    i += len;
  }
  return true;
}

bool IsHexSha256(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string ParentPath(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

std::string LeafName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

size_t PathDepth(const std::string& path) {
  size_t n = 0;
  for (char c : path) n += (c == '/');
  return n;
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

PathState::Type TypeFromMode(mode_t mode) {
  if (S_ISREG(mode)) return PathState::Type::kFile;
  if (S_ISDIR(mode)) return PathState::Type::kDir;
  if (S_ISLNK(mode)) return PathState::Type::kSymlink;
  return PathState::Type::kOther;
}

std::string DescribeState(const PathState& s) {
  char mode[16];
  std::snprintf(mode, sizeof mode, "%04o", s.mode);
  switch (s.type) {
    case PathState::Type::kAbsent:
      return "absent";
    case PathState::Type::kFile: {
      std::string out = std::string("file ") + mode + " " + std::to_string(s.size) + " bytes";
      if (!s.sha256.empty()) out += " sha256 " + s.sha256.substr(0, 12);
      return out;
    }
    case PathState::Type::kDir:
      return std::string("dir ") + mode;
    case PathState::Type::kSymlink:
      return "symlink -> " + s.link_target;
    case PathState::Type::kOther:
      return "other (device, fifo or socket)";
  }
  return "?";
}

UniqueFd OpenDirBeneath(int workspace_fd, const std::string& dir_path, int flags, int* err) {
  struct open_how how;
  std::memset(&how, 0, sizeof how);
  how.flags = static_cast<uint64_t>(flags | O_DIRECTORY | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  const char* p = dir_path.empty() ? "." : dir_path.c_str();
  long fd;
  int tries = 0;
  do {
    // EAGAIN: a concurrent rename raced the resolution; retried a bounded number of times.
    fd = syscall(SYS_openat2, workspace_fd, p, &how, sizeof how);
  } while (fd < 0 && (errno == EAGAIN || errno == EINTR) && ++tries < 64);
  if (fd < 0) {
    *err = errno;
    return UniqueFd();
  }
  *err = 0;
  return UniqueFd(static_cast<int>(fd));
}

Status ResolveError(int workspace_fd, const std::string& path, int err) {
  if (err == ELOOP || err == EXDEV) {
    // Name the offending component. This walk is diagnostic only: the refusal above was
    // already made by the kernel, so a race here can only blur the message.
    std::string prefix;
    size_t start = 0;
    while (start <= path.size()) {
      size_t slash = path.find('/', start);
      std::string comp =
          path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      prefix = JoinPath(prefix, comp);
      struct stat st;
      if (fstatat(workspace_fd, prefix.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) break;
      if (S_ISLNK(st.st_mode)) {
        char buf[kMaxLinkTargetBytes + 1];
        ssize_t n = readlinkat(workspace_fd, prefix.c_str(), buf, sizeof buf - 1);
        std::string target = n >= 0 ? std::string(buf, static_cast<size_t>(n)) : "?";
        return Status::PermissionDenied("refusing to follow symlink '" + prefix + "' (-> " +
                                        target + ") on the way to '" + path + "'");
      }
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    if (err == EXDEV) {
      return Status::PermissionDenied("refusing to cross a mount point on the way to '" + path +
                                      "'");
    }
    return Status::PermissionDenied("refusing to follow a symlink on the way to '" + path + "'");
  }
  if (err == ENOSYS) {
    return Status::Internal("openat2 is not available (Linux >= 5.6 needed) to resolve '" + path +
                            "' safely");
  }
  return ErrnoStatus("resolve parent of '" + path + "'", err);
}

PathState StateFromStat(const struct stat& st, const std::string& path) {
  PathState s;
  s.path = path;
  s.type = TypeFromMode(st.st_mode);
  s.mode = static_cast<uint32_t>(st.st_mode & 07777);
  s.size = (s.type == PathState::Type::kFile || s.type == PathState::Type::kSymlink)
               ? static_cast<int64_t>(st.st_size)
               : 0;
  s.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  s.ino = static_cast<uint64_t>(st.st_ino);
  return s;
}

Result<PathState> StatNoFollow(int dirfd, const std::string& name, const std::string& path) {
  struct stat st;
  if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) {
      PathState s;
      s.path = path;
      return s;
    }
    return ErrnoStatus("lstat '" + path + "'", errno);
  }
  PathState s = StateFromStat(st, path);
  if (s.type == PathState::Type::kSymlink) {
    char buf[kMaxLinkTargetBytes + 2];
    ssize_t n = readlinkat(dirfd, name.c_str(), buf, sizeof buf);
    if (n < 0) return ErrnoStatus("readlink '" + path + "'", errno);
    if (static_cast<size_t>(n) > kMaxLinkTargetBytes) {
      return Status::InvalidArgument("symlink '" + path + "': target longer than 4095 bytes");
    }
    s.link_target.assign(buf, static_cast<size_t>(n));
    s.size = n;
  }
  return s;
}

Result<std::string> HashFd(int fd, const std::string& what, std::string* head, size_t head_bytes) {
  Sha256Stream sha;
  std::vector<char> buf(kIoChunk);
  off_t off = 0;
  if (head != nullptr) head->clear();
  for (;;) {
    ssize_t n = pread(fd, buf.data(), buf.size(), off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("read '" + what + "'", errno);
    }
    if (n == 0) break;
    if (head != nullptr && head->size() < head_bytes) {
      head->append(buf.data(), std::min(static_cast<size_t>(n), head_bytes - head->size()));
    }
    sha.Update(buf.data(), static_cast<size_t>(n));
    off += n;
  }
  return sha.Final();
}

}  // namespace airlock::shell::layer_detail
