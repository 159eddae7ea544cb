#include "connectors/sqlite/observe.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>

#include "connectors/sqlite/authorizer.h"
#include "connectors/sqlite/changeset.h"
#include "connectors/sqlite/db.h"
#include "connectors/sqlite/preimage.h"
#include "core/hash.h"

namespace airlock::sqlite {
namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool IsBlank(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
}

std::string LengthPrefixed(const std::string& s) { return std::to_string(s.size()) + ":" + s; }

// One execution of the caller's text: the authorizer, the session and what they collected.
class ObservedRun {
 public:
  ObservedRun(sqlite3* db, const ObserveOptions& options, Authorizer* installed)
      : db_(db), options_(options) {
    if (installed == nullptr) installed = &own_auth_.emplace(db);
    auth_ = installed;
  }

  Result<Observation> Run(std::string_view sql);

 private:
  Result<Observation> RunSteps(std::string_view sql);
  // Returns false in *keep_going when airlock denied a statement it must not execute.
  Status RunStatement(sqlite3_stmt* stmt);
  Status RecordDdl(sqlite3_stmt* stmt);
  Status StartSession();
  Status CutSegment();
  Status DetectVacuum(sqlite3_stmt* stmt);
  void CountNoPrimaryKeyRows(const std::vector<DmlEvent>& events, bool had_ddl);
  bool HasPrimaryKey(const std::string& table);
  Status SummarizeChangeset();
  std::vector<std::string> ColumnNames(const TableShape& shape);
  void FillAllRowsFlags(TableChange* tc);
  std::string EffectHash(const DecodedChangeset& cs) const;

