// Committer: applies and rolls back path states with a journal, so that a crash at any
// point leaves either the complete change (marker written) or, after Recover(), none of it.
//
//   DIR/journal/ID.json    {op, id, from, to}: written (tmp, fsync, rename, fsync dir)
//                          before the first change to the workspace
//   DIR/applied/ID         the apply finished (created, then the directory fsynced)
//   DIR/rolled_back/ID     the rollback finished
//
// Recover() finds a journal whose marker is missing and re-applies `from`: ApplyState is
// idempotent and accepts any partial state of `to`, so that restores the state before.
// A journal whose marker exists only missed its removal; it is dropped.
//
// Not meant for concurrent use on one action id: the caller (the gateway) serializes them.
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>

#include "connectors/shell/layer.h"
#include "connectors/shell/layer_fs.h"
#include "core/crash.h"
#include "core/json.h"

namespace airlock::shell {
namespace {

using layer_detail::ErrnoStatus;
using layer_detail::UniqueFd;

constexpr const char* kJournal = "journal";
constexpr const char* kApplied = "applied";
constexpr const char* kRolledBack = "rolled_back";

// Ids become file names: only [A-Za-z0-9_-], at most 64 characters.
Status ValidateActionId(const std::string& id) {
  if (id.empty() || id.size() > 64) {
    return Status::InvalidArgument("action id must have 1 to 64 characters");
  }
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok)
      return Status::InvalidArgument("action id '" + id + "' has a character beyond [A-Za-z0-9_-]");
  }
  return Status::Ok();
}

Status FsyncDir(const std::string& dir) {
  UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus("open '" + dir + "'", errno);
  if (fsync(fd.get()) != 0) return ErrnoStatus("fsync '" + dir + "'", errno);
  return Status::Ok();
}

Status EnsureDir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoStatus("mkdir '" + dir + "'", errno);
  }
  return Status::Ok();
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

Status WriteFully(int fd, const std::string& data, const std::string& what) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("write '" + what + "'", errno);
    off += static_cast<size_t>(n);
  }
  return Status::Ok();
}

