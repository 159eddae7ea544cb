#include "connectors/sqlite/rollback.h"

#include <algorithm>
#include <map>
#include <set>

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

Json SqliteValueJson(sqlite3_value* v) {
  if (v == nullptr) return nullptr;
  switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER:
      return sqlite3_value_int64(v);
    case SQLITE_FLOAT:
      return sqlite3_value_double(v);
    case SQLITE_TEXT: {
      const auto* p = reinterpret_cast<const char*>(sqlite3_value_text(v));
      return std::string(p ? p : "", sqlite3_value_bytes(v));
    }
    case SQLITE_BLOB: {
      const auto* p = static_cast<const char*>(sqlite3_value_blob(v));
      return Json{{"blob_hex", HexEncode(std::string(p ? p : "", sqlite3_value_bytes(v)))}};
    }
    default:
      return nullptr;
  }
}

const char* ConflictName(int type) {
  switch (type) {
    case SQLITE_CHANGESET_DATA:
      return "data";  // the row exists but holds other values than the action left
    case SQLITE_CHANGESET_NOTFOUND:
      return "notfound";  // the row the action touched is gone
    case SQLITE_CHANGESET_CONFLICT:
      return "conflict";  // a row with that key was inserted since
    case SQLITE_CHANGESET_CONSTRAINT:
      return "constraint";
    case SQLITE_CHANGESET_FOREIGN_KEY:
      return "foreign_key";
    default:
      return "unknown";
  }
}

struct ApplyContext {
  std::set<std::string> skip;  // lower-case tables restored from pre-images instead
  std::map<std::string, std::vector<std::string>> columns;  // table -> column names
  Json* conflicts;
};

int FilterTable(void* ctx, const char* table) {
  return static_cast<ApplyContext*>(ctx)->skip.count(Lower(table ? table : "")) ? 0 : 1;
}

int OnConflict(void* ctx_ptr, int type, sqlite3_changeset_iter* it) {
  auto* ctx = static_cast<ApplyContext*>(ctx_ptr);
  Json entry = {{"conflict", ConflictName(type)}};
  if (type != SQLITE_CHANGESET_FOREIGN_KEY) {
    const char* table = nullptr;
    int ncol = 0, op = 0, indirect = 0;
    unsigned char* pk = nullptr;
    int npk = 0;
    if (sqlite3changeset_op(it, &table, &ncol, &op, &indirect) == SQLITE_OK &&
        sqlite3changeset_pk(it, &pk, &npk) == SQLITE_OK) {
      entry["table"] = table ? table : "";
      // The op is the undo's (the inverse of what the action did).
      entry["op"] = op == SQLITE_INSERT ? "insert" : op == SQLITE_UPDATE ? "update" : "delete";
      const auto& names = ctx->columns[table ? table : ""];
      Json key = Json::object();
      for (int i = 0; i < npk; ++i) {
        if (!pk[i]) continue;
        sqlite3_value* v = nullptr;
        if (op == SQLITE_INSERT) sqlite3changeset_new(it, i, &v);
        else sqlite3changeset_old(it, i, &v);
        std::string name = i < static_cast<int>(names.size()) ? names[i] : "c" + std::to_string(i);
        key[name] = SqliteValueJson(v);
      }
      entry["pk"] = key;
    }
  }
  ctx->conflicts->push_back(std::move(entry));
  return SQLITE_CHANGESET_ABORT;
}

