// The sandbox launcher: a small process, forked while its parent still has one thread, that
// forks each sandbox's supervisor on the parent's behalf (a zygote, as browsers keep one).
//
// Why: a sandbox's supervisor and init run airlock's own code after fork, without exec
// (they build the sandbox). Forked straight from a process with many threads (airlock
// serve), the child inherits every lock another thread held at that instant, unlocked by
// no one. glibc's malloc is made safe for this, but not every allocator is: in the
// sanitizer build (GCC 12's libasan has no fork handler) a sandbox's init hung in its first
// allocation, on a lock of the allocator held by a thread of the server (2026-11-30;
// tests/blackbox/serve_test.sh failed 1 run in 8 to 6 in 16). Forked from the launcher,
// which has one thread and never runs anything else, the child inherits no held lock.
//
// The launcher's child is the caller's child, not the launcher's (clone with CLONE_PARENT):
// the caller waits for it, kills it and gets its SIGCHLD as if it had forked it itself, and
// its parent-death signal is tied to the thread that started the launcher.
//
// Its clones inherit the process state of the moment it was forked, not the caller's later
// state: airlock serve raises its own descriptor limit after that, so the commands it runs
// get the soft limit it started with, as the CLI's commands do.
//
// A process that never starts the launcher (the CLI, a library caller, the tests) forks as
// before. The CLI's only other thread is the one that makes the run's network namespace
// (sandbox.cc); it is joined before the fork once it has handed the namespace over, and for a
// run that does not use it.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "core/status.h"

namespace airlock::shell {

// What the launcher's child runs: `blob` and `fds` as the caller passed them (the fds are
// the child's own, numbered anew). It must not return; if it does, the child exits 127.
using LaunchedMain = void (*)(const std::string& blob, const std::vector<int>& fds);

// Forks the launcher, which serves this process until it exits (the launcher dies with the
// thread that started it: call it from the main thread). Only while the process has one
// thread: with more, FailedPrecondition, and nothing is started. Call at most once while it runs.
Status StartLauncher(LaunchedMain main);

// Lets the launcher exit and reaps it; later runs fork from their own thread. Registered
// with atexit by StartLauncher, so that a process leaves no launcher (nor its zombie)
// behind. Waits for a Launch in progress.
void StopLauncher();

// Whether StartLauncher succeeded in this process, and the launcher has not failed since.
bool LauncherRunning();

// Has the launcher fork a child that runs main(blob, fds); returns the child's pid (a child
// of this process). Thread-safe (one request at a time). After an error on the launcher's
// channel LauncherRunning() is false; a child forked just before such an error has no one
// to answer, and ends on its own when it finds the caller's ends of its fds closed (a
// sandbox supervisor does). Its exit status is then never collected.
Result<pid_t> Launch(const std::string& blob, const std::vector<int>& fds);

// The largest blob and the most fds one Launch carries.
inline constexpr size_t kMaxLaunchBlob = 16u << 20;
inline constexpr size_t kMaxLaunchFds = 32;

}  // namespace airlock::shell
