#include "connectors/sqlite/db.h"

#include <sys/stat.h>

namespace airlock::sqlite {

namespace {

Result<DbHandle> Open(const std::string& path, int busy_timeout_ms, int mode) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Status::NotFound("sqlite database '" + path + "' does not exist");
  }
  sqlite3* raw = nullptr;
  // Without SQLITE_OPEN_CREATE: airlock never creates a target.
  int rc = sqlite3_open_v2(path.c_str(), &raw, mode | SQLITE_OPEN_NOMUTEX, nullptr);
  DbHandle db(raw);
  if (rc != SQLITE_OK) {
    std::string msg = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    if (rc == SQLITE_CANTOPEN) {
      return Status::NotFound("sqlite database '" + path + "': " + msg);
    }
    return Status::IoError("sqlite database '" + path + "': " + msg);
  }
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), busy_timeout_ms);
  sqlite3_db_config(db.get(), SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, nullptr);
  sqlite3_db_config(db.get(), SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  return db;
}

}  // namespace

Result<DbHandle> OpenExisting(const std::string& path, int busy_timeout_ms) {
  return Open(path, busy_timeout_ms, SQLITE_OPEN_READWRITE);
}

Result<DbHandle> OpenExistingReadOnly(const std::string& path, int busy_timeout_ms) {
  ASSIGN_OR_RETURN(DbHandle db, Open(path, busy_timeout_ms, SQLITE_OPEN_READONLY));
  // Belt and braces: the file is opened read-only, and query_only refuses writes to the
  // temp schema as well.
  if (sqlite3_exec(db.get(), "PRAGMA query_only=1", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return SqlError(db.get(), sqlite3_errcode(db.get()), "setting query_only");
  }
  return db;
}

Status SqlError(sqlite3* db, int rc, const std::string& context) {
  std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string text = context.empty() ? msg : context + ": " + msg;
  switch (rc & 0xff) {
    case SQLITE_ERROR:
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
    case SQLITE_TOOBIG:
    case SQLITE_AUTH:
      return Status::InvalidArgument(text);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::Corruption(text);
    default:
      return Status::IoError(text + " (sqlite code " + std::to_string(rc) + ")");
  }
}

Status Exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  SqliteBuffer owned(err);
  if (rc != SQLITE_OK) return SqlError(db, rc, "");
  return Status::Ok();
}

Result<StmtHandle> Prepare(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.c_str(), static_cast<int>(sql.size()), &raw, nullptr);
  StmtHandle stmt(raw);
  if (rc != SQLITE_OK) return SqlError(db, rc, "");
  if (!stmt) return Status::Internal("empty statement: " + sql);
  return stmt;
}

std::string QuoteIdent(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    out += c;
    if (c == '"') out += '"';
  }
  out += '"';
  return out;
}

Json ColumnJson(sqlite3_stmt* stmt, int i) {
  return ValueToJson(ColumnValue(stmt, i));
}

Value ColumnValue(sqlite3_stmt* stmt, int i) {
  Value v;
  switch (sqlite3_column_type(stmt, i)) {
    case SQLITE_INTEGER:
      v.type = Value::Type::kInteger;
      v.i = sqlite3_column_int64(stmt, i);
      break;
    case SQLITE_FLOAT:
      v.type = Value::Type::kReal;
      v.r = sqlite3_column_double(stmt, i);
      break;
    case SQLITE_TEXT: {
      v.type = Value::Type::kText;
      const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
      v.bytes.assign(p ? p : "", sqlite3_column_bytes(stmt, i));
      break;
    }
    case SQLITE_BLOB: {
      v.type = Value::Type::kBlob;
      const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt, i));
      int n = sqlite3_column_bytes(stmt, i);
      if (p && n > 0) v.bytes.assign(p, n);
      break;
    }
    default:
      v.type = Value::Type::kNull;
  }
  return v;
}

int BindValue(sqlite3_stmt* stmt, int index, const Value& v) {
  switch (v.type) {
    case Value::Type::kInteger:
      return sqlite3_bind_int64(stmt, index, v.i);
    case Value::Type::kReal:
      return sqlite3_bind_double(stmt, index, v.r);
    case Value::Type::kText:
      return sqlite3_bind_text64(stmt, index, v.bytes.data(), v.bytes.size(), SQLITE_TRANSIENT,
                                 SQLITE_UTF8);
    case Value::Type::kBlob:
      return sqlite3_bind_blob64(stmt, index, v.bytes.data(), v.bytes.size(), SQLITE_TRANSIENT);
    default:
      return sqlite3_bind_null(stmt, index);
  }
}

Result<std::vector<ColumnInfo>> TableColumns(sqlite3* db, const std::string& table) {
  ASSIGN_OR_RETURN(StmtHandle stmt,
                   Prepare(db, "SELECT name, pk, hidden FROM pragma_table_xinfo(?1, 'main')"));
  sqlite3_bind_text(stmt.get(), 1, table.c_str(), -1, SQLITE_TRANSIENT);
  std::vector<ColumnInfo> cols;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    const auto* name = reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 0));
    cols.push_back({name ? name : "", sqlite3_column_int(stmt.get(), 1),
                    sqlite3_column_int(stmt.get(), 2)});
  }
  if (rc != SQLITE_DONE) return SqlError(db, rc, "columns of '" + table + "'");
  return cols;
}

Result<bool> HasRow(sqlite3* db, const std::string& sql, const std::string& text) {
  ASSIGN_OR_RETURN(StmtHandle stmt, Prepare(db, sql));
  if (sqlite3_bind_parameter_count(stmt.get()) > 0) {
    sqlite3_bind_text(stmt.get(), 1, text.c_str(), -1, SQLITE_TRANSIENT);
  }
  int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqlError(db, rc, "");
}

Transaction::~Transaction() {
  if (active_) (void)Rollback();
}

Status Transaction::Begin(const char* begin_sql) {
  RETURN_IF_ERROR(Exec(db_, begin_sql));
  active_ = true;
  return Status::Ok();
}

Status Transaction::Commit() {
  Status st = Exec(db_, "COMMIT");
  // A failed COMMIT may leave the transaction open (e.g. SQLITE_BUSY); the destructor then
  // rolls it back.
  if (st.ok() || sqlite3_get_autocommit(db_)) active_ = false;
  return st;
}

Status Transaction::Rollback() {
  active_ = false;
  // SQLite may already have rolled back on its own (e.g. after SQLITE_FULL).
  if (sqlite3_get_autocommit(db_)) return Status::Ok();
  return Exec(db_, "ROLLBACK");
}

}  // namespace airlock::sqlite
