// The SQLite implementation of Store: one write connection (the one writer path), a small
// pool of read-only connections, and a committer thread for group commit.
#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>

#include "core/clock.h"
#include "core/json.h"
#include "core/trace.h"
#include "store/change_counter.h"
#include "store/group_commit.h"
#include "store/sqlite_db.h"
#include "store/sqlite_schema.h"
#include "store/store.h"
#include "store/wal_checkpointer.h"
#include "store/wal_syncer.h"

namespace airlock {
namespace {

using sqlite::Db;
using sqlite::Stmt;

// Stored JSON was written by us; the limit only has to be above anything we write, and keeps
// a hostile edit of the file from exhausting the stack.
constexpr int kStoredJsonMaxDepth = 512;
// Idle read connections kept for reuse.
constexpr size_t kMaxIdleReaders = 4;

// The statements of a record (an action inserted, an event appended, the head moved), named
// so that PrepareRecordStatements compiles the very texts the transaction runs.
constexpr const char* kReadHeadSql =
    "SELECT (SELECT value FROM meta WHERE key = 'audit_head_seq'), "
    "(SELECT value FROM meta WHERE key = 'audit_head_hash')";
constexpr const char* kInsertActionSql =
    "INSERT INTO actions(id, created_ms, updated_ms, agent, target, kind, status, risk, "
    "expires_ms, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
constexpr const char* kInsertAuditSql =
    "INSERT INTO audit(seq, at_ms, action_id, principal, event, payload, prev_hash, hash) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
constexpr const char* kUpdateHeadSql =
    "UPDATE meta SET value = CASE key WHEN 'audit_head_seq' THEN ?1 ELSE ?2 END "
    "WHERE key IN ('audit_head_seq', 'audit_head_hash')";
// A record not grouped first moves any staged ones into the chain (Gateway::Commit).
constexpr const char* kReadStagedSql =
    "SELECT seq, at_ms, action_id, created_ms, updated_ms, agent, target, kind, status, risk, "
    "expires_ms, body, principal, event, payload FROM staged ORDER BY seq";
constexpr const char* kBeginWriteSql = "BEGIN IMMEDIATE";
constexpr const char* kCommitSql = "COMMIT";

// The head recorded in meta beside the chain.
Result<AuditHead> ReadAuditHead(Db& db) {
  ASSIGN_OR_RETURN(Stmt s, db.Prepare(kReadHeadSql));
  ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row || s.IsNull(0) || s.IsNull(1)) {
    return Status::Corruption("the audit head is missing from " + db.path());
  }
  return AuditHead{s.Int(0), s.Text(1)};
}

// A transaction's change of breakers, on the counter that every process using the store
// shares (ChangeCounter): begun at its first PutBreaker, ended when this is destroyed. Declared
// before the transaction's TxnGuard, so that it ends after the commit or the rollback.
class BreakerChange {
 public:
  // open_counter: the store's counter, or null when it cannot be opened.
  explicit BreakerChange(std::function<std::shared_ptr<ChangeCounter>()> open_counter)
      : open_counter_(std::move(open_counter)) {}
  ~BreakerChange() {
    if (!counter_) return;
    counter_->End();
    // The file was replaced meanwhile: a reader may have cached what it read before this
    // commit under the new file's counts, which this change never touched. One more change,
    // counted there, makes it read again.
    if (!counter_->StillNamed()) {
      if (std::shared_ptr<ChangeCounter> now = open_counter_()) {
        now->Begin();
        now->End();
      }
    }
  }
  BreakerChange(const BreakerChange&) = delete;
  BreakerChange& operator=(const BreakerChange&) = delete;
  // Fail closed: a change that other processes cannot learn of is not made, or they would
  // keep answering from their caches.
  Status Begin() {
    if (counter_) return Status::Ok();
    counter_ = open_counter_();
    if (!counter_) {
      return Status::IoError(
          "cannot change a breaker: the change count beside the store (its -breakers file) "
          "cannot be opened or made");
    }
    counter_->Begin();
    return Status::Ok();
  }

 private:
  std::function<std::shared_ptr<ChangeCounter>()> open_counter_;
  std::shared_ptr<ChangeCounter> counter_;  // set once begun
};

class SqliteTxn final : public StoreTxn {
 public:
  // breakers: where PutBreaker says that it changes them; null in a read.
  explicit SqliteTxn(Db& db, BreakerChange* breakers = nullptr) : db_(db), breakers_(breakers) {}

  using StoreTxn::InsertAction;
  Status InsertAction(const Action& a, const std::string& body) override;
  Status UpdateAction(const Action& a) override;
  Result<std::optional<Action>> GetAction(const std::string& id) override;
  Result<std::vector<Action>> ListActions(const ActionFilter& filter) override;
  Result<std::vector<ActionCount>> CountActions() override;
  // Whether any pending action expires at or before now_ms (SqliteStore::TransactDue).
  Result<bool> AnyDue(int64_t now_ms);
  Status AddVote(const std::string& action_id, const Vote& v) override;
  Status PutUndo(const std::string& action_id, const UndoRecord& undo) override;
  Result<std::optional<UndoRecord>> GetUndo(const std::string& action_id) override;
  Result<int64_t> CountWritesSince(const std::string& agent, const std::string& target,
                                   int64_t since_ms) override;
  Result<std::optional<Breaker>> GetBreaker(const std::string& target,
                                            const std::string& agent) override;
  Status PutBreaker(const Breaker& b) override;
  Result<std::vector<Breaker>> ListBreakers() override;
  Result<AuditEvent> AppendAudit(AuditEvent e) override;
  Status StageRecord(const Action& a, AuditEvent e) override;
  Result<int64_t> IngestStaged() override;
  Result<bool> AnyStaged() override;

