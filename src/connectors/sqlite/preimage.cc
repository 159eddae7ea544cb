#include "connectors/sqlite/preimage.h"

#include <algorithm>
#include <cctype>

#include "connectors/sqlite/changeset.h"
#include "connectors/sqlite/db.h"
#include "core/hash.h"

namespace airlock::sqlite {
namespace {

std::string Text(sqlite3_stmt* stmt, int i) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
  return p ? std::string(p, sqlite3_column_bytes(stmt, i)) : std::string();
}

Result<bool> HasRowid(sqlite3* db, const std::string& table) {
  ASSIGN_OR_RETURN(StmtHandle stmt,
                   Prepare(db, "SELECT wr FROM pragma_table_list WHERE schema='main' AND name=?1"));
  sqlite3_bind_text(stmt.get(), 1, table.c_str(), -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_ROW) return sqlite3_column_int(stmt.get(), 0) == 0;
  if (rc == SQLITE_DONE) return Status::NotFound("no table '" + table + "'");
  return SqlError(db, rc, "table_list");
}

// SELECT [rowid,] stored columns FROM t ORDER BY key — a deterministic row order.
Result<std::string> SelectAllSql(sqlite3* db, const std::string& table, bool* has_rowid,
                                 std::vector<std::string>* columns) {
  ASSIGN_OR_RETURN(*has_rowid, HasRowid(db, table));
  ASSIGN_OR_RETURN(std::vector<ColumnInfo> cols, TableColumns(db, table));
  columns->clear();
  std::string select, order;
  if (*has_rowid) {
    columns->push_back("rowid");
    select = "_rowid_";
    order = "_rowid_";
  }
  std::vector<std::pair<int, std::string>> pk;
  for (const ColumnInfo& c : cols) {
    if (c.hidden != 0) continue;  // generated columns are recomputed, never inserted
    columns->push_back(c.name);
    if (!select.empty()) select += ", ";
    select += QuoteIdent(c.name);
    if (c.pk > 0) pk.emplace_back(c.pk, QuoteIdent(c.name));
  }
  if (order.empty()) {
    std::sort(pk.begin(), pk.end());
    for (const auto& [pos, name] : pk) order += (order.empty() ? "" : ", ") + name;
  }
  std::string sql = "SELECT " + select + " FROM main." + QuoteIdent(table);
  if (!order.empty()) sql += " ORDER BY " + order;
  return sql;
}

}  // namespace

Result<std::vector<SchemaObject>> ReadSchema(sqlite3* db) {
  ASSIGN_OR_RETURN(StmtHandle stmt,
                   Prepare(db,
                           "SELECT type, name, tbl_name, sql FROM main.sqlite_schema "
                           "WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid"));
  std::vector<SchemaObject> out;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    out.push_back({Text(stmt.get(), 0), Text(stmt.get(), 1), Text(stmt.get(), 2),
                   Text(stmt.get(), 3)});
  }
  if (rc != SQLITE_DONE) return SqlError(db, rc, "reading the schema");
  return out;
}

const SchemaObject* FindObject(const std::vector<SchemaObject>& schema, const std::string& name) {
  for (const SchemaObject& o : schema) {
    if (sqlite3_stricmp(o.name.c_str(), name.c_str()) == 0) return &o;
  }
  return nullptr;
}

Status DescribeTable(sqlite3* db, DdlOp* op) {
  const std::string& table = op->object;
  ASSIGN_OR_RETURN(StmtHandle count, Prepare(db, "SELECT count(*) FROM main." + QuoteIdent(table)));
  if (sqlite3_step(count.get()) == SQLITE_ROW) op->rows = sqlite3_column_int64(count.get(), 0);
  ASSIGN_OR_RETURN(StmtHandle deps,
                   Prepare(db,
                           "SELECT type, name FROM main.sqlite_schema WHERE tbl_name=?1 "
                           "AND type IN ('index','trigger') "
                           "AND name NOT LIKE 'sqlite\\_autoindex\\_%' ESCAPE '\\' "
                           "ORDER BY rowid"));
  sqlite3_bind_text(deps.get(), 1, table.c_str(), -1, SQLITE_TRANSIENT);
  int rc;
  while ((rc = sqlite3_step(deps.get())) == SQLITE_ROW) {
    (Text(deps.get(), 0) == "index" ? op->indexes : op->triggers).push_back(Text(deps.get(), 1));
  }
  if (rc != SQLITE_DONE) return SqlError(db, rc, "describing '" + table + "'");
  return Status::Ok();
}

