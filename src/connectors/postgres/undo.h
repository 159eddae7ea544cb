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

struct UndoData {
  std::vector<CapturedRow> rows;  // in capture order
  std::vector<PreImage> pre_images;
};

std::string EncodeUndo(const UndoData& undo);
Result<UndoData> DecodeUndo(const std::string& data);

// Recreates the dropped tables (first, so that the row undo finds them), inside the caller's
// open transaction. A table of that name that exists again is a conflict.
Status RestorePreImages(Conn* conn, const std::vector<PreImage>& pre_images, Json* conflicts);

// Runs the inverse operations inside the caller's open transaction. Every row that no longer
// matches is appended to *conflicts ({table, op, row, why}); the caller rolls back if there
// is any. Tables without a primary key are matched by their full row image (best effort: of
// identical rows, any one is taken).
Status UndoRows(Conn* conn, const std::vector<CapturedRow>& rows, Json* conflicts);

}  // namespace airlock::pg