  // The audit head is read once per transaction and written back once, just before the
  // commit (FlushHead), instead of a read and a write per event: group commit appends
  // thousands of events per transaction. A closure rolled back to its savepoint restores the
  // head it started from (HeadState / RestoreHeadState).
  struct HeadState {
    std::optional<AuditHead> head;
    bool dirty = false;
  };
  HeadState SaveHeadState() const { return {head_, head_dirty_}; }
  void RestoreHeadState(const HeadState& h) {
    head_ = h.head;
    head_dirty_ = h.dirty;
  }
  Status FlushHead();

 private:
  Result<Action> ActionFromRow(const std::string& id, const std::string& body);
  Result<std::vector<Vote>> VotesOf(const std::string& action_id);

  Db& db_;
  BreakerChange* breakers_;
  std::optional<AuditHead> head_;  // the chain's head as of this transaction, once read
  bool head_dirty_ = false;        // appended since the head was read: meta needs updating
};

Status SqliteTxn::InsertAction(const Action& a, const std::string& body) {
  ASSIGN_OR_RETURN(Stmt s, db_.Prepare(kInsertActionSql));
  // Every value outlives `s`: the action, the body, and two static names.
  s.BindTextRef(1, a.id).Bind(2, a.created_ms).Bind(3, a.updated_ms).BindTextRef(4, a.agent);
  s.BindTextRef(5, a.target).BindTextRef(6, a.kind).BindTextRef(7, ActionStatusName(a.status));
  s.BindTextRef(8, RiskName(a.risk)).Bind(9, a.expires_ms).BindTextRef(10, body);
  Status st = s.Run();
  if (st.code() == StatusCode::kFailedPrecondition) {
    return Status::FailedPrecondition("action " + a.id + " already exists");
  }
  RETURN_IF_ERROR(st);
  for (const Vote& v : a.votes) RETURN_IF_ERROR(AddVote(a.id, v));
  return Status::Ok();
}

Status SqliteTxn::UpdateAction(const Action& a) {
  ASSIGN_OR_RETURN(
      Stmt s,
      db_.Prepare("UPDATE actions SET created_ms = ?2, updated_ms = ?3, agent = ?4, target = ?5, "
                  "kind = ?6, status = ?7, risk = ?8, expires_ms = ?9, body = ?10 WHERE id = ?1"));
  s.BindText(1, a.id).Bind(2, a.created_ms).Bind(3, a.updated_ms).BindText(4, a.agent);
  s.BindText(5, a.target).BindText(6, a.kind).BindText(7, ActionStatusName(a.status));
  s.BindText(8, RiskName(a.risk)).Bind(9, a.expires_ms).BindText(10, StoredActionBody(a));
  RETURN_IF_ERROR(s.Run());
  if (db_.Changes() == 0) return Status::NotFound("no action " + a.id);
  return Status::Ok();
}

Result<Action> SqliteTxn::ActionFromRow(const std::string& id, const std::string& body) {
  Result<Json> j = ParseJson(body, kStoredJsonMaxDepth);
  if (!j.ok()) {
    return Status::Corruption("action " + id + " in " + db_.path() + ": " + j.status().message());
  }
  Result<Action> a = ActionFromJson(*j);
  if (!a.ok()) return a.status().Annotate("action " + id + " in " + db_.path());
  ASSIGN_OR_RETURN(a->votes, VotesOf(id));
  return a;
}

Result<std::vector<Vote>> SqliteTxn::VotesOf(const std::string& action_id) {
  ASSIGN_OR_RETURN(Stmt s, db_.Prepare("SELECT approver, approve, reason, at_ms FROM votes "
                                       "WHERE action_id = ?1 ORDER BY at_ms, rowid"));
  s.BindText(1, action_id);
  std::vector<Vote> votes;
  while (true) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    votes.push_back(Vote{s.Text(0), s.Int(1) != 0, s.Text(2), s.Int(3)});
  }
  return votes;
}

Result<std::optional<Action>> SqliteTxn::GetAction(const std::string& id) {
  std::string body;
  {
    ASSIGN_OR_RETURN(Stmt s, db_.Prepare("SELECT body FROM actions WHERE id = ?1"));
    s.BindText(1, id);
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return std::optional<Action>();
    body = s.Text(0);
  }
  ASSIGN_OR_RETURN(Action a, ActionFromRow(id, body));
  return std::optional<Action>(std::move(a));
}

Result<std::vector<Action>> SqliteTxn::ListActions(const ActionFilter& filter) {
  // The oldest `limit` matching actions, oldest first (limit <= 0: all).
  std::vector<std::pair<std::string, std::string>> rows;  // id, body
  {
    // Only the conditions asked for, so that the indexes serve them: "?1 IS NULL OR status =
    // ?1" would make every listing (recovery's and expiry's, on every CLI command) a scan of
    // the whole history. At most eight statements, each prepared once.
    std::string sql = "SELECT id, body FROM actions WHERE 1";
    if (filter.status) sql += " AND status = ?1";
    if (!filter.agent.empty()) sql += " AND agent = ?2";
    if (!filter.target.empty()) sql += " AND target = ?4";
    sql += filter.newest_first ? " ORDER BY created_ms DESC, id DESC LIMIT ?3"
                               : " ORDER BY created_ms, id LIMIT ?3";
    ASSIGN_OR_RETURN(Stmt s, db_.Prepare(sql));
    if (filter.status) s.BindText(1, ActionStatusName(*filter.status));
    if (!filter.agent.empty()) s.BindText(2, filter.agent);
    s.Bind(3, filter.limit > 0 ? filter.limit : -1);
    if (!filter.target.empty()) s.BindText(4, filter.target);
    while (true) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      rows.emplace_back(s.Text(0), s.Text(1));
    }
  }
  std::vector<Action> actions;
  actions.reserve(rows.size());
  for (const auto& [id, body] : rows) {
    ASSIGN_OR_RETURN(Action a, ActionFromRow(id, body));
    actions.push_back(std::move(a));
  }
  return actions;
}

