// Pre-images of schema objects that DDL drops or alters, and how to put them back.
//
// The session extension records row changes only, so a DROP TABLE or ALTER TABLE cannot be
// undone from the changeset: before such a statement runs, the table's definition, its
// indexes and triggers and every row (exact values: blobs, reals and NULLs round-trip
// bit for bit) are captured here.
#pragma once

#include <sqlite3.h>

#include <string>
#include <vector>

#include "core/status.h"
#include "core/types.h"

namespace airlock::sqlite {

struct SchemaObject {
  std::string type;  // table, index, trigger, view
  std::string name;
  std::string table;  // tbl_name
  std::string sql;    // empty for automatic indexes
};

// Every object of the main schema except SQLite's own (sqlite_*), in rowid order.
Result<std::vector<SchemaObject>> ReadSchema(sqlite3* db);
const SchemaObject* FindObject(const std::vector<SchemaObject>& schema, const std::string& name);

struct TableSnapshot {
  std::string name;
  std::string sql;
  bool has_rowid = true;
  std::vector<std::string> columns;     // stored columns; "rowid" first if has_rowid
  std::string rows;                     // EncodeInserts() of every row
  std::vector<SchemaObject> dependents; // indexes and triggers with SQL, in schema order
  std::string after;                    // Fingerprint once the action ran
};

// Row count, index names (no sqlite_autoindex_*) and trigger names of a table, for the
// DdlOp of a drop_table / alter_table.
Status DescribeTable(sqlite3* db, DdlOp* op);

Result<TableSnapshot> SnapshotTable(sqlite3* db, const std::string& name);

// Puts the table back as it was: drops whatever now has its name, recreates it, inserts the
// rows, then its indexes and, last so that they do not fire, its triggers.
Status RestoreTable(sqlite3* db, const TableSnapshot& snap);

// A content fingerprint of a schema object: SHA-256 over its SQL and, for a table, every
// row in key order; "absent" if there is no such object. Used to notice changes made since
// the action before rollback overwrites them.
Result<std::string> Fingerprint(sqlite3* db, const std::string& name);

// DROP <type> IF EXISTS "name".
Status DropObject(sqlite3* db, const std::string& type, const std::string& name);

}  // namespace airlock::sqlite