// An object restored or created by the action must still be exactly as the action left it;
// otherwise rollback would destroy someone's later work.
Status CheckWatched(sqlite3* db, const UndoData& undo, Json* conflicts) {
  auto check = [&](const std::string& type, const std::string& name,
                   const std::string& after) -> Status {
    ASSIGN_OR_RETURN(std::string now, Fingerprint(db, name));
    if (now != after) {
      conflicts->push_back({{"object", name}, {"type", type}, {"conflict", "changed_since_apply"}});
    }
    return Status::Ok();
  };
  for (const TableSnapshot& t : undo.tables) RETURN_IF_ERROR(check("table", t.name, t.after));
  for (const WatchedObject& w : undo.objects) {
    RETURN_IF_ERROR(check(w.object.type, w.object.name, w.after));
  }
  for (const WatchedObject& w : undo.created) {
    RETURN_IF_ERROR(check(w.object.type, w.object.name, w.after));
  }
  return Status::Ok();
}

// sqlite3changeset_apply silently skips a table whose columns no longer match: that would
// be a partial undo, so a changed shape is a conflict.
Status CheckShapes(sqlite3* db, const DecodedChangeset& cs, ApplyContext* ctx) {
  for (const TableShape& shape : cs.tables) {
    if (ctx->skip.count(Lower(shape.name))) continue;
    ASSIGN_OR_RETURN(std::vector<ColumnInfo> cols, TableColumns(db, shape.name));
    bool same = cols.size() == shape.pk.size();
    std::vector<std::string> names;
    for (size_t i = 0; i < cols.size(); ++i) {
      names.push_back(cols[i].name);
      if (same && (cols[i].pk > 0) != shape.pk[i]) same = false;
    }
    if (!same) {
      ctx->conflicts->push_back({{"table", shape.name}, {"conflict", "schema_changed"}});
    }
    ctx->columns[shape.name] = std::move(names);
  }
  return Status::Ok();
}

Status ApplyInverse(sqlite3* db, const UndoData& undo, ApplyContext* ctx) {
  if (undo.inverted_changeset.empty()) return Status::Ok();
  ASSIGN_OR_RETURN(DecodedChangeset cs, DecodeChangeset(undo.inverted_changeset));
  RETURN_IF_ERROR(CheckShapes(db, cs, ctx));
  if (!ctx->conflicts->empty()) return Status::Ok();
  int rc = sqlite3changeset_apply(db, static_cast<int>(undo.inverted_changeset.size()),
                                  const_cast<char*>(undo.inverted_changeset.data()), FilterTable,
                                  OnConflict, ctx);
  if (rc == SQLITE_ABORT && !ctx->conflicts->empty()) return Status::Ok();
  if (rc != SQLITE_OK) return SqlError(db, rc, "applying the inverted changeset");
  return Status::Ok();
}

Status RestoreSchema(sqlite3* db, const UndoData& undo) {
  // Created objects go first (newest first): a renamed table's new name must be gone before
  // the old one comes back with its indexes.
  for (auto it = undo.created.rbegin(); it != undo.created.rend(); ++it) {
    RETURN_IF_ERROR(DropObject(db, it->object.type, it->object.name));
  }
  for (const TableSnapshot& t : undo.tables) RETURN_IF_ERROR(RestoreTable(db, t));
  for (const WatchedObject& w : undo.objects) {
    RETURN_IF_ERROR(DropObject(db, w.object.type, w.object.name));
    RETURN_IF_ERROR(Exec(db, w.object.sql).Annotate("restoring " + w.object.name));
  }
  return Status::Ok();
}

}  // namespace

Status UndoAll(sqlite3* db, const UndoData& undo, Json* conflicts) {
  RETURN_IF_ERROR(CheckWatched(db, undo, conflicts));
  if (!conflicts->empty()) return Status::Ok();
  ApplyContext ctx;
  ctx.conflicts = conflicts;
  for (const TableSnapshot& t : undo.tables) ctx.skip.insert(Lower(t.name));
  for (const WatchedObject& w : undo.created) {
    if (w.object.type == "table") ctx.skip.insert(Lower(w.object.name));
  }
  RETURN_IF_ERROR(ApplyInverse(db, undo, &ctx));
  if (!conflicts->empty()) return Status::Ok();
  return RestoreSchema(db, undo);
}

}  // namespace airlock::sqlite