Result<bool> SqliteTxn::AnyDue(int64_t now_ms) {
  ASSIGN_OR_RETURN(Stmt s, db_.Prepare("SELECT 1 FROM actions WHERE status = 'pending' AND "
                                       "expires_ms > 0 AND expires_ms <= ?1 LIMIT 1"));
  s.Bind(1, now_ms);
  return s.Step();
}

Result<std::vector<ActionCount>> SqliteTxn::CountActions() {
  ASSIGN_OR_RETURN(Stmt s, db_.Prepare("SELECT status, risk, target, count(*) FROM actions "
                                       "GROUP BY status, risk, target ORDER BY 1, 2, 3"));
  std::vector<ActionCount> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    auto status = ParseActionStatus(s.Text(0));
    auto risk = ParseRisk(s.Text(1));
    if (!status || !risk) {
      return Status::Corruption("actions table: unknown status or risk '" + s.Text(0) + "', '" +
                                s.Text(1) + "'");
    }
    out.push_back({*status, *risk, s.Text(2), s.Int(3)});
  }
  return out;
}

Status SqliteTxn::AddVote(const std::string& action_id, const Vote& v) {
  ASSIGN_OR_RETURN(Stmt s,
                   db_.Prepare("INSERT INTO votes(action_id, approver, approve, reason, at_ms) "
                               "VALUES (?1, ?2, ?3, ?4, ?5)"));
  s.BindText(1, action_id).BindText(2, v.approver).Bind(3, v.approve ? 1 : 0);
  s.BindText(4, v.reason).Bind(5, v.at_ms);
  Status st = s.Run();
  if (st.code() != StatusCode::kFailedPrecondition) return st;
  // A constraint: either the primary key (a second vote) or the foreign key (no action).
  ASSIGN_OR_RETURN(Stmt probe, db_.Prepare("SELECT 1 FROM actions WHERE id = ?1"));
  probe.BindText(1, action_id);
  ASSIGN_OR_RETURN(bool exists, probe.Step());
  if (!exists) return Status::NotFound("no action " + action_id);
  return Status::FailedPrecondition(v.approver + " already voted on " + action_id);
}

Status SqliteTxn::PutUndo(const std::string& action_id, const UndoRecord& undo) {
  ASSIGN_OR_RETURN(
      Stmt s, db_.Prepare("INSERT OR REPLACE INTO undo(action_id, kind, data, reversible, note) "
                          "VALUES (?1, ?2, ?3, ?4, ?5)"));
  s.BindText(1, action_id).BindText(2, undo.kind).BindBlob(3, undo.data);
  s.Bind(4, undo.reversible ? 1 : 0).BindText(5, undo.note);
  Status st = s.Run();
  if (st.code() == StatusCode::kFailedPrecondition) {
    return Status::NotFound("no action " + action_id + " to keep an undo record for");
  }
  return st;
}

Result<std::optional<UndoRecord>> SqliteTxn::GetUndo(const std::string& action_id) {
  ASSIGN_OR_RETURN(
      Stmt s, db_.Prepare("SELECT kind, data, reversible, note FROM undo WHERE action_id = ?1"));
  s.BindText(1, action_id);
  ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<UndoRecord>();
  return std::optional<UndoRecord>(UndoRecord{s.Text(0), s.Blob(1), s.Int(2) != 0, s.Text(3)});
}

Result<int64_t> SqliteTxn::CountWritesSince(const std::string& agent, const std::string& target,
                                            int64_t since_ms) {
  ASSIGN_OR_RETURN(
      Stmt s,
      db_.Prepare(
          "SELECT count(*) FROM actions WHERE agent = ?1 AND target = ?2 AND created_ms >= ?3 "
          "AND risk <> 'read'"));
  s.BindText(1, agent).BindText(2, target).Bind(3, since_ms);
  ASSIGN_OR_RETURN(bool row, s.Step());
  return row ? s.Int(0) : int64_t{0};
}

Result<std::optional<Breaker>> SqliteTxn::GetBreaker(const std::string& target,
                                                     const std::string& agent) {
  ASSIGN_OR_RETURN(
      Stmt s,
      db_.Prepare(
          "SELECT open, changed_ms, reason FROM breakers WHERE target = ?1 AND agent = ?2"));
  s.BindText(1, target).BindText(2, agent);
  ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<Breaker>();
  return std::optional<Breaker>(Breaker{target, agent, s.Int(0) != 0, s.Int(1), s.Text(2)});
}

Status SqliteTxn::PutBreaker(const Breaker& b) {
  // Before the commit: see ChangeCounter. A read (no breakers_) cannot write anyway.
  if (breakers_ != nullptr) RETURN_IF_ERROR(breakers_->Begin());
  ASSIGN_OR_RETURN(
      Stmt s,
      db_.Prepare("INSERT OR REPLACE INTO breakers(target, agent, open, changed_ms, reason) "
                  "VALUES (?1, ?2, ?3, ?4, ?5)"));
  s.BindText(1, b.target).BindText(2, b.agent).Bind(3, b.open ? 1 : 0);
  s.Bind(4, b.changed_ms).BindText(5, b.reason);
  return s.Run();
}

