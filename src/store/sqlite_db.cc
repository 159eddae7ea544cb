#include "store/sqlite_db.h"

#include <utility>

#include "store/store_vfs.h"

namespace airlock::sqlite {

Stmt::Stmt(Stmt&& other) noexcept
    : db_(other.db_),
      stmt_(std::exchange(other.stmt_, nullptr)),
      cache_in_use_(std::exchange(other.cache_in_use_, nullptr)),
      bind_rc_(other.bind_rc_),
      bind_index_(other.bind_index_) {}

Stmt::~Stmt() {
  if (stmt_ == nullptr) return;
  if (cache_in_use_ == nullptr) {
    sqlite3_finalize(stmt_);
    return;
  }
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  *cache_in_use_ = false;
}

void Stmt::NoteBind(int rc, int index) {
  if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) {
    bind_rc_ = rc;
    bind_index_ = index;
  }
}

Stmt& Stmt::Bind(int index, int64_t value) {
  NoteBind(sqlite3_bind_int64(stmt_, index, value), index);
  return *this;
}

Stmt& Stmt::BindText(int index, std::string_view text) {
  NoteBind(
      sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8),
      index);
  return *this;
}

Stmt& Stmt::BindTextRef(int index, std::string_view text) {
  NoteBind(sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8),
           index);
  return *this;
}

Stmt& Stmt::BindBlob(int index, std::string_view bytes) {
  // A zero-length blob still binds as a blob (not NULL): sqlite3_bind_blob64 with a
  // non-null pointer.
  static const char kEmpty = 0;
  const void* data = bytes.empty() ? &kEmpty : bytes.data();
  NoteBind(sqlite3_bind_blob64(stmt_, index, data, bytes.size(), SQLITE_TRANSIENT), index);
  return *this;
}

Stmt& Stmt::BindNull(int index) {
  NoteBind(sqlite3_bind_null(stmt_, index), index);
  return *this;
}

Result<bool> Stmt::Step() {
  if (bind_rc_ != SQLITE_OK) {
    return db_->Error("binding parameter " + std::to_string(bind_index_), bind_rc_);
  }
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  const char* sql = sqlite3_sql(stmt_);
  return db_->Error(std::string("running \"") + (sql ? sql : "?") + "\"", rc);
}

Status Stmt::Run() {
  while (true) {
    ASSIGN_OR_RETURN(bool row, Step());
    if (!row) return Status::Ok();
  }
}

std::string Stmt::Text(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  if (p == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

std::string Stmt::Blob(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  if (p == nullptr) return {};
  return std::string(static_cast<const char*>(p),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

Result<std::unique_ptr<Db>> Db::Open(const std::string& path, int flags, int busy_timeout_ms) {
  sqlite3* raw = nullptr;
  // NOMUTEX: each Db is used by one thread at a time, serialized by the store's mutexes.
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, StoreVfsName());
  if (rc != SQLITE_OK) {
    std::string msg = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    sqlite3_close_v2(raw);
    return Status::IoError("opening " + path + ": " + msg + " (SQLite code " + std::to_string(rc) +
                           ")");
  }
  std::unique_ptr<Db> db(new Db(raw, path));
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, busy_timeout_ms);
  // Whichever connection closes last checkpoints and then empties the WAL, keeping the file
  // (see store_vfs.h: a small one keeps its size too, its header zeroed). It must be
  // emptied, not kept whole: frames left in it would be replayed onto a store file restored
  // from a backup beside it. A journal_size_limit (needed for the emptying) far above the
  // ~4 MiB the auto-checkpoint keeps the WAL at never truncates it while the store is in use.
  // Without the limit the WAL is deleted on close, as SQLite does by default.
  if (db->Exec("PRAGMA journal_size_limit=67108864").ok()) {
    int persist = 1;
    sqlite3_file_control(raw, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
  }
  return db;
}

Db::~Db() {
  for (auto& [sql, cached] : cache_) sqlite3_finalize(cached.stmt);
  sqlite3_close_v2(db_);
}

Result<Stmt> Db::Prepare(std::string_view sql) {
  auto it = cache_.find(std::string(sql));
  if (it != cache_.end() && !it->second.in_use) {
    it->second.in_use = true;
    return Stmt(this, it->second.stmt, &it->second.in_use);
  }
  bool cache = it == cache_.end();
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              cache ? SQLITE_PREPARE_PERSISTENT : 0, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return Error("preparing \"" + std::string(sql) + "\"", rc);
  }
  if (!cache) return Stmt(this, stmt, nullptr);  // the cached one is busy (nested use)
  auto [pos, inserted] = cache_.emplace(std::string(sql), CachedStmt{stmt, true});
  (void)inserted;
  return Stmt(this, stmt, &pos->second.in_use);
}

Status Db::Exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return Status::Ok();
  std::string detail = err ? err : sqlite3_errstr(rc);
  sqlite3_free(err);
  return MakeError(std::string("running \"") + sql + "\"", rc, detail);
}

Status Db::Error(std::string_view what, int rc) const {
  return MakeError(what, rc, sqlite3_errmsg(db_));
}

Status Db::MakeError(std::string_view what, int rc, std::string_view detail) const {
  std::string msg = std::string(what) + ": " + std::string(detail) + " (" + path_ +
                    ", SQLite code " + std::to_string(rc) + ")";
  switch (PrimaryCode(rc)) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::Corruption(std::move(msg));
    case SQLITE_READONLY:
    case SQLITE_CONSTRAINT:
      return Status::FailedPrecondition(std::move(msg));
    default:
      return Status::IoError(std::move(msg));
  }
}

}  // namespace airlock::sqlite