// A complete file or none, durable once this returns.
Status WriteFileDurably(const std::string& dir, const std::string& name, const std::string& data) {
  std::string tmp = dir + "/." + name + ".tmp";
  std::string path = dir + "/" + name;
  UniqueFd fd(open(tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoStatus("create '" + tmp + "'", errno);
  Status st = WriteFully(fd.get(), data, tmp);
  if (st.ok() && fsync(fd.get()) != 0) st = ErrnoStatus("fsync '" + tmp + "'", errno);
  if (st.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    st = ErrnoStatus("rename '" + tmp + "'", errno);
  }
  if (!st.ok()) {
    unlink(tmp.c_str());
    return st;
  }
  return FsyncDir(dir);
}

Status RemoveDurably(const std::string& dir, const std::string& name) {
  std::string path = dir + "/" + name;
  if (unlink(path.c_str()) != 0 && errno != ENOENT)
    return ErrnoStatus("remove '" + path + "'", errno);
  return FsyncDir(dir);
}

Result<std::string> ReadFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus("open '" + path + "'", errno);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("read '" + path + "'", errno);
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

struct Journal {
  std::string op;  // apply | rollback
  std::vector<PathState> from, to;
};

Result<Journal> ReadJournal(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto j = ParseJson(text);
  if (!j.ok()) return Status::Corruption("journal '" + path + "': " + j.status().message());
  Journal out;
  try {
    auto op = j->find("op");
    auto from = j->find("from");
    auto to = j->find("to");
    if (!j->is_object() || op == j->end() || !op->is_string() || from == j->end() ||
        to == j->end()) {
      return Status::Corruption("journal '" + path + "' lacks op, from or to");
    }
    out.op = op->get<std::string>();
    auto f = layer_detail::PathStatesFromJson(*from, "journal.from");
    auto t = layer_detail::PathStatesFromJson(*to, "journal.to");
    if (!f.ok() || !t.ok()) {
      return Status::Corruption("journal '" + path +
                                "': " + (f.ok() ? t.status() : f.status()).message());
    }
    out.from = std::move(f).value();
    out.to = std::move(t).value();
  } catch (const std::exception& e) {
    return Status::Corruption("journal '" + path + "': " + e.what());
  }
  if (out.op != "apply" && out.op != "rollback") {
    return Status::Corruption("journal '" + path + "': unknown op '" + out.op + "'");
  }
  return out;
}

// Before the first change: `from` must be restorable (every file's content stored) and must
// cover every path `to` changes, or a crash could not be undone.
Status CheckRevertible(const std::vector<PathState>& from, const std::vector<PathState>& to,
                       const BlobStore& blobs) {
  RETURN_IF_ERROR(layer_detail::ValidateStates(from, true).Annotate("from"));
  RETURN_IF_ERROR(layer_detail::ValidateStates(to, true).Annotate("to"));
  std::set<std::string> covered;
  for (const PathState& s : from) {
    covered.insert(s.path);
    if (s.type == PathState::Type::kFile && !blobs.Has(s.sha256)) {
      return Status::FailedPrecondition("no saved pre-image of '" + s.path + "'");
    }
  }
  for (const PathState& s : to) {
    if (!covered.count(s.path)) {
      return Status::InvalidArgument("'" + s.path + "' changes but has no state to revert to");
    }
  }
  return Status::Ok();
}

// Shared by Apply and Rollback: journal -> ApplyState(to) -> marker -> drop journal.
Status Run(const std::string& dir, int ws_fd, const BlobStore& blobs, const std::string& id,
           const char* op, const char* marker_dir, const char* mid_point,
           const char* before_marker_point, const std::vector<PathState>& from,
           const std::vector<PathState>& to) {
  RETURN_IF_ERROR(CheckRevertible(from, to, blobs));
  std::string journal_dir = dir + "/" + kJournal;
  std::string name = id + ".json";
  Json j = {{"op", op},
            {"id", id},
            {"from", layer_detail::PathStatesToJson(from)},
            {"to", layer_detail::PathStatesToJson(to)}};
  RETURN_IF_ERROR(WriteFileDurably(journal_dir, name, CanonicalJson(j)));
  Status st = layer_detail::ApplyStateWithCrashPoint(ws_fd, to, blobs, mid_point);
  if (!st.ok()) {
    // Undo the part that was done; the journal stays if even that fails, for Recover().
    Status revert = ApplyState(ws_fd, from, blobs);
    if (!revert.ok()) {
      return Status(st.code(), std::string(op) + " failed: " + st.message() +
                                   "; reverting failed too (journal kept): " + revert.message());
    }
    RETURN_IF_ERROR(RemoveDurably(journal_dir, name));
    return st.Annotate(std::string(op) + " failed and was reverted");
  }
  CrashPoint(before_marker_point);
  std::string markers = dir + "/" + marker_dir;
  std::string marker = markers + "/" + id;
  UniqueFd fd(open(marker.c_str(), O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoStatus("create marker '" + marker + "'", errno);
  RETURN_IF_ERROR(FsyncDir(markers));
  return RemoveDurably(journal_dir, name);
}

Status EnsureLayout(const std::string& dir) {
  RETURN_IF_ERROR(EnsureDir(dir));
  for (const char* sub : {kJournal, kApplied, kRolledBack}) {
    RETURN_IF_ERROR(EnsureDir(dir + "/" + sub));
  }
  return Status::Ok();
}

}  // namespace

Committer::Committer(std::string state_dir, int workspace_fd, const BlobStore* blobs)
    : dir_(std::move(state_dir)), ws_fd_(workspace_fd), blobs_(blobs) {}

Status Committer::Apply(const std::string& action_id, const std::vector<PathState>& from,
                        const std::vector<PathState>& to) {
  RETURN_IF_ERROR(ValidateActionId(action_id));
  RETURN_IF_ERROR(EnsureLayout(dir_));
  RETURN_IF_ERROR(Recover(action_id));
  if (Exists(dir_ + "/" + kApplied + "/" + action_id)) return Status::Ok();  // done before
  return Run(dir_, ws_fd_, *blobs_, action_id, "apply", kApplied, "shell_apply_mid",
             "shell_apply_before_marker", from, to);
}

// `from` is the state the apply left (its after-states), `to` the one before it.
Status Committer::Rollback(const std::string& action_id, const std::vector<PathState>& from,
                           const std::vector<PathState>& to) {
  RETURN_IF_ERROR(ValidateActionId(action_id));
  RETURN_IF_ERROR(EnsureLayout(dir_));
  RETURN_IF_ERROR(Recover(action_id));
  if (Exists(dir_ + "/" + kRolledBack + "/" + action_id)) return Status::Ok();
  if (!Exists(dir_ + "/" + kApplied + "/" + action_id)) {
    return Status::FailedPrecondition("action " + action_id + " was not applied");
  }
  return Run(dir_, ws_fd_, *blobs_, action_id, "rollback", kRolledBack, "shell_rollback_mid",
             "shell_rollback_before_marker", from, to);
}

Status Committer::Recover(const std::string& action_id) {
  RETURN_IF_ERROR(ValidateActionId(action_id));
  std::string journal_dir = dir_ + "/" + kJournal;
  // A journal still at its temporary name was never renamed into place, so no change began.
  std::string tmp = journal_dir + "/." + action_id + ".json.tmp";
  if (unlink(tmp.c_str()) != 0 && errno != ENOENT && errno != ENOTDIR) {
    return ErrnoStatus("remove '" + tmp + "'", errno);
  }
  std::string name = action_id + ".json";
  std::string path = journal_dir + "/" + name;
  if (!Exists(path)) return Status::Ok();
  ASSIGN_OR_RETURN(Journal journal, ReadJournal(path));
  const char* marker_dir = journal.op == "apply" ? kApplied : kRolledBack;
  if (!Exists(dir_ + "/" + marker_dir + "/" + action_id)) {
    RETURN_IF_ERROR(ApplyState(ws_fd_, journal.from, *blobs_)
                        .Annotate("recover " + journal.op + " of " + action_id));
  }
  return RemoveDurably(journal_dir, name);
}

Result<bool> Committer::IsApplied(const std::string& action_id) {
  RETURN_IF_ERROR(Recover(action_id));
  return Exists(dir_ + "/" + kApplied + "/" + action_id);
}

Result<bool> Committer::IsRolledBack(const std::string& action_id) {
  RETURN_IF_ERROR(Recover(action_id));
  return Exists(dir_ + "/" + kRolledBack + "/" + action_id);
}

}  // namespace airlock::shell