Result<std::vector<Breaker>> SqliteTxn::ListBreakers() {
  ASSIGN_OR_RETURN(
      Stmt s,
      db_.Prepare(
          "SELECT target, agent, open, changed_ms, reason FROM breakers ORDER BY target, agent"));
  std::vector<Breaker> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(Breaker{s.Text(0), s.Text(1), s.Int(2) != 0, s.Int(3), s.Text(4)});
  }
  return out;
}

Result<AuditEvent> SqliteTxn::AppendAudit(AuditEvent e) {
  // The head is read inside this transaction rather than cached across transactions:
  // another process may have appended since, and a rolled-back append must leave no trace.
  if (!head_) {
    ASSIGN_OR_RETURN(AuditHead head, ReadAuditHead(db_));
    head_ = std::move(head);
  }
  e.seq = head_->seq + 1;
  if (e.at_ms == 0) e.at_ms = NowMs();
  e.prev_hash = head_->hash;
  const std::string payload =
      e.canonical_payload.empty() ? CanonicalJson(e.payload) : std::move(e.canonical_payload);
  e.canonical_payload.clear();
  e.hash = ComputeEventHash(e.prev_hash, e, payload);
  {  // `s` ends before `e` is moved out: its texts are bound without a copy
    ASSIGN_OR_RETURN(Stmt s, db_.Prepare(kInsertAuditSql));
    // Every value outlives `s` (locals of this call).
    s.Bind(1, e.seq).Bind(2, e.at_ms).BindTextRef(3, e.action_id).BindTextRef(4, e.principal);
    s.BindTextRef(5, e.event).BindTextRef(6, payload).BindTextRef(7, e.prev_hash);
    s.BindTextRef(8, e.hash);
    Status st = s.Run();
    if (st.code() == StatusCode::kFailedPrecondition) {
      return Status::Corruption("audit event " + std::to_string(e.seq) + " already exists in " +
                                db_.path() + ": the chain runs past its recorded head");
    }
    RETURN_IF_ERROR(st);
  }
  head_ = AuditHead{e.seq, e.hash};
  head_dirty_ = true;
  return e;
}

Status SqliteTxn::StageRecord(const Action& a, AuditEvent e) {
  if (!a.votes.empty()) return StoreTxn::StageRecord(a, std::move(e));  // a row holds no votes
  // Refused here, as InsertAction would refuse it, rather than at IngestStaged, where it would
  // stop every later move. Two point lookups: they read, and add nothing to sync.
  {
    ASSIGN_OR_RETURN(Stmt q, db_.Prepare("SELECT 1 FROM actions WHERE id = ?1 UNION ALL "
                                         "SELECT 1 FROM staged WHERE action_id = ?1 LIMIT 1"));
    q.BindText(1, a.id);
    ASSIGN_OR_RETURN(bool taken, q.Step());
    if (taken) return Status::FailedPrecondition("action " + a.id + " already exists");
  }
  ASSIGN_OR_RETURN(
      Stmt s,
      db_.Prepare("INSERT INTO staged(at_ms, action_id, created_ms, updated_ms, agent, target, "
                  "kind, status, risk, expires_ms, body, principal, event, payload) VALUES "
                  "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"));
  s.Bind(1, e.at_ms == 0 ? NowMs() : e.at_ms).BindText(2, a.id).Bind(3, a.created_ms);
  s.Bind(4, a.updated_ms).BindText(5, a.agent).BindText(6, a.target).BindText(7, a.kind);
  s.BindText(8, ActionStatusName(a.status)).BindText(9, RiskName(a.risk)).Bind(10, a.expires_ms);
  s.BindText(11, StoredActionBody(a)).BindText(12, e.principal).BindText(13, e.event);
  s.BindText(14, e.canonical_payload.empty() ? CanonicalJson(e.payload) : e.canonical_payload);
  return s.Run();
}

Result<int64_t> SqliteTxn::IngestStaged() {
  ASSIGN_OR_RETURN(Stmt s, db_.Prepare(kReadStagedSql));
  int64_t moved = 0;
  int64_t last = 0;
  while (true) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    last = s.Int(0);
    const std::string id = s.Text(2);
    ASSIGN_OR_RETURN(Stmt ins, db_.Prepare(kInsertActionSql));
    ins.BindText(1, id).Bind(2, s.Int(3)).Bind(3, s.Int(4)).BindText(4, s.Text(5));
    ins.BindText(5, s.Text(6)).BindText(6, s.Text(7)).BindText(7, s.Text(8));
    ins.BindText(8, s.Text(9)).Bind(9, s.Int(10)).BindText(10, s.Text(11));
    Status st = ins.Run();
    if (st.code() == StatusCode::kFailedPrecondition) {
      return Status::FailedPrecondition("staged action " + id + " already exists in " + db_.path());
    }
    RETURN_IF_ERROR(st);
    AuditEvent e;
    e.at_ms = s.Int(1);
    e.action_id = id;
    e.principal = s.Text(12);
    e.event = s.Text(13);
    e.canonical_payload = s.Text(14);
    RETURN_IF_ERROR(AppendAudit(std::move(e)).status());
    ++moved;
  }
  if (moved > 0) {
    ASSIGN_OR_RETURN(Stmt d, db_.Prepare("DELETE FROM staged WHERE seq <= ?1"));
    d.Bind(1, last);
    RETURN_IF_ERROR(d.Run());
  }
  return moved;
}

