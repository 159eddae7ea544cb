// The store: actions, votes, undo records, breakers and the audit chain.
//
// One interface, so that a PostgreSQL backend can serve several gateways later; today one
// SQLite database in WAL mode. Every state change and its audit event are written in one
// transaction (Store::Transact), so the history and the state can never disagree.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/audit_event.h"
#include "core/status.h"
#include "core/types.h"

namespace airlock {

// A circuit breaker for one (target, agent). While open, every write of that agent on that
// target needs approval, until an approver resets it.
struct Breaker {
  std::string target;
  std::string agent;
  bool open = false;
  int64_t changed_ms = 0;
  std::string reason;
};

struct ActionFilter {
  std::optional<ActionStatus> status;  // none: all
  std::string agent;                   // empty: any
  int limit = 1000;
  std::string target;  // empty: any
  bool newest_first = false;
};

// How many recorded actions have this status, risk and target.
struct ActionCount {
  ActionStatus status = ActionStatus::kPending;
  Risk risk = Risk::kRead;
  std::string target;
  int64_t count = 0;
};

// Operations inside one transaction. Obtained only through Store::Transact / Store::Read.
class StoreTxn {
 public:
  virtual ~StoreTxn() = default;

  // AlreadyExists -> FailedPrecondition.
  Status InsertAction(const Action& a) { return InsertAction(a, StoredActionBody(a)); }
  // The same with the row's body made already (StoredActionBody(a)): a caller makes it before
  // it queues a grouped closure, off the committer thread that every commit waits for.
  virtual Status InsertAction(const Action& a, const std::string& body) = 0;
  virtual Status UpdateAction(const Action& a) = 0;  // every field but votes; NotFound
  // The action with its votes (ordered by time), or nullopt.
  virtual Result<std::optional<Action>> GetAction(const std::string& id) = 0;
  // Sorted by creation time, oldest first (newest first if filter.newest_first).
  virtual Result<std::vector<Action>> ListActions(const ActionFilter& filter) = 0;
  virtual Result<std::vector<ActionCount>> CountActions() = 0;
  // FailedPrecondition if this approver already voted on this action.
  virtual Status AddVote(const std::string& action_id, const Vote& v) = 0;

  virtual Status PutUndo(const std::string& action_id, const UndoRecord& undo) = 0;
  virtual Result<std::optional<UndoRecord>> GetUndo(const std::string& action_id) = 0;

  // Write actions (risk above read, any status) by agent on target created at or after
  // since_ms: the rate-limit window.
  virtual Result<int64_t> CountWritesSince(const std::string& agent, const std::string& target,
                                           int64_t since_ms) = 0;

  virtual Result<std::optional<Breaker>> GetBreaker(const std::string& target,
                                                    const std::string& agent) = 0;
  virtual Status PutBreaker(const Breaker& b) = 0;
  virtual Result<std::vector<Breaker>> ListBreakers() = 0;

  // Appends to the chain: fills seq (head + 1), prev_hash and hash, and returns the stored
  // event. at_ms is kept as given (0: now).
  virtual Result<AuditEvent> AppendAudit(AuditEvent e) = 0;

  // Staged records: a new action and its first audit event written as one row, so that the
  // commit that makes them durable is small (one page where the full record touches seven:
  // the action, its three indexes, the event, its index, the chain head). IngestStaged moves
  // them, in staging order, into actions and the chain, where everything else sees them; the
  // event keeps its at_ms and gets its seq and hash then. A store that stages nothing (the
  // default) inserts and appends at once.
  virtual Status StageRecord(const Action& a, AuditEvent e) {
    RETURN_IF_ERROR(InsertAction(a));
    e.action_id = a.id;
    return AppendAudit(std::move(e)).status();
  }
  // How many staged records it moved; FailedPrecondition if one's action already exists.
  virtual Result<int64_t> IngestStaged() { return int64_t{0}; }
  virtual Result<bool> AnyStaged() { return false; }
};

struct AuditHead {
  int64_t seq = 0;  // 0: empty chain
  std::string hash = kGenesisHash;
};

// How a SQLite store's WAL checkpoints went (WalCheckpointer::Counts), for /metrics.
struct CheckpointStats {
  uint64_t passes = 0;          // run by the checkpoint thread
  uint64_t finishes = 0;        // run by a commit, after which the WAL started over
  uint64_t inline_runs = 0;     // run by a commit because the thread fell behind
  uint64_t failures = 0;        // checkpoints or syncs that failed (the first stops them all)
  uint64_t restarts = 0;        // commits that started the WAL over
  int64_t most_wal_frames = 0;  // the longest WAL a commit reported
};

class Store {
 public:
  virtual ~Store() = default;

