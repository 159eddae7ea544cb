// BlobStore: content-addressed files under DIR/ab/<sha256>. A blob is written to a
// temporary name, fsynced and renamed into place (then its directory fsynced), so a blob
// that exists is complete and survives a crash; the journal of a commit relies on that.
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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
  struct stat existing;
  if (lstat(final_path.c_str(), &existing) == 0 && S_ISREG(existing.st_mode)) {
    unlink(tmp.c_str());  // same content already stored, complete by construction
    return hash;
  }
  if (fsync(out.get()) != 0) return fail(ErrnoStatus("fsync blob '" + tmp + "'", errno));
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

}  // namespace airlock::shell
