#include "core/crash.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace airlock {

void CrashPoint(const char* point) {
  static const char* armed = std::getenv("AIRLOCK_CRASH_AT");
  if (armed != nullptr && std::strcmp(armed, point) == 0) _exit(86);
}

}  // namespace airlock
