#include "connectors/postgres/undo.h"

#include <gtest/gtest.h>

#include "connectors/postgres/ddl_undo.h"

namespace airlock::pg {
namespace {

// A record as airlock wrote it before schema changes were undone: it must still decode.
constexpr const char* kRecordWithoutDdl =
    R"({"changes":[["public","users","update","{\"id\": 1}","{\"id\": 2}"]],)"
    R"("pre_images":[["public.logs","CREATE TABLE public.logs(line text);"]],"v":1})";

TEST(PostgresUndo, RecordsWrittenBeforeDdlUndoStillDecode) {
  auto undo = DecodeUndo(kRecordWithoutDdl);
  ASSERT_TRUE(undo.ok()) << undo.status().message();
  ASSERT_EQ(undo->rows.size(), 1u);
  EXPECT_EQ(undo->rows[0].new_row, R"({"id": 2})");
  ASSERT_EQ(undo->pre_images.size(), 1u);
  EXPECT_TRUE(undo->ddl.empty());
}

TEST(PostgresUndo, ARecordWithoutSchemaChangesIsWrittenAsBefore) {
  auto undo = DecodeUndo(kRecordWithoutDdl);
  ASSERT_TRUE(undo.ok());
  EXPECT_EQ(EncodeUndo(*undo), kRecordWithoutDdl);
}

