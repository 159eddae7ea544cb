#include "connectors/sqlite/sqlite_connector.h"

#include <sys/stat.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "connectors/sqlite/authorizer.h"
#include "connectors/sqlite/changeset.h"
#include "connectors/sqlite/db.h"
#include "connectors/sqlite/observe.h"
#include "connectors/sqlite/preimage.h"
#include "connectors/sqlite/rollback.h"
#include "connectors/sqlite/undo.h"
#include "core/crash.h"

namespace airlock::sqlite {
namespace {

struct Settings {
  std::string path;
  int64_t max_preview_rows = 20;
  int busy_timeout_ms = 5000;
  // Wall-clock limit for running the whole SQL text (dry-run or apply): a runaway query
  // (an endless recursive CTE) must not hold the target's lock or the gateway forever.
  int64_t timeout_ms = 30000;
};

// SQL an agent sends is text a person reviews: 1 MiB is far beyond any real statement.
constexpr size_t kMaxSqlBytes = 1 << 20;
// TryRead: how often a read-only reader tries past a journal that looks hot (see there).
constexpr int kReadonlyRollbackTries = 5;

Result<std::string> SqlArg(const Json& args) {
  if (!args.is_object() || !args.contains("sql") || !args["sql"].is_string()) {
    return Status::InvalidArgument("sqlite action needs args {\"sql\": \"<text>\"}");
  }
  std::string sql = args["sql"].get<std::string>();
  if (sql.size() > kMaxSqlBytes) {
    return Status::InvalidArgument("the SQL text is " + std::to_string(sql.size()) +
                                   " bytes; the limit is " + std::to_string(kMaxSqlBytes));
  }
  if (size_t nul = sql.find('\0'); nul != std::string::npos) {
    return Status::InvalidArgument("the SQL text has a NUL byte at offset " + std::to_string(nul));
  }
  return sql;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<bool> IsRecorded(sqlite3* db, const std::string& action_id, const char* kind) {
  ASSIGN_OR_RETURN(bool exists,
                   HasRow(db, "SELECT 1 FROM main.sqlite_schema WHERE type='table' AND name=?1",
                          kAppliedTable));
  if (!exists) return false;
  ASSIGN_OR_RETURN(StmtHandle stmt,
                   Prepare(db, std::string("SELECT 1 FROM main.") + kAppliedTable +
                                   " WHERE action_id=?1 AND kind=?2"));
  sqlite3_bind_text(stmt.get(), 1, action_id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(stmt.get(), 2, kind, -1, SQLITE_STATIC);
  int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqlError(db, rc, kAppliedTable);
}

// Recorded inside the target's own transaction, so IsApplied() / IsRolledBack() answer
// truthfully after a crash at any point.
Status RecordAction(sqlite3* db, const std::string& action_id, const char* kind) {
  RETURN_IF_ERROR(Exec(db, std::string("CREATE TABLE IF NOT EXISTS main.") + kAppliedTable +
                               "(action_id TEXT NOT NULL, kind TEXT NOT NULL, "
                               "at_ms INTEGER NOT NULL, PRIMARY KEY(action_id, kind))"));
  ASSIGN_OR_RETURN(StmtHandle stmt, Prepare(db, std::string("INSERT INTO main.") +
                                                    kAppliedTable + " VALUES(?1, ?2, ?3)"));
  sqlite3_bind_text(stmt.get(), 1, action_id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(stmt.get(), 2, kind, -1, SQLITE_STATIC);
  sqlite3_bind_int64(stmt.get(), 3, NowMs());
  int rc = sqlite3_step(stmt.get());
  if (rc != SQLITE_DONE) return SqlError(db, rc, "recording the action");
  return Status::Ok();
}

// Tables whose pre-image Apply must capture before the statements run: those the approved
// effect drops or alters.
std::set<std::string> TablesToSnapshot(const Effect& expected) {
  std::set<std::string> out;
  for (const DdlOp& d : expected.ddl) {
    if ((d.op == "drop_table" || d.op == "alter_table") && d.detail.empty()) {
      out.insert(d.object);
    }
  }
  return out;
}

bool SameName(const std::string& a, const std::string& b) {
  return sqlite3_stricmp(a.c_str(), b.c_str()) == 0;
}

bool IsSnapshotted(const UndoData& undo, const std::string& name) {
  for (const TableSnapshot& t : undo.tables) {
    if (SameName(t.name, name)) return true;
  }
  return false;
}

// Compares the schema before and after the action: what appeared is dropped on rollback,
// what vanished or changed (index, trigger, view) is recreated from its old definition.
// Tables are restored from the snapshots taken before the action.
Status DiffSchema(sqlite3* db, const std::vector<SchemaObject>& before,
                  const std::vector<SchemaObject>& after, UndoData* undo, std::string* note) {
  for (const SchemaObject& o : after) {
    if (FindObject(before, o.name) == nullptr && !IsSnapshotted(*undo, o.name)) {
      ASSIGN_OR_RETURN(std::string fp, Fingerprint(db, o.name));
      undo->created.push_back({o, fp});
    }
  }
  for (const SchemaObject& o : before) {
    const SchemaObject* now = FindObject(after, o.name);
    if (now != nullptr && now->type == o.type && now->sql == o.sql) continue;
    if (IsSnapshotted(*undo, o.name) || IsSnapshotted(*undo, o.table)) continue;
    if (o.type == "table" || o.sql.empty()) {
      *note += "the definition of '" + o.name + "' changed and is not restored by rollback; ";
      continue;
    }
    ASSIGN_OR_RETURN(std::string fp, Fingerprint(db, o.name));
    undo->objects.push_back({o, fp});
  }
  for (TableSnapshot& t : undo->tables) {
    ASSIGN_OR_RETURN(t.after, Fingerprint(db, t.name));
  }
  return Status::Ok();
}

Result<std::string> InvertOne(const std::string& changeset) {
  int n = 0;
  void* raw = nullptr;
  int rc = sqlite3changeset_invert(static_cast<int>(changeset.size()), changeset.data(), &n, &raw);
  SqliteBuffer buf(raw);
  if (rc != SQLITE_OK) {
    return Status::Internal("inverting the changeset: " + std::string(sqlite3_errstr(rc)));
  }
  return std::string(static_cast<const char*>(raw), n);
}

// Each segment inverted, newest first: undoing runs the action backwards.
Result<std::string> Invert(const std::vector<std::string>& segments) {
  std::string out;
  for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
    ASSIGN_OR_RETURN(std::string inverted, InvertOne(*it));
    out += inverted;
  }
  return out;
}

// Stops the running SQL text once the target's timeout has passed. SQLite calls the
// progress handler every kSteps virtual-machine steps; a non-zero return interrupts the
// statement, and the caller's transaction is then rolled back.
class Deadline {
 public:
  Deadline(sqlite3* db, int64_t timeout_ms)
      : db_(db), timeout_ms_(timeout_ms), until_(std::chrono::steady_clock::now() +
                                                 std::chrono::milliseconds(timeout_ms)) {
    sqlite3_progress_handler(db_, kSteps, &Deadline::Check, this);
  }
  ~Deadline() { sqlite3_progress_handler(db_, 0, nullptr, nullptr); }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  // The error to report instead of SQLite's "interrupted", if the deadline is what failed.
  Status Explain(const Status& st) const {
    if (st.ok() || !fired_) return st;
    return Status::FailedPrecondition("the SQL ran longer than the target's timeout (" +
                                      std::to_string(timeout_ms_) +
                                      " ms) and was stopped; nothing was changed");
  }

 private:
  static constexpr int kSteps = 1000;
  static int Check(void* self) {
    auto* d = static_cast<Deadline*>(self);
    if (std::chrono::steady_clock::now() > d->until_) d->fired_ = true;
    return d->fired_ ? 1 : 0;
  }
  sqlite3* db_;
  int64_t timeout_ms_;
  std::chrono::steady_clock::time_point until_;
  bool fired_ = false;
};

Result<Observation> ExecuteWithDeadline(sqlite3* db, const std::string& sql,
                                        const ObserveOptions& options, int64_t timeout_ms,
                                        Authorizer* installed = nullptr) {
  Deadline deadline(db, timeout_ms);
  Result<Observation> obs = ExecuteObserved(db, sql, options, installed);
  if (!obs.ok()) return deadline.Explain(obs.status());
  return obs;
}

class SqliteConnector final : public Connector {
 public:
  explicit SqliteConnector(Settings s) : settings_(std::move(s)) {}

  Result<DryRunResult> DryRun(const Json& args) override;
  std::optional<DryRunResult> TryRead(const Json& args) override;
  Result<ApplyOutcome> Apply(const std::string& action_id, const Json& args,
                             const Effect& expected,
                             const std::function<Status(const UndoRecord&)>& before_commit) override;
  Status Rollback(const std::string& action_id, const UndoRecord& undo, Json* report) override;
  Result<bool> IsApplied(const std::string& action_id) override;
  Result<bool> IsRolledBack(const std::string& action_id) override;

 private:
  // The target's connection, opened on first use and kept: opening a database and parsing
  // its schema cost more than a one-row dry-run itself (docs/BENCHMARKS.md). If the file at
  // `path` was replaced (another inode), the connection is reopened on the new file.
  Result<sqlite3*> Db();  // requires mu_
  ObserveOptions Options() const { return {settings_.max_preview_rows, 1000}; }

  // A read-only connection of the fast path, with the file it was opened on.
  struct Reader {
    DbHandle db;
    dev_t dev = 0;
    ino_t ino = 0;
    // Installed for the connection's life: installing one expires every prepared statement
    // (sqlite3_set_authorizer), and one per read made SQLite parse BEGIN and ROLLBACK again
    // on every read. Declared after db: uninstalled before it closes.
    std::unique_ptr<Authorizer> auth;
    // BEGIN and ROLLBACK, prepared once per connection rather than parsed on every read
    // (sqlite3_exec prepares each time). Declared after db: finalized before it closes.
    StmtHandle begin;
    StmtHandle rollback;
    // The reads sent through this connection, kept prepared (ExecuteObserved): parsing the
    // text was the largest part of a one-row read. Declared after db: finalized before it
    // closes.
    ReadStatementCache reads;
  };
  // Runs the reader's cached `*stmt` (prepared from `sql` on first use, as airlock's own
  // statement: the authorizer lets it through): SQLITE_DONE.
  static bool RunCached(Reader& r, StmtHandle* stmt, const char* sql);
  std::optional<Reader> TakeReader();
  void ReturnReader(Reader r);

  const Settings settings_;
  // Guards idle_readers_ only: a borrowed reader belongs to its borrower alone, so reads run
  // in parallel with each other and with the one connection below.
  std::mutex readers_mu_;
  std::vector<Reader> idle_readers_;  // GUARDED_BY(readers_mu_)
  // Serialises every call on this target: one transaction at a time on the connection, and
  // each dry-run's effect is its own.
  std::mutex mu_;
  DbHandle db_;       // GUARDED_BY(mu_)
  dev_t dev_ = 0;     // GUARDED_BY(mu_)
  ino_t ino_ = 0;     // GUARDED_BY(mu_)
};

Result<sqlite3*> SqliteConnector::Db() {
  struct stat st {};
  if (::stat(settings_.path.c_str(), &st) != 0) {
    db_.reset();
    return Status::NotFound("sqlite database '" + settings_.path + "' does not exist");
  }
  if (db_ && st.st_dev == dev_ && st.st_ino == ino_ && sqlite3_get_autocommit(db_.get())) {
    return db_.get();
  }
  // Not open yet, replaced on disk, or left inside a transaction: start afresh.
  db_.reset();
  ASSIGN_OR_RETURN(db_, OpenExisting(settings_.path, settings_.busy_timeout_ms));
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  return db_.get();
}

Result<DryRunResult> SqliteConnector::DryRun(const Json& args) {
  ASSIGN_OR_RETURN(std::string sql, SqlArg(args));
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(sqlite3* db, Db());
  Transaction txn(db);
  RETURN_IF_ERROR(txn.Begin("BEGIN"));
  ASSIGN_OR_RETURN(Observation obs,
                   ExecuteWithDeadline(db, sql, Options(), settings_.timeout_ms));
  RETURN_IF_ERROR(txn.Rollback());  // a dry-run never commits
  return DryRunResult{std::move(obs.effect), std::move(obs.result)};
}

// Reads do not need what DryRun serialises for: a read's effect is empty whatever runs beside
// it, so it needs neither the target's one connection nor a session. It runs on a pooled
// read-only connection in a deferred transaction (one snapshot for the whole text) and
// stops at the first statement SQLite does not call read-only, or that the authorizer sees
// write, or at any error; all of those go the full way. Nothing can be written here: the
// connection is SQLITE_OPEN_READONLY with query_only, and the transaction is rolled back.
std::optional<DryRunResult> SqliteConnector::TryRead(const Json& args) {
  Result<std::string> sql = SqlArg(args);
  if (!sql.ok()) return std::nullopt;
  std::optional<Reader> reader = TakeReader();
  if (!reader) return std::nullopt;
  sqlite3* db = reader->db.get();
  std::optional<DryRunResult> out;
  ObserveOptions options = Options();
  options.read_probe = true;
  options.cache = &reader->reads;
  Result<Observation> obs = Status::Internal("not run");
  // A database in rollback-journal mode can show a read-only connection its writer's journal
  // as if it were hot, for an instant at the end of a commit: SQLITE_READONLY_ROLLBACK, which
  // passes when that commit ends. A journal that stays hot (a writer crashed) is rolled back
  // by the full path, which reads and writes.
  for (int attempt = 0; attempt < kReadonlyRollbackTries; ++attempt) {
    if (!RunCached(*reader, &reader->begin, "BEGIN")) return std::nullopt;
    obs = ExecuteWithDeadline(db, *sql, options, settings_.timeout_ms, reader->auth.get());
    // A probe that stops on an error says only not_a_read; the error is the connection's.
    const bool seen_hot = (!obs.ok() || obs->not_a_read) &&
                          sqlite3_extended_errcode(db) == SQLITE_READONLY_ROLLBACK;
    // SQLite may have rolled back on its own (an error); otherwise a failed ROLLBACK drops
    // the reader rather than pooling it.
    if (!sqlite3_get_autocommit(db) && !RunCached(*reader, &reader->rollback, "ROLLBACK")) {
      return std::nullopt;
    }
    if (!seen_hot) break;
    std::this_thread::yield();
  }
  if (obs.ok() && !obs->not_a_read) {
    out = DryRunResult{std::move(obs->effect), std::move(obs->result)};
  }
  ReturnReader(std::move(*reader));
  return out;
}

bool SqliteConnector::RunCached(Reader& r, StmtHandle* stmt, const char* sql) {
  Authorizer::Internal internal(r.auth.get());
  if (!*stmt) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v3(r.db.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr) !=
        SQLITE_OK) {
      sqlite3_finalize(raw);
      return false;
    }
    stmt->reset(raw);
  }
  const int rc = sqlite3_step(stmt->get());
  sqlite3_reset(stmt->get());
  return rc == SQLITE_DONE;
}

std::optional<SqliteConnector::Reader> SqliteConnector::TakeReader() {
  struct stat st {};
  if (::stat(settings_.path.c_str(), &st) != 0) return std::nullopt;  // DryRun says why
  {
    std::lock_guard<std::mutex> lock(readers_mu_);
    while (!idle_readers_.empty()) {
      Reader r = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      // A file replaced on disk (another inode) is read afresh, as DryRun's Db() does.
      if (r.dev == st.st_dev && r.ino == st.st_ino) return r;
    }
  }
  Result<DbHandle> db = OpenExistingReadOnly(settings_.path, settings_.busy_timeout_ms);
  if (!db.ok()) return std::nullopt;
  Reader r{std::move(*db), st.st_dev, st.st_ino, nullptr, nullptr, nullptr, {}};
  r.auth = std::make_unique<Authorizer>(r.db.get());
  return r;
}

void SqliteConnector::ReturnReader(Reader r) {
  // Never pool a connection left inside a transaction.
  if (!sqlite3_get_autocommit(r.db.get())) return;
  constexpr size_t kMaxIdleReaders = 16;
  std::lock_guard<std::mutex> lock(readers_mu_);
  if (idle_readers_.size() < kMaxIdleReaders) idle_readers_.push_back(std::move(r));
}

Result<ApplyOutcome> SqliteConnector::Apply(
    const std::string& action_id, const Json& args, const Effect& expected,
    const std::function<Status(const UndoRecord&)>& before_commit) {
  if (expected.extra.is_object() && expected.extra.contains("not_executed")) {
    return Status::FailedPrecondition(
        "this action cannot be applied through airlock; it was not executed in the dry-run: " +
        expected.extra["not_executed"].dump());
  }
  ASSIGN_OR_RETURN(std::string sql, SqlArg(args));
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(sqlite3* db, Db());
  Transaction txn(db);
  RETURN_IF_ERROR(txn.Begin("BEGIN IMMEDIATE"));
  ASSIGN_OR_RETURN(bool already, IsRecorded(db, action_id, "apply"));
  if (already) return Status::FailedPrecondition("action " + action_id + " is already applied");

  // Pre-images first: once the statements ran, the dropped/altered tables are gone.
  UndoData undo;
  ASSIGN_OR_RETURN(std::vector<SchemaObject> schema_before, ReadSchema(db));
  for (const std::string& table : TablesToSnapshot(expected)) {
    auto snap = SnapshotTable(db, table);
    if (snap.ok()) undo.tables.push_back(std::move(*snap));
    else if (snap.status().code() != StatusCode::kNotFound) return snap.status();
  }

  ASSIGN_OR_RETURN(Observation obs,
                   ExecuteWithDeadline(db, sql, Options(), settings_.timeout_ms));
  ApplyOutcome out;
  out.effect = std::move(obs.effect);
  out.result = std::move(obs.result);
  if (out.effect.effect_hash != expected.effect_hash) {
    RETURN_IF_ERROR(txn.Rollback());
    out.effect_matched = false;  // the data changed since the preview: apply nothing
    return out;
  }

  std::string note;
  ASSIGN_OR_RETURN(std::vector<SchemaObject> schema_after, ReadSchema(db));
  RETURN_IF_ERROR(DiffSchema(db, schema_before, schema_after, &undo, &note));
  ASSIGN_OR_RETURN(undo.inverted_changeset, Invert(obs.segments));
  out.undo.kind = "sqlite";
  out.undo.data = EncodeUndo(undo);
  if (obs.touched_no_pk) {
    out.undo.reversible = false;
    note += "rows of tables without a PRIMARY KEY were changed and cannot be restored; ";
  }
  out.undo.note = note;

  RETURN_IF_ERROR(before_commit(out.undo));  // the transaction rolls back on failure
  RETURN_IF_ERROR(RecordAction(db, action_id, "apply"));
  CrashPoint("sqlite_apply_before_commit");
  RETURN_IF_ERROR(txn.Commit());
  CrashPoint("sqlite_apply_after_commit");
  out.effect_matched = true;
  return out;
}

Status SqliteConnector::Rollback(const std::string& action_id, const UndoRecord& record,
                                 Json* report) {
  if (record.kind != "sqlite") {
    return Status::InvalidArgument("undo record of kind '" + record.kind + "' is not sqlite");
  }
  ASSIGN_OR_RETURN(UndoData undo, DecodeUndo(record.data));
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(sqlite3* db, Db());
  Transaction txn(db);
  RETURN_IF_ERROR(txn.Begin("BEGIN IMMEDIATE"));
  ASSIGN_OR_RETURN(bool rolled_back, IsRecorded(db, action_id, "rollback"));
  if (rolled_back) {
    return Status::FailedPrecondition("action " + action_id + " is already rolled back");
  }
  ASSIGN_OR_RETURN(bool applied, IsRecorded(db, action_id, "apply"));
  if (!applied) return Status::FailedPrecondition("action " + action_id + " was not applied");

  // The undo already holds every change the action's triggers made; letting triggers fire
  // again while it is applied would add new rows (e.g. audit entries for the undo itself).
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, nullptr);
  // The connection is reused: triggers come back on whichever way this function returns.
  struct TriggersBackOn {
    sqlite3* db;
    ~TriggersBackOn() { sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 1, nullptr); }
  } triggers_back_on{db};
  Json conflicts = Json::array();
  RETURN_IF_ERROR(UndoAll(db, undo, &conflicts));
  if (!conflicts.empty()) {
    RETURN_IF_ERROR(txn.Rollback());  // all or nothing: keep what is there now
    if (report) *report = {{"conflicts", conflicts}};
    return Status::Conflict("rollback would overwrite changes made since action " + action_id +
                            " was applied (" + std::to_string(conflicts.size()) +
                            " conflict(s), first: " + conflicts[0].dump() + ")");
  }
  RETURN_IF_ERROR(RecordAction(db, action_id, "rollback"));
  CrashPoint("sqlite_rollback_before_commit");
  RETURN_IF_ERROR(txn.Commit());
  CrashPoint("sqlite_rollback_after_commit");
  if (report) *report = {{"conflicts", Json::array()}};
  return Status::Ok();
}

