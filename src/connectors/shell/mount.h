// The sandbox's file system view (nsjail's mnt.cc). Two halves:
//
//  * supervisor: a private mount namespace holding the run's scratch tmpfs (upper + work dirs
//    of the overlay, and the mountpoint of the new root). Everything mounted there dies with
//    the supervisor, so nothing needs unmounting on any exit path.
//  * init (pid 1 of the run): a new root on a small tmpfs with read-only binds of the system
//    directories, a private /tmp, the workspace as an overlay at its own absolute path, a
//    minimal /dev, a fresh /proc, the hidden paths overmounted, then pivot_root.
//
// Everything here runs in a forked child: a failure returns a Status naming the step and the
// errno ("mount overlay on /ws: Invalid argument"), which the child reports and _exits on.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace airlock::shell {

// Where things live inside the scratch tmpfs mounted on scratch_dir.
struct ScratchLayout {
  explicit ScratchLayout(const std::string& scratch_dir)
      : upper(scratch_dir + "/upper"), work(scratch_dir + "/work"), root(scratch_dir + "/root") {}
  std::string upper;  // the overlay's upper layer: everything the command wrote
  std::string work;   // overlayfs' work dir (same file system as upper, required)
  std::string root;   // mountpoint of init's new root tmpfs (only used in init's namespace)
};

// ---- supervisor ------------------------------------------------------------------------

// unshare(CLONE_NEWNS) and make every mount private (MS_REC), so that no mount made by this
// process or its children propagates back to the host's namespace (on systemd hosts / is
// shared).
Status EnterPrivateMountNamespace();

// Mounts the scratch tmpfs (size=, nr_inodes=, mode 0700) on scratch_dir and creates the
// upper, work and root directories in it. The size and inode caps are what make the upper
// layer full ("No space left on device") instead of the host disk.
Status MountScratch(const std::string& scratch_dir, int64_t size_bytes, int64_t inodes);

// ---- init, before pivot_root -------------------------------------------------------------

struct NewRootSpec {
  std::string new_root;         // ScratchLayout::root
  std::string workspace;        // absolute real path; the overlay is mounted at the same path
  std::string overlay_options;  // OverlayOptions(), built before fork
  std::string tmp_options;      // tmpfs options of /tmp and /dev/shm (size and inode caps)
  std::vector<std::string> read_only_paths;  // extra directories bound read-only, same path
};

// "lowerdir=...,upperdir=...,workdir=...,<features>" with ',', ':' and '\' escaped.
std::string OverlayOptions(const std::string& workspace, const ScratchLayout& scratch);
// "mode=1777,size=N,nr_inodes=N"
std::string TmpfsOptions(int64_t size_bytes, int64_t inodes);

// Builds the new root under spec.new_root: a tmpfs skeleton, read-only recursive binds of
// /usr /bin /sbin /lib* /etc /opt /var /srv (symlinks recreated as symlinks), a private
// /tmp, the overlay at the workspace's path, and /dev.
Status BuildNewRoot(const NewRootSpec& spec);

// pivot_root into new_root and detach the old root: from here on the host's tree is
// unreachable from this mount namespace.
Status PivotInto(const std::string& new_root);

// ---- init, after pivot_root --------------------------------------------------------------

// A fresh procfs. Must run in the new pid namespace (it shows that namespace's processes)
// and after pivot_root; /proc/sys and /proc/sysrq-trigger are bound read-only on top.
Status MountProc();

// Overmounts every path of `hide` that exists in the new root: a directory with an empty
// read-only tmpfs, anything else with an empty read-only file.
Status HidePaths(const std::vector<std::string>& hide);

// Remounts the skeleton root and /dev read-only (their contents were only mountpoints).
Status SealRoot();

}  // namespace airlock::shell
