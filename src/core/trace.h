// Phase marks for finding where the time of one command goes (docs/BENCHMARKS.md, "where
// the time goes"). When the environment variable AIRLOCK_TRACE names a file, every
// TraceMark appends one line to it: "<pid> <CLOCK_MONOTONIC ns> <name>". The clock is the
// same in every process, so the sandbox's supervisor and init mark on one time line with
// the caller. Without AIRLOCK_TRACE a mark costs one branch on a cached pointer.
//
// With AIRLOCK_TRACE_CPU=1 as well, each line ends with a tab, the marking thread's id and
// the CPU time that thread has used so far, in microseconds (CLOCK_THREAD_CPUTIME_ID):
// "<pid> <ns> <name>\t<tid> <cpu us>". The CPU between two marks of one thread is what that
// step cost, whatever the other threads and processes did meanwhile (on a machine with two
// cores, the wall time between marks also counts the waits for a core).
// bench/trace_steps.sh prints both for every step, as medians over many commands.
#pragma once

namespace airlock {

void TraceMark(const char* name);

// The open trace file (close-on-exec), or -1. A forked child that closes every fd it does
// not know keeps this one, so that it can mark too.
int TraceFd();

}  // namespace airlock
