#include "connectors/sqlite/changeset.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "core/hash.h"

namespace airlock::sqlite {
namespace {

// SQLite's session ops reuse the authorizer codes.
constexpr uint8_t kOpInsert = 18;  // SQLITE_INSERT
constexpr uint8_t kOpUpdate = 23;  // SQLITE_UPDATE
constexpr uint8_t kOpDelete = 9;   // SQLITE_DELETE
constexpr uint64_t kMaxColumns = 32767;  // SQLITE_MAX_COLUMN hard limit

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool AtEnd() const { return pos_ >= data_.size(); }
  size_t remaining() const { return data_.size() - pos_; }

  bool Byte(uint8_t* out) {
    if (AtEnd()) return false;
    *out = static_cast<uint8_t>(data_[pos_++]);
    return true;
  }
  // SQLite varint: up to 8 bytes of 7 bits (high bit = more), a 9th byte of 8 bits.
  bool Varint(uint64_t* out) {
    uint64_t v = 0;
    for (int i = 0; i < 9; ++i) {
      uint8_t b;
      if (!Byte(&b)) return false;
      if (i == 8) {
        *out = (v << 8) | b;
        return true;
      }
      v = (v << 7) | (b & 0x7f);
      if (!(b & 0x80)) {
        *out = v;
        return true;
      }
    }
    return false;
  }
  bool Bytes(size_t n, std::string* out) {
    if (n > remaining()) return false;
    out->assign(data_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool BigEndian64(uint64_t* out) {
    if (remaining() < 8) return false;
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(data_[pos_ + i]);
    pos_ += 8;
    *out = v;
    return true;
  }
  bool CString(std::string* out) {
    const void* nul = std::memchr(data_.data() + pos_, '\0', remaining());
    if (nul == nullptr) return false;
    size_t n = static_cast<const char*>(nul) - (data_.data() + pos_);
    out->assign(data_.data() + pos_, n);
    pos_ += n + 1;
    return true;
  }
  size_t pos() const { return pos_; }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

Status Corrupt(const Reader& r, const std::string& what) {
  return Status::Corruption("changeset: " + what + " at byte " + std::to_string(r.pos()));
}

bool ReadValue(Reader& r, Value* v) {
  uint8_t type;
  if (!r.Byte(&type)) return false;
  switch (type) {
    case 0:
      v->type = Value::Type::kUndefined;
      return true;
    case 1:
    case 2: {
      uint64_t bits;
      if (!r.BigEndian64(&bits)) return false;
      if (type == 1) {
        v->type = Value::Type::kInteger;
        v->i = static_cast<int64_t>(bits);
      } else {
        v->type = Value::Type::kReal;
        std::memcpy(&v->r, &bits, sizeof bits);
      }
      return true;
    }
    case 3:
    case 4: {
      uint64_t n;
      if (!r.Varint(&n) || n > r.remaining()) return false;
      v->type = type == 3 ? Value::Type::kText : Value::Type::kBlob;
      return r.Bytes(static_cast<size_t>(n), &v->bytes);
    }
    case 5:
      v->type = Value::Type::kNull;
      return true;
    default:
      return false;
  }
}

bool ReadRecord(Reader& r, size_t ncol, std::vector<Value>* out) {
  // Each value takes at least one byte: refuse before allocating for a hostile nCol.
  if (ncol > r.remaining()) return false;
  out->resize(ncol);
  for (size_t i = 0; i < ncol; ++i) {
    if (!ReadValue(r, &(*out)[i])) return false;
  }
  return true;
}

void PutVarint(std::string* out, uint64_t v) {
  // Lengths here are < 2^56, so the 7-bit groups suffice.
  char buf[10];
  int n = 0;
  do {
    buf[n++] = static_cast<char>(v & 0x7f);
    v >>= 7;
  } while (v != 0 && n < 8);
  for (int i = n - 1; i >= 0; --i) out->push_back(static_cast<char>(buf[i] | (i > 0 ? 0x80 : 0)));
}

void PutBigEndian64(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void PutValue(std::string* out, const Value& v) {
  out->push_back(static_cast<char>(v.type));
  switch (v.type) {
    case Value::Type::kInteger:
      PutBigEndian64(out, static_cast<uint64_t>(v.i));
      break;
    case Value::Type::kReal: {
      uint64_t bits;
      std::memcpy(&bits, &v.r, sizeof bits);
      PutBigEndian64(out, bits);
      break;
    }
    case Value::Type::kText:
    case Value::Type::kBlob:
      PutVarint(out, v.bytes.size());
      out->append(v.bytes);
      break;
    default:
      break;
  }
}

}  // namespace

const char* RowOpName(RowOp op) {
  switch (op) {
    case RowOp::kInsert:
      return "insert";
    case RowOp::kUpdate:
      return "update";
    case RowOp::kDelete:
      return "delete";
  }
  return "?";
}

Result<DecodedChangeset> DecodeChangeset(std::string_view bytes) {
  DecodedChangeset cs;
  Reader r(bytes);
  while (!r.AtEnd()) {
    uint8_t tag;
    (void)r.Byte(&tag);
    if (tag == 'T') {
      uint64_t ncol;
      if (!r.Varint(&ncol)) return Corrupt(r, "truncated column count");
      if (ncol == 0 || ncol > kMaxColumns) return Corrupt(r, "bad column count");
      std::string flags;
      if (!r.Bytes(static_cast<size_t>(ncol), &flags)) return Corrupt(r, "truncated pk flags");
      TableShape shape;
      for (char f : flags) shape.pk.push_back(f != 0);
      if (!r.CString(&shape.name)) return Corrupt(r, "unterminated table name");
      cs.tables.push_back(std::move(shape));
      continue;
    }
    if (tag == 'P') return Corrupt(r, "patchsets are not supported");
    if (cs.tables.empty()) return Corrupt(r, "change before any table header");
    ChangeRow row;
    row.table = cs.tables.size() - 1;
    size_t ncol = cs.tables.back().pk.size();
    uint8_t indirect;
    if (!r.Byte(&indirect)) return Corrupt(r, "truncated change");
    switch (tag) {
      case kOpInsert:
        row.op = RowOp::kInsert;
        if (!ReadRecord(r, ncol, &row.new_values)) return Corrupt(r, "bad insert record");
        break;
      case kOpDelete:
        row.op = RowOp::kDelete;
        if (!ReadRecord(r, ncol, &row.old_values)) return Corrupt(r, "bad delete record");
        break;
      case kOpUpdate:
        row.op = RowOp::kUpdate;
        if (!ReadRecord(r, ncol, &row.old_values) || !ReadRecord(r, ncol, &row.new_values)) {
          return Corrupt(r, "bad update record");
        }
        break;
      default:
        return Corrupt(r, "unknown change type " + std::to_string(tag));
    }
    cs.rows.push_back(std::move(row));
  }
  return cs;
}

std::string EncodeInserts(const TableShape& shape, const std::vector<std::vector<Value>>& rows) {
  std::string out = "T";
  PutVarint(&out, shape.pk.size());
  for (bool f : shape.pk) out.push_back(f ? 1 : 0);
  out.append(shape.name);
  out.push_back('\0');
  for (const auto& row : rows) {
    out.push_back(static_cast<char>(kOpInsert));
    out.push_back(0);
    for (const Value& v : row) PutValue(&out, v);
  }
  return out;
}

Json ValueToJson(const Value& v) {
  switch (v.type) {
    case Value::Type::kInteger:
      return v.i;
    case Value::Type::kReal:
      return v.r;
    case Value::Type::kText:
      return v.bytes;
    case Value::Type::kBlob:
      return Json{{"blob_hex", HexEncode(v.bytes)}};
    default:
      return nullptr;
  }
}

std::string CanonicalValue(const Value& v) {
  switch (v.type) {
    case Value::Type::kInteger:
      return "i" + std::to_string(v.i) + ";";
    case Value::Type::kReal: {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g", v.r);
      return std::string("r") + buf + ";";
    }
    case Value::Type::kText:
      return "t" + std::to_string(v.bytes.size()) + ":" + v.bytes;
    case Value::Type::kBlob:
      return "b" + std::to_string(v.bytes.size()) + ":" + v.bytes;
    case Value::Type::kNull:
      return "n";
    default:
      return "u";
  }
}

std::string CanonicalRow(const DecodedChangeset& cs, const ChangeRow& row) {
  const std::string& table = cs.tables[row.table].name;
  std::string out = std::to_string(table.size()) + ":" + table + RowOpName(row.op) + "|";
  for (const Value& v : row.old_values) out += CanonicalValue(v);
  out += "|";
  for (const Value& v : row.new_values) out += CanonicalValue(v);
  return out;
}

std::string HexDecodeOrEmpty(std::string_view hex, bool* ok) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  *ok = hex.size() % 2 == 0;
  std::string out;
  if (!*ok) return out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) {
      *ok = false;
      return {};
    }
    out.push_back(static_cast<char>(hi << 4 | lo));
  }
  return out;
}

}  // namespace airlock::sqlite
