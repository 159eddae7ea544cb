#include "connectors/sqlite/changeset.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

namespace airlock::sqlite {
namespace {

Value Int(int64_t i) {
  Value v;
  v.type = Value::Type::kInteger;
  v.i = i;
  return v;
}
Value Real(double r) {
  Value v;
  v.type = Value::Type::kReal;
  v.r = r;
  return v;
}
Value Bytes(Value::Type t, std::string b) {
  Value v;
  v.type = t;
  v.bytes = std::move(b);
  return v;
}

TEST(Changeset, EncodedRowsRoundTripExactly) {
  TableShape shape{"t", {true, false, false, false}};
  std::string big(300, 'x');  // length needs a two-byte varint
  std::vector<std::vector<Value>> rows = {
      {Int(-1), Real(-0.0), Bytes(Value::Type::kBlob, std::string("\0\xff", 2)), Value{}},
      {Int(INT64_MAX), Real(0.1), Bytes(Value::Type::kText, big), Bytes(Value::Type::kBlob, "")}};
  rows[0][3].type = Value::Type::kNull;
  auto cs = DecodeChangeset(EncodeInserts(shape, rows));
  ASSERT_TRUE(cs.ok()) << cs.status().ToString();
  ASSERT_EQ(cs->rows.size(), 2u);
  EXPECT_EQ(cs->tables[0].name, "t");
  EXPECT_EQ(cs->tables[0].pk, shape.pk);
  for (size_t r = 0; r < rows.size(); ++r) {
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(CanonicalValue(cs->rows[r].new_values[i]), CanonicalValue(rows[r][i]));
    }
  }
  EXPECT_TRUE(std::signbit(cs->rows[0].new_values[1].r));
}

TEST(Changeset, EveryTruncationIsAnErrorNotACrash) {
  TableShape shape{"users", {true, false}};
  std::string full = EncodeInserts(shape, {{Int(1), Bytes(Value::Type::kText, "abc")}});
  for (size_t n = 1; n < full.size(); ++n) {
    auto cs = DecodeChangeset(full.substr(0, n));
    EXPECT_FALSE(cs.ok() && !cs->rows.empty()) << n;
  }
  EXPECT_TRUE(DecodeChangeset("").ok());
  EXPECT_EQ(DecodeChangeset("P\x01\x01t").status().code(), StatusCode::kCorruption);
  EXPECT_EQ(DecodeChangeset(std::string("\x12\x00", 2)).status().code(), StatusCode::kCorruption);
  // A hostile length far beyond the buffer.
  std::string huge = std::string("T\x01\x01t\0\x12\x00\x03\xff\xff\xff\xff\x0f", 13);
  EXPECT_EQ(DecodeChangeset(huge).status().code(), StatusCode::kCorruption);
}

TEST(Changeset, CanonicalValuesAreTypeTagged) {
  EXPECT_NE(CanonicalValue(Int(1)), CanonicalValue(Real(1.0)));
  EXPECT_NE(CanonicalValue(Bytes(Value::Type::kText, "1")),
            CanonicalValue(Bytes(Value::Type::kBlob, "1")));
  EXPECT_NE(CanonicalValue(Real(0.1)), CanonicalValue(Real(0.1 + 1e-17)));
  EXPECT_EQ(ValueToJson(Bytes(Value::Type::kBlob, "\x01")), Json({{"blob_hex", "01"}}));
}

}  // namespace
}  // namespace airlock::sqlite
