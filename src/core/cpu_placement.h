// Where a helper thread runs. The scheduler puts a new thread on its creator's CPU, where it
// preempts the creator, even with another core idle; for a helper that works beside its
// creator (a command's network namespace made while the CLI loads its policy), that makes the
// two take turns on one core. Measured: the CLI's main thread waited 0.86 ms for its helper on
// CPU 0 while CPU 1 had nothing to run (`perf sched timehist`, docs/BENCHMARKS.md).
#pragma once

#include <pthread.h>

namespace airlock {

// Moves `thread`, just started by the caller, to the CPUs the caller may use other than the
// one it runs on. Returns that CPU, or -1 when the thread is left where it is (one CPU only,
// or the kernel refused). Best effort: a wrong guess costs a migration, nothing else.
int PlaceAwayFromCaller(pthread_t thread);

}  // namespace airlock
