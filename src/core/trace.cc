#include "core/trace.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace airlock {
namespace {

int OpenTrace() {
  const char* path = std::getenv("AIRLOCK_TRACE");
  if (path == nullptr || *path == '\0') return -1;
  return ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

bool TraceCpu() {
  static const bool on = [] {
    const char* v = std::getenv("AIRLOCK_TRACE_CPU");
    return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
  }();
  return on;
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
  char line[192];
  int n;
  if (TraceCpu()) {
    timespec cpu{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
    n = std::snprintf(line, sizeof line, "%d %lld%09ld %s\t%d %lld\n", static_cast<int>(::getpid()),
                      static_cast<long long>(ts.tv_sec), ts.tv_nsec, name,
                      static_cast<int>(::gettid()),
                      static_cast<long long>(cpu.tv_sec) * 1000000 + cpu.tv_nsec / 1000);
  } else {
    n = std::snprintf(line, sizeof line, "%d %lld%09ld %s\n", static_cast<int>(::getpid()),
                      static_cast<long long>(ts.tv_sec), ts.tv_nsec, name);
  }
  if (n > 0) (void)!::write(fd, line, static_cast<size_t>(n) < sizeof line ? n : sizeof line - 1);
}

}  // namespace airlock
