// Landlock (minijail's order: no_new_privs, then Landlock, then seccomp last): the kernel
// refuses every write outside a few trees, whatever the mount table says. It is the wall
// that still stands if a mount were writable by mistake (/proc/sys, a bind without
// MS_RDONLY), and it holds for every process the command starts.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace airlock::shell {

// The Landlock ABI version of the running kernel; 0 when Landlock is unavailable
// (not built in, or not enabled in the lsm= list).
int LandlockAbi();

// Restricts the calling process and its future children: every file-system write right the
// running ABI knows (write, truncate, remove, make*, refer, device ioctl) is granted only
// beneath the paths of `writable`; reads and execution stay allowed everywhere. From ABI 6
// on, abstract unix sockets and signals are also scoped to the sandbox. Needs no_new_privs.
// Fails closed: without Landlock this is an error, never a weaker sandbox.
Status RestrictWritesTo(const std::vector<std::string>& writable);

}  // namespace airlock::shell
