#include "core/crash.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace airlock {

void CrashPoint(const char* point) {
  static const char* armed = std::getenv("AIRLOCK_CRASH_AT");
  if (armed != nullptr && std::strcmp(armed, point) == 0) _exit(86);
  static const char* paused = std::getenv("AIRLOCK_PAUSE_AT");
  if (paused != nullptr && std::strcmp(paused, point) == 0) {
    static const char* ms = std::getenv("AIRLOCK_PAUSE_MS");
    long n = ms != nullptr ? std::strtol(ms, nullptr, 10) : 3000;
    if (n <= 0 || n >= 600000) n = 3000;
    // Said on stderr, so that a test can act while the process waits here.
    std::fprintf(stderr, "airlock: paused at %s for %ld ms\n", point, n);
    usleep(static_cast<useconds_t>(n) * 1000);
  }
}

}  // namespace airlock