Result<bool> SqliteConnector::IsApplied(const std::string& action_id) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(sqlite3* db, Db());
  return IsRecorded(db, action_id, "apply");
}

Result<bool> SqliteConnector::IsRolledBack(const std::string& action_id) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(sqlite3* db, Db());
  return IsRecorded(db, action_id, "rollback");
}

Result<Settings> ParseSettings(const ConnectorConfig& config) {
  const Json& f = config.fields;
  const std::string where = "target '" + config.name + "'";
  if (!f.is_object() || !f.contains("path") || !f["path"].is_string()) {
    return Status::InvalidArgument(where + ": sqlite needs a 'path'");
  }
  Settings s;
  s.path = f["path"].get<std::string>();
  if (s.path.empty() || s.path[0] != '/') {
    return Status::InvalidArgument(where + ": sqlite path '" + s.path + "' is not absolute");
  }
  if (f.contains("max_preview_rows")) {
    if (!f["max_preview_rows"].is_number_integer() || f["max_preview_rows"].get<int64_t>() < 0) {
      return Status::InvalidArgument(where + ": max_preview_rows must be a non-negative integer");
    }
    s.max_preview_rows = f["max_preview_rows"].get<int64_t>();
  }
  if (f.contains("busy_timeout_ms")) {
    if (!f["busy_timeout_ms"].is_number_integer() || f["busy_timeout_ms"].get<int64_t>() < 0 ||
        f["busy_timeout_ms"].get<int64_t>() > 3600000) {
      return Status::InvalidArgument(where + ": busy_timeout_ms must be 0..3600000");
    }
    s.busy_timeout_ms = static_cast<int>(f["busy_timeout_ms"].get<int64_t>());
  }
  if (f.contains("timeout_ms")) {
    if (!f["timeout_ms"].is_number_integer() || f["timeout_ms"].get<int64_t>() <= 0) {
      return Status::InvalidArgument(where + ": timeout_ms must be a positive integer");
    }
    s.timeout_ms = f["timeout_ms"].get<int64_t>();
  }
  return s;
}

}  // namespace
}  // namespace airlock::sqlite

namespace airlock {

Result<std::unique_ptr<Connector>> CreateSqliteConnector(const ConnectorConfig& config) {
  ASSIGN_OR_RETURN(sqlite::Settings settings, sqlite::ParseSettings(config));
  return std::unique_ptr<Connector>(new sqlite::SqliteConnector(std::move(settings)));
}

}  // namespace airlock
