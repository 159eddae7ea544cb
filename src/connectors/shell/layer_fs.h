// Internals shared by the layer code (capture, blobs, apply, commit): owned fds, errno
// statuses, streaming SHA-256, path rules, and the one way this code resolves a path inside
// a workspace (openat2 beneath the workspace, never through a symlink). Not a public header:
// only connectors/shell/*.cc include it.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/shell/layer.h"
#include "core/hash.h"
#include "core/status.h"
#include "core/types.h"


namespace airlock::shell::layer_detail {

// An owned, close-on-exec file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

// IoError "what: strerror(err)".
Status ErrnoStatus(const std::string& what, int err);

using airlock::Sha256Stream;  // core/hash.h

constexpr size_t kMaxPathBytes = 4096;
constexpr size_t kMaxLinkTargetBytes = 4095;
constexpr size_t kIoChunk = 64 * 1024;
// Temporary names ApplyState creates next to the entry it replaces. Deterministic per name
// (prefix + hash of the name), so a re-apply after a crash reuses and removes the leftover
// instead of littering the workspace or leaving a directory that cannot be removed.
constexpr std::string_view kTmpPrefix = ".airlock-tmp-";
std::string TmpNameFor(const std::string& leaf);

bool IsValidUtf8(std::string_view s);
bool IsHexSha256(std::string_view s);
std::string ParentPath(const std::string& path);  // "a/b/c" -> "a/b", "a" -> ""
std::string LeafName(const std::string& path);    // "a/b/c" -> "c"
size_t PathDepth(const std::string& path);        // number of '/' separators
std::string JoinPath(const std::string& dir, const std::string& name);  // "" + n = n

PathState::Type TypeFromMode(mode_t mode);
// "file 0644 12 bytes", "dir 0755", "symlink -> x", "absent": for "was X, now Y" messages.
std::string DescribeState(const PathState& s);

// Field and shape rules for one state; `target` states are ones ApplyState may create
// (no kOther; files carry a content hash).
Status ValidateState(const PathState& s, bool target);
// Every path valid and unique, and no path below one whose state is not a directory
// (a hostile list such as {d -> /etc, d/passwd}).
Status ValidateStates(const std::vector<PathState>& states, bool target);

Json PathStateToJson(const PathState& s);
Result<PathState> PathStateFromJson(const Json& j);
Json PathStatesToJson(const std::vector<PathState>& states);
Result<std::vector<PathState>> PathStatesFromJson(const Json& j, const char* what);

// Opens the directory `dir_path` ("" = the workspace itself) below workspace_fd with openat2
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV. `flags` is
// O_PATH or O_RDONLY (plus O_DIRECTORY|O_CLOEXEC, always added). On failure returns the
// errno in *err (ENOENT/ENOTDIR: a component is missing or not a directory; ELOOP/EXDEV:
// a symlink or a mount point on the way) and an invalid fd.
UniqueFd OpenDirBeneath(int workspace_fd, const std::string& dir_path, int flags, int* err);
// The failure of OpenDirBeneath as a Status naming the symlink or mount point that stopped
// it ("refusing to follow symlink 'd' (-> /etc) on the way to 'd/passwd'").
Status ResolveError(int workspace_fd, const std::string& path, int err);

// lstat of dirfd/name as a PathState (no hash): type, mode, size, mtime_ns, ino, and the
// target of a symlink. ENOENT gives kAbsent.
Result<PathState> StatNoFollow(int dirfd, const std::string& name, const std::string& path);
PathState StateFromStat(const struct stat& st, const std::string& path);

// Hex SHA-256 of the whole file (from offset 0, with pread). *head receives up to
// head_bytes of its beginning when not null.
Result<std::string> HashFd(int fd, const std::string& what, std::string* head = nullptr,
                           size_t head_bytes = 0);

// ApplyState with an injectable crash point hit after half of the entries.
Status ApplyStateWithCrashPoint(int workspace_fd, const std::vector<PathState>& to,
                                const BlobStore& blobs, const char* crash_point_mid);

}  // namespace airlock::shell::layer_detail