  // Runs fn in one write transaction (BEGIN IMMEDIATE). Commits if fn returns OK and the
  // commit succeeds; otherwise rolls back and returns the error. Durable on return.
  virtual Status Transact(const std::function<Status(StoreTxn&)>& fn) = 0;

  // Like Transact, but batched with other threads' calls into one durable commit (group
  // commit). One fn that fails is rolled back alone; the others commit. fn may run more than
  // once (the batch is retried with a savepoint per fn when one fails), so it must act only
  // through its StoreTxn. The future resolves after the shared commit. Used by the server and
  // the audit benchmark.
  virtual std::future<Status> TransactGrouped(std::function<Status(StoreTxn&)> fn) = 0;
  // TransactGrouped(fn).get(), except that a caller with nobody to group with (no commit
  // running or queued) commits fn itself, on its own thread, without waking the committer.
  virtual Status TransactGroupedWait(std::function<Status(StoreTxn&)> fn) {
    return TransactGrouped(std::move(fn)).get();
  }

  // Compiles ahead, on the connection Transact uses, the statements of a transaction that
  // inserts an action and appends one audit event (BEGIN IMMEDIATE, the staged records'
  // read, the two inserts, the chain's head read and update, COMMIT), so that the first such
  // Transact does not: a CLI command calls it while its sandbox is being built, and records
  // the outcome after. Takes no SQLite lock and writes nothing (it waits for the store's
  // own write mutex, as Transact does). A store with nothing to compile keeps this default.
  virtual Status PrepareRecordStatements() { return Status::Ok(); }

  // Like Transact, but durable on return only against a crash of this process, not of the
  // machine: the commit is handed to the operating system, and synced to disk by StartSync,
  // SyncUnsynced, the next Transact that writes anything, or the store's close. For records
  // whose caller may not wait for a disk (airlock mcp stdio's read calls), which starts the
  // sync once its reply is out. A sync that fails is sticky: every later write (this, Transact,
  // TransactGrouped) and SyncUnsynced returns its error (fail closed), since the commits it
  // covered may be lost, and with them the WAL frames after them. A store that cannot tell
  // the two keeps these defaults.
  virtual Status TransactUnsynced(const std::function<Status(StoreTxn&)>& fn) {
    return Transact(fn);
  }
  // Starts syncing what TransactUnsynced committed, on a thread of the store's; returns at
  // once.
  virtual void StartSync() {}
  // Waits until everything TransactUnsynced committed before the call is on disk.
  virtual Status SyncUnsynced() { return Status::Ok(); }

  // TransactGrouped without a blocked caller: `done` gets the outcome right after the shared
  // commit, on the store's committer thread; it must be quick and must not throw or call
  // back into the store. A store without a committer of its own (a test wrapper) keeps this
  // default, which waits on the caller's thread.
  virtual void TransactGroupedAsync(std::function<Status(StoreTxn&)> fn,
                                    std::function<void(Status)> done) {
    done(TransactGrouped(std::move(fn)).get());
  }

