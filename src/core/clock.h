// Wall-clock time in milliseconds since the epoch. AIRLOCK_TIME_SHIFT_MS (tests only) shifts
// it, so expiry and rate windows are tested without sleeping.
#pragma once

#include <cstdint>
#include <string>

namespace airlock {

int64_t NowMs();
std::string FormatTimeMs(int64_t ms);  // "2026-11-28T06:40:00.123Z"

}  // namespace airlock
