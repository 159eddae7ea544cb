// RAII wrappers around sqlite3* and sqlite3_stmt* for the SQLite store. Internal to src/store.
//
// A Db owns one connection and a cache of prepared statements. A Db is used by one thread at
// a time (the store's mutexes see to that); it does no locking of its own.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/status.h"

namespace airlock::sqlite {

class Db;

// A prepared statement. Borrowed from the Db's cache (reset and unbound when it goes out of
// scope, so the next user starts clean) or, when the cached one is already in use, owned.
class Stmt {
 public:
  // cache_in_use: the cache entry's flag for a borrowed statement; nullptr: owned.
  Stmt(Db* db, sqlite3_stmt* stmt, bool* cache_in_use)
      : db_(db), stmt_(stmt), cache_in_use_(cache_in_use) {}
  Stmt(Stmt&& other) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt();

  // Binds are 1-based. A failed bind is remembered and reported by the next Step.
  Stmt& Bind(int index, int64_t value);
  Stmt& BindText(int index, std::string_view text);
  // The same without a copy: `text` must stay alive and unchanged for as long as this Stmt
  // (whose end resets or finalizes the statement, and clears its bindings). For the hot
  // inserts, whose values outlive their statement: SQLite copies a record's values once
  // more as it builds the row.
  Stmt& BindTextRef(int index, std::string_view text);
  Stmt& BindBlob(int index, std::string_view bytes);
  Stmt& BindNull(int index);

  // True: a row is available; false: done.
  Result<bool> Step();
  // Steps to the end; for statements that return no rows.
  Status Run();

  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  // Text (or the text form of any other value); NULL reads as "".
  std::string Text(int col) const;
  // Exact bytes, including NULs.
  std::string Blob(int col) const;

 private:
  void NoteBind(int rc, int index);

  Db* db_;
  sqlite3_stmt* stmt_;
  bool* cache_in_use_;
  int bind_rc_ = SQLITE_OK;
  int bind_index_ = 0;
};

class Db {
 public:
  // flags: SQLITE_OPEN_* (READONLY, or READWRITE with or without CREATE). Extended result
  // codes are switched on, busy_timeout is set to busy_timeout_ms.
  static Result<std::unique_ptr<Db>> Open(const std::string& path, int flags, int busy_timeout_ms);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  sqlite3* raw() const { return db_; }
  const std::string& path() const { return path_; }

  // A cached prepared statement for `sql` (one statement).
  Result<Stmt> Prepare(std::string_view sql);
  // Runs one or more statements that return no rows we need.
  Status Exec(const char* sql);
  // True while a transaction is open on this connection.
  bool InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }
  int64_t Changes() const { return sqlite3_changes64(db_); }

  // A Status for SQLite result code rc: "<what>: <sqlite message> (<path>, SQLite code N)".
  // SQLITE_CORRUPT / SQLITE_NOTADB map to Corruption, SQLITE_READONLY to FailedPrecondition,
  // SQLITE_CONSTRAINT to FailedPrecondition, everything else to IoError.
  Status Error(std::string_view what, int rc) const;

 private:
  struct CachedStmt {
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;
  };

  Db(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  Status MakeError(std::string_view what, int rc, std::string_view detail) const;

  sqlite3* db_;
  std::string path_;
  // Node-based: a borrowed Stmt keeps a pointer to its entry's in_use flag across rehashes.
  std::unordered_map<std::string, CachedStmt> cache_;
};

// The primary result code (rc & 0xff), for comparisons with SQLITE_CONSTRAINT etc.
inline int PrimaryCode(int rc) {
  return rc & 0xff;
}

}  // namespace airlock::sqlite