Result<bool> SqliteTxn::AnyStaged() {
  ASSIGN_OR_RETURN(Stmt s, db_.Prepare("SELECT 1 FROM staged LIMIT 1"));
  return s.Step();
}

Status SqliteTxn::FlushHead() {
  if (!head_dirty_) return Status::Ok();
  ASSIGN_OR_RETURN(Stmt u, db_.Prepare(kUpdateHeadSql));
  u.Bind(1, head_->seq).BindText(2, head_->hash);
  RETURN_IF_ERROR(u.Run());
  head_dirty_ = false;
  return Status::Ok();
}

// A statement without parameters, prepared once per connection (the statement cache) rather
// than parsed on every call as sqlite3_exec would: group commit runs two per event, and every
// transaction its BEGIN and COMMIT.
Status RunCached(Db& db, const char* sql) {
  ASSIGN_OR_RETURN(Stmt s, db.Prepare(sql));
  return s.Run();
}

// An open transaction on a Db; rolled back on destruction unless committed.
class TxnGuard {
 public:
  static Result<std::unique_ptr<TxnGuard>> Begin(Db& db, const char* begin_sql) {
    RETURN_IF_ERROR(RunCached(db, begin_sql));
    return std::unique_ptr<TxnGuard>(new TxnGuard(db));
  }
  ~TxnGuard() { Rollback(); }
  TxnGuard(const TxnGuard&) = delete;
  TxnGuard& operator=(const TxnGuard&) = delete;

  Status Commit() {
    done_ = true;
    Status st = RunCached(db_, kCommitSql);
    if (!st.ok() && db_.InTransaction()) (void)RunCached(db_, "ROLLBACK");
    return st;
  }
  void Rollback() {
    if (done_) return;
    done_ = true;
    if (db_.InTransaction()) (void)RunCached(db_, "ROLLBACK");
  }

 private:
  explicit TxnGuard(Db& db) : db_(db) {}
  Db& db_;
  bool done_ = false;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(std::string path, std::unique_ptr<Db> writer, const StoreOptions& options)
      : path_(std::move(path)),
        options_(options),
        // The names SQLite uses, which resolve a symbolic link to the store file.
        db_file_(sqlite3_db_filename(writer->raw(), "main")),
        wal_file_(sqlite3_filename_wal(sqlite3_db_filename(writer->raw(), "main"))),
        writer_(std::move(writer)),
        syncer_(wal_file_),
        grouped_(path_, [this](std::vector<GroupedWork>& batch) { CommitBatch(batch); }) {}
  ~SqliteStore() override;

  Status Transact(const std::function<Status(StoreTxn&)>& fn) override;
  Status PrepareRecordStatements() override;
  Status TransactUnsynced(const std::function<Status(StoreTxn&)>& fn) override;
  void StartSync() override { syncer_.Start(); }
  Status SyncUnsynced() override { return syncer_.WaitSynced(); }
  std::future<Status> TransactGrouped(std::function<Status(StoreTxn&)> fn) override;
  Status TransactGroupedWait(std::function<Status(StoreTxn&)> fn) override {
    return grouped_.PushAndWait(std::move(fn));
  }
  void TransactGroupedAsync(std::function<Status(StoreTxn&)> fn,
                            std::function<void(Status)> done) override;
  Status Read(const std::function<Status(StoreTxn&)>& fn) override;
  // Looks first, on a reader and without the write lock, whether anything is due: every CLI
  // command expires what is due, and nearly always nothing is. Then as Store's.
  Status TransactDue(int64_t now_ms, int limit,
                     const std::function<Status(StoreTxn&, std::vector<Action>& due)>& fn) override;
  Status ScanAudit(int64_t after_seq, const std::string& action_id,
                   const std::function<bool(const AuditEvent&)>& fn) override;
  Result<AuditHead> RecordedHead() override;
  // From a cache kept current by breaker_changes_: every action's limits look up a breaker,
  // and a read of the store costs ~25 us where every commit of another connection empties
  // the reader's page cache (an airlock mcp stdio session commits one per call).
  Result<std::optional<Breaker>> LookupBreaker(const std::string& target,
                                               const std::string& agent) override;
  std::optional<CheckpointStats> Checkpoints() override;

 private:
  // A read-only connection borrowed from the pool; returned on destruction.
  class Reader {
   public:
    Reader(SqliteStore* store, std::unique_ptr<Db> db) : store_(store), db_(std::move(db)) {}
    Reader(Reader&&) = default;
    ~Reader() {
      if (db_) store_->ReturnReader(std::move(db_));
    }
    Db& operator*() { return *db_; }

   private:
    SqliteStore* store_;
    std::unique_ptr<Db> db_;
  };

  Result<Reader> AcquireReader();
  void ReturnReader(std::unique_ptr<Db> db);
  void CommitBatch(std::vector<GroupedWork>& batch);
  Status RunBatch(std::vector<GroupedWork>& batch, bool savepoints,
                  std::vector<Status>* results);  // requires write_mu_

  // One write transaction on db, under write_mu_.
  Status TransactOn(Db& db, const std::function<Status(StoreTxn&)>& fn);

  // The breaker change count (ChangeCounter), opened again if its file was replaced; null
  // if it cannot be opened: then lookups read the store, and breakers cannot be changed.
  std::shared_ptr<ChangeCounter> BreakerCounter();
  // A transaction's BreakerChange on this store.
  std::function<std::shared_ptr<ChangeCounter>()> CounterOpener() {
    return [this] { return BreakerCounter(); };
  }

