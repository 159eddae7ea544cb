// RAII handles and small helpers over the SQLite C API. Every sqlite3*, sqlite3_stmt*,
// sqlite3_session* and sqlite3_malloc'd buffer the connector touches is owned by one of
// these, so no early return can leak a handle or leave a transaction open.
#pragma once

#include <sqlite3.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/sqlite/changeset.h"
#include "core/status.h"
#include "core/types.h"

namespace airlock::sqlite {

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
struct SessionDeleter {
  void operator()(sqlite3_session* s) const { sqlite3session_delete(s); }
};
struct SqliteFree {
  void operator()(void* p) const { sqlite3_free(p); }
};
using DbHandle = std::unique_ptr<sqlite3, DbCloser>;
using StmtHandle = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;
using SessionHandle = std::unique_ptr<sqlite3_session, SessionDeleter>;
using SqliteBuffer = std::unique_ptr<void, SqliteFree>;

// Opens an existing database read-write. Never creates one: a missing file is NotFound
// naming the path. Extension loading stays disabled; defensive mode stops SQL from
// corrupting the schema through writable_schema or sqlite_dbpage.
Result<DbHandle> OpenExisting(const std::string& path, int busy_timeout_ms);
// The same, read-only (SQLITE_OPEN_READONLY and PRAGMA query_only): for the read fast path.
Result<DbHandle> OpenExistingReadOnly(const std::string& path, int busy_timeout_ms);

// Maps an SQLite result code to a Status whose message carries SQLite's own text.
// SQL the caller wrote (syntax, constraints, types) is InvalidArgument; the rest is IoError.
Status SqlError(sqlite3* db, int rc, const std::string& context);

Status Exec(sqlite3* db, const std::string& sql);
Result<StmtHandle> Prepare(sqlite3* db, const std::string& sql);

// "name" with embedded quotes doubled: safe to splice into SQL as an identifier.
std::string QuoteIdent(std::string_view name);

Json ColumnJson(sqlite3_stmt* stmt, int i);
Value ColumnValue(sqlite3_stmt* stmt, int i);
int BindValue(sqlite3_stmt* stmt, int index, const Value& v);

struct ColumnInfo {
  std::string name;
  int pk = 0;      // 1-based position in the primary key, 0 if not part of it
  int hidden = 0;  // table_xinfo: 0 normal, 2/3 generated
};
// Columns of main.`table` (table_xinfo); empty if the table does not exist.
Result<std::vector<ColumnInfo>> TableColumns(sqlite3* db, const std::string& table);

// Whether `sql` (one statement, bound with `text`) returns at least one row.
Result<bool> HasRow(sqlite3* db, const std::string& sql, const std::string& text = {});

// A write transaction that rolls back unless committed.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {}
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  Status Begin(const char* begin_sql);
  Status Commit();
  Status Rollback();

 private:
  sqlite3* db_;
  bool active_ = false;
};

}  // namespace airlock::sqlite
