#include "core/trace.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace airlock {
namespace {

int OpenTrace() {
  const char* path = std::getenv("AIRLOCK_TRACE");
  if (path == nullptr || *path == '\0') return -1;
  return ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

}  // namespace

int TraceFd() {
  static const int fd = OpenTrace();
  return fd;
}

void TraceMark(const char* name) {
  const int fd = TraceFd();
  if (fd < 0) return;
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  char line[160];
  const int n = std::snprintf(line, sizeof line, "%d %lld%09ld %s\n", static_cast<int>(::getpid()),
                              static_cast<long long>(ts.tv_sec), ts.tv_nsec, name);
  if (n > 0) (void)!::write(fd, line, static_cast<size_t>(n) < sizeof line ? n : sizeof line - 1);
}

}  // namespace airlock
