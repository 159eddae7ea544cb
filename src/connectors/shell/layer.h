// The effect of a shell command as file states, and the machinery to apply such states to
// a real workspace safely: capture from an overlay upper layer, a content-addressed blob
// store, state checks, and a journaled apply that never follows a symlink.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/types.h"

namespace airlock::shell {

// What the tree holds at one path.
struct PathState {
  enum class Type { kAbsent, kFile, kDir, kSymlink, kOther };
  std::string path;           // relative to the workspace, '/'-separated, never "", ".", ".."
  Type type = Type::kAbsent;
  uint32_t mode = 0;          // permission bits incl. setuid/setgid/sticky (07777)
  int64_t size = 0;           // files: bytes; symlinks: target length
  std::string sha256;         // files: hex content hash = blob key ("" = not hashed: large
                              // lower file; compared by size+mtime+ino instead)
  std::string link_target;    // symlinks
  int64_t mtime_ns = 0;       // lower-state fingerprint (0 in an after-state)
  uint64_t ino = 0;           // lower-state fingerprint (0 in an after-state)
};
const char* PathTypeName(PathState::Type t);  // absent file dir symlink other

// Every path the command touched: its state in the workspace before (the lower layer) and
// the state the command left (the upper layer). Same paths in the same order (sorted by
// path, so a parent precedes its children). A deleted directory lists every path below it.
struct Layer {
  std::vector<PathState> before;
  std::vector<PathState> after;
};
Json LayerToJson(const Layer& layer);
Result<Layer> LayerFromJson(const Json& j);  // validates paths (no "..", no absolute)
std::string LayerHash(const Layer& layer);   // hex SHA-256 of the canonical JSON

// The rule every path from JSON (and every captured path) must pass: relative,
// '/'-separated, at most 4096 bytes, valid UTF-8, no NUL, no empty, "." or ".." component.
// Names that break it (e.g. non-UTF-8 bytes) are refused by CaptureLayer, never escaped.
Status ValidateLayerPath(std::string_view path);

// Content-addressed blobs under DIR/ab/abcdef... (SHA-256 of the content). Writes go to a
// temporary file, fsync, rename: a blob that exists is complete.
class BlobStore {
 public:
  explicit BlobStore(std::string dir);
  Result<std::string> PutFile(int fd);              // copies from fd's current offset
  Result<std::string> PutBytes(const std::string& bytes);
  Result<int> Open(const std::string& sha256) const;  // O_RDONLY|O_CLOEXEC; verifies nothing
  Result<std::string> ReadAll(const std::string& sha256, int64_t max_bytes) const;
  bool Has(const std::string& sha256) const;
  // Has, for a blob about to be named by a new record: it is also marked as just used (its
  // mtime), so that a collection running meanwhile (SweepBlobs) leaves it.
  bool Reuse(const std::string& sha256) const;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

// What SweepBlobs did (or, with dry_run, would do).
struct BlobSweep {
  int64_t kept = 0;     // blobs still named, or written or reused since the cutoff
  int64_t removed = 0;  // blobs no record names, untouched since the cutoff
  int64_t bytes_removed = 0;
  int64_t temporaries_removed = 0;  // half-written blobs of an interrupted write
};

// Removes every blob in `dir` that is not in `live` and was last written or reused (Reuse,
// PutFile and PutBytes of a blob that exists) before `cutoff_s` (seconds since the epoch),
// and every temporary file older than that. A blob that a writer reuses while the sweep runs
// is either kept (its mtime is new by the time the sweep looks) or removed before the writer
// looks, which then writes it again: the two take a lock on DIR/.lock in turn. A missing
// `dir` holds nothing.
Result<BlobSweep> SweepBlobs(const std::string& dir, const std::set<std::string>& live,
                             int64_t cutoff_s, bool dry_run);

struct CaptureOptions {
  int64_t hash_lower_max_bytes = 1 << 20;  // lower files up to this size get a sha256
  int64_t diff_max_file_bytes = 64 << 10;  // text files up to this size get a unified diff
  int64_t diff_max_total_bytes = 256 << 10;  // diffs stop after this much output
};

struct CapturedLayer {
  Layer layer;
  // One entry per changed path, sorted by path; `diff` filled for small text files until
  // the budget runs out. A metadata-identical copy-up (content, type and mode equal, e.g.
  // `touch`) is not a change and is left out of both lists.
  std::vector<FileChange> changes;
  int64_t added = 0, changed = 0, deleted = 0;  // counts over files, dirs and symlinks
  std::vector<std::string> refused;  // "path: why" for what a commit never creates
                                     // (device nodes, fifos, sockets, setuid/setgid files)
  // Refused paths are left out of `layer`, with three precisions: a setuid/setgid file is
  // kept with mode & ~06000 (the refusal names the dropped bits); a non-UTF-8 name is
  // refused, not escaped; deleting or replacing a lower directory that holds something
  // refused (or a lower device/fifo/socket) is refused whole, since it could not be undone.
};

// Walks an overlayfs upper directory (whiteouts = char 0/0 devices, opaque directories =
// xattr trusted.overlay.opaque "y") against the lower directory `workspace`; stores the
// content of every added or changed file in `blobs`. Cost follows the upper layer; a lower
// subtree is walked only where it was deleted, replaced or hidden by an opaque directory.
// Upper entries made by redirect_dir or metacopy (their data lives elsewhere in the lower)
// fail with kFailedPrecondition rather than being guessed at.
Result<CapturedLayer> CaptureLayer(const std::string& upper, const std::string& workspace,
                                   BlobStore& blobs, const CaptureOptions& options);

// Compares the workspace with `expected` path by path. strict: also mtime and inode (the
// lower-state fingerprint of a preview); else type, mode, size and content hash. Fills
// *differing with "path: was X, now Y" lines; ok when empty.
Status CheckState(int workspace_fd, const std::vector<PathState>& expected, bool strict,
                  std::vector<std::string>* differing);

// Reads the current state of `paths` and stores the content of each file in `blobs` (the
// pre-images a rollback restores).
Result<std::vector<PathState>> SnapshotState(int workspace_fd,
                                             const std::vector<PathState>& paths,
                                             BlobStore& blobs);

// Makes every path match `to`: deletions deepest first, then directories and files
// shallowest first. Every path is resolved with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
// RESOLVE_NO_MAGICLINKS) from workspace_fd; files are written to a temporary name in their
// directory, fsynced and renamed over (renameat2); symlinks are created, never followed.
// Idempotent: applying the same states twice is the same as once (recovery relies on it).
// Strict: a directory to remove (or to replace) that still holds unlisted entries is a
// kConflict error, never removed recursively. Everything is validated (paths, parent types,
// blobs present) before the first change; file content is checked against its hash while
// copied. Run as root, a replaced entry keeps its owner and a new one takes its directory's.
Status ApplyState(int workspace_fd, const std::vector<PathState>& to, const BlobStore& blobs);

// The commit record of one target: DIR/journal/ID.json, DIR/applied/ID, DIR/rolled_back/ID.
// Commit: journal {from, to} (fsync) -> ApplyState(to) -> marker (fsync) -> drop journal.
// A crash leaves the journal; Recover() reverts it by ApplyState(from).
// Apply of an id already applied, and Rollback of one already rolled back, do nothing;
// Rollback of an id never applied is kFailedPrecondition. `from` must hold a state (with
// stored content) for every path of `to`, checked before the journal is written. An
// ApplyState error is reverted at once (ApplyState(from)); the journal stays only if that
// fails too. Crash points: shell_apply_mid, shell_apply_before_marker, shell_rollback_mid,
// shell_rollback_before_marker. Callers serialize calls for one workspace.
class Committer {
 public:
  Committer(std::string state_dir, int workspace_fd, const BlobStore* blobs);
  Status Apply(const std::string& action_id, const std::vector<PathState>& from,
               const std::vector<PathState>& to);
  Status Rollback(const std::string& action_id, const std::vector<PathState>& from,
                  const std::vector<PathState>& to);
  Result<bool> IsApplied(const std::string& action_id);     // recovers first
  Result<bool> IsRolledBack(const std::string& action_id);  // recovers first
  Status Recover(const std::string& action_id);  // reverts an unfinished journal of the id

 private:
  std::string dir_;
  int ws_fd_;
  const BlobStore* blobs_;
};

}  // namespace airlock::shell
