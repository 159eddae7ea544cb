#include "gateway/command_journal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/hash.h"

namespace airlock {
namespace {

Status ErrnoStatus(const std::string& what) {
  return Status::IoError(what + ": " + std::strerror(errno));
}

Status PwriteAll(int fd, const char* p, size_t n, off_t at, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, at);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return ErrnoStatus("write " + path);
    if (w == 0) return Status::IoError("write " + path + ": nothing written");
    p += w;
    at += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

// The used part: everything up to the first NUL (or the end). A line is whole when it ends
// with '\n'; bytes after the last one are a line cut short, which the next line overwrites.
Result<std::string> ReadUsed(int fd, const std::string& path) {
  std::string data;
  char buf[65536];
  for (off_t at = 0;;) {
    ssize_t r = ::pread(fd, buf, sizeof buf, at);
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("read " + path);
    }
    if (r == 0) break;
    const void* nul = std::memchr(buf, '\0', static_cast<size_t>(r));
    if (nul != nullptr) {
      data.append(buf, static_cast<const char*>(nul) - buf);
      break;
    }
    data.append(buf, static_cast<size_t>(r));
    at += r;
  }
  return data;
}

// Holds flock(LOCK_EX) on fd for its scope.
class FileLock {
 public:
  static Result<FileLock> Take(int fd, const std::string& path) {
    while (::flock(fd, LOCK_EX) != 0) {
      if (errno != EINTR) return ErrnoStatus("lock " + path);
    }
    return FileLock(fd);
  }
  FileLock(FileLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  FileLock& operator=(FileLock&&) = delete;
  ~FileLock() {
    if (fd_ >= 0) ::flock(fd_, LOCK_UN);
  }

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

// The file as it must be: a regular file of this user's that only this user can use, not
// reached through a symlink (O_NOFOLLOW at the open).
Status CheckFile(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return ErrnoStatus("stat " + path);
  if (!S_ISREG(st.st_mode)) return Status::FailedPrecondition(path + " is not a regular file");
  if (st.st_uid != ::geteuid() || (st.st_mode & 077) != 0) {
    return Status::PermissionDenied(path + " must be a file of this user's with mode 0600");
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<CommandJournal>> CommandJournal::Open(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoStatus("mkdir " + dir);
  RETURN_IF_ERROR(CheckJournalDir(dir));
  const std::string path = dir + "/" + kFileName;
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && errno == ENOENT) {
    // Made under a temporary name, as zeros, synced, then linked into place (never over a
    // file another command made meanwhile) and the directory synced: no process ever sees
    // the file shorter than kBytes.
    const std::string tmp = path + ".new." + RandomHex(8);
    int t = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (t < 0) return ErrnoStatus("create " + tmp);
    const std::string zeros(kBytes, '\0');
    Status st = PwriteAll(t, zeros.data(), zeros.size(), 0, tmp);
    if (st.ok() && ::fdatasync(t) != 0) st = ErrnoStatus("fdatasync " + tmp);
    if (st.ok() && ::link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST) {
      st = ErrnoStatus("link " + path);
    }
    ::unlink(tmp.c_str());
    ::close(t);
    RETURN_IF_ERROR(st);
    int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d >= 0) {
      ::fsync(d);
      ::close(d);
    }
    fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  }
  if (fd < 0) return ErrnoStatus("open " + path);
  Status ok = CheckFile(fd, path);
  if (!ok.ok()) {
    ::close(fd);
    return ok;
  }
  return std::unique_ptr<CommandJournal>(new CommandJournal(fd, path));
}

CommandJournal::~CommandJournal() {
  ::close(fd_);
}

Status CommandJournal::Append(const std::string& line) {
  if (line.find('\n') != std::string::npos || line.find('\0') != std::string::npos) {
    return Status::InvalidArgument("a command journal line holds a newline or a NUL");
  }
  ASSIGN_OR_RETURN(FileLock lock, FileLock::Take(fd_, path_));
  ASSIGN_OR_RETURN(std::string used, ReadUsed(fd_, path_));
  const size_t end = used.rfind('\n') == std::string::npos ? 0 : used.rfind('\n') + 1;
  std::string out = line;
  out += '\n';
  // A line longer than what was cut short before it leaves none of that behind; a shorter
  // one leaves its tail, which does not parse and is skipped (counted torn) when taken.
  Status st = PwriteAll(fd_, out.data(), out.size(), static_cast<off_t>(end), path_);
  if (st.ok() && ::fdatasync(fd_) != 0) st = ErrnoStatus("fdatasync " + path_);
  if (!st.ok()) {
    // Not a record: zeros over what was written, so that no later take finds it.
    const std::string zeros(out.size(), '\0');
    (void)PwriteAll(fd_, zeros.data(), zeros.size(), static_cast<off_t>(end), path_);
    return st.Annotate("the command journal");
  }
  return Status::Ok();
}

Status CommandJournal::Take(const std::string& dir,
                            const std::function<Status(std::vector<JournaledRead>&)>& ingest,
                            size_t min_lines, int* torn) {
  if (torn != nullptr) *torn = 0;
  const std::string path = dir + "/" + kFileName;
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return errno == ENOENT ? Status::Ok() : ErrnoStatus("open " + path);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  RETURN_IF_ERROR(CheckJournalDir(dir));
  RETURN_IF_ERROR(CheckFile(fd, path));
  ASSIGN_OR_RETURN(FileLock lock, FileLock::Take(fd, path));
  ASSIGN_OR_RETURN(std::string used, ReadUsed(fd, path));
  if (used.empty()) return Status::Ok();
  if (static_cast<size_t>(std::count(used.begin(), used.end(), '\n')) < min_lines) {
    return Status::Ok();
  }
  // A last line cut short is counted torn, and overwritten by the next line if not taken.
  std::vector<JournaledRead> reads = ParseJournalLines(used, torn);
  if (!reads.empty()) RETURN_IF_ERROR(ingest(reads).Annotate("the command journal " + path));
  // Taken: zeros over the used part (no sync: see the file comment).
  const std::string zeros(used.size(), '\0');
  return PwriteAll(fd, zeros.data(), zeros.size(), 0, path);
}

}  // namespace airlock
