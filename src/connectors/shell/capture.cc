// CaptureLayer: what a command changed, read from its overlayfs upper layer.
//
// The walk follows the upper layer only; the lower (the workspace) is looked up name by name
// with fstatat, so the cost is proportional to what the command touched, not to the size of
// the workspace. A lower subtree is walked only where the command deleted or replaced a
// directory (every path below it becomes a deletion) and where an opaque directory hides it.
//
// Nothing here follows a symlink: every open is relative to a directory fd, with O_NOFOLLOW
// and AT_SYMLINK_NOFOLLOW.
//
// Refused (listed in CapturedLayer::refused and left out of the layer, so a commit never
// does them):
//   - device nodes other than whiteouts, fifos, sockets;
//   - names that are not valid UTF-8 or paths over 4096 bytes, and symlinks whose target is
//     not valid UTF-8 (the layer is JSON; an escaped form would be a second spelling of a
//     path, so such names are refused instead of escaped);
//   - deleting or replacing a lower directory whose subtree holds any of the above, and
//     deleting or replacing a lower device, fifo or socket: a rollback could not restore it.
// Setuid/setgid bits of a file the command added or changed are dropped (the after-state
// keeps mode & ~06000) and the drop is listed in `refused`: airlock may commit as root, and
// must not mint set-id programs with content an agent wrote.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "connectors/shell/diff.h"
#include "connectors/shell/layer.h"
#include "connectors/shell/layer_fs.h"

namespace airlock::shell {
namespace {

using layer_detail::ErrnoStatus;
using layer_detail::HashFd;
using layer_detail::IsValidUtf8;
using layer_detail::JoinPath;
using layer_detail::kMaxPathBytes;
using layer_detail::OpenDirBeneath;
using layer_detail::StateFromStat;
using layer_detail::StatNoFollow;
using layer_detail::UniqueFd;
using Type = PathState::Type;

constexpr size_t kBinaryProbeBytes = 8192;

// One touched path.
struct Touched {
  PathState before;
  PathState after;
  bool binary = false;  // a NUL among the first 8 KiB of either side
};

Result<std::vector<std::string>> ListDir(int dirfd, const std::string& what) {
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open directory '" + what + "'", errno);
  DIR* dir = fdopendir(fd);
  if (dir == nullptr) {
    int err = errno;
    close(fd);
    return ErrnoStatus("read directory '" + what + "'", err);
  }
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* e = readdir(dir)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      names.emplace_back(e->d_name);
    }
    errno = 0;
  }
  int err = errno;
  closedir(dir);
  if (err != 0) return ErrnoStatus("read directory '" + what + "'", err);
  std::sort(names.begin(), names.end());  // a deterministic walk
  return names;
}

// An overlay xattr in either namespace: trusted.* (overlay mounted by root) or user.*
// (mounted in a user namespace, "userxattr"). Its value goes to *value; false if absent.
bool OverlayXattr(int fd, const char* name, std::string* value = nullptr) {
  for (const char* ns : {"trusted.overlay.", "user.overlay."}) {
    char buf[256];
    ssize_t n = fgetxattr(fd, (std::string(ns) + name).c_str(), buf, sizeof buf);
    if (n >= 0 || errno == ERANGE) {  // ERANGE: present, with a long value
      if (value != nullptr) value->assign(buf, n >= 0 ? static_cast<size_t>(n) : 0);
      return true;
    }
  }
  return false;
}

