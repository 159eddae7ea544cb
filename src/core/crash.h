// Injectable crash points for recovery tests (issue: "a process killed at any point between
// decided and recorded as applied"). When the environment variable AIRLOCK_CRASH_AT names
// `point`, the process dies at once with _exit(86): no destructors, no flushes, like a kill -9.
#pragma once

namespace airlock {

void CrashPoint(const char* point);

}  // namespace airlock
