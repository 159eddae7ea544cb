// BlobStore: content-addressed files under DIR/ab/<sha256>. A blob is written to a
// temporary name, fsynced and renamed into place (then its directory fsynced), so a blob
// that exists is complete and survives a crash; the journal of a commit relies on that.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "connectors/shell/layer.h"
#include "connectors/shell/layer_fs.h"
#include "core/hash.h"

namespace airlock::shell {

using layer_detail::ErrnoStatus;
using layer_detail::IsHexSha256;
using layer_detail::kIoChunk;
using layer_detail::Sha256Stream;
using layer_detail::UniqueFd;

namespace {

Status MakeDir(const std::string& path, bool* created) {
  *created = false;
  if (mkdir(path.c_str(), 0700) == 0) {
    *created = true;
    return Status::Ok();
  }
  if (errno == EEXIST) return Status::Ok();
  return ErrnoStatus("mkdir '" + path + "'", errno);
}

Status FsyncPath(const std::string& dir) {
  UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus("open '" + dir + "'", errno);
  if (fsync(fd.get()) != 0) return ErrnoStatus("fsync '" + dir + "'", errno);
  return Status::Ok();
}

Status WriteAll(int fd, const char* data, size_t size, const std::string& what) {
  while (size > 0) {
    ssize_t n = write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write '" + what + "'", errno);
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

// DIR/.lock, taken shared by a writer that finds a blob it can reuse (for the look and the
// mark) and exclusively by a sweep (for the look and the removal), so that a sweep never
// removes a blob a writer has just decided to name. Held until destroyed. Opened read-only
// and made 0644, so that every user who can read the store can take it (flock needs no
// write access): a lock file made by another user (an operator's gc as root) does not lock
// the store's own user out. A writer that cannot have it goes on (held() false); a sweep
// that cannot have it removes nothing.
class BlobLock {
 public:
  BlobLock(const std::string& dir, int how) {
    fd_ = open((dir + "/.lock").c_str(), O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd_ < 0) return;
    // The umask may have taken bits off (or an older build made it 0600): its owner puts
    // them back, so that the store's other users can still open it.
    struct stat st;
    if (fstat(fd_, &st) == 0 && st.st_uid == geteuid() && (st.st_mode & 0777) != 0644) {
      (void)fchmod(fd_, 0644);
    }
    int rc;
    while ((rc = flock(fd_, how)) != 0 && errno == EINTR) {
    }
    held_ = rc == 0;
  }
  ~BlobLock() {
    if (fd_ >= 0) close(fd_);  // releases the lock
  }
  BlobLock(const BlobLock&) = delete;
  BlobLock& operator=(const BlobLock&) = delete;
  bool held() const { return held_; }

 private:
  int fd_ = -1;
  bool held_ = false;
};

// A regular file at `path` is there, and is marked as used now. A blob that cannot be
// marked counts as not there: it is written again (renamed over itself, with a new mtime).
bool TouchIfThere(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  return utimensat(AT_FDCWD, path.c_str(), nullptr, AT_SYMLINK_NOFOLLOW) == 0;
}

// Fills a buffer; returns bytes read, 0 at the end.
using Source = std::function<Result<size_t>(char* buf, size_t cap)>;

// Streams `source` into a temporary file while hashing it, then moves it into place.
Result<std::string> PutFrom(const std::string& dir, const Source& source) {
  bool created = false;
  RETURN_IF_ERROR(MakeDir(dir, &created));
  if (created) {
    size_t slash = dir.find_last_of('/');
    RETURN_IF_ERROR(FsyncPath(slash == std::string::npos ? "."
                              : slash == 0               ? "/"
                                                         : dir.substr(0, slash)));
  }
  std::string tmp = dir + "/.tmp-" + RandomHex(12);
  UniqueFd out(open(tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!out.valid()) return ErrnoStatus("create blob '" + tmp + "'", errno);
  auto fail = [&](Status st) {
    unlink(tmp.c_str());
    return st;
  };
  Sha256Stream sha;
  std::vector<char> buf(kIoChunk);
  for (;;) {
    auto n = source(buf.data(), buf.size());
    if (!n.ok()) return fail(n.status());
    if (*n == 0) break;
    sha.Update(buf.data(), *n);
    Status st = WriteAll(out.get(), buf.data(), *n, tmp);
    if (!st.ok()) return fail(st);
  }
  std::string hash = sha.Final();
  std::string sub = dir + "/" + hash.substr(0, 2);
  std::string final_path = sub + "/" + hash;
  {
    BlobLock lock(dir, LOCK_SH);
    if (TouchIfThere(final_path)) {
      unlink(tmp.c_str());  // same content already stored, complete by construction
      return hash;
    }
  }
  if (fsync(out.get()) != 0) return fail(ErrnoStatus("fsync blob '" + tmp + "'", errno));
  // Held through the rename, with a second look: a sweep must not look at this name between
  // our look and our rename (it could see an old blob we could not mark, and remove the
  // fresh copy just renamed over it).
  BlobLock lock(dir, LOCK_SH);
  if (TouchIfThere(final_path)) {
    unlink(tmp.c_str());
    return hash;
  }
  out = UniqueFd();
  bool sub_created = false;
  Status st = MakeDir(sub, &sub_created);
  if (!st.ok()) return fail(st);
  if (sub_created) {
    st = FsyncPath(dir);
    if (!st.ok()) return fail(st);
  }
  if (rename(tmp.c_str(), final_path.c_str()) != 0) {
    return fail(ErrnoStatus("rename blob into '" + final_path + "'", errno));
  }
  RETURN_IF_ERROR(FsyncPath(sub));
  return hash;
}

}  // namespace

BlobStore::BlobStore(std::string dir) : dir_(std::move(dir)) {}

Result<std::string> BlobStore::PutFile(int fd) {
  return PutFrom(dir_, [fd](char* buf, size_t cap) -> Result<size_t> {
    for (;;) {
      ssize_t n = read(fd, buf, cap);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return ErrnoStatus("read source of a blob", errno);
    }
  });
}

Result<std::string> BlobStore::PutBytes(const std::string& bytes) {
  size_t off = 0;
  return PutFrom(dir_, [&bytes, &off](char* buf, size_t cap) -> Result<size_t> {
    size_t n = std::min(cap, bytes.size() - off);
    bytes.copy(buf, n, off);
    off += n;
    return n;
  });
}

Result<int> BlobStore::Open(const std::string& sha256) const {
  // The key comes from a manifest: anything but 64 hex digits could walk out of the store.
  if (!IsHexSha256(sha256)) return Status::InvalidArgument("not a blob key: '" + sha256 + "'");
  std::string path = dir_ + "/" + sha256.substr(0, 2) + "/" + sha256;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return Status::NotFound("no blob " + sha256 + " in " + dir_);
    return ErrnoStatus("open blob '" + path + "'", errno);
  }
  return fd;
}

Result<std::string> BlobStore::ReadAll(const std::string& sha256, int64_t max_bytes) const {
  ASSIGN_OR_RETURN(int raw, Open(sha256));
  UniqueFd fd(raw);
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoStatus("stat blob " + sha256, errno);
  if (st.st_size > max_bytes) {
    return Status::FailedPrecondition("blob " + sha256 + " holds " + std::to_string(st.st_size) +
                                      " bytes, more than " + std::to_string(max_bytes));
  }
  std::string out;
  out.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = read(fd.get(), out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("read blob " + sha256, errno);
    if (n == 0) return Status::Corruption("blob " + sha256 + " shrank while read");
    got += static_cast<size_t>(n);
  }
  return out;
}

bool BlobStore::Has(const std::string& sha256) const {
  if (!IsHexSha256(sha256)) return false;
  struct stat st;
  std::string path = dir_ + "/" + sha256.substr(0, 2) + "/" + sha256;
  return lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool BlobStore::Reuse(const std::string& sha256) const {
  if (!IsHexSha256(sha256)) return false;
  BlobLock lock(dir_, LOCK_SH);
  return TouchIfThere(dir_ + "/" + sha256.substr(0, 2) + "/" + sha256);
}

namespace {

bool OlderThan(const struct stat& st, int64_t cutoff_s) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) < cutoff_s;
}

// The names in `dir` (without . and ..); NotFound when it is missing.
Result<std::vector<std::string>> ListDir(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return Status::NotFound(dir);
    return ErrnoStatus("open '" + dir + "'", errno);
  }
  std::vector<std::string> names;
  while (struct dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  closedir(d);
  return names;
}

}  // namespace

Result<BlobSweep> SweepBlobs(const std::string& dir, const std::set<std::string>& live,
                             int64_t cutoff_s, bool dry_run) {
  BlobSweep out;
  auto top = ListDir(dir);
  if (!top.ok() && top.status().code() == StatusCode::kNotFound) return out;
  if (!top.ok()) return top.status();
  for (const std::string& name : *top) {
    const std::string path = dir + "/" + name;
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) continue;  // gone meanwhile
    if (name.rfind(".tmp-", 0) == 0 && S_ISREG(st.st_mode)) {
      if (!OlderThan(st, cutoff_s)) continue;  // a write in progress
      if (!dry_run && unlink(path.c_str()) != 0 && errno != ENOENT) {
        return ErrnoStatus("remove '" + path + "'", errno);
      }
      ++out.temporaries_removed;
      continue;
    }
    // Only what PutFrom makes: two hex digits, holding blobs named by their hash.
    if (!S_ISDIR(st.st_mode) || name.size() != 2 ||
        name.find_first_not_of("0123456789abcdef") != std::string::npos) {
      continue;
    }
    ASSIGN_OR_RETURN(std::vector<std::string> blobs, ListDir(path));
    // Exclusive for the looks and removals of one subdirectory at a time, so that a writer
    // waits for one subdirectory's worth, not the whole sweep.
    BlobLock lock(dir, LOCK_EX);
    if (!lock.held() && !dry_run) {
      return Status::FailedPrecondition("cannot lock " + dir + "/.lock against writers (" +
                                        std::strerror(errno) + "); nothing more was removed");
    }
    for (const std::string& blob : blobs) {
      const std::string file = path + "/" + blob;
      struct stat bst;
      if (lstat(file.c_str(), &bst) != 0 || !S_ISREG(bst.st_mode)) continue;
      if (!IsHexSha256(blob) || blob.compare(0, 2, name) != 0) continue;  // not ours
      if (live.count(blob) != 0 || !OlderThan(bst, cutoff_s)) {
        ++out.kept;
        continue;
      }
      if (!dry_run && unlink(file.c_str()) != 0 && errno != ENOENT) {
        return ErrnoStatus("remove blob '" + file + "'", errno);
      }
      ++out.removed;
      out.bytes_removed += static_cast<int64_t>(bst.st_size);
    }
  }
  return out;
}

}  // namespace airlock::shell