  sqlite3* db_;
  ObserveOptions options_;
  std::optional<Authorizer> own_auth_;  // installed for this run when the caller keeps none
  Authorizer* auth_ = nullptr;          // the one in force: own_auth_'s or the caller's
  SessionHandle session_;
  Observation obs_;
  int64_t statements_ = 0;
  std::map<std::string, bool> has_pk_;          // lower-case table -> has a primary key
  std::map<std::string, TableChange> no_pk_;    // lower-case table -> counts
};

Status ObservedRun::StartSession() {
  if (options_.read_probe) return Status::Ok();  // a read changes nothing to record
  sqlite3_session* raw = nullptr;
  int rc = sqlite3session_create(db_, "main", &raw);
  session_.reset(raw);
  if (rc != SQLITE_OK) return SqlError(db_, rc, "creating the session");
  rc = sqlite3session_attach(session_.get(), nullptr);  // every table, present and future
  if (rc != SQLITE_OK) return SqlError(db_, rc, "attaching the session");
  return Status::Ok();
}

// The session (3.40) cannot build a changeset for a table whose columns changed or that was
// dropped while it recorded (SQLITE_SCHEMA). So before a statement drops or alters a table,
// the changes so far are taken as one segment and a fresh session records the rest.
Status ObservedRun::CutSegment() {
  if (!session_) return Status::Ok();  // read_probe: no session
  Authorizer::Internal internal(auth_);  // the session reads the tables: not the caller
  int n = 0;
  void* raw = nullptr;
  int rc = sqlite3session_changeset(session_.get(), &n, &raw);
  SqliteBuffer buf(raw);
  if (rc != SQLITE_OK) return SqlError(db_, rc, "building the changeset");
  if (raw != nullptr && n > 0) obs_.segments.emplace_back(static_cast<const char*>(raw), n);
  session_.reset();
  return Status::Ok();
}

Result<Observation> ObservedRun::Run(std::string_view sql) {
  if (options_.read_probe) {
    Result<Observation> obs = RunSteps(sql);
    if (!obs.ok() || obs->not_a_read || obs->effect.extra.contains("not_executed") ||
        !obs->effect.IsRead()) {
      Observation stopped;
      stopped.not_a_read = true;
      return stopped;
    }
    return obs;
  }
  return RunSteps(sql);
}

Result<Observation> ObservedRun::RunSteps(std::string_view sql) {
  RETURN_IF_ERROR(StartSession());
  int rc;
  obs_.effect.kind = "sql";
  ReadStatementCache* const cache = options_.read_probe ? options_.cache : nullptr;
  if (cache != nullptr) {
    if (sqlite3_stmt* kept = cache->Find(sql)) {
      // Kept only as a plain read, whose prepare recorded nothing.
      auth_->BeginStatement();
      auth_->EndPrepare();
      if (!sqlite3_stmt_readonly(kept)) {
        obs_.not_a_read = true;
        return std::move(obs_);
      }
      Status st = RunStatement(kept);
      sqlite3_reset(kept);
      RETURN_IF_ERROR(st);
      RETURN_IF_ERROR(SummarizeChangeset());
      obs_.effect.extra["statements"] = statements_;
      return std::move(obs_);
    }
  }
  const char* tail = sql.data();
  const char* end = sql.data() + sql.size();
  while (tail < end && !IsBlank(std::string_view(tail, end - tail))) {
    sqlite3_stmt* raw_stmt = nullptr;
    const char* const start = tail;
    auth_->BeginStatement();
    rc = sqlite3_prepare_v3(db_, tail, static_cast<int>(end - tail), 0, &raw_stmt, &tail);
    auth_->EndPrepare();
    StmtHandle stmt(raw_stmt);
    if (rc != SQLITE_OK) {
      if (!auth_->refusal().empty()) return Status::InvalidArgument(auth_->refusal());
      if (!auth_->not_executed().empty()) {
        // Our own deny: record the op and stop; nothing after it runs either.
        for (const DdlOp& d : auth_->ddl()) obs_.effect.ddl.push_back(d);
        obs_.effect.extra["not_executed"] = auth_->not_executed();
        break;
      }
      return SqlError(db_, rc, "");
    }
    if (!stmt) {
      // A comment-only or empty tail. SQLite stops reading at a NUL byte, so a tail that did
      // not move would loop forever (found by fuzz/sql_fuzz.cc).
      if (tail == start) return Status::InvalidArgument("the SQL text has a NUL byte");
      continue;
    }
    if (options_.read_probe &&
        (!sqlite3_stmt_readonly(stmt.get()) || !auth_->ddl().empty() || !auth_->dml().empty())) {
      obs_.not_a_read = true;
      return std::move(obs_);
    }
    RETURN_IF_ERROR(RunStatement(stmt.get()));
    if (obs_.effect.extra.contains("not_executed")) break;
    if (cache != nullptr && start == sql.data() && IsBlank(std::string_view(tail, end - tail))) {
      sqlite3_reset(stmt.get());
      cache->Keep(sql, std::move(stmt));  // the whole text was this one read
    }
  }
  RETURN_IF_ERROR(SummarizeChangeset());
  obs_.effect.extra["statements"] = statements_;
  return std::move(obs_);
}

Status ObservedRun::RunStatement(sqlite3_stmt* stmt) {
  const std::vector<DmlEvent> dml = auth_->dml();
  RETURN_IF_ERROR(RecordDdl(stmt));
  if (obs_.effect.extra.contains("not_executed")) return Status::Ok();
  ++statements_;

  // Counted after the first step: a kept statement (ReadStatementCache) is prepared again
  // inside it when the schema changed, and `SELECT *` may then have more columns.
  int ncol = -1;
  Json rows = Json::array();
  bool truncated = false;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    if (ncol < 0) ncol = sqlite3_column_count(stmt);
    if (static_cast<int64_t>(rows.size()) >= options_.max_result_rows) {
      truncated = true;
      continue;  // keep stepping: a DML ... RETURNING must still run to completion
    }
    Json row = Json::array();
    for (int i = 0; i < ncol; ++i) row.push_back(ColumnJson(stmt, i));
    rows.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) return SqlError(db_, rc, "");
  if (ncol < 0) ncol = sqlite3_column_count(stmt);
  if (ncol > 0) {
    Json columns = Json::array();
    for (int i = 0; i < ncol; ++i) {
      const char* name = sqlite3_column_name(stmt, i);
      columns.push_back(name ? name : "");
    }
    obs_.result = {{"columns", columns}, {"rows", std::move(rows)}, {"truncated", truncated}};
  }
  CountNoPrimaryKeyRows(dml, !auth_->ddl().empty());
  return Status::Ok();
}

// Appends the statement's schema ops; for drop_table / alter_table, describes the table as
// it is before the statement runs (rows, indexes, triggers).
Status ObservedRun::RecordDdl(sqlite3_stmt* stmt) {
  if (auth_->ddl().empty() && auth_->dml().empty() && !sqlite3_stmt_readonly(stmt)) {
    RETURN_IF_ERROR(DetectVacuum(stmt));
  }
  bool reshapes = false;
  for (DdlOp op : auth_->ddl()) {
    if ((op.op == "drop_table" || op.op == "alter_table") && op.detail.empty()) {
      Authorizer::Internal internal(auth_);
      RETURN_IF_ERROR(DescribeTable(db_, &op));
      reshapes = true;
    }
    obs_.effect.ddl.push_back(std::move(op));
  }
  if (reshapes) {
    RETURN_IF_ERROR(CutSegment());
    RETURN_IF_ERROR(StartSession());
  }
  return Status::Ok();
}

