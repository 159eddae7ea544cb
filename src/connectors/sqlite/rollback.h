// Undo of an applied action inside the caller's open transaction: conflict checks first,
// then the inverted changeset, then the schema pre-images.
#pragma once

#include <sqlite3.h>

#include "connectors/sqlite/undo.h"
#include "core/status.h"
#include "core/types.h"

namespace airlock::sqlite {

// Appends each conflict to *conflicts (an array) and stops changing anything as soon as one
// is found; the caller then rolls the transaction back. Conflict entries:
//   {"table","op","pk":{column: value},"conflict":"data|notfound|conflict|constraint|..."}
//   {"table","conflict":"schema_changed"}            the table no longer has the same shape
//   {"object","type","conflict":"changed_since_apply"}   a restored/created object changed
Status UndoAll(sqlite3* db, const UndoData& undo, Json* conflicts);

}  // namespace airlock::sqlite
