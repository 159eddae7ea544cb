// Reading and writing path states in a real workspace: CheckState, SnapshotState,
// ApplyState.
//
// Every parent directory is resolved with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
// RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV) from the workspace fd, and every operation is then
// made relative to that pinned parent fd on a single name that is never followed
// (AT_SYMLINK_NOFOLLOW, O_NOFOLLOW, unlinkat, renameat2, symlinkat). A symlink planted in
// the workspace, or swapped in between preview and commit, therefore stops the apply with
// an error naming it instead of redirecting a write outside the workspace.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <vector>

#include "connectors/shell/layer.h"
#include "connectors/shell/layer_fs.h"
#include "core/crash.h"

namespace airlock::shell {
namespace {

using layer_detail::DescribeState;
using layer_detail::ErrnoStatus;
using layer_detail::HashFd;
using layer_detail::kIoChunk;
using layer_detail::LeafName;
using layer_detail::OpenDirBeneath;
using layer_detail::ParentPath;
using layer_detail::PathDepth;
using layer_detail::ResolveError;
using layer_detail::Sha256Stream;
using layer_detail::StateFromStat;
using layer_detail::StatNoFollow;
using layer_detail::TmpNameFor;
using layer_detail::UniqueFd;
using Type = PathState::Type;

// The parent directory of `path`, pinned as an O_PATH fd. *missing (when not null) is set
// instead of failing when a component does not exist or is not a directory: the path is
// then absent.
Status OpenParent(int ws_fd, const std::string& path, UniqueFd* out, bool* missing) {
  int err = 0;
  *out = OpenDirBeneath(ws_fd, ParentPath(path), O_PATH, &err);
  if (out->valid()) return Status::Ok();
  if (missing != nullptr && (err == ENOENT || err == ENOTDIR)) {
    *missing = true;
    return Status::Ok();
  }
  return ResolveError(ws_fd, path, err);
}

struct Current {
  PathState state;
  UniqueFd file;  // open O_RDONLY for a regular file
};

// The state of `path` now (no hash). Fails with PermissionDenied when the path is reached
// through a symlink or a mount point.
Result<Current> ReadCurrent(int ws_fd, const std::string& path) {
  Current cur;
  cur.state.path = path;
  UniqueFd parent;
  bool missing = false;
  RETURN_IF_ERROR(OpenParent(ws_fd, path, &parent, &missing));
  if (missing) return cur;
  std::string leaf = LeafName(path);
  ASSIGN_OR_RETURN(cur.state, StatNoFollow(parent.get(), leaf, path));
  if (cur.state.type != Type::kFile) return cur;
  cur.file =
      UniqueFd(openat(parent.get(), leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!cur.file.valid()) return ErrnoStatus("open '" + path + "'", errno);
  struct stat st;
  if (fstat(cur.file.get(), &st) != 0) return ErrnoStatus("stat '" + path + "'", errno);
  if (!S_ISREG(st.st_mode)) return Status::Conflict("'" + path + "' changed while it was read");
  cur.state = StateFromStat(st, path);
  return cur;
}

// "" when `now` matches `want`, else why not.
Result<std::string> Mismatch(const PathState& want, Current& now, bool strict) {
  const PathState& cur = now.state;
  auto differs = [&] { return "was " + DescribeState(want) + ", now " + DescribeState(cur); };
  if (want.type != cur.type) return differs();
  if (want.type == Type::kAbsent) return std::string();
  if (want.mode != cur.mode) return differs();
  if (want.type == Type::kSymlink && want.link_target != cur.link_target) return differs();
  if (want.type == Type::kFile) {
    if (want.size != cur.size) return differs();
    if (!want.sha256.empty()) {
      ASSIGN_OR_RETURN(std::string hash, HashFd(now.file.get(), want.path));
      if (hash != want.sha256) return "content changed (" + differs() + ")";
    } else if ((want.mtime_ns != 0 && want.mtime_ns != cur.mtime_ns) ||
               (want.ino != 0 && want.ino != cur.ino)) {
      // A large file was fingerprinted, not hashed: mtime and inode stand in for content.
      return std::string("modified since the preview (mtime or inode differ)");
    }
  }
  if (strict && ((want.mtime_ns != 0 && want.mtime_ns != cur.mtime_ns) ||
                 (want.ino != 0 && want.ino != cur.ino))) {
    return std::string("modified since the preview (mtime or inode differ)");
  }
  return std::string();
}

// ---- ApplyState ------------------------------------------------------------------------

class Applier {
 public:
  Applier(int ws_fd, const BlobStore& blobs) : ws_fd_(ws_fd), blobs_(blobs) {}
  Status Remove(const PathState& s);
  Status Create(const PathState& s);
  // Directory modes are set last, deepest first, so that a read-only directory still
  // receives its children first.
  Status SetDirModes();
  Status SyncTouchedDirs();

 private:
  Status CreateDir(int parent, const std::string& leaf, const PathState& s,
                   const struct stat* existing);
  Status CreateFile(int parent, const std::string& leaf, const PathState& s,
                    const struct stat* existing);
  Status CreateSymlink(int parent, const std::string& leaf, const PathState& s,
                       const struct stat* existing);
  Status WriteBlobTo(int fd, const PathState& s);
  // Makes room for a new entry of another type: removes an existing non-directory, or an
  // empty directory (one with entries the change does not list is an error).
  Status RemoveEntry(int parent, const std::string& leaf, const std::string& path, bool is_dir);
  Status RemoveTmp(int parent, const std::string& leaf, const std::string& path);
  void Owner(int parent, const struct stat* existing, uid_t* uid, gid_t* gid);

  int ws_fd_;
  const BlobStore& blobs_;
  std::set<std::string> touched_dirs_;
  std::vector<const PathState*> dir_modes_;
};

Status Applier::RemoveTmp(int parent, const std::string& leaf, const std::string& path) {
  std::string tmp = TmpNameFor(leaf);
  if (unlinkat(parent, tmp.c_str(), 0) != 0 && errno != ENOENT) {
    return ErrnoStatus("remove leftover '" + tmp + "' next to '" + path + "'", errno);
  }
  return Status::Ok();
}

Status Applier::RemoveEntry(int parent, const std::string& leaf, const std::string& path,
                            bool is_dir) {
  if (unlinkat(parent, leaf.c_str(), is_dir ? AT_REMOVEDIR : 0) == 0 || errno == ENOENT) {
    return Status::Ok();
  }
  if (is_dir && (errno == ENOTEMPTY || errno == EEXIST)) {
    // Deleting is strict: a directory is removed only when the change lists (and so has
    // already removed) everything in it. Anything else appeared after the preview.
    return Status::Conflict("directory '" + path +
                            "' holds entries the change does not list; not removed");
  }
  return ErrnoStatus("remove '" + path + "'", errno);
}

Status Applier::Remove(const PathState& s) {
  UniqueFd parent;
  bool missing = false;
  RETURN_IF_ERROR(OpenParent(ws_fd_, s.path, &parent, &missing));
  if (missing) return Status::Ok();  // already absent (idempotent)
  std::string leaf = LeafName(s.path);
  RETURN_IF_ERROR(RemoveTmp(parent.get(), leaf, s.path));
  struct stat st;
  if (fstatat(parent.get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return ErrnoStatus("lstat '" + s.path + "'", errno);
  }
  RETURN_IF_ERROR(RemoveEntry(parent.get(), leaf, s.path, S_ISDIR(st.st_mode)));
  touched_dirs_.insert(ParentPath(s.path));
  return Status::Ok();
}

// Running as root, airlock gives what it creates the owner the workspace would have given
// it: a replaced entry keeps its owner, a new one takes its directory's. Unprivileged, the
// process owns what it creates and nothing is changed.
void Applier::Owner(int parent, const struct stat* existing, uid_t* uid, gid_t* gid) {
  struct stat pst;
  if (existing != nullptr) {
    *uid = existing->st_uid;
    *gid = existing->st_gid;
  } else if (fstat(parent, &pst) == 0) {
    *uid = pst.st_uid;
    *gid = pst.st_gid;
  } else {
    *uid = geteuid();
    *gid = getegid();
  }
}

Status Applier::Create(const PathState& s) {
  UniqueFd parent;
  RETURN_IF_ERROR(OpenParent(ws_fd_, s.path, &parent, nullptr));
  std::string leaf = LeafName(s.path);
  struct stat st;
  const struct stat* existing = &st;
  if (fstatat(parent.get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno != ENOENT) return ErrnoStatus("lstat '" + s.path + "'", errno);
    existing = nullptr;
  }
  touched_dirs_.insert(ParentPath(s.path));
  switch (s.type) {
    case Type::kDir:
      return CreateDir(parent.get(), leaf, s, existing);
    case Type::kFile:
      return CreateFile(parent.get(), leaf, s, existing);
    case Type::kSymlink:
      return CreateSymlink(parent.get(), leaf, s, existing);
    default:
      return Status::InvalidArgument("'" + s.path + "': cannot create " + PathTypeName(s.type));
  }
}

Status Applier::CreateDir(int parent, const std::string& leaf, const PathState& s,
                          const struct stat* existing) {
  RETURN_IF_ERROR(RemoveTmp(parent, leaf, s.path));
  bool fresh = existing == nullptr || !S_ISDIR(existing->st_mode);
  if (existing != nullptr && fresh) {
    RETURN_IF_ERROR(RemoveEntry(parent, leaf, s.path, false));
  }
  if (fresh && mkdirat(parent, leaf.c_str(), 0700) != 0) {
    return ErrnoStatus("mkdir '" + s.path + "'", errno);
  }
  // Opened without following: if something swapped a symlink in after mkdirat, this fails.
  UniqueFd dir(openat(parent, leaf.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir.valid()) return ErrnoStatus("open directory '" + s.path + "'", errno);
  if (fresh && geteuid() == 0) {
    uid_t uid;
    gid_t gid;
    Owner(parent, nullptr, &uid, &gid);
    if (fchown(dir.get(), uid, gid) != 0) return ErrnoStatus("chown '" + s.path + "'", errno);
  }
  if (fresh || (existing->st_mode & 07777) != s.mode) dir_modes_.push_back(&s);
  return Status::Ok();
}

Status Applier::SetDirModes() {
  std::sort(dir_modes_.begin(), dir_modes_.end(), [](const PathState* a, const PathState* b) {
    size_t da = PathDepth(a->path), db = PathDepth(b->path);
    return da != db ? da > db : a->path > b->path;
  });
  for (const PathState* s : dir_modes_) {
    UniqueFd parent;
    RETURN_IF_ERROR(OpenParent(ws_fd_, s->path, &parent, nullptr));
    std::string leaf = LeafName(s->path);
    UniqueFd dir(
        openat(parent.get(), leaf.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir.valid()) return ErrnoStatus("open directory '" + s->path + "'", errno);
    if (fchmod(dir.get(), s->mode) != 0) return ErrnoStatus("chmod '" + s->path + "'", errno);
  }
  return Status::Ok();
}

// Copies the blob into fd, checking that its content still has the recorded hash and size:
// a damaged store must not commit other bytes than the ones that were approved.
Status Applier::WriteBlobTo(int fd, const PathState& s) {
  ASSIGN_OR_RETURN(int raw, blobs_.Open(s.sha256));
  UniqueFd blob(raw);
  Sha256Stream sha;
  std::vector<char> buf(kIoChunk);
  int64_t total = 0;
  for (;;) {
    ssize_t n = read(blob.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("read blob for '" + s.path + "'", errno);
    if (n == 0) break;
    sha.Update(buf.data(), static_cast<size_t>(n));
    total += n;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(fd, buf.data() + off, static_cast<size_t>(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return ErrnoStatus("write '" + s.path + "'", errno);
      off += w;
    }
  }
  if (sha.Final() != s.sha256 || total != s.size) {
    return Status::Corruption("blob " + s.sha256 + " for '" + s.path +
                              "' does not hold the recorded content");
  }
  return Status::Ok();
}

Status Applier::CreateFile(int parent, const std::string& leaf, const PathState& s,
                           const struct stat* existing) {
  RETURN_IF_ERROR(RemoveTmp(parent, leaf, s.path));
  if (existing != nullptr && S_ISREG(existing->st_mode) && existing->st_size == s.size) {
    // Already there (a re-apply): at most the mode differs.
    UniqueFd fd(openat(parent, leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat now;
    if (fd.valid() && fstat(fd.get(), &now) == 0 && now.st_ino == existing->st_ino) {
      ASSIGN_OR_RETURN(std::string hash, HashFd(fd.get(), s.path));
      if (hash == s.sha256) {
        if ((now.st_mode & 07777) != s.mode && fchmod(fd.get(), s.mode) != 0) {
          return ErrnoStatus("chmod '" + s.path + "'", errno);
        }
        return Status::Ok();
      }
    }
  }
  std::string tmp = TmpNameFor(leaf);
  UniqueFd out(
      openat(parent, tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out.valid()) return ErrnoStatus("create '" + tmp + "' for '" + s.path + "'", errno);
  auto fail = [&](Status st) {
    unlinkat(parent, tmp.c_str(), 0);
    return st;
  };
  Status st = WriteBlobTo(out.get(), s);
  if (!st.ok()) return fail(st);
  if (geteuid() == 0) {
    uid_t uid;
    gid_t gid;
    Owner(parent, existing, &uid, &gid);
    if (fchown(out.get(), uid, gid) != 0) return fail(ErrnoStatus("chown " + s.path, errno));
  }
  // After fchown, which clears set-id bits.
  if (fchmod(out.get(), s.mode) != 0) return fail(ErrnoStatus("chmod '" + s.path + "'", errno));
  if (fsync(out.get()) != 0) return fail(ErrnoStatus("fsync '" + s.path + "'", errno));
  if (existing != nullptr && S_ISDIR(existing->st_mode)) {
    st = RemoveEntry(parent, leaf, s.path, true);
    if (!st.ok()) return fail(st);
  }
  if (renameat(parent, tmp.c_str(), parent, leaf.c_str()) != 0) {
    return fail(ErrnoStatus("rename into '" + s.path + "'", errno));
  }
  return Status::Ok();
}

Status Applier::CreateSymlink(int parent, const std::string& leaf, const PathState& s,
                              const struct stat* existing) {
  RETURN_IF_ERROR(RemoveTmp(parent, leaf, s.path));
  if (existing != nullptr && S_ISLNK(existing->st_mode)) {
    ASSIGN_OR_RETURN(PathState now, StatNoFollow(parent, leaf, s.path));
    if (now.type == Type::kSymlink && now.link_target == s.link_target) return Status::Ok();
  }
  std::string tmp = TmpNameFor(leaf);
  if (symlinkat(s.link_target.c_str(), parent, tmp.c_str()) != 0) {
    return ErrnoStatus("create symlink for '" + s.path + "'", errno);
  }
  auto fail = [&](Status st) {
    unlinkat(parent, tmp.c_str(), 0);
    return st;
  };
  if (geteuid() == 0) {
    uid_t uid;
    gid_t gid;
    Owner(parent, existing, &uid, &gid);
    if (fchownat(parent, tmp.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
      return fail(ErrnoStatus("chown symlink '" + s.path + "'", errno));
    }
  }
  if (existing != nullptr && S_ISDIR(existing->st_mode)) {
    Status st = RemoveEntry(parent, leaf, s.path, true);
    if (!st.ok()) return fail(st);
  }
  if (renameat(parent, tmp.c_str(), parent, leaf.c_str()) != 0) {
    return fail(ErrnoStatus("rename symlink into '" + s.path + "'", errno));
  }
  return Status::Ok();
}

Status Applier::SyncTouchedDirs() {
  for (const std::string& dir : touched_dirs_) {
    int err = 0;
    UniqueFd fd = OpenDirBeneath(ws_fd_, dir, O_RDONLY, &err);
    if (!fd.valid()) {
      if (err == ENOENT || err == ENOTDIR) continue;  // deleted by this very change
      return ResolveError(ws_fd_, dir.empty() ? "." : dir + "/.", err);
    }
    if (fsync(fd.get()) != 0) return ErrnoStatus("fsync directory '" + dir + "'", errno);
  }
  return Status::Ok();
}

}  // namespace

Status CheckState(int workspace_fd, const std::vector<PathState>& expected, bool strict,
                  std::vector<std::string>* differing) {
  differing->clear();
  for (const PathState& want : expected) {
    RETURN_IF_ERROR(ValidateLayerPath(want.path));
    auto now = ReadCurrent(workspace_fd, want.path);
    if (!now.ok()) {
      if (now.status().code() != StatusCode::kPermissionDenied) return now.status();
      differing->push_back(want.path + ": was " + DescribeState(want) + ", now " +
                           now.status().message());
      continue;
    }
    ASSIGN_OR_RETURN(std::string why, Mismatch(want, *now, strict));
    if (!why.empty()) differing->push_back(want.path + ": " + why);
  }
  return Status::Ok();
}

Result<std::vector<PathState>> SnapshotState(int workspace_fd, const std::vector<PathState>& paths,
                                             BlobStore& blobs) {
  std::vector<PathState> out;
  out.reserve(paths.size());
  for (const PathState& p : paths) {
    RETURN_IF_ERROR(ValidateLayerPath(p.path));
    ASSIGN_OR_RETURN(Current cur, ReadCurrent(workspace_fd, p.path));
    if (cur.state.type == Type::kFile) {
      ASSIGN_OR_RETURN(cur.state.sha256, blobs.PutFile(cur.file.get()));
      struct stat st;
      if (fstat(cur.file.get(), &st) != 0) return ErrnoStatus("stat '" + p.path + "'", errno);
      PathState after = StateFromStat(st, p.path);
      if (after.size != cur.state.size || after.mtime_ns != cur.state.mtime_ns) {
        return Status::Conflict("'" + p.path + "' changed while its pre-image was saved");
      }
    }
    out.push_back(std::move(cur.state));
  }
  return out;
}

namespace layer_detail {

Status ApplyStateWithCrashPoint(int workspace_fd, const std::vector<PathState>& to,
                                const BlobStore& blobs, const char* crash_point_mid) {
  // Everything is checked before the first change, so a bad list changes nothing.
  RETURN_IF_ERROR(ValidateStates(to, /*target=*/true));
  for (const PathState& s : to) {
    if (s.type == Type::kFile && !blobs.Has(s.sha256)) {
      return Status::FailedPrecondition("no stored content (blob " + s.sha256 + ") for '" + s.path +
                                        "'");
    }
  }
  std::vector<const PathState*> removals, creations;
  for (const PathState& s : to) (s.type == Type::kAbsent ? removals : creations).push_back(&s);
  // Children before parents when removing, parents before children when creating.
  std::sort(removals.begin(), removals.end(), [](const PathState* a, const PathState* b) {
    size_t da = PathDepth(a->path), db = PathDepth(b->path);
    return da != db ? da > db : a->path > b->path;
  });
  std::sort(creations.begin(), creations.end(), [](const PathState* a, const PathState* b) {
    size_t da = PathDepth(a->path), db = PathDepth(b->path);
    return da != db ? da < db : a->path < b->path;
  });
  Applier applier(workspace_fd, blobs);
  size_t done = 0, half = (to.size() + 1) / 2;
  auto step = [&] {
    if (++done == half && crash_point_mid != nullptr) CrashPoint(crash_point_mid);
  };
  for (const PathState* s : removals) {
    RETURN_IF_ERROR(applier.Remove(*s));
    step();
  }
  for (const PathState* s : creations) {
    RETURN_IF_ERROR(applier.Create(*s));
    step();
  }
  RETURN_IF_ERROR(applier.SetDirModes());
  return applier.SyncTouchedDirs();
}

}  // namespace layer_detail

Status ApplyState(int workspace_fd, const std::vector<PathState>& to, const BlobStore& blobs) {
  return layer_detail::ApplyStateWithCrashPoint(workspace_fd, to, blobs, nullptr);
}

}  // namespace airlock::shell
