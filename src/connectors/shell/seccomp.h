// The seccomp filter: default allow, EPERM for the system calls a sandboxed command has no
// business making: the ones that change mounts or namespaces, load code into the kernel,
// trace other processes, or inject input into a terminal. The rules are in
// seccomp_rules.cc; the build compiles them to BPF (tools/seccomp_gen), carried here.
#pragma once

#include <linux/filter.h>

#include <vector>

#include "core/status.h"

namespace airlock::shell {

// Installs the filter on the calling process; needs no_new_privs. Install it last: it
// denies mount, unshare and friends, which the earlier steps use.
Status InstallSeccompFilter();

// The built-in program, for the test that compares it with a fresh compile of the rules.
std::vector<sock_filter> BuiltInSeccompProgram();

}  // namespace airlock::shell