// VACUUM reaches no authorizer hook, so look at the compiled program for OP_Vacuum
// (P2 != 0 holds the target of VACUUM INTO). It cannot run in a transaction: not executed.
Status ObservedRun::DetectVacuum(sqlite3_stmt* stmt) {
  Authorizer::Internal internal(auth_);
  const char* text = sqlite3_sql(stmt);
  auto explain = Prepare(db_, std::string("EXPLAIN ") + (text ? text : ""));
  if (!explain.ok()) return Status::Ok();  // not explainable: not a VACUUM
  int into_reg = -1;
  std::map<int, std::string> strings;  // register -> String8 constant
  while (sqlite3_step(explain->get()) == SQLITE_ROW) {
    std::string opcode = reinterpret_cast<const char*>(sqlite3_column_text(explain->get(), 1));
    int p2 = sqlite3_column_int(explain->get(), 3);
    if (opcode == "Vacuum") into_reg = p2;
    if (opcode == "String8" && sqlite3_column_type(explain->get(), 5) == SQLITE_TEXT) {
      strings[p2] = reinterpret_cast<const char*>(sqlite3_column_text(explain->get(), 5));
    }
  }
  if (into_reg < 0) return Status::Ok();
  DdlOp op;
  op.op = into_reg > 0 ? "vacuum_into" : "vacuum";
  op.detail = into_reg > 0 ? strings[into_reg] : "";
  obs_.effect.ddl.push_back(op);
  obs_.effect.extra["not_executed"] =
      "VACUUM cannot run inside a transaction and its effect cannot be undone";
  return Status::Ok();
}

bool ObservedRun::HasPrimaryKey(const std::string& table) {
  std::string key = Lower(table);
  auto it = has_pk_.find(key);
  if (it != has_pk_.end()) return it->second;
  Authorizer::Internal internal(auth_);
  bool has_pk = true;  // unknown tables: nothing to count
  auto cols = TableColumns(db_, table);
  if (cols.ok() && !cols->empty()) {
    has_pk = std::any_of(cols->begin(), cols->end(), [](const ColumnInfo& c) { return c.pk > 0; });
  }
  has_pk_[key] = has_pk;
  return has_pk;
}

// The session extension (3.40) ignores rowid tables without a PRIMARY KEY: count their rows
// from the statement's direct changes instead (best effort: writes made by trigger bodies
// mark the table without a count).
void ObservedRun::CountNoPrimaryKeyRows(const std::vector<DmlEvent>& events, bool had_ddl) {
  bool counted = false;
  for (const DmlEvent& e : events) {
    if (HasPrimaryKey(e.table)) continue;
    TableChange& tc = no_pk_[Lower(e.table)];
    tc.table = e.table;
    tc.has_primary_key = false;
    obs_.touched_no_pk = true;
    if (!e.top_level || had_ddl || counted) continue;
    counted = true;  // the first top-level write names the statement's target
    int64_t n = sqlite3_changes64(db_);
    if (e.code == SQLITE_INSERT) tc.inserted += n;
    if (e.code == SQLITE_UPDATE) tc.updated += n;
    if (e.code == SQLITE_DELETE) tc.deleted += n;
  }
}

std::vector<std::string> ObservedRun::ColumnNames(const TableShape& shape) {
  std::vector<std::string> names;
  {
    Authorizer::Internal internal(auth_);
    auto cols = TableColumns(db_, shape.name);
    if (cols.ok()) {
      for (const ColumnInfo& c : *cols) names.push_back(c.name);
      // A segment taken before ALTER TABLE ADD COLUMN has the leading columns only.
      if (names.size() > shape.pk.size()) names.resize(shape.pk.size());
      if (names.size() != shape.pk.size()) {
        names.clear();
        for (const ColumnInfo& c : *cols) {
          if (c.hidden == 0) names.push_back(c.name);
        }
      }
    }
  }
  if (names.size() != shape.pk.size()) {
    names.clear();
    for (size_t i = 0; i < shape.pk.size(); ++i) names.push_back("c" + std::to_string(i));
  }
  return names;
}

// Cheap by design: a one-row UPDATE on a huge table must not count(*) it. "Every row was
// updated" = no row exists past the first `updated` ones.
void ObservedRun::FillAllRowsFlags(TableChange* tc) {
  Authorizer::Internal internal(auth_);
  const std::string from = " FROM main." + QuoteIdent(tc->table);
  if (tc->deleted > 0) {
    auto any = HasRow(db_, "SELECT 1" + from + " LIMIT 1");
    if (any.ok() && !*any) {
      tc->all_rows_deleted = true;
      tc->rows_after = 0;
    }
  }
  if (tc->updated > 0) {
    auto more = HasRow(db_, "SELECT 1" + from + " LIMIT 1 OFFSET " + std::to_string(tc->updated));
    if (more.ok() && !*more) {
      tc->all_rows_updated = true;
      if (tc->inserted == 0 && tc->deleted == 0) tc->rows_after = tc->updated;
    }
  }
}

