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

std::string EncodeUndo(const std::vector<CapturedRow>& rows);
Result<std::vector<CapturedRow>> DecodeUndo(const std::string& data);

// Runs the inverse operations inside the caller's open transaction. Every row that no longer
// matches is appended to *conflicts ({table, op, row, why}); the caller rolls back if there
// is any. Tables without a primary key are matched by their full row image (best effort: of
// identical rows, any one is taken).
Status UndoRows(Conn* conn, const std::vector<CapturedRow>& rows, Json* conflicts);

}  // namespace airlock::pg