Result<UniqueFd> OpenNoFollow(int dirfd, const std::string& name, int flags,
                              const std::string& path) {
  UniqueFd fd(openat(dirfd, name.c_str(), flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) return ErrnoStatus("open '" + path + "'", errno);
  return fd;
}

Result<std::string> ReadHead(int fd, const std::string& what) {
  std::string head(kBinaryProbeBytes, '\0');
  ssize_t n;
  do {
    n = pread(fd, head.data(), head.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoStatus("read '" + what + "'", errno);
  head.resize(static_cast<size_t>(n));
  return head;
}

class Capturer {
 public:
  Capturer(int workspace_fd, BlobStore& blobs, const CaptureOptions& options)
      : ws_fd_(workspace_fd), blobs_(blobs), options_(options) {}

  Status WalkUpper(int upper_fd, int lower_fd, const std::string& dir_path, bool opaque);
  Result<CapturedLayer> Finish();

 private:
  Status VisitEntry(int upper_fd, int lower_fd, const std::string& name, const std::string& path,
                    const struct stat& ust, const PathState& lower, bool opaque);
  Status VisitDir(int upper_fd, int lower_fd, const std::string& name, const std::string& path,
                  const struct stat& ust, const PathState& lower, bool opaque);
  Status VisitFile(int upper_fd, int lower_fd, const std::string& name, const std::string& path,
                   const struct stat& ust, const PathState& lower);
  Status VisitSymlink(int upper_fd, int lower_fd, const std::string& name, const std::string& path,
                      const PathState& lower);
  // The lower entry `name` in lower_fd gets replaced or deleted: records its state and (for a
  // directory) every path below it as deleted. When that cannot be committed faithfully it
  // refuses instead, records nothing and sets *recorded (if given) to false.
  Status ReplaceLower(int lower_fd, const std::string& name, const std::string& path,
                      const PathState& lower, const PathState& after, bool after_binary,
                      bool* recorded = nullptr);
  Status CollectSubtree(int lower_fd, const std::string& name, const std::string& path,
                        std::vector<Touched>* out, std::string* problem);
  Result<PathState> LowerState(int lower_fd, const std::string& name, const PathState& lower,
                               bool* binary);
  void Refuse(const std::string& path, const std::string& why) {
    // The list goes to JSON: a refused name is shown (shortened) with U+FFFD for bad bytes.
    std::string shown = path.size() > 256 ? path.substr(0, 256) + "..." : path;
    refused_.push_back(SanitizeUtf8(shown) + ": " + why);
  }
  Status FillDiffs(std::vector<FileChange>* changes, const std::vector<Touched>& touched);
  Result<std::string> ReadLowerForDiff(const PathState& before);

  int ws_fd_;
  BlobStore& blobs_;
  const CaptureOptions& options_;
  std::vector<Touched> touched_;
  std::vector<std::string> refused_;
};

Status Capturer::WalkUpper(int upper_fd, int lower_fd, const std::string& dir_path, bool opaque) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(upper_fd, "upper/" + dir_path));
  for (const std::string& name : names) {
    std::string path = JoinPath(dir_path, name);
    if (!IsValidUtf8(name)) {
      Refuse(path, "non-UTF-8 file name");
      continue;
    }
    if (path.size() > kMaxPathBytes) {
      Refuse(path, "path longer than 4096 bytes");
      continue;
    }
    struct stat ust;
    if (fstatat(upper_fd, name.c_str(), &ust, AT_SYMLINK_NOFOLLOW) != 0) {
      return ErrnoStatus("lstat upper '" + path + "'", errno);
    }
    PathState lower;
    lower.path = path;
    if (lower_fd >= 0) {
      ASSIGN_OR_RETURN(lower, StatNoFollow(lower_fd, name, path));
    }
    RETURN_IF_ERROR(VisitEntry(upper_fd, lower_fd, name, path, ust, lower, opaque));
  }
  if (opaque && lower_fd >= 0) {
    // An opaque directory hides everything of the lower one: what the upper lacks is gone.
    std::set<std::string> in_upper(names.begin(), names.end());
    ASSIGN_OR_RETURN(std::vector<std::string> lower_names, ListDir(lower_fd, dir_path));
    for (const std::string& name : lower_names) {
      if (in_upper.count(name)) continue;
      std::string path = JoinPath(dir_path, name);
      if (!IsValidUtf8(name) || path.size() > kMaxPathBytes) {
        Refuse(path, "cannot delete a path whose name is not UTF-8 or too long");
        continue;
      }
      ASSIGN_OR_RETURN(PathState lower, StatNoFollow(lower_fd, name, path));
      PathState absent;
      absent.path = path;
      RETURN_IF_ERROR(ReplaceLower(lower_fd, name, path, lower, absent, false));
    }
  }
  return Status::Ok();
}

Status Capturer::VisitEntry(int upper_fd, int lower_fd, const std::string& name,
                            const std::string& path, const struct stat& ust, const PathState& lower,
                            bool opaque) {
  if (S_ISCHR(ust.st_mode) && ust.st_rdev == makedev(0, 0)) {  // whiteout
    if (lower.type == Type::kAbsent) return Status::Ok();
    PathState absent;
    absent.path = path;
    RETURN_IF_ERROR(ReplaceLower(lower_fd, name, path, lower, absent, false));
    return Status::Ok();
  }
  if (S_ISDIR(ust.st_mode)) return VisitDir(upper_fd, lower_fd, name, path, ust, lower, opaque);
  if (S_ISREG(ust.st_mode)) return VisitFile(upper_fd, lower_fd, name, path, ust, lower);
  if (S_ISLNK(ust.st_mode)) return VisitSymlink(upper_fd, lower_fd, name, path, lower);
  const char* what = S_ISFIFO(ust.st_mode)   ? "fifo"
                     : S_ISSOCK(ust.st_mode) ? "socket"
                                             : "device node";
  Refuse(path, std::string(what) + " is never committed");
  return Status::Ok();
}

Status Capturer::VisitDir(int upper_fd, int lower_fd, const std::string& name,
                          const std::string& path, const struct stat& ust, const PathState& lower,
                          bool opaque) {
  ASSIGN_OR_RETURN(UniqueFd up, OpenNoFollow(upper_fd, name, O_RDONLY | O_DIRECTORY, path));
  if (OverlayXattr(up.get(), "redirect")) {
    // A renamed lower directory (redirect_dir=on): its content lives at another lower path.
    return Status::FailedPrecondition("upper directory '" + path +
                                      "' is an overlayfs redirect; mount with redirect_dir=off");
  }
  std::string opaque_value;
  bool child_opaque =
      opaque || (OverlayXattr(up.get(), "opaque", &opaque_value) && opaque_value == "y");
  PathState after;
  after.path = path;
  after.type = Type::kDir;
  after.mode = static_cast<uint32_t>(ust.st_mode & 07777);
  if (lower.type == Type::kDir) {
    if (lower.mode != after.mode) touched_.push_back({lower, after, false});
    ASSIGN_OR_RETURN(UniqueFd low, OpenNoFollow(lower_fd, name, O_RDONLY | O_DIRECTORY, path));
    return WalkUpper(up.get(), low.get(), path, child_opaque);
  }
  bool recorded = false;
  RETURN_IF_ERROR(ReplaceLower(lower_fd, name, path, lower, after, false, &recorded));
  if (!recorded) return Status::Ok();
  // Nothing of the lower shows through a directory that replaced a non-directory.
  return WalkUpper(up.get(), -1, path, true);
}

Status Capturer::VisitFile(int upper_fd, int lower_fd, const std::string& name,
                           const std::string& path, const struct stat& ust,
                           const PathState& lower) {
  ASSIGN_OR_RETURN(UniqueFd up, OpenNoFollow(upper_fd, name, O_RDONLY, path));
  if (OverlayXattr(up.get(), "metacopy")) {
    // A metadata-only copy-up: the data is still in a lower layer, possibly elsewhere.
    return Status::FailedPrecondition("upper file '" + path +
                                      "' is an overlayfs metacopy; mount with metacopy=off");
  }
  uint32_t mode = static_cast<uint32_t>(ust.st_mode & 07777);
  if (lower.type == Type::kFile && lower.mode == mode && lower.size == ust.st_size) {
    ASSIGN_OR_RETURN(UniqueFd low, OpenNoFollow(lower_fd, name, O_RDONLY, path));
    ASSIGN_OR_RETURN(std::string lower_hash, HashFd(low.get(), path));
    ASSIGN_OR_RETURN(std::string upper_hash, HashFd(up.get(), path));
    if (lower_hash == upper_hash) return Status::Ok();  // a copy-up that changed nothing
  }
  if (mode & 06000) Refuse(path, "setuid/setgid bits dropped; committed without them");
  ASSIGN_OR_RETURN(std::string head, ReadHead(up.get(), path));
  if (lseek(up.get(), 0, SEEK_SET) != 0) return ErrnoStatus("seek '" + path + "'", errno);
  PathState after;
  after.path = path;
  after.type = Type::kFile;
  after.mode = mode & ~06000u;
  after.size = ust.st_size;
  ASSIGN_OR_RETURN(after.sha256, blobs_.PutFile(up.get()));
  struct stat again;
  if (fstat(up.get(), &again) != 0) return ErrnoStatus("stat upper '" + path + "'", errno);
  if (again.st_size != ust.st_size) {
    return Status::Conflict("upper file '" + path + "' changed while it was captured");
  }
  RETURN_IF_ERROR(ReplaceLower(lower_fd, name, path, lower, after, LooksBinary(head)));
  return Status::Ok();
}

Status Capturer::VisitSymlink(int upper_fd, int lower_fd, const std::string& name,
                              const std::string& path, const PathState& lower) {
  ASSIGN_OR_RETURN(PathState after, StatNoFollow(upper_fd, name, path));
  if (after.type != Type::kSymlink) {
    return Status::Conflict("upper entry '" + path + "' changed while it was captured");
  }
  if (!IsValidUtf8(after.link_target)) {
    Refuse(path, "symlink target is not valid UTF-8");
    return Status::Ok();
  }
  if (lower.type == Type::kSymlink && lower.link_target == after.link_target) return Status::Ok();
  after.mtime_ns = 0;
  after.ino = 0;
  RETURN_IF_ERROR(ReplaceLower(lower_fd, name, path, lower, after, false));
  return Status::Ok();
}

Status Capturer::ReplaceLower(int lower_fd, const std::string& name, const std::string& path,
                              const PathState& lower, const PathState& after, bool after_binary,
                              bool* recorded) {
  if (recorded != nullptr) *recorded = false;
  if (lower.type == Type::kOther) {
    Refuse(path, "replaces or deletes a device, fifo or socket of the workspace");
    return Status::Ok();
  }
  std::vector<Touched> below;
  if (lower.type == Type::kDir) {
    std::string problem;
    RETURN_IF_ERROR(CollectSubtree(lower_fd, name, path, &below, &problem));
    if (!problem.empty()) {
      Refuse(path, "cannot " + std::string(after.type == Type::kAbsent ? "delete" : "replace") +
                       " this directory: " + problem);
      return Status::Ok();
    }
  }
  bool binary = after_binary;
  PathState before = lower;
  if (lower.type == Type::kFile) {
    bool lower_binary = false;
    ASSIGN_OR_RETURN(before, LowerState(lower_fd, name, lower, &lower_binary));
    binary = binary || lower_binary;
  }
  touched_.push_back({before, after, binary});
  for (Touched& t : below) touched_.push_back(std::move(t));
  if (recorded != nullptr) *recorded = true;
  return Status::Ok();
}

Status Capturer::CollectSubtree(int lower_fd, const std::string& name, const std::string& path,
                                std::vector<Touched>* out, std::string* problem) {
  ASSIGN_OR_RETURN(UniqueFd dir, OpenNoFollow(lower_fd, name, O_RDONLY | O_DIRECTORY, path));
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(dir.get(), path));
  for (const std::string& child : names) {
    std::string child_path = JoinPath(path, child);
    if (!IsValidUtf8(child) || child_path.size() > kMaxPathBytes) {
      *problem = "it holds a name that is not UTF-8 or a path over 4096 bytes";
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(PathState st, StatNoFollow(dir.get(), child, child_path));
    PathState absent;
    absent.path = child_path;
    if (st.type == Type::kOther) {
      *problem = "it holds a device, fifo or socket ('" + child_path + "')";
      return Status::Ok();
    }
    if (st.type == Type::kFile) {
      bool binary = false;
      ASSIGN_OR_RETURN(st, LowerState(dir.get(), child, st, &binary));
      out->push_back({st, absent, binary});
    } else {
      out->push_back({st, absent, false});
    }
    if (st.type == Type::kDir) {
      RETURN_IF_ERROR(CollectSubtree(dir.get(), child, child_path, out, problem));
      if (!problem->empty()) return Status::Ok();
    }
  }
  return Status::Ok();
}

Result<PathState> Capturer::LowerState(int lower_fd, const std::string& name,
                                       const PathState& lower, bool* binary) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenNoFollow(lower_fd, name, O_RDONLY, lower.path));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoStatus("stat '" + lower.path + "'", errno);
  if (!S_ISREG(st.st_mode) || st.st_ino != lower.ino) {
    return Status::Conflict("workspace file '" + lower.path + "' changed while it was captured");
  }
  PathState out = StateFromStat(st, lower.path);
  std::string head;
  if (out.size <= options_.hash_lower_max_bytes) {
    ASSIGN_OR_RETURN(out.sha256, HashFd(fd.get(), lower.path, &head, kBinaryProbeBytes));
  } else {
    ASSIGN_OR_RETURN(head, ReadHead(fd.get(), lower.path));
  }
  *binary = LooksBinary(head);
  return out;
}