Status ObservedRun::SummarizeChangeset() {
  RETURN_IF_ERROR(CutSegment());
  std::string all;  // segments concatenate into one valid changeset
  for (const std::string& seg : obs_.segments) all += seg;
  ASSIGN_OR_RETURN(DecodedChangeset cs, DecodeChangeset(all));
  Effect& e = obs_.effect;
  std::map<std::string, TableChange> tables;
  for (const ChangeRow& row : cs.rows) {
    TableChange& tc = tables[cs.tables[row.table].name];
    tc.table = cs.tables[row.table].name;
    (row.op == RowOp::kInsert ? tc.inserted : row.op == RowOp::kUpdate ? tc.updated : tc.deleted)++;
  }
  for (auto& [name, tc] : tables) FillAllRowsFlags(&tc);
  for (auto& [key, tc] : no_pk_) {
    FillAllRowsFlags(&tc);
    e.preview_omitted += tc.inserted + tc.updated + tc.deleted;
    tables[tc.table] = tc;
  }
  for (auto& [name, tc] : tables) e.tables.push_back(tc);

  std::map<size_t, std::vector<std::string>> names;  // table index -> column names
  for (const ChangeRow& row : cs.rows) {
    if (static_cast<int64_t>(e.preview.size()) >= options_.max_preview_rows) {
      ++e.preview_omitted;
      continue;
    }
    if (!names.count(row.table)) names[row.table] = ColumnNames(cs.tables[row.table]);
    const std::vector<std::string>& cols = names[row.table];
    const std::vector<bool>& pk = cs.tables[row.table].pk;
    RowChange rc;
    rc.table = cs.tables[row.table].name;
    rc.op = RowOpName(row.op);
    // Updates carry old values for the PK and changed columns, new values for the changed
    // columns only: show the PK on both sides so the row is identifiable.
    auto side = [&](const std::vector<Value>& values, const std::vector<Value>* pk_source) {
      Json obj = Json::object();
      for (size_t i = 0; i < values.size() && i < cols.size(); ++i) {
        const Value* v = &values[i];
        if (v->type == Value::Type::kUndefined && pk_source && pk[i]) v = &(*pk_source)[i];
        if (v->type != Value::Type::kUndefined) obj[cols[i]] = ValueToJson(*v);
      }
      return obj;
    };
    rc.before = row.old_values.empty() ? Json(nullptr) : side(row.old_values, nullptr);
    rc.after = row.new_values.empty() ? Json(nullptr) : side(row.new_values, &row.old_values);
    e.preview.push_back(std::move(rc));
  }
  e.extra["changeset_bytes"] = static_cast<int64_t>(all.size());
  e.effect_hash = EffectHash(cs);
  return Status::Ok();
}

// Independent of the changeset's byte order (rows sorted by their canonical form); every
// value is type-tagged, so 1, 1.0, '1' and x'31' all hash differently.
std::string ObservedRun::EffectHash(const DecodedChangeset& cs) const {
  std::vector<std::string> rows;
  rows.reserve(cs.rows.size());
  for (const ChangeRow& row : cs.rows) rows.push_back(CanonicalRow(cs, row));
  std::sort(rows.begin(), rows.end());
  std::string acc = "airlock.sqlite.effect.v1\n";
  for (const std::string& r : rows) acc += "row " + LengthPrefixed(r) + "\n";
  for (const DdlOp& d : obs_.effect.ddl) {
    acc += "ddl " + LengthPrefixed(d.op) + LengthPrefixed(d.object) + LengthPrefixed(d.table) +
           LengthPrefixed(d.detail) + std::to_string(d.rows) + "\n";
  }
  for (const auto& [key, tc] : no_pk_) {
    acc += "nopk " + LengthPrefixed(tc.table) + std::to_string(tc.inserted) + "/" +
           std::to_string(tc.updated) + "/" + std::to_string(tc.deleted) + "\n";
  }
  return Sha256Hex(acc);
}

}  // namespace

sqlite3_stmt* ReadStatementCache::Find(std::string_view sql) {
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->first == sql) {
      entries_.splice(entries_.begin(), entries_, it);
      return entries_.front().second.get();
    }
  }
  return nullptr;
}

void ReadStatementCache::Keep(std::string_view sql, StmtHandle stmt) {
  if (sql.size() > kMaxTextBytes ||
      sqlite3_stmt_status(stmt.get(), SQLITE_STMTSTATUS_MEMUSED, 0) > kMaxStatementBytes) {
    return;
  }
  entries_.emplace_front(std::string(sql), std::move(stmt));
  while (entries_.size() > kCapacity) entries_.pop_back();
}

Result<Observation> ExecuteObserved(sqlite3* db, std::string_view sql,
                                    const ObserveOptions& options, Authorizer* installed) {
  ObservedRun run(db, options, installed);
  return run.Run(sql);
}

}  // namespace airlock::sqlite
