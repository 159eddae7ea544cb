#include "core/clock.h"

#include <chrono>
#include <cstdlib>
#include <ctime>

namespace airlock {

int64_t NowMs() {
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  // Read once: the tests set it for a whole process, and getenv walks the environment on
  // every call (several times per MCP read call).
  static const int64_t shift = [] {
    const char* s = std::getenv("AIRLOCK_TIME_SHIFT_MS");
    return s == nullptr ? int64_t{0} : static_cast<int64_t>(std::strtoll(s, nullptr, 10));
  }();
  return now + shift;
}

std::string FormatTimeMs(int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

}  // namespace airlock