TEST(PostgresUndo, SchemaChangesRoundTrip) {
  UndoData in;
  in.ddl = {{"drop_created", "table", "public.scratch", "", "f1"},
            {"replace_table", "table", R"(public."My ""t""")", "CREATE TABLE x();", "f2"},
            {"recreate", "index", "public.logs_line", "CREATE INDEX logs_line ON public.logs", ""}};
  auto out = DecodeUndo(EncodeUndo(in));
  ASSERT_TRUE(out.ok()) << out.status().message();
  ASSERT_EQ(out->ddl.size(), 3u);
  EXPECT_EQ(out->ddl[1].identity, R"(public."My ""t""")");
  EXPECT_EQ(out->ddl[1].sql, "CREATE TABLE x();");
  EXPECT_EQ(out->ddl[1].fingerprint, "f2");
  EXPECT_EQ(out->ddl[2].op, "recreate");
  EXPECT_EQ(out->ddl[2].kind, "index");
}

TEST(PostgresUndo, MalformedSchemaChangesAreCorruption) {
  const std::string head = R"({"v":1,"changes":[],"ddl":)";
  for (const std::string& ddl : {
           std::string(R"("x")"),                                                 // not a list
           std::string(R"([["drop_created","table","public.t",""]])"),            // 4 fields
           std::string(R"([["drop_created","table","public.t","",1]])"),          // not a string
           std::string(R"j([["drop_created","function","public.f()","",""]])j"),  // kind
           std::string(R"([["drop_everything","table","public.t","",""]])"),      // op
           std::string(R"([["replace_table","table","public.t","",""]])"),        // no pre-image
           std::string(R"([["replace_table","view","public.v","CREATE VIEW v","",""]])"),
           std::string(R"([["recreate","view","public.v","",""]])"),  // no pre-image
       }) {
    auto undo = DecodeUndo(head + ddl + "}");
    ASSERT_FALSE(undo.ok()) << ddl;
    EXPECT_EQ(undo.status().code(), StatusCode::kCorruption) << ddl;
  }
}

// What PostgreSQL 16's event triggers record for `CREATE TABLE t(id serial PRIMARY KEY,
// v text UNIQUE)`.
std::vector<CapturedDdl> CreateTableWithSerial() {
  return {{"end", "CREATE SEQUENCE", "sequence", "public", "public.t_id_seq"},
          {"end", "CREATE TABLE", "table", "public", "public.t"},
          {"end", "CREATE INDEX", "index", "public", "public.t_pkey"},
          {"end", "CREATE INDEX", "index", "public", "public.t_v_key"},
          {"end", "ALTER SEQUENCE", "sequence", "public", "public.t_id_seq"}};
}

TEST(PostgresDdlUndo, ACreatedTableIsDroppedWithWhatItsStatementCreated) {
  const auto ddl = CreateTableWithSerial();
  UndoData undo;
  undo.ddl = CreatedObjects(ddl);
  ASSERT_EQ(undo.ddl.size(), 4u);  // the ALTER SEQUENCE creates nothing
  EXPECT_EQ(undo.ddl[1].identity, "public.t");
  EXPECT_EQ(undo.ddl[1].kind, "table");
  EXPECT_TRUE(NotUndone(ddl, undo).empty());
}

TEST(PostgresDdlUndo, AlterTableIsUndoneOnlyByAPreImageOfThatTable) {
  const std::vector<CapturedDdl> ddl = {
      {"drop", "ALTER TABLE", "table column", "public", "public.users.note"},
      {"drop", "ALTER TABLE", "table constraint", "public", "c1 on public.users"},
      {"drop", "ALTER TABLE", "default value", "public", "for public.users.id"},
      {"end", "ALTER TABLE", "table column", "public", "public.users.w"},
      {"end", "ALTER TABLE", "table", "public", "public.users"}};
  UndoData undo;
  EXPECT_EQ(NotUndone(ddl, undo).size(), 5u);
  undo.ddl = {{"replace_table", "table", "public.users_archive", "x", ""}};
  EXPECT_EQ(NotUndone(ddl, undo).size(), 5u);  // another table's pre-image does not count
  undo.ddl.push_back({"replace_table", "table", "public.users", "x", ""});
  EXPECT_TRUE(NotUndone(ddl, undo).empty());
}

TEST(PostgresDdlUndo, ConcernsTableReadsQuotedNames) {
  EXPECT_TRUE(ConcernsTable("public.users", "public.users"));
  EXPECT_TRUE(ConcernsTable("public.users.note", "public.users"));
  EXPECT_TRUE(ConcernsTable(R"(public."a.b".c)", R"(public."a.b")"));
  EXPECT_FALSE(ConcernsTable(R"(public."a.b".c)", "public.a"));
  EXPECT_FALSE(ConcernsTable("public.users2", "public.users"));
  EXPECT_FALSE(ConcernsTable("public.users_archive", "public.users"));
  EXPECT_TRUE(ConcernsTable("users_pkey on public.users", "public.users"));
  EXPECT_FALSE(ConcernsTable("users_pkey on public.users2", "public.users"));
}

TEST(PostgresDdlUndo, OtherSchemaChangesStayIrreversible) {
  const std::vector<CapturedDdl> ddl = {
      {"end", "CREATE FUNCTION", "function", "public", "public.answer()"},
      {"end", "ALTER TABLE", "table", "public", "public.renamed"},  // RENAME TO: the new name
      {"end", "CREATE TYPE", "type", "public", "public.mood"},
      {"drop", "DROP SCHEMA", "schema", "", "old"},
      {"end", "DROP SCHEMA", "", "", ""}};  // the drop record counts, not this one
  UndoData undo;
  undo.ddl = CreatedObjects(ddl);
  EXPECT_TRUE(undo.ddl.empty());
  const auto left = NotUndone(ddl, undo);
  ASSERT_EQ(left.size(), 4u);
  EXPECT_EQ(left[0], "create_function public.answer()");
  EXPECT_EQ(left[3], "drop_schema old");
}

TEST(PostgresDdlUndo, DroppedObjectsNeedTheirPreImage) {
  const std::vector<CapturedDdl> ddl = {
      {"drop", "DROP VIEW", "view", "public", "public.active_users"},
      {"drop", "DROP TABLE", "table", "public", "public.logs"}};
  UndoData undo;
  EXPECT_EQ(NotUndone(ddl, undo).size(), 2u);
  undo.ddl = {{"recreate", "view", "public.active_users", "CREATE VIEW ...", ""}};
  undo.pre_images = {{"public.logs", "CREATE TABLE ..."}};
  EXPECT_TRUE(NotUndone(ddl, undo).empty());
  // What the action created does not stand for what it dropped.
  const std::vector<CapturedDdl> index = {{"drop", "DROP INDEX", "index", "public", "public.x"}};
  undo.ddl = {{"drop_created", "index", "public.x", "", ""}};
  EXPECT_EQ(NotUndone(index, undo).size(), 1u);
}

}  // namespace
}  // namespace airlock::pg