  // Runs fn in one write transaction on the pending actions whose expiry time (expires_ms > 0)
  // is at or before now_ms, oldest first, at most `limit` of them; *due may be empty, and a
  // store may skip fn when it can tell that nothing is due. A store
  // shared by several gateways hands each due action to one of them (PostgreSQL: FOR UPDATE
  // SKIP LOCKED), so instances expiring at once share the work instead of queueing for it.
  // This default, for a store with one writer at a time, lists them inside Transact.
  virtual Status TransactDue(int64_t now_ms, int limit,
                             const std::function<Status(StoreTxn&, std::vector<Action>& due)>& fn) {
    return Transact([&](StoreTxn& t) -> Status {
      ActionFilter f;
      f.status = ActionStatus::kPending;
      f.limit = 0;  // all: the ones due are not necessarily the oldest created
      Result<std::vector<Action>> pending = t.ListActions(f);
      if (!pending.ok()) return pending.status();
      std::vector<Action> due;
      for (Action& a : *pending) {
        if (a.expires_ms > 0 && a.expires_ms <= now_ms) due.push_back(std::move(a));
      }
      std::stable_sort(due.begin(), due.end(), [](const Action& x, const Action& y) {
        return x.expires_ms < y.expires_ms;
      });
      if (limit > 0 && due.size() > static_cast<size_t>(limit)) due.resize(limit);
      return fn(t, due);
    });
  }

  // Runs fn in a read transaction (a consistent snapshot). Writes inside fail.
  virtual Status Read(const std::function<Status(StoreTxn&)>& fn) = 0;

  // The breaker of `agent` on `target`, as StoreTxn::GetBreaker in a Read; a store may answer
  // from a cache that it knows to be current.
  virtual Result<std::optional<Breaker>> LookupBreaker(const std::string& target,
                                                       const std::string& agent) {
    std::optional<Breaker> b;
    RETURN_IF_ERROR(Read([&](StoreTxn& t) -> Status {
      ASSIGN_OR_RETURN(b, t.GetBreaker(target, agent));
      return Status::Ok();
    }));
    return b;
  }

  // Calls fn for each audit event with seq > after_seq in order (only those of action_id if
  // non-empty) until fn returns false. Raw rows: no hash checking (audit::Verify does that).
  virtual Status ScanAudit(int64_t after_seq, const std::string& action_id,
                           const std::function<bool(const AuditEvent&)>& fn) = 0;

  // The head recorded beside the chain (updated in the same transaction as each append),
  // so that a truncated or extended chain is noticed.
  virtual Result<AuditHead> RecordedHead() = 0;

  // A store that checkpoints its log off its commits (SQLite once it groups commits:
  // store/wal_checkpointer.h) says how that goes; the others have nothing to say.
  virtual std::optional<CheckpointStats> Checkpoints() { return std::nullopt; }

  // Calls on_change (on a thread of the store's) soon after another process commits a
  // change, so that a follower of the chain need not wait for its next poll. A store that
  // cannot tell keeps this default and followers poll. An empty function stops the calls;
  // once WatchChanges returns, the previous function is no longer running or called.
  virtual void WatchChanges(std::function<void()> on_change) { (void)on_change; }

  // A claim on an action that every process using this store sees, held until the returned
  // function runs, and let go by the server if this process dies: it tells crash recovery a
  // running apply from a crashed one. wait=false: FailedPrecondition at once if another
  // process holds it. A store without such claims returns nullopt, and the caller uses the
  // claim-lock file beside the store (one host).
  virtual Result<std::optional<std::function<void()>>> ClaimAction(const std::string& action_id,
                                                                   bool wait) {
    (void)action_id;
    (void)wait;
    return std::optional<std::function<void()>>();
  }
};

struct StoreOptions {
  // Create the database (and its directory) when the file does not exist. An existing file
  // that is not an airlock store (corrupt, foreign schema, newer version) is never touched:
  // Open fails with Corruption naming the file.
  bool create_if_missing = true;
  // PRAGMA synchronous: FULL makes each commit durable before it returns.
  bool synchronous_full = true;
  // Once the store groups commits (a server: TransactGrouped*), its WAL is checkpointed on a
  // thread of its own instead of inside the commits (store/wal_checkpointer.h), with these
  // limits in WAL frames. pass_frames <= 0, or AIRLOCK_CHECKPOINT_THREAD=0 in the
  // environment (for measuring), keeps SQLite's automatic checkpoint.
  int checkpoint_pass_frames = 1000;
  int checkpoint_restart_frames = 8192;
  int checkpoint_inline_frames = 32768;
};

// Opens (or creates) the SQLite store at `path`.
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                               const StoreOptions& options = {});

}  // namespace airlock