Result<TableSnapshot> SnapshotTable(sqlite3* db, const std::string& name) {
  ASSIGN_OR_RETURN(std::vector<SchemaObject> schema, ReadSchema(db));
  const SchemaObject* table = FindObject(schema, name);
  if (table == nullptr || table->type != "table") {
    return Status::NotFound("no table '" + name + "' to snapshot");
  }
  if (table->sql.rfind("CREATE VIRTUAL", 0) == 0) {
    return Status::FailedPrecondition("virtual table '" + name + "' cannot be snapshotted");
  }
  TableSnapshot snap;
  snap.name = table->name;
  snap.sql = table->sql;
  for (const SchemaObject& o : schema) {
    if (o.type != "table" && !o.sql.empty() &&
        sqlite3_stricmp(o.table.c_str(), table->name.c_str()) == 0 && o.type != "view") {
      snap.dependents.push_back(o);
    }
  }
  ASSIGN_OR_RETURN(std::string sql, SelectAllSql(db, snap.name, &snap.has_rowid, &snap.columns));
  ASSIGN_OR_RETURN(StmtHandle stmt, Prepare(db, sql));
  std::vector<std::vector<Value>> rows;
  int n = sqlite3_column_count(stmt.get());
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    std::vector<Value> row(n);
    for (int i = 0; i < n; ++i) row[i] = ColumnValue(stmt.get(), i);
    rows.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) return SqlError(db, rc, "snapshot of '" + name + "'");
  TableShape shape{snap.name, std::vector<bool>(snap.columns.size(), false)};
  snap.rows = EncodeInserts(shape, rows);
  return snap;
}

Status DropObject(sqlite3* db, const std::string& type, const std::string& name) {
  std::string kind = type;
  for (char& c : kind) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (kind != "TABLE" && kind != "INDEX" && kind != "TRIGGER" && kind != "VIEW") {
    return Status::Corruption("unknown schema object type '" + type + "'");
  }
  return Exec(db, "DROP " + kind + " IF EXISTS main." + QuoteIdent(name));
}

Status RestoreTable(sqlite3* db, const TableSnapshot& snap) {
  RETURN_IF_ERROR(DropObject(db, "table", snap.name));
  RETURN_IF_ERROR(Exec(db, snap.sql).Annotate("recreating table '" + snap.name + "'"));
  ASSIGN_OR_RETURN(DecodedChangeset rows, DecodeChangeset(snap.rows));
  if (rows.tables.size() > 1 || (!rows.tables.empty() && rows.tables[0].pk.size() != snap.columns.size())) {
    return Status::Corruption("pre-image of '" + snap.name + "' does not match its columns");
  }
  std::string cols, params;
  for (size_t i = 0; i < snap.columns.size(); ++i) {
    cols += (i ? ", " : "") + (snap.has_rowid && i == 0 ? std::string("_rowid_")
                                                        : QuoteIdent(snap.columns[i]));
    params += (i ? ", ?" : "?");
  }
  ASSIGN_OR_RETURN(StmtHandle insert,
                   Prepare(db, "INSERT INTO main." + QuoteIdent(snap.name) + "(" + cols +
                                   ") VALUES(" + params + ")"));
  for (const ChangeRow& row : rows.rows) {
    if (row.op != RowOp::kInsert) return Status::Corruption("pre-image holds a non-insert");
    sqlite3_reset(insert.get());
    for (size_t i = 0; i < row.new_values.size(); ++i) {
      BindValue(insert.get(), static_cast<int>(i + 1), row.new_values[i]);
    }
    int rc = sqlite3_step(insert.get());
    if (rc != SQLITE_DONE) return SqlError(db, rc, "restoring rows of '" + snap.name + "'");
  }
  // Indexes first, triggers last: a trigger restored before the rows would fire on them.
  for (const char* type : {"index", "trigger"}) {
    for (const SchemaObject& o : snap.dependents) {
      if (o.type != type) continue;
      RETURN_IF_ERROR(DropObject(db, o.type, o.name));
      RETURN_IF_ERROR(Exec(db, o.sql).Annotate("restoring " + o.type + " '" + o.name + "'"));
    }
  }
  return Status::Ok();
}

Result<std::string> Fingerprint(sqlite3* db, const std::string& name) {
  ASSIGN_OR_RETURN(std::vector<SchemaObject> schema, ReadSchema(db));
  const SchemaObject* obj = FindObject(schema, name);
  if (obj == nullptr) return std::string("absent");
  std::string acc = obj->type + "\n" + obj->sql + "\n";
  if (obj->type == "table" && obj->sql.rfind("CREATE VIRTUAL", 0) != 0) {
    bool has_rowid;
    std::vector<std::string> columns;
    ASSIGN_OR_RETURN(std::string sql, SelectAllSql(db, obj->name, &has_rowid, &columns));
    ASSIGN_OR_RETURN(StmtHandle stmt, Prepare(db, sql));
    int n = sqlite3_column_count(stmt.get());
    int rc;
    // Hash row by row so that a big table does not need to fit in memory twice.
    std::string rows_hash = Sha256Hex("");
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      std::string row;
      for (int i = 0; i < n; ++i) row += CanonicalValue(ColumnValue(stmt.get(), i));
      rows_hash = Sha256Hex(rows_hash + row);
    }
    if (rc != SQLITE_DONE) return SqlError(db, rc, "fingerprint of '" + name + "'");
    acc += rows_hash;
  }
  return Sha256Hex(acc);
}

}  // namespace airlock::sqlite
