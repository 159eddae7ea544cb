// The VFS every connection to the SQLite store opens with: the default one (unix) with three
// changes, all to the WAL file. Internal to src/store.
//
// 1. A WAL file that exists is opened without SQLITE_OPEN_CREATE (see store_vfs.cc).
// 2. A WAL frame goes to the file in one write instead of two. SQLite writes each frame as
//    its 24-byte header, then its page, at the next offset: two pwrite(2) calls per page of
//    every commit (~20 frames a commit on `airlock serve`'s committer). The WAL file's
//    methods hold back a 24-byte write that appends to what the file has written (a new
//    frame's header) until the next call on the file: a write that continues it goes out
//    together with it, in one write; any other call (a write elsewhere, a read, a sync, a
//    truncate, the file size, a lock, a close) writes the held header first, alone. A
//    24-byte write over bytes already written (SQLite rewriting a frame's checksum at a
//    commit, with maybe no call after it) is written at once. The file's bytes, and the
//    order in which they reach it, are SQLite's own; only the number of system calls
//    changes. A held header is never visible to another connection: SQLite writes an
//    appended frame's page right after its header, and publishes a frame (in the WAL
//    index) only after that.
// 3. The WAL emptied at the last close keeps its size, with its header zeroed, when it is
//    at most 1 MiB (a CLI command's), instead of being truncated to 0 bytes: the next
//    process's commits then overwrite its blocks and sync data only. SQLite reads a WAL
//    without a valid header as empty, so no frame in it is ever replayed.
#pragma once

#include <cstdint>

namespace airlock::sqlite {

// The VFS's name, registered on first call; nullptr if the default VFS cannot be found or
// registration failed (SQLite then opens with the default VFS).
const char* StoreVfsName();

// For tests: how many WAL frames went out as one write (header and page together), and how
// many held headers were written alone, by every connection of this process so far.
struct WalWriteCounts {
  uint64_t combined = 0;
  uint64_t alone = 0;
};
WalWriteCounts StoreVfsWalWriteCounts();

}  // namespace airlock::sqlite
