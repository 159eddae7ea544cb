// Injectable crash points for recovery tests (issue: "a process killed at any point between
// decided and recorded as applied"). When the environment variable AIRLOCK_CRASH_AT names
// `point`, the process dies at once with _exit(86): no destructors, no flushes, like a kill -9.
// When AIRLOCK_PAUSE_AT names it, the process sleeps there for AIRLOCK_PAUSE_MS (default
// 3000) instead, after saying so on stderr ("airlock: paused at POINT for N ms"): a test can
// then show that another process leaves work in progress alone, or break something meanwhile.
#pragma once

namespace airlock {

void CrashPoint(const char* point);

}  // namespace airlock
