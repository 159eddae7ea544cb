#include "store/change_counter.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace airlock {

namespace {
constexpr size_t kBytes = 2 * sizeof(uint64_t);
static_assert(std::atomic_ref<uint64_t>::is_always_lock_free,
              "the counts are shared between processes: they must be lock-free");
}  // namespace

std::unique_ptr<ChangeCounter> ChangeCounter::Open(const std::string& path) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return nullptr;
  struct stat st {};
  // A new file is zeros once extended; two processes extending it at once both write zeros.
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      (st.st_size < static_cast<off_t>(kBytes) && ftruncate(fd, kBytes) != 0)) {
    close(fd);
    return nullptr;
  }
  void* p = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);  // the mapping keeps the file
  if (p == MAP_FAILED) return nullptr;
  return std::unique_ptr<ChangeCounter>(new ChangeCounter(static_cast<uint64_t*>(p)));
}

ChangeCounter::~ChangeCounter() {
  munmap(words_, kBytes);
}

}  // namespace airlock
