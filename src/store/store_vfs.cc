#include "store/store_vfs.h"

#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace airlock::sqlite {
namespace {

// SQLite's WAL frame header (WAL_FRAME_HDRSIZE in wal.c): fixed by the file format.
constexpr int kFrameHeaderBytes = 24;
// The WAL file's own header (WAL_HDRSIZE), at its start: its magic number comes first.
constexpr int kWalHeaderBytes = 32;
// The largest page SQLite allows (SQLITE_MAX_PAGE_SIZE in sqliteLimit.h).
constexpr int kMaxPageBytes = 65536;

sqlite3_vfs* g_base_vfs = nullptr;
sqlite3_io_methods g_wal_methods;  // made from the first WAL file's own methods

std::atomic<uint64_t> g_combined{0};
std::atomic<uint64_t> g_alone{0};

// A WAL file: ours, then the default VFS's file right after it, kWalFileBytes on.
struct WalFile {
  sqlite3_file base;  // first: SQLite sees a sqlite3_file*
  sqlite3_file* real;
  bool held;  // a header written by SQLite and not yet by us
  sqlite3_int64 held_offset;
  // Where this file's writes end: the furthest byte written since its last write at offset
  // 0 (the WAL's own header, written when the WAL starts over). Only a header written at or
  // past it, the next frame appended, is held; see WalWrite.
  sqlite3_int64 end;
  unsigned char header[kFrameHeaderBytes];
  char* buffer;  // header + page, for the combined write (sqlite3_malloc'd on first need)
  int buffer_bytes;
};

constexpr int RoundUp8(size_t n) {
  return static_cast<int>((n + 7) & ~size_t{7});
}
constexpr int kWalFileBytes = RoundUp8(sizeof(WalFile));

WalFile* Wal(sqlite3_file* f) {
  return reinterpret_cast<WalFile*>(f);
}
sqlite3_file* Real(sqlite3_file* f) {
  return Wal(f)->real;
}

// Every write to the real file, keeping `end`.
int WriteReal(WalFile* w, const void* data, int amount, sqlite3_int64 offset) {
  if (offset == 0) w->end = 0;
  if (offset + amount > w->end) w->end = offset + amount;
  return w->real->pMethods->xWrite(w->real, data, amount, offset);
}

// Writes a held header alone; every call below but the combining write starts with it, so
// that the file is always as SQLite believes it to be when it looks.
int FlushHeld(WalFile* w) {
  if (!w->held) return SQLITE_OK;
  w->held = false;
  g_alone.fetch_add(1, std::memory_order_relaxed);
  return WriteReal(w, w->header, kFrameHeaderBytes, w->held_offset);
}

int WalClose(sqlite3_file* f) {
  WalFile* w = Wal(f);
  const int flushed = FlushHeld(w);
  const int closed = w->real->pMethods->xClose(w->real);
  sqlite3_free(w->buffer);
  w->buffer = nullptr;
  return flushed != SQLITE_OK ? flushed : closed;
}

int WalRead(sqlite3_file* f, void* out, int amount, sqlite3_int64 offset) {
  if (int rc = FlushHeld(Wal(f)); rc != SQLITE_OK) return rc;
  return Real(f)->pMethods->xRead(Real(f), out, amount, offset);
}

// SQLite appends a frame as its header, then its page at the next offset (walWriteOneFrame);
// those two become one write. A 24-byte write that is not an append is written at once:
// SQLite also writes headers alone, over frames it has written, when it rewrites their
// checksums at a commit (walRewriteChecksums), and with synchronous=NORMAL nothing may
// follow on this file for as long as the connection sits idle, while the commit is
// already published.
int WalWrite(sqlite3_file* f, const void* data, int amount, sqlite3_int64 offset) {
  WalFile* w = Wal(f);
  if (w->held && offset == w->held_offset + kFrameHeaderBytes && amount > 0 &&
      amount <= kMaxPageBytes) {
    const int total = kFrameHeaderBytes + amount;
    if (w->buffer_bytes < total) {
      char* grown = static_cast<char*>(sqlite3_realloc(w->buffer, total));
      if (grown == nullptr) {
        // No memory for the combined write: the two writes SQLite asked for, in order.
        if (int rc = FlushHeld(w); rc != SQLITE_OK) return rc;
        return WriteReal(w, data, amount, offset);
      }
      w->buffer = grown;
      w->buffer_bytes = total;
    }
    std::memcpy(w->buffer, w->header, kFrameHeaderBytes);
    std::memcpy(w->buffer + kFrameHeaderBytes, data, static_cast<size_t>(amount));
    w->held = false;
    g_combined.fetch_add(1, std::memory_order_relaxed);
    return WriteReal(w, w->buffer, total, w->held_offset);
  }
  if (int rc = FlushHeld(w); rc != SQLITE_OK) return rc;
  if (amount == kFrameHeaderBytes && offset >= w->end && offset > 0) {
    std::memcpy(w->header, data, kFrameHeaderBytes);
    w->held_offset = offset;
    w->held = true;
    return SQLITE_OK;
  }
  return WriteReal(w, data, amount, offset);
}

// SQLite empties the WAL at the last close (SQLITE_FCNTL_PERSIST_WAL with a journal size
// limit: see sqlite_db.cc) by truncating it to 0 bytes. A WAL that small is kept at its size
// instead, with its header zeroed: SQLite reads a WAL whose header has no magic number as
// empty, so no frame in it is ever replayed (onto this store file, or one restored from a
// backup), as after a truncation. But the next process then writes its frames over blocks
// the file already has, and its syncs write only data: a truncated WAL grows again under
// the next commit, and each of its two syncs (the new header's, the commit's) then also
// commits the file's new size to the file system's journal (~0.4 ms of a CLI command's
// ~11 here). The zeroed header is not synced, as the truncation was not: until it reaches
// the disk, the old header and frames there hold only pages the checkpoint just copied and
// synced into the store file. (The window differs: ext4 commits a truncation within ~5 s,
// and writes back a data write within ~30 s. It matters only to a store file restored from
// a backup, itself unsynced, just before a crash of the machine.) A larger WAL (a server's) is
// truncated as SQLite asks, so that its space goes back; so is any truncation to another size.
constexpr sqlite3_int64 kKeptWalBytes = 1 << 20;

int WalTruncate(sqlite3_file* f, sqlite3_int64 size) {
  WalFile* w = Wal(f);
  if (int rc = FlushHeld(w); rc != SQLITE_OK) return rc;
  if (size == 0) {
    sqlite3_int64 now = 0;
    if (w->real->pMethods->xFileSize(w->real, &now) == SQLITE_OK && now >= kWalHeaderBytes &&
        now <= kKeptWalBytes) {
      static const unsigned char kZeroHeader[kWalHeaderBytes] = {};
      if (WriteReal(w, kZeroHeader, kWalHeaderBytes, 0) == SQLITE_OK) return SQLITE_OK;
      // Not written (EIO; ENOSPC where an overwrite needs new blocks): the header may still
      // be valid, and SQLite only logs a failed emptying. Truncated as asked instead.
    }
  }
  if (w->end > size) w->end = size;
  return w->real->pMethods->xTruncate(w->real, size);
}

int WalSync(sqlite3_file* f, int flags) {
  if (int rc = FlushHeld(Wal(f)); rc != SQLITE_OK) return rc;
  return Real(f)->pMethods->xSync(Real(f), flags);
}

int WalFileSize(sqlite3_file* f, sqlite3_int64* size) {
  if (int rc = FlushHeld(Wal(f)); rc != SQLITE_OK) return rc;
  return Real(f)->pMethods->xFileSize(Real(f), size);
}

int WalLock(sqlite3_file* f, int level) {
  if (int rc = FlushHeld(Wal(f)); rc != SQLITE_OK) return rc;
  return Real(f)->pMethods->xLock(Real(f), level);
}

int WalUnlock(sqlite3_file* f, int level) {
  if (int rc = FlushHeld(Wal(f)); rc != SQLITE_OK) return rc;
  return Real(f)->pMethods->xUnlock(Real(f), level);
}

int WalCheckReservedLock(sqlite3_file* f, int* out) {
  if (int rc = FlushHeld(Wal(f)); rc != SQLITE_OK) return rc;
  return Real(f)->pMethods->xCheckReservedLock(Real(f), out);
}

int WalFileControl(sqlite3_file* f, int op, void* arg) {
  if (int rc = FlushHeld(Wal(f)); rc != SQLITE_OK) return rc;
  return Real(f)->pMethods->xFileControl(Real(f), op, arg);
}

int WalSectorSize(sqlite3_file* f) {
  return Real(f)->pMethods->xSectorSize(Real(f));
}

int WalDeviceCharacteristics(sqlite3_file* f) {
  return Real(f)->pMethods->xDeviceCharacteristics(Real(f));
}

// Version 2 and 3 methods: SQLite uses none of them on a WAL file (the WAL index is the
// database file's shared memory, and a WAL is never memory-mapped); forwarded all the same.
int WalShmMap(sqlite3_file* f, int region, int bytes, int extend, void volatile** out) {
  return Real(f)->pMethods->xShmMap(Real(f), region, bytes, extend, out);
}
int WalShmLock(sqlite3_file* f, int offset, int n, int flags) {
  return Real(f)->pMethods->xShmLock(Real(f), offset, n, flags);
}
void WalShmBarrier(sqlite3_file* f) {
  Real(f)->pMethods->xShmBarrier(Real(f));
}
int WalShmUnmap(sqlite3_file* f, int remove) {
  return Real(f)->pMethods->xShmUnmap(Real(f), remove);
}
int WalFetch(sqlite3_file* f, sqlite3_int64 offset, int amount, void** out) {
  if (int rc = FlushHeld(Wal(f)); rc != SQLITE_OK) return rc;
  return Real(f)->pMethods->xFetch(Real(f), offset, amount, out);
}
int WalUnfetch(sqlite3_file* f, sqlite3_int64 offset, void* page) {
  return Real(f)->pMethods->xUnfetch(Real(f), offset, page);
}

// The WAL file's methods, at the version of the default VFS's own (3 for unix), so that a
// call SQLite would not make on the default file is not offered here either.
const sqlite3_io_methods* WalMethodsFor(const sqlite3_io_methods* real) {
  static const sqlite3_io_methods* made = [real] {
    sqlite3_io_methods m{};
    m.iVersion = real->iVersion < 3 ? real->iVersion : 3;
    m.xClose = WalClose;
    m.xRead = WalRead;
    m.xWrite = WalWrite;
    m.xTruncate = WalTruncate;
    m.xSync = WalSync;
    m.xFileSize = WalFileSize;
    m.xLock = WalLock;
    m.xUnlock = WalUnlock;
    m.xCheckReservedLock = WalCheckReservedLock;
    m.xFileControl = WalFileControl;
    m.xSectorSize = WalSectorSize;
    m.xDeviceCharacteristics = WalDeviceCharacteristics;
    if (m.iVersion >= 2) {
      m.xShmMap = WalShmMap;
      m.xShmLock = WalShmLock;
      m.xShmBarrier = WalShmBarrier;
      m.xShmUnmap = WalShmUnmap;
    }
    if (m.iVersion >= 3) {
      m.xFetch = WalFetch;
      m.xUnfetch = WalUnfetch;
    }
    g_wal_methods = m;
    return &g_wal_methods;
  }();
  // The default VFS gives every WAL file the same methods; a different set (not expected)
  // is not wrapped rather than wrapped with the wrong version.
  return made->iVersion == (real->iVersion < 3 ? real->iVersion : 3) ? made : nullptr;
}

// Opens a WAL file through the default VFS, into the space after ours, and wraps it.
int OpenWal(const char* name, sqlite3_file* file, int flags, int* out_flags) {
  WalFile* w = Wal(file);
  std::memset(w, 0, sizeof(WalFile));
  w->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kWalFileBytes);
  w->real->pMethods = nullptr;
  int rc = SQLITE_CANTOPEN;
  // The store keeps its WAL file between processes (SQLITE_FCNTL_PERSIST_WAL): emptied to
  // 0 bytes when the last connection closes, not deleted. A CLI command then neither
  // creates nor unlinks it. But SQLite opens a WAL with SQLITE_OPEN_CREATE every time, and
  // the unix VFS fsyncs the directory after the first write to any file opened so, 0.1-0.2
  // ms per command. A WAL file that exists is opened without SQLITE_OPEN_CREATE: its
  // directory entry was made durable by whoever created it. A WAL created here still gets
  // its directory fsync.
  if ((flags & SQLITE_OPEN_CREATE) && name != nullptr && ::access(name, F_OK) == 0) {
    rc = g_base_vfs->xOpen(g_base_vfs, name, w->real, flags & ~SQLITE_OPEN_CREATE, out_flags);
    // Gone since (an older airlock deleted it on close): created as usual.
  }
  if (rc == SQLITE_CANTOPEN) {
    w->real->pMethods = nullptr;
    rc = g_base_vfs->xOpen(g_base_vfs, name, w->real, flags, out_flags);
  }
  if (rc != SQLITE_OK) {
    if (w->real->pMethods != nullptr) w->real->pMethods->xClose(w->real);
    w->base.pMethods = nullptr;  // SQLite calls no method of a file that failed to open
    return rc;
  }
  const sqlite3_io_methods* methods = WalMethodsFor(w->real->pMethods);
  if (methods == nullptr) {
    w->real->pMethods->xClose(w->real);
    w->base.pMethods = nullptr;
    return SQLITE_CANTOPEN;
  }
  w->base.pMethods = methods;
  return SQLITE_OK;
}

int StoreOpen(sqlite3_vfs* /*vfs*/, const char* name, sqlite3_file* file, int flags,
              int* out_flags) {
  if (flags & SQLITE_OPEN_WAL) return OpenWal(name, file, flags, out_flags);
  return g_base_vfs->xOpen(g_base_vfs, name, file, flags, out_flags);
}

}  // namespace

const char* StoreVfsName() {
  static const char* name = [] {
    static sqlite3_vfs vfs;
    g_base_vfs = sqlite3_vfs_find(nullptr);
    if (g_base_vfs == nullptr) return static_cast<const char*>(nullptr);
    vfs = *g_base_vfs;
    vfs.zName = "airlock-store";
    vfs.pNext = nullptr;
    vfs.szOsFile = g_base_vfs->szOsFile + kWalFileBytes;
    vfs.xOpen = StoreOpen;
    if (sqlite3_vfs_register(&vfs, /*makeDflt=*/0) != SQLITE_OK)
      return static_cast<const char*>(nullptr);
    return "airlock-store";
  }();
  return name;
}

WalWriteCounts StoreVfsWalWriteCounts() {
  return {g_combined.load(std::memory_order_relaxed), g_alone.load(std::memory_order_relaxed)};
}

}  // namespace airlock::sqlite