  const std::string path_;
  const StoreOptions options_;
  const std::string db_file_;
  const std::string wal_file_;
  std::mutex counter_mu_;
  std::shared_ptr<ChangeCounter> breaker_changes_;  // GUARDED_BY(counter_mu_)
  std::mutex breaker_mu_;
  // What LookupBreaker read, as of breaker_version_ of the counter cached_counter_ (kept, so
  // that a counter opened anew, whose counts start again, is never taken for it).
  std::map<std::pair<std::string, std::string>, std::optional<Breaker>>
      breaker_cache_;                              // GUARDED_BY(breaker_mu_)
  std::shared_ptr<ChangeCounter> cached_counter_;  // GUARDED_BY(breaker_mu_)
  uint64_t breaker_version_ = 0;                   // GUARDED_BY(breaker_mu_)

  // Starts checkpointer_ and attaches the writers to it, once. REQUIRES(write_mu_).
  void StartCheckpointer();
  // REQUIRES(write_mu_). After a failed sync (of unsynced commits, or of the store file
  // after a checkpoint) nothing more is written: the disk may have lost what was written
  // before, and a later commit or checkpoint would build on it (fail closed).
  Status WriteRefusal() {
    RETURN_IF_ERROR(syncer_.error());
    return checkpointer_ ? checkpointer_->error() : Status::Ok();
  }

  // Guards writer_, unsynced_writer_ and every transaction on them: the one writer path.
  // Transact and the committer thread both hold it for a whole transaction. Not reentrant: a
  // closure must not call Transact (nor wait on TransactGrouped).
  std::mutex write_mu_;
  // The WAL's checkpoints off the committer, from the first grouped batch on; null before,
  // and when turned off or it could not start. Declared before the writers, whose WAL hook
  // points at it, so that it outlives them.
  std::unique_ptr<WalCheckpointer> checkpointer_;  // GUARDED_BY(write_mu_)
  bool checkpointer_tried_ = false;                // GUARDED_BY(write_mu_)
  // checkpointer_ once it runs, for Checkpoints() without the write lock.
  std::atomic<WalCheckpointer*> running_checkpointer_{nullptr};
  std::unique_ptr<Db> writer_;  // GUARDED_BY(write_mu_)
  // TransactUnsynced's connection, opened on its first use: synchronous=NORMAL, so that a
  // commit writes its WAL frames and returns; syncer_ syncs them (StartSync, SyncUnsynced,
  // the destructor), as does writer_'s next commit. A connection of its own
  // rather than a pragma switched on writer_ around each commit: SQLite applies the pragma
  // when it parses it and refuses it inside a transaction, so each switch would be parsed
  // anew, twice a commit, and a failed switch back would leave writer_ unsynced.
  std::unique_ptr<Db> unsynced_writer_;  // GUARDED_BY(write_mu_)
  WalSyncer syncer_;

  // Guards idle_readers_ only; a borrowed reader belongs to its borrower alone.
  std::mutex readers_mu_;
  std::vector<std::unique_ptr<Db>> idle_readers_;  // GUARDED_BY(readers_mu_)

  GroupCommitQueue grouped_;
};