FileChange ChangeOf(const Touched& t) {
  const PathState& b = t.before;
  const PathState& a = t.after;
  FileChange c;
  c.path = a.path;
  c.op = b.type == Type::kAbsent ? "added" : a.type == Type::kAbsent ? "deleted" : "changed";
  const PathState& shown = a.type == Type::kAbsent ? b : a;
  c.type = PathTypeName(shown.type);
  if (c.op == "changed" && b.type != a.type) c.type_before = PathTypeName(b.type);
  c.size_before = b.type == Type::kFile ? b.size : -1;
  c.size_after = a.type == Type::kFile ? a.size : -1;
  c.mode_before = b.type == Type::kAbsent ? -1 : static_cast<int>(b.mode);
  c.mode_after = a.type == Type::kAbsent ? -1 : static_cast<int>(a.mode);
  c.link_target = shown.link_target;
  c.binary = t.binary;
  return c;
}

Result<std::string> Capturer::ReadLowerForDiff(const PathState& before) {
  if (before.type != Type::kFile) return std::string();
  int err = 0;
  UniqueFd dir = OpenDirBeneath(ws_fd_, layer_detail::ParentPath(before.path), O_PATH, &err);
  if (!dir.valid()) return layer_detail::ResolveError(ws_fd_, before.path, err);
  ASSIGN_OR_RETURN(UniqueFd fd, OpenNoFollow(dir.get(), layer_detail::LeafName(before.path),
                                             O_RDONLY, before.path));
  struct stat st;
  if (fstat(fd.get(), &st) != 0 || st.st_ino != before.ino || st.st_size != before.size) {
    return Status::Conflict("'" + before.path + "' changed while it was captured");
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = pread(fd.get(), out.data() + got, out.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::Conflict("'" + before.path + "' shrank while it was read");
    got += static_cast<size_t>(n);
  }
  return out;
}

// Diffs in path order until the budget is spent: the first diff that does not fit stops
// them, so which files show a diff depends only on the change set.
Status Capturer::FillDiffs(std::vector<FileChange>* changes, const std::vector<Touched>& touched) {
  int64_t budget = options_.diff_max_total_bytes;
  for (size_t i = 0; i < touched.size(); ++i) {
    const PathState& b = touched[i].before;
    const PathState& a = touched[i].after;
    FileChange& c = (*changes)[i];
    bool textual = (b.type == Type::kFile || b.type == Type::kAbsent) &&
                   (a.type == Type::kFile || a.type == Type::kAbsent) && !c.binary;
    if (!textual || b.size > options_.diff_max_file_bytes ||
        a.size > options_.diff_max_file_bytes) {
      continue;
    }
    auto before = ReadLowerForDiff(b);
    if (!before.ok()) continue;  // the workspace moved under us; CheckState will tell
    std::string after;
    if (a.type == Type::kFile) {
      ASSIGN_OR_RETURN(after, blobs_.ReadAll(a.sha256, options_.diff_max_file_bytes));
    }
    if (before->find('\0') != std::string::npos || after.find('\0') != std::string::npos) {
      c.binary = true;
      continue;
    }
    std::string diff = UnifiedDiff(*before, after, c.path);
    if (static_cast<int64_t>(diff.size()) > budget) break;
    budget -= static_cast<int64_t>(diff.size());
    c.diff = std::move(diff);
  }
  return Status::Ok();
}

Result<CapturedLayer> Capturer::Finish() {
  std::sort(touched_.begin(), touched_.end(),
            [](const Touched& x, const Touched& y) { return x.after.path < y.after.path; });
  CapturedLayer out;
  out.changes.reserve(touched_.size());
  for (const Touched& t : touched_) {
    out.layer.before.push_back(t.before);
    out.layer.after.push_back(t.after);
    out.changes.push_back(ChangeOf(t));
    const std::string& op = out.changes.back().op;
    (op == "added" ? out.added : op == "deleted" ? out.deleted : out.changed)++;
  }
  RETURN_IF_ERROR(FillDiffs(&out.changes, touched_));
  std::sort(refused_.begin(), refused_.end());
  out.refused = std::move(refused_);
  // Capture must hand on only layers that LayerFromJson would accept back.
  RETURN_IF_ERROR(layer_detail::ValidateStates(out.layer.before, false).Annotate("captured"));
  RETURN_IF_ERROR(layer_detail::ValidateStates(out.layer.after, true).Annotate("captured"));
  return out;
}

}  // namespace

Result<CapturedLayer> CaptureLayer(const std::string& upper, const std::string& workspace,
                                   BlobStore& blobs, const CaptureOptions& options) {
  // The two roots are trusted paths from airlock itself (the upper may be reached through
  // /proc/<pid>/root); everything below them is opened without following symlinks.
  UniqueFd upper_fd(open(upper.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!upper_fd.valid()) return ErrnoStatus("open upper layer '" + upper + "'", errno);
  UniqueFd ws_fd(open(workspace.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!ws_fd.valid()) return ErrnoStatus("open workspace '" + workspace + "'", errno);
  Capturer capturer(ws_fd.get(), blobs, options);
  RETURN_IF_ERROR(capturer.WalkUpper(upper_fd.get(), ws_fd.get(), "", false));
  return capturer.Finish();
}

}  // namespace airlock::shell
