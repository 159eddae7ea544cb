#include "connectors/postgres/effect.h"

#include <gtest/gtest.h>

#include "connectors/postgres/undo.h"

namespace airlock::pg {
namespace {

CapturedRow Update(int id, const std::string& from, const std::string& to) {
  auto row = [&](const std::string& name) {
    return "{\"id\": " + std::to_string(id) + ", \"name\": \"" + name + "\"}";
  };
  return {"public", "users", "update", row(from), row(to)};
}

TEST(PostgresEffect, CountsRowsPerTableAndOperation) {
  CaptureInput in;
  in.rows = {Update(1, "a", "b"),
             {"public", "users", "delete", R"({"id": 2})", ""},
             {"app", "orders", "insert", "", R"({"id": 9})"}};
  auto e = BuildEffect(in);
  ASSERT_TRUE(e.ok()) << e.status().message();
  ASSERT_EQ(e->tables.size(), 2u);
  EXPECT_EQ(e->tables[0].table, "app.orders");  // sorted by name
  EXPECT_EQ(e->tables[0].inserted, 1);
  EXPECT_EQ(e->tables[1].updated, 1);
  EXPECT_EQ(e->tables[1].deleted, 1);
  EXPECT_EQ(e->RowsChanged(), 3);
  ASSERT_EQ(e->preview.size(), 3u);
  EXPECT_EQ(e->preview[0].before["name"], "a");
  EXPECT_EQ(e->preview[0].after["name"], "b");
  EXPECT_TRUE(e->preview[1].after.is_null());
}

TEST(PostgresEffect, HashIgnoresCaptureOrderButNotValues) {
  CaptureInput a, b, c;
  a.rows = {Update(1, "x", "y"), Update(2, "x", "y")};
  b.rows = {Update(2, "x", "y"), Update(1, "x", "y")};
  c.rows = {Update(1, "x", "y"), Update(2, "x", "z")};
  EXPECT_EQ(BuildEffect(a)->effect_hash, BuildEffect(b)->effect_hash);
  EXPECT_NE(BuildEffect(a)->effect_hash, BuildEffect(c)->effect_hash);
}

TEST(PostgresEffect, DropTableCarriesRowsAndChangesTheHash) {
  CaptureInput in;
  in.ddl = {{"drop", "DROP TABLE", "table", "public", "public.logs"},
            {"drop", "DROP TABLE", "index", "public", "public.logs_idx"}};
  in.rows_before["public.logs"] = 7;
  auto e = BuildEffect(in);
  ASSERT_TRUE(e.ok());
  ASSERT_EQ(e->ddl.size(), 2u);
  EXPECT_EQ(e->ddl[0].op, "drop_table");
  EXPECT_EQ(e->ddl[0].rows, 7);
  EXPECT_EQ(e->ddl[1].op, "drop_index");
  EXPECT_FALSE(e->IsRead());
  in.rows_before["public.logs"] = 8;
  EXPECT_NE(BuildEffect(in)->effect_hash, e->effect_hash);
}

TEST(PostgresEffect, NamesDdlCommands) {
  EXPECT_EQ(DdlOpName({"end", "CREATE TABLE", "table", "public", "public.t"}), "create_table");
  EXPECT_EQ(DdlOpName({"end", "CREATE TABLE", "index", "public", "public.t_pkey"}), "create_index");
  EXPECT_EQ(DdlOpName({"end", "ALTER TABLE", "table", "public", "public.t"}), "alter_table");
  EXPECT_EQ(DdlOpName({"drop", "ALTER TABLE", "table column", "public", "public.t.c"}),
            "alter_table");
  // Unknown to the classifier: it rates these high (fail closed).
  EXPECT_EQ(DdlOpName({"drop", "DROP FUNCTION", "function", "public", "public.f()"}),
            "drop_function");
  // A DROP's ddl_command_end row is skipped: sql_drop reports the objects.
  CaptureInput in;
  in.ddl = {{"end", "DROP TABLE", "", "", ""}};
  EXPECT_TRUE(BuildEffect(in)->ddl.empty());
}

TEST(PostgresEffect, TruncatedRowsAreDeletes) {
  CaptureInput in;
  in.rows = {{"public", "t", "truncate", R"({"id": 1})", ""}};
  in.facts["public.t"] = TableFacts{true, true, false, 0};
  auto e = BuildEffect(in);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->tables[0].deleted, 1);
  EXPECT_TRUE(e->tables[0].all_rows_deleted);
  EXPECT_EQ(e->preview[0].op, "delete");
  EXPECT_EQ(e->extra["truncated_rows"], 1);
}

TEST(PostgresEffect, PreviewIsBounded) {
  CaptureInput in;
  in.max_preview_rows = 2;
  for (int i = 0; i < 5; ++i) in.rows.push_back(Update(i, "a", "b"));
  auto e = BuildEffect(in);
  EXPECT_EQ(e->preview.size(), 2u);
  EXPECT_EQ(e->preview_omitted, 3);
}

TEST(PostgresEffect, MalformedCapturedRowsAreRefused) {
  const std::vector<CapturedRow> bad = {
      {"public", "t", "upsert", "", R"({"id": 1})"},         // unknown op
      {"public", "t", "insert", R"({"id": 1})", ""},         // insert without NEW
      {"public", "t", "update", "", R"({"id": 1})"},         // update without OLD
      {"public", "t", "insert", "", "[1, 2]"},               // not an object
      {"public", "t", "insert", "", "{\"id\": "},            // not JSON
      {"public", "t", "delete", std::string(100, '['), ""},  // hostile nesting
  };
  for (const CapturedRow& r : bad) {
    CaptureInput in;
    in.rows = {r};
    EXPECT_FALSE(BuildEffect(in).ok()) << r.op << " " << r.old_row << r.new_row;
  }
}

TEST(PostgresUndo, RoundTripsAndRefusesGarbage) {
  UndoData undo;
  undo.rows = {Update(1, "a", "b"), {"s", "t", "delete", "{}", ""}};
  undo.pre_images = {{"public.logs", "CREATE TABLE public.logs(line text);\n"}};
  auto back = DecodeUndo(EncodeUndo(undo));
  ASSERT_TRUE(back.ok());
  ASSERT_EQ(back->rows.size(), 2u);
  EXPECT_EQ(back->rows[0].new_row, undo.rows[0].new_row);
  EXPECT_EQ(back->rows[1].op, "delete");
  ASSERT_EQ(back->pre_images.size(), 1u);
  EXPECT_EQ(back->pre_images[0].sql, undo.pre_images[0].sql);
  for (const char* bad :
       {"", "{}", "[]", R"({"v": 2, "changes": []})", R"({"v": "1", "changes": []})",
        R"({"v": 1, "changes": [[1]]})", R"({"v": 1, "changes": [["a", "b", "c", "d", 5]]})",
        R"({"v": 1, "changes": [], "pre_images": {}})",
        R"({"v": 1, "changes": [], "pre_images": [["t"]]})"}) {
    EXPECT_FALSE(DecodeUndo(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace airlock::pg
