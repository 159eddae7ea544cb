// The seccomp filter (libseccomp): default allow, EPERM for the system calls a sandboxed
// command has no business making: the ones that change mounts or namespaces, load code
// into the kernel, trace other processes, or inject input into a terminal.
#pragma once

#include "core/status.h"

namespace airlock::shell {

// Compiles the filter to BPF once per process (libseccomp is slow next to a 3 ms run);
// later calls return the cached result. Call before fork.
Status PrepareSeccompFilter();

// Installs the compiled filter on the calling process; needs no_new_privs. Install it last:
// it denies mount, unshare and friends, which the earlier steps use.
Status InstallSeccompFilter();

}  // namespace airlock::shell
