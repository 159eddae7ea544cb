// From what the capture triggers recorded to the Effect every SQL target reports (the same
// shape as SQLite's, so that classification, rendering and rules work unchanged). Pure: no
// connection, so it is unit-tested and fuzzed on hostile captured rows.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/types.h"

namespace airlock::pg {

// One row of airlock.changes. old_row/new_row are jsonb as text ("" for SQL NULL).
// op: insert | update | delete | truncate (a row removed by TRUNCATE).
struct CapturedRow {
  std::string schema;
  std::string table;
  std::string op;
  std::string old_row;
  std::string new_row;
};

// One row of airlock.ddl. phase: "end" (ddl_command_end) or "drop" (sql_drop).
struct CapturedDdl {
  std::string phase;
  std::string command_tag;
  std::string object_type;
  std::string schema;
  std::string identity;  // e.g. public.users, as PostgreSQL quotes it
};

// What the connector looked up in the database about a changed table.
struct TableFacts {
  bool has_primary_key = true;
  bool all_rows_deleted = false;
  bool all_rows_updated = false;
  int64_t rows_after = -1;
};

struct CaptureInput {
  std::vector<CapturedRow> rows;               // in capture order
  std::vector<CapturedDdl> ddl;                // in capture order
  std::map<std::string, int64_t> rows_before;  // dropped table identity -> rows; absent: -1
  std::map<std::string, TableFacts> facts;     // "schema.table" -> facts
  int64_t max_preview_rows = 20;
};

// "schema.table", the name rules and people see.
std::string QualifiedName(const std::string& schema, const std::string& table);

// The schema op airlock's classifier knows for a captured DDL command ("drop_table", ...);
// commands it has no name for become e.g. "create_function", which it rates high.
std::string DdlOpName(const CapturedDdl& d);

// InvalidArgument if a captured row is malformed (unknown op, a side that must be there is
// missing, a side that is not a JSON object).
Result<Effect> BuildEffect(const CaptureInput& in);

}  // namespace airlock::pg
