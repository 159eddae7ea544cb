#include "store/sqlite_schema.h"

#include <filesystem>
#include <system_error>

#include "core/hash.h"

namespace airlock::sqlite {
namespace {

// Every table holds one concern; `actions.body` is ActionToJson without votes (the votes
// table holds them), and the typed columns beside it serve the indexes.
constexpr const char* kSchemaSql = R"sql(
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value
);
CREATE TABLE IF NOT EXISTS actions (
  id         TEXT PRIMARY KEY,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  agent      TEXT NOT NULL,
  target     TEXT NOT NULL,
  kind       TEXT NOT NULL,
  status     TEXT NOT NULL,
  risk       TEXT NOT NULL,
  expires_ms INTEGER NOT NULL,
  body       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS actions_by_status ON actions(status, created_ms);
CREATE INDEX IF NOT EXISTS actions_by_agent_target ON actions(agent, target, created_ms);
CREATE TABLE IF NOT EXISTS votes (
  action_id TEXT NOT NULL REFERENCES actions(id) ON DELETE CASCADE,
  approver  TEXT NOT NULL,
  approve   INTEGER NOT NULL,
  reason    TEXT NOT NULL,
  at_ms     INTEGER NOT NULL,
  PRIMARY KEY (action_id, approver)
);
CREATE TABLE IF NOT EXISTS undo (
  action_id  TEXT PRIMARY KEY REFERENCES actions(id) ON DELETE CASCADE,
  kind       TEXT NOT NULL,
  data       BLOB NOT NULL,
  reversible INTEGER NOT NULL,
  note       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS breakers (
  target     TEXT NOT NULL,
  agent      TEXT NOT NULL,
  open       INTEGER NOT NULL,
  changed_ms INTEGER NOT NULL,
  reason     TEXT NOT NULL,
  PRIMARY KEY (target, agent)
);
CREATE TABLE IF NOT EXISTS audit (
  seq       INTEGER PRIMARY KEY,
  at_ms     INTEGER NOT NULL,
  action_id TEXT NOT NULL,
  principal TEXT NOT NULL,
  event     TEXT NOT NULL,
  payload   TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_action ON audit(action_id, seq);
-- StoreTxn::StageRecord: an action and its first audit event, until IngestStaged moves them.
CREATE TABLE IF NOT EXISTS staged (
  seq        INTEGER PRIMARY KEY,
  at_ms      INTEGER NOT NULL,
  action_id  TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  agent      TEXT NOT NULL,
  target     TEXT NOT NULL,
  kind       TEXT NOT NULL,
  status     TEXT NOT NULL,
  risk       TEXT NOT NULL,
  expires_ms INTEGER NOT NULL,
  body       TEXT NOT NULL,
  principal  TEXT NOT NULL,
  event      TEXT NOT NULL,
  payload    TEXT NOT NULL
);
)sql";

const std::string& SchemaSha() {
  static const std::string sha = Sha256Hex(kSchemaSql);
  return sha;
}

Status NotAnAirlockStore(const std::string& path, const std::string& why) {
  return Status::Corruption(path + " is not an airlock store: " + why);
}

// What an existing database holds, as far as recognising it goes.
struct Identity {
  bool has_tables = false;
  bool has_meta = false;
  std::string app;
  int64_t schema_version = -1;  // -1: missing or not an integer
  std::string schema_sha;       // kMetaSchemaSha ("" before it was kept)
};

Result<Identity> ReadIdentity(Db& db) {
  Identity id;
  {
    // The first read of the file: a garbage or corrupt file fails here (NOTADB / CORRUPT).
    ASSIGN_OR_RETURN(
        Stmt s,
        db.Prepare("SELECT count(*), count(*) FILTER (WHERE type = 'table' AND name = 'meta') "
                   "FROM sqlite_master"));
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) {
      id.has_tables = s.Int(0) > 0;
      id.has_meta = s.Int(1) > 0;
    }
  }
  if (!id.has_meta) return id;
  ASSIGN_OR_RETURN(Stmt s, db.Prepare("SELECT key, value, typeof(value) FROM meta "
                                      "WHERE key IN ('app', 'schema_version', 'schema_sha256')"));
  while (true) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    std::string key = s.Text(0);
    if (key == kMetaApp) id.app = s.Text(1);
    if (key == kMetaSchemaVersion && s.Text(2) == "integer") id.schema_version = s.Int(1);
    if (key == kMetaSchemaSha) id.schema_sha = s.Text(1);
  }
  return id;
}

// Checks that an existing database is an airlock store this build can use. An empty
// database (a zero-byte file, or one with no tables) is fine: it will be initialised.
Status CheckIdentity(const std::string& path, const Identity& id) {
  if (!id.has_tables) return Status::Ok();
  if (!id.has_meta) {
    return NotAnAirlockStore(path,
                             "it is a SQLite database with other tables and no airlock "
                             "meta table");
  }
  if (id.app != "airlock") {
    return NotAnAirlockStore(path, "its meta table names app '" + id.app + "', not 'airlock'");
  }
  if (id.schema_version < 1) {
    return NotAnAirlockStore(path, "its meta table has no valid schema_version");
  }
  if (id.schema_version > kSchemaVersion) {
    return NotAnAirlockStore(path, "its schema version " + std::to_string(id.schema_version) +
                                       " is newer than this airlock's (" +
                                       std::to_string(kSchemaVersion) + "); upgrade airlock");
  }
  return Status::Ok();
}

// Checks an existing file on the writer's connection before anything on it writes (the
// switch to WAL mode comes after): reading a database changes nothing in it. Returns whether
// its schema is this build's, so that the schema need not run again.
Result<bool> CheckExisting(Db& db) {
  const std::string& path = db.path();
  Result<Identity> id = ReadIdentity(db);
  if (!id.ok()) {
    if (id.status().code() == StatusCode::kCorruption) {
      return NotAnAirlockStore(
          path, "not a SQLite database, or a corrupt one (" + id.status().message() + ")");
    }
    return id.status().Annotate("inspecting " + path);
  }
  RETURN_IF_ERROR(CheckIdentity(path, *id));
  return id->schema_version == kSchemaVersion && id->schema_sha == SchemaSha();
}

Status SetPragmas(Db& db, const StoreOptions& options) {
  {
    // journal_mode answers with the mode it ended up in; anything but wal is a failure
    // (e.g. a file system without shared memory support).
    ASSIGN_OR_RETURN(Stmt s, db.Prepare("PRAGMA journal_mode=WAL"));
    ASSIGN_OR_RETURN(bool row, s.Step());
    std::string mode = row ? s.Text(0) : "";
    if (mode != "wal") {
      return Status::IoError("cannot switch " + db.path() + " to WAL mode (got '" + mode + "')");
    }
  }
  RETURN_IF_ERROR(
      db.Exec(options.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL"));
  return db.Exec("PRAGMA foreign_keys=ON");
}

Status CreateSchema(Db& db) {
  RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
  auto fail = [&db](Status st) {
    (void)db.Exec("ROLLBACK");
    return st;
  };
  // Checked again inside the write lock: another process may have initialised the file
  // between our inspection and now.
  Result<Identity> id = ReadIdentity(db);
  if (!id.ok()) return fail(id.status());
  if (Status st = CheckIdentity(db.path(), *id); !st.ok()) return fail(st);
  if (Status st = db.Exec(kSchemaSql); !st.ok()) return fail(st);
  const std::string seed = std::string("INSERT OR IGNORE INTO meta(key, value) VALUES ") + "('" +
                           kMetaApp + "', 'airlock'), ('" + kMetaSchemaVersion + "', " +
                           std::to_string(kSchemaVersion) + "), ('" + kMetaHeadSeq + "', 0), ('" +
                           kMetaHeadHash + "', '" + kGenesisHash + "')";
  if (Status st = db.Exec(seed.c_str()); !st.ok()) return fail(st);
  const std::string sha = std::string("INSERT OR REPLACE INTO meta(key, value) VALUES ('") +
                          kMetaSchemaSha + "', '" + SchemaSha() + "')";
  if (Status st = db.Exec(sha.c_str()); !st.ok()) return fail(st);
  return db.Exec("COMMIT");
}

}  // namespace

Result<std::unique_ptr<Db>> OpenWriter(const std::string& path, const StoreOptions& options) {
  std::error_code ec;
  bool exists = std::filesystem::exists(path, ec);
  if (ec) return Status::IoError("checking " + path + ": " + ec.message());
  int flags = SQLITE_OPEN_READWRITE;
  if (!exists) {
    if (!options.create_if_missing) {
      return Status::NotFound("store " + path + " does not exist");
    }
    std::filesystem::path parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) {
      std::filesystem::create_directories(parent, ec);
      if (ec) return Status::IoError("creating " + parent.string() + ": " + ec.message());
    }
    flags |= SQLITE_OPEN_CREATE;
  }
  ASSIGN_OR_RETURN(auto db, Db::Open(path, flags, kBusyTimeoutMs));
  bool current = false;
  if (exists) {
    ASSIGN_OR_RETURN(current, CheckExisting(*db));
  }
  RETURN_IF_ERROR(SetPragmas(*db, options));
  // The schema is a write transaction; a store already at this build's schema skips it.
  if (!current) RETURN_IF_ERROR(CreateSchema(*db));
  return db;
}

Result<std::unique_ptr<Db>> OpenReader(const std::string& path) {
  ASSIGN_OR_RETURN(auto db, Db::Open(path, SQLITE_OPEN_READONLY, kBusyTimeoutMs));
  return db;
}

}  // namespace airlock::sqlite
