// The SQLite session changeset format, decoded by airlock's own parser so that untrusted
// bytes (an undo record read back from the store, a fuzzer's input) are checked before
// SQLite ever sees them. Also: the canonical, byte-order-independent form the effect hash
// is computed over.
//
// Format (sqlite3session.h, "changeset format"): a sequence of table blocks
//   'T' varint(nCol) nCol*byte(pk flag) name '\0'
// each followed by changes
//   op(SQLITE_INSERT|SQLITE_UPDATE|SQLITE_DELETE) byte(indirect) record(s)
// where DELETE carries the old record, INSERT the new one and UPDATE old then new. A record
// is nCol values: 0 undefined, 1 int64 BE, 2 double BE, 3 text varint(n) bytes,
// 4 blob varint(n) bytes, 5 null.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/types.h"

namespace airlock::sqlite {

struct Value {
  enum class Type : uint8_t {
    kUndefined = 0,
    kInteger = 1,
    kReal = 2,
    kText = 3,
    kBlob = 4,
    kNull = 5
  };
  Type type = Type::kUndefined;
  int64_t i = 0;
  double r = 0;
  std::string bytes;  // text or blob
};

enum class RowOp { kInsert, kUpdate, kDelete };
const char* RowOpName(RowOp op);  // "insert", "update", "delete"

struct TableShape {
  std::string name;
  std::vector<bool> pk;  // one flag per column
};

struct ChangeRow {
  size_t table = 0;  // index into DecodedChangeset::tables
  RowOp op = RowOp::kInsert;
  std::vector<Value> old_values;  // empty for insert
  std::vector<Value> new_values;  // empty for delete
};

struct DecodedChangeset {
  std::vector<TableShape> tables;  // in order of appearance
  std::vector<ChangeRow> rows;     // in byte order
};

// Refuses anything malformed (Corruption): truncated values, bad type bytes, lengths past
// the end, tables without columns, patchsets. Never reads out of bounds.
Result<DecodedChangeset> DecodeChangeset(std::string_view bytes);

// Encodes INSERT changes of `rows` (each exactly shape.pk.size() values) into the same
// format; used for the rows of a table pre-image.
std::string EncodeInserts(const TableShape& shape, const std::vector<std::vector<Value>>& rows);

// {"blob_hex": ...} for blobs, numbers, strings, null; undefined -> null.
Json ValueToJson(const Value& v);

// Type-tagged, length-prefixed, byte-exact encodings for hashing: two values encode equally
// iff they are the same SQLite value (reals via "%.17g").
std::string CanonicalValue(const Value& v);
std::string CanonicalRow(const DecodedChangeset& cs, const ChangeRow& row);

std::string HexDecodeOrEmpty(std::string_view hex, bool* ok);

}  // namespace airlock::sqlite
