// Privileges of the sandboxed process tree: no capability, no way to regain one, no
// controlling terminal. The command keeps uid 0 (files it creates in the overlay are owned
// by root, like the workspace's), but uid 0 without capabilities is only a file owner.
#pragma once

#include "core/status.h"

namespace airlock::shell {

// The highest capability number the running kernel knows (/proc/sys/kernel/cap_last_cap).
// Read once per process, before fork: the sandbox's own /proc is not mounted yet when the
// capabilities are dropped.
Result<int> LastCapability();

// Drops every capability for good: securebits locked so that uid 0 gains nothing from
// execve (SECBIT_NOROOT), the bounding set emptied (0..last_cap), ambient cleared, and the
// inheritable, permitted and effective sets zeroed with capset.
Status DropAllCapabilities(int last_cap);

// PR_SET_NO_NEW_PRIVS: execve can no longer grant privileges (setuid bits, file
// capabilities). Landlock and seccomp require it of a process without CAP_SYS_ADMIN.
Status SetNoNewPrivs();

// setsid(): a new session without a controlling terminal, so nothing in the sandbox can
// reach the caller's terminal (/dev/tty gives ENXIO).
Status DetachFromTerminal();

}  // namespace airlock::shell
