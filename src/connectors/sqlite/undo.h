// The SQLite undo record: what Rollback needs to put the database back, and what it needs
// to notice that someone changed the same data since (then it refuses: Conflict).
//
// UndoRecord::data is JSON (schema version "v": 1) with binary parts hex-encoded:
//   {"v":1,
//    "changeset_hex": inverted session changeset (rows of tables not restored below),
//    "tables":  [{"name","sql","has_rowid","columns":[...],"rows_hex","after",
//                 "dependents":[{"type","name","table","sql"}]}],   pre-images
//    "objects": [{"type","name","table","sql","after"}],  dropped/changed index/trigger/view
//    "created": [{"type","name","after"}]}                 objects the action created
// `after` is the Fingerprint() of the object right after the action ("absent" if none).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "connectors/sqlite/preimage.h"
#include "core/status.h"

namespace airlock::sqlite {

struct WatchedObject {
  SchemaObject object;  // for "objects": the definition before the action
  std::string after;
};

struct UndoData {
  std::string inverted_changeset;
  std::vector<TableSnapshot> tables;
  std::vector<WatchedObject> objects;
  std::vector<WatchedObject> created;
};

std::string EncodeUndo(const UndoData& undo);

// Robust against any bytes: malformed input is Corruption, never a crash. The changeset and
// the pre-image rows are checked with DecodeChangeset before SQLite sees them.
Result<UndoData> DecodeUndo(std::string_view data);

}  // namespace airlock::sqlite
