// Undo of a PostgreSQL action: the captured row changes, replayed backwards as inverse row
// operations, each matched by primary key and by the full row image the action left, so a
// row changed since makes a conflict instead of being overwritten.
#pragma once

#include <string>
#include <vector>

#include "connectors/postgres/effect.h"
#include "connectors/postgres/libpq.h"
#include "core/types.h"

namespace airlock::pg {

// A dropped table as pg_dump wrote it before the drop (dump.h).
struct PreImage {
  std::string table;  // identity, e.g. public.logs
  std::string sql;
};

// A schema change that a rollback reverses (ddl_undo.h says which ones are).
struct DdlUndo {
  // drop_created: the action created it; dropped again.
  // replace_table: the action altered it; replaced by its pre-image (`sql`, pg_dump).
  // recreate: the action dropped it; recreated by `sql` (pg_dump, or pg_get_indexdef).
  std::string op;
  std::string kind;      // table | index | view | sequence
  std::string identity;  // as PostgreSQL quotes it, e.g. public."My table"
  std::string sql;
  // drop_created, replace_table: ObjectFingerprint as the action left the object; a
  // different one at rollback means someone used or replaced it since: a conflict.
  std::string fingerprint;
};

struct UndoData {
  std::vector<CapturedRow> rows;  // in capture order
  std::vector<PreImage> pre_images;
  std::vector<DdlUndo> ddl;  // absent from records written before DDL undo: decodes as empty
};

std::string EncodeUndo(const UndoData& undo);
Result<UndoData> DecodeUndo(const std::string& data);

// Recreates the dropped tables (first, so that the row undo finds them), inside the caller's
// open transaction. A table of that name that exists again is a conflict.
Status RestorePreImages(Conn* conn, const std::vector<PreImage>& pre_images, Json* conflicts);

// SHA-256 over the table's columns (name and type, in order) and its rows (text form,
// sorted): equal as long as no one changed the table's shape or contents.
Result<std::string> TableFingerprint(Conn* conn, const std::string& identity);

// What a rollback compares before it drops an object the action created: the table's
// fingerprint, the definition of an index or view (pg_get_indexdef, pg_get_viewdef); ""
// for a sequence.
Result<std::string> ObjectFingerprint(Conn* conn, const std::string& kind,
                                      const std::string& identity);

// Reverses the schema changes inside the caller's open transaction, after UndoRows: first
// every check (a table changed since, a name taken again), then the changes, views before
// tables before the rest. A change the server refuses (another object depends on it) is a
// conflict too, and is rolled back to a savepoint; the caller rolls back if there is any.
Status UndoDdl(Conn* conn, const std::vector<DdlUndo>& ddl, Json* conflicts);

// Runs the inverse operations inside the caller's open transaction. Every row that no longer
// matches is appended to *conflicts ({table, op, row, why}); the caller rolls back if there
// is any. Tables without a primary key are matched by their full row image (best effort: of
// identical rows, any one is taken).
Status UndoRows(Conn* conn, const std::vector<CapturedRow>& rows, Json* conflicts);

}  // namespace airlock::pg