SqliteStore::~SqliteStore() {
  // The committer drains the queue before it exits, so every future resolves.
  grouped_.Stop();
  // Syncs what TransactUnsynced committed, while the connections still hold the WAL.
  syncer_.Stop();
  // Before the writers close: the last connection to close checkpoints the rest.
  if (checkpointer_) {
    checkpointer_->Stop();
    if (Status failed = checkpointer_->error(); !failed.ok()) {
      // After a failed checkpoint or sync the WAL holds pages the store file may have lost:
      // the writers' close must not checkpoint it and empty it. The next start recovers it.
      std::lock_guard lock(write_mu_);
      for (Db* db : {writer_.get(), unsynced_writer_.get()}) {
        if (db == nullptr) continue;
        sqlite3_db_config(db->raw(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
      }
      std::fprintf(stderr, "airlock: %s keeps its WAL for the next start to recover: %s\n",
                   path_.c_str(), failed.message().c_str());
    }
  }
  Status synced = syncer_.error();
  if (!synced.ok()) {
    std::fprintf(stderr, "airlock: the last records committed to %s may not be on disk: %s\n",
                 path_.c_str(), synced.message().c_str());
  }
}

Status SqliteStore::Transact(const std::function<Status(StoreTxn&)>& fn) {
  // After a failed sync of unsynced commits the WAL on disk may have a hole, and every frame
  // after it would be lost with it: nothing more is written (fail closed).
  std::lock_guard lock(write_mu_);
  RETURN_IF_ERROR(WriteRefusal());  // under the lock: a sync may fail while we wait for it
  return TransactOn(*writer_, fn);
}

Status SqliteStore::PrepareRecordStatements() {
  std::lock_guard lock(write_mu_);
  for (const char* sql : {kBeginWriteSql, kReadStagedSql, kInsertActionSql, kReadHeadSql,
                          kInsertAuditSql, kUpdateHeadSql, kCommitSql}) {
    ASSIGN_OR_RETURN(sqlite::Stmt s, writer_->Prepare(sql));  // back to the cache, unused
  }
  return Status::Ok();
}

Status SqliteStore::TransactUnsynced(const std::function<Status(StoreTxn&)>& fn) {
  if (!options_.synchronous_full) return Transact(fn);  // no commit of this store syncs
  {
    std::lock_guard lock(write_mu_);
    // Fail closed: after a failed sync, earlier unsynced commits may be lost (see Transact).
    RETURN_IF_ERROR(WriteRefusal());
    if (!unsynced_writer_) {
      StoreOptions unsynced = options_;
      unsynced.create_if_missing = false;  // writer_ has it open
      unsynced.synchronous_full = false;
      // By the name SQLite resolved for writer_: the WAL the syncer syncs is that file's.
      ASSIGN_OR_RETURN(unsynced_writer_, sqlite::OpenWriter(db_file_, unsynced));
      if (checkpointer_) checkpointer_->Attach(unsynced_writer_->raw());
    }
    RETURN_IF_ERROR(TransactOn(*unsynced_writer_, fn));
  }
  syncer_.Committed();
  return Status::Ok();
}

Status SqliteStore::TransactOn(Db& db, const std::function<Status(StoreTxn&)>& fn) {
  BreakerChange breakers(CounterOpener());
  ASSIGN_OR_RETURN(auto txn, TxnGuard::Begin(db, kBeginWriteSql));
  SqliteTxn store_txn(db, &breakers);
  Status st = RunClosure(fn, store_txn);
  if (st.ok()) st = store_txn.FlushHead();
  if (!st.ok()) {
    txn->Rollback();
    return st;
  }
  return txn->Commit();
}

std::future<Status> SqliteStore::TransactGrouped(std::function<Status(StoreTxn&)> fn) {
  return grouped_.Push(std::move(fn));
}

void SqliteStore::TransactGroupedAsync(std::function<Status(StoreTxn&)> fn,
                                       std::function<void(Status)> done) {
  grouped_.PushAsync(std::move(fn), std::move(done));
}

// One BEGIN IMMEDIATE for the whole batch, one COMMIT; then every future resolves: with its
// closure's error, or with the commit's outcome.
//
// Closures rarely fail, so the first pass runs them back to back with no savepoints (two
// statements per closure saved). If one fails, the pass is rolled back whole and the batch
// runs again with a SAVEPOINT per closure, so that only the failing ones are dropped. That is
// why a grouped closure must act only through its StoreTxn: it may run twice.
void SqliteStore::CommitBatch(std::vector<GroupedWork>& batch) {
  std::vector<Status> results(batch.size());
  Status batch_error;
  {
    std::lock_guard lock(write_mu_);
    if (!checkpointer_tried_) StartCheckpointer();
    TraceMark("store: batch begun");
    batch_error = RunBatch(batch, /*savepoints=*/false, &results);
    TraceMark("store: batch committed");
    bool closure_failed = false;
    for (const Status& r : results) closure_failed |= !r.ok();
    if (batch_error.ok() && closure_failed) {
      batch_error = RunBatch(batch, /*savepoints=*/true, &results);
    }
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    batch[i].fn = nullptr;  // see GroupedWork
    if (!results[i].ok()) {
      batch[i].done(results[i]);
    } else {
      batch[i].done(batch_error);
    }
  }
}

// Grouping means a process that lives on and commits for many callers (airlock serve): the
// first batch moves the checkpoints off its commits. The CLI and airlock mcp stdio never
// group, and keep SQLite's automatic checkpoint.
void SqliteStore::StartCheckpointer() {
  checkpointer_tried_ = true;
  const char* enabled = std::getenv("AIRLOCK_CHECKPOINT_THREAD");
  if (options_.checkpoint_pass_frames <= 0 || (enabled && std::string_view(enabled) == "0")) {
    return;
  }
  WalCheckpointer::Limits limits;
  limits.pass_frames = options_.checkpoint_pass_frames;
  limits.restart_frames = options_.checkpoint_restart_frames;
  limits.inline_frames = options_.checkpoint_inline_frames;
  auto checkpointer = std::make_unique<WalCheckpointer>(db_file_, limits);
  if (Status st = checkpointer->Start(); !st.ok()) {
    // Not fatal: SQLite's automatic checkpoint goes on inside the commits.
    std::fprintf(stderr, "airlock: checkpoints of %s stay inside its commits: %s\n", path_.c_str(),
                 st.message().c_str());
    return;
  }
  checkpointer->Attach(writer_->raw());
  if (unsynced_writer_) checkpointer->Attach(unsynced_writer_->raw());
  checkpointer_ = std::move(checkpointer);
  running_checkpointer_.store(checkpointer_.get(), std::memory_order_release);
}

std::optional<CheckpointStats> SqliteStore::Checkpoints() {
  WalCheckpointer* c = running_checkpointer_.load(std::memory_order_acquire);
  if (c == nullptr) return std::nullopt;
  return c->counts();
}

// One pass over the batch in one transaction. Without savepoints it stops at the first
// failing closure and rolls back (returning OK: the caller retries with savepoints). Returns
// the error that sank the whole transaction, if any.
Status SqliteStore::RunBatch(std::vector<GroupedWork>& batch, bool savepoints,
                             std::vector<Status>* results) {
  Db& db = *writer_;
  RETURN_IF_ERROR(WriteRefusal());  // as in Transact
  BreakerChange breakers(CounterOpener());
  ASSIGN_OR_RETURN(auto txn, TxnGuard::Begin(db, kBeginWriteSql));
  SqliteTxn store_txn(db, &breakers);
  for (size_t i = 0; i < batch.size(); ++i) {
    if (savepoints) RETURN_IF_ERROR(RunCached(db, "SAVEPOINT grouped"));
    const SqliteTxn::HeadState head = store_txn.SaveHeadState();
    (*results)[i] = RunClosure(batch[i].fn, store_txn);
    Status end;
    if (!(*results)[i].ok() && !savepoints) {
      txn->Rollback();
      return Status::Ok();
    }
    if (savepoints && (*results)[i].ok()) end = RunCached(db, "RELEASE grouped");
    if (savepoints && !(*results)[i].ok()) {
      end = RunCached(db, "ROLLBACK TO grouped");
      if (end.ok()) end = RunCached(db, "RELEASE grouped");
      store_txn.RestoreHeadState(head);
    }
    RETURN_IF_ERROR(end);
    // Some errors (disk full, I/O) make SQLite roll back the whole transaction; then the
    // earlier closures' work is gone too.
    if (!db.InTransaction()) {
      return Status::IoError("the group transaction on " + path_ +
                             " was rolled back by SQLite: " + (*results)[i].message());
    }
  }
  RETURN_IF_ERROR(store_txn.FlushHead());
  return txn->Commit();
}

Result<SqliteStore::Reader> SqliteStore::AcquireReader() {
  {
    std::lock_guard lock(readers_mu_);
    if (!idle_readers_.empty()) {
      std::unique_ptr<Db> db = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return Reader(this, std::move(db));
    }
  }
  ASSIGN_OR_RETURN(auto db, sqlite::OpenReader(db_file_));
  return Reader(this, std::move(db));
}

void SqliteStore::ReturnReader(std::unique_ptr<Db> db) {
  if (db->InTransaction()) (void)db->Exec("ROLLBACK");
  std::lock_guard lock(readers_mu_);
  if (idle_readers_.size() < kMaxIdleReaders) idle_readers_.push_back(std::move(db));
}

Status SqliteStore::Read(const std::function<Status(StoreTxn&)>& fn) {
  ASSIGN_OR_RETURN(Reader reader, AcquireReader());
  // A deferred transaction on a read-only connection: one snapshot for all of fn's reads,
  // and any write fails (SQLITE_READONLY).
  ASSIGN_OR_RETURN(auto txn, TxnGuard::Begin(*reader, "BEGIN"));
  SqliteTxn store_txn(*reader);
  Status st = RunClosure(fn, store_txn);
  txn->Rollback();
  return st;
}

std::shared_ptr<ChangeCounter> SqliteStore::BreakerCounter() {
  std::lock_guard lock(counter_mu_);
  if (!breaker_changes_ || !breaker_changes_->StillNamed()) {
    breaker_changes_ = ChangeCounter::Open(db_file_ + "-breakers", db_file_);
  }
  return breaker_changes_;
}

Result<std::optional<Breaker>> SqliteStore::LookupBreaker(const std::string& target,
                                                          const std::string& agent) {
  // Taken before the read: a change that commits after it changes it (ChangeCounter).
  std::shared_ptr<ChangeCounter> counter = BreakerCounter();
  const std::optional<uint64_t> version = counter ? counter->Version() : std::nullopt;
  auto key = std::make_pair(target, agent);
  if (version) {
    std::lock_guard lock(breaker_mu_);
    if (cached_counter_ == counter && breaker_version_ == *version) {
      auto it = breaker_cache_.find(key);
      if (it != breaker_cache_.end()) return it->second;
    }
  }
  ASSIGN_OR_RETURN(std::optional<Breaker> b, Store::LookupBreaker(target, agent));
  if (version) {
    std::lock_guard lock(breaker_mu_);
    if (cached_counter_ != counter || breaker_version_ != *version) {
      breaker_cache_.clear();
      cached_counter_ = counter;
      breaker_version_ = *version;
    }
    breaker_cache_[std::move(key)] = b;
  }
  return b;
}

Status SqliteStore::TransactDue(
    int64_t now_ms, int limit,
    const std::function<Status(StoreTxn&, std::vector<Action>& due)>& fn) {
  bool any = false;
  RETURN_IF_ERROR(Read([&](StoreTxn& t) -> Status {
    ASSIGN_OR_RETURN(any, static_cast<SqliteTxn&>(t).AnyDue(now_ms));
    return Status::Ok();
  }));
  if (!any) return Status::Ok();
  return Store::TransactDue(now_ms, limit, fn);
}

Status SqliteStore::ScanAudit(int64_t after_seq, const std::string& action_id,
                              const std::function<bool(const AuditEvent&)>& fn) {
  ASSIGN_OR_RETURN(Reader reader, AcquireReader());
  Db& db = *reader;
  ASSIGN_OR_RETURN(
      Stmt s,
      db.Prepare(
          "SELECT seq, at_ms, action_id, principal, event, payload, prev_hash, hash FROM audit "
          "WHERE seq > ?1 AND (?2 = '' OR action_id = ?2) ORDER BY seq"));
  s.Bind(1, after_seq).BindText(2, action_id);
  while (true) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return Status::Ok();
    AuditEvent e;
    e.seq = s.Int(0);
    e.at_ms = s.Int(1);
    e.action_id = s.Text(2);
    e.principal = s.Text(3);
    e.event = s.Text(4);
    Result<Json> payload = ParseJson(s.Text(5), kStoredJsonMaxDepth);
    if (!payload.ok()) {
      return Status::Corruption("audit event " + std::to_string(e.seq) + " in " + path_ +
                                ": its payload is unreadable (" + payload.status().message() + ")");
    }
    e.payload = std::move(*payload);
    e.prev_hash = s.Text(6);
    e.hash = s.Text(7);
    if (!fn(e)) return Status::Ok();
  }
}

Result<AuditHead> SqliteStore::RecordedHead() {
  ASSIGN_OR_RETURN(Reader reader, AcquireReader());
  return ReadAuditHead(*reader);
}

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                               const StoreOptions& options) {
  ASSIGN_OR_RETURN(auto writer, sqlite::OpenWriter(path, options));
  return std::unique_ptr<Store>(new SqliteStore(path, std::move(writer), options));
}

}  // namespace airlock
