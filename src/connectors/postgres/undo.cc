#include "connectors/postgres/undo.h"

#include <map>

#include "core/json.h"

namespace airlock::pg {
namespace {

std::string Relation(const CapturedRow& r) {
  return QuoteIdent(r.schema) + "." + QuoteIdent(r.table);
}

Result<std::vector<std::string>> PrimaryKey(Conn* conn, const std::string& relation) {
  ASSIGN_OR_RETURN(ResultHandle res,
                   conn->Query("SELECT a.attname FROM pg_index i JOIN pg_attribute a "
                               "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                               "WHERE i.indrelid = $1::regclass AND i.indisprimary "
                               "ORDER BY array_position(i.indkey, a.attnum)",
                               {relation}));
  std::vector<std::string> cols;
  for (int i = 0; i < Rows(res.get()); ++i) cols.push_back(Cell(res.get(), i, 0));
  return cols;
}

// "y is the row whose image is $N": by primary key (an index lookup) and by every value.
std::string Match(const std::string& relation, const std::vector<std::string>& pk, int param) {
  const std::string p = "$" + std::to_string(param) + "::jsonb";
  std::string cond = "to_jsonb(y) = " + p;
  if (!pk.empty()) {
    std::string lhs, rhs;
    for (const std::string& c : pk) {
      lhs += (lhs.empty() ? "" : ", ") + ("y." + QuoteIdent(c));
      rhs += (rhs.empty() ? "" : ", ") + ("r." + QuoteIdent(c));
    }
    cond += " AND (" + lhs + ") = (SELECT " + rhs +
            " FROM jsonb_populate_record(NULL::" + relation + ", " + p + ") r)";
  }
  return "SELECT y.ctid FROM " + relation + " y WHERE " + cond + " LIMIT 1";
}

Result<std::string> SetList(const std::string& old_row) {
  ASSIGN_OR_RETURN(Json j, ParseJson(old_row));
  if (!j.is_object() || j.empty()) return Status::Corruption("undo row image is not an object");
  std::string cols, vals;
  for (auto it = j.begin(); it != j.end(); ++it) {
    cols += (cols.empty() ? "" : ", ") + QuoteIdent(it.key());
    vals += (vals.empty() ? "" : ", ") + ("r." + QuoteIdent(it.key()));
  }
  return "(" + cols + ") = (SELECT " + vals;
}

bool KnownDdlUndo(const DdlUndo& u) {
  const bool kind =
      u.kind == "table" || u.kind == "index" || u.kind == "view" || u.kind == "sequence";
  if (u.op == "drop_created") return kind;
  if (u.op == "replace_table") return u.kind == "table" && !u.sql.empty();
  if (u.op == "recreate") return kind && !u.sql.empty();
  return false;
}

std::string DropKeyword(const std::string& kind) {
  if (kind == "table") return "TABLE";
  if (kind == "index") return "INDEX";
  if (kind == "view") return "VIEW";
  return "SEQUENCE";
}

Result<bool> RelationExists(Conn* conn, const std::string& identity) {
  ASSIGN_OR_RETURN(ResultHandle r,
                   conn->Query("SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n "
                               "ON n.oid = c.relnamespace "
                               "WHERE format('%I.%I', n.nspname, c.relname) = $1)",
                               {identity}));
  return Cell(r.get(), 0, 0) == "t";
}

// Runs `sql` under a savepoint: a statement the server refuses (a dependent object, a name
// in use) becomes a conflict that names the server's reason instead of an aborted
// transaction.
Status Step(Conn* conn, const DdlUndo& u, const std::string& sql, Json* conflicts) {
  RETURN_IF_ERROR(conn->Exec("SAVEPOINT airlock_ddl_undo"));
  Status st = conn->Exec(sql);
  if (st.ok()) return conn->Exec("RELEASE SAVEPOINT airlock_ddl_undo");
  RETURN_IF_ERROR(conn->Exec("ROLLBACK TO SAVEPOINT airlock_ddl_undo"));
  conflicts->push_back({{"object", u.identity},
                        {"op", u.op + " " + u.kind},
                        {"why", "PostgreSQL refused it: " + st.message()}});
  return Status::Ok();
}

// DROP of the relation that `identity` names, spelled by the server (regclass), so that the
// identity is never spliced into SQL as text.
Status DropRelation(Conn* conn, const DdlUndo& u, Json* conflicts) {
  ASSIGN_OR_RETURN(ResultHandle name, conn->Query("SELECT $1::regclass::text", {u.identity}));
  return Step(conn, u, "DROP " + DropKeyword(u.kind) + " " + Cell(name.get(), 0, 0), conflicts);
}

Status CheckDdl(Conn* conn, const DdlUndo& u, Json* conflicts) {
  ASSIGN_OR_RETURN(bool exists, RelationExists(conn, u.identity));
  const Json object = u.identity;
  if (u.op == "recreate") {
    if (exists) {
      conflicts->push_back({{"object", object},
                            {"op", "drop_" + u.kind},
                            {"why", "an object of that name exists again"}});
    }
    return Status::Ok();
  }
  if (u.kind != "table") {
    // A created index or view that someone replaced by another of the same name since is
    // theirs now. Gone: nothing to drop. (Records from before definitions were kept have none.)
    if (!exists || u.fingerprint.empty()) return Status::Ok();
    ASSIGN_OR_RETURN(std::string now, ObjectFingerprint(conn, u.kind, u.identity));
    if (now != u.fingerprint) {
      conflicts->push_back({{"object", object},
                            {"op", "create_" + u.kind},
                            {"why", "an object of that name was replaced since the action"}});
    }
    return Status::Ok();
  }
  const std::string what = u.op == "drop_created" ? "create_table" : "alter_table";
  if (!exists) {
    conflicts->push_back({{"object", object},
                          {"op", what},
                          {"why", "the table no longer exists (dropped or renamed since)"}});
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(std::string now, TableFingerprint(conn, u.identity));
  if (now != u.fingerprint) {
    conflicts->push_back({{"object", object},
                          {"op", what},
                          {"why", "the table's rows or columns changed since the action"}});
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> TableFingerprint(Conn* conn, const std::string& identity) {
  // The text of a timestamptz, float or interval follows session settings (PGTZ of the
  // process, say): the apply and the rollback must spell the rows alike, so fix them for the
  // rest of the transaction.
  RETURN_IF_ERROR(
      conn->Exec("SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; "
                 "SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 1; "
                 "SET LOCAL bytea_output = 'hex'"));
  ASSIGN_OR_RETURN(ResultHandle name, conn->Query("SELECT $1::regclass::text", {identity}));
  const std::string rel = Cell(name.get(), 0, 0);
  ASSIGN_OR_RETURN(
      ResultHandle r,
      conn->Query("SELECT encode(sha256(convert_to(coalesce((SELECT string_agg(quote_ident("
                  "attname) || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) "
                  "FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT "
                  "attisdropped), '') || E'\\n' || coalesce((SELECT string_agg(r, E'\\n' "
                  "ORDER BY r COLLATE \"C\") FROM (SELECT t::text AS r FROM " +
                      rel + " t) s), ''), 'UTF8')), 'hex')",
                  {identity}));
  return Cell(r.get(), 0, 0);
}

Result<std::string> ObjectFingerprint(Conn* conn, const std::string& kind,
                                      const std::string& identity) {
  if (kind == "table") return TableFingerprint(conn, identity);
  const char* def = kind == "index"  ? "pg_get_indexdef($1::regclass)"
                    : kind == "view" ? "pg_get_viewdef($1::regclass)"
                                     : nullptr;
  if (def == nullptr) return std::string();  // a sequence: its value moves with normal use
  ASSIGN_OR_RETURN(ResultHandle r, conn->Query(std::string("SELECT ") + def, {identity}));
  return Cell(r.get(), 0, 0);
}

Status UndoDdl(Conn* conn, const std::vector<DdlUndo>& ddl, Json* conflicts) {
  for (const DdlUndo& u : ddl) RETURN_IF_ERROR(CheckDdl(conn, u, conflicts));
  if (!conflicts->empty()) return Status::Ok();
  // Views may stand on the tables below; a created table takes its own indexes and serial
  // sequences with it, so those are dropped only if still there.
  for (const DdlUndo& u : ddl) {
    if (u.op != "drop_created" || u.kind != "view") continue;
    ASSIGN_OR_RETURN(bool exists, RelationExists(conn, u.identity));
    if (exists) RETURN_IF_ERROR(DropRelation(conn, u, conflicts));
  }
  for (const DdlUndo& u : ddl) {
    if (u.op != "replace_table") continue;
    RETURN_IF_ERROR(DropRelation(conn, u, conflicts));
    if (conflicts->empty()) RETURN_IF_ERROR(Step(conn, u, u.sql, conflicts));
  }
  for (const DdlUndo& u : ddl) {
    if (u.op == "drop_created" && u.kind == "table")
      RETURN_IF_ERROR(DropRelation(conn, u, conflicts));
  }
  for (const DdlUndo& u : ddl) {
    if (u.op != "drop_created" || u.kind == "view" || u.kind == "table") continue;
    ASSIGN_OR_RETURN(bool exists, RelationExists(conn, u.identity));
    if (exists) RETURN_IF_ERROR(DropRelation(conn, u, conflicts));
  }
  for (const char* kind : {"sequence", "table", "view", "index"}) {
    for (const DdlUndo& u : ddl) {
      if (u.op == "recreate" && u.kind == kind) RETURN_IF_ERROR(Step(conn, u, u.sql, conflicts));
    }
  }
  return Status::Ok();
}

std::string EncodeUndo(const UndoData& undo) {
  Json changes = Json::array();
  for (const CapturedRow& r : undo.rows) {
    changes.push_back({r.schema, r.table, r.op, r.old_row, r.new_row});
  }
  Json pre = Json::array();
  for (const PreImage& p : undo.pre_images) pre.push_back({p.table, p.sql});
  Json j{{"v", 1}, {"changes", changes}, {"pre_images", pre}};
  // Only when there is any: a record without schema changes stays as older airlocks wrote it.
  if (!undo.ddl.empty()) {
    Json ddl = Json::array();
    for (const DdlUndo& d : undo.ddl) {
      ddl.push_back({d.op, d.kind, d.identity, d.sql, d.fingerprint});
    }
    j["ddl"] = ddl;
  }
  return CanonicalJson(j);
}

Result<UndoData> DecodeUndo(const std::string& data) {
  ASSIGN_OR_RETURN(Json j, ParseJson(data));
  if (!j.is_object() || !j.contains("v") || j["v"] != 1 || !j.contains("changes") ||
      !j["changes"].is_array()) {
    return Status::Corruption("postgres undo record is not version 1");
  }
  auto strings = [](const Json& c, size_t n) {
    if (!c.is_array() || c.size() != n) return false;
    for (const Json& f : c) {
      if (!f.is_string()) return false;
    }
    return true;
  };
  UndoData undo;
  for (const Json& c : j["changes"]) {
    if (!strings(c, 5)) return Status::Corruption("postgres undo row is malformed");
    undo.rows.push_back({c[0], c[1], c[2], c[3], c[4]});
  }
  if (j.contains("pre_images")) {
    if (!j["pre_images"].is_array()) return Status::Corruption("postgres pre-images are malformed");
    for (const Json& p : j["pre_images"]) {
      if (!strings(p, 2)) return Status::Corruption("postgres pre-image is malformed");
      undo.pre_images.push_back({p[0], p[1]});
    }
  }
  if (j.contains("ddl")) {
    if (!j["ddl"].is_array()) return Status::Corruption("postgres DDL undo is malformed");
    for (const Json& d : j["ddl"]) {
      if (!strings(d, 5)) return Status::Corruption("postgres DDL undo entry is malformed");
      DdlUndo u{d[0], d[1], d[2], d[3], d[4]};
      if (!KnownDdlUndo(u)) {
        return Status::Corruption("postgres DDL undo entry has op '" + u.op + "', kind '" + u.kind +
                                  "'");
      }
      undo.ddl.push_back(std::move(u));
    }
  }
  return undo;
}

Status RestorePreImages(Conn* conn, const std::vector<PreImage>& pre_images, Json* conflicts) {
  for (const PreImage& p : pre_images) {
    ASSIGN_OR_RETURN(ResultHandle r, conn->Query("SELECT to_regclass($1) IS NOT NULL", {p.table}));
    if (Cell(r.get(), 0, 0) == "t") {
      conflicts->push_back(
          {{"table", p.table}, {"op", "drop_table"}, {"why", "a table of that name exists again"}});
      continue;
    }
    Status st = conn->Exec(p.sql);
    if (!st.ok()) return Status(st.code(), "recreating " + p.table + ": " + st.message());
  }
  return Status::Ok();
}

Status UndoRows(Conn* conn, const std::vector<CapturedRow>& rows, Json* conflicts) {
  std::map<std::string, std::vector<std::string>> pks;
  for (auto it = rows.rbegin(); it != rows.rend(); ++it) {
    const CapturedRow& r = *it;
    const std::string rel = Relation(r);
    if (!pks.count(rel)) {
      ASSIGN_OR_RETURN(pks[rel], PrimaryKey(conn, rel));
    }
    const std::vector<std::string>& pk = pks[rel];
    ResultHandle res;
    std::string why;
    if (r.op == "insert") {
      ASSIGN_OR_RETURN(
          res, conn->Query("DELETE FROM " + rel + " WHERE ctid = (" + Match(rel, pk, 1) + ")",
                           {r.new_row}));
      why = "the inserted row was changed or deleted since";
    } else if (r.op == "update") {
      ASSIGN_OR_RETURN(std::string set, SetList(r.old_row));
      ASSIGN_OR_RETURN(
          res, conn->Query("UPDATE " + rel + " SET " + set + " FROM jsonb_populate_record(NULL::" +
                               rel + ", $2::jsonb) r) WHERE ctid = (" + Match(rel, pk, 1) + ")",
                           {r.new_row, r.old_row}));
      why = "the updated row was changed or deleted since";
    } else if (r.op == "delete" || r.op == "truncate") {
      ASSIGN_OR_RETURN(res, conn->Query("INSERT INTO " + rel +
                                            " OVERRIDING SYSTEM VALUE SELECT * FROM "
                                            "jsonb_populate_record(NULL::" +
                                            rel + ", $1::jsonb) ON CONFLICT DO NOTHING",
                                        {r.old_row}));
      why = "a row with the deleted row's key exists again";
    } else {
      return Status::Corruption("postgres undo row has op '" + r.op + "'");
    }
    auto* api = *Pq();
    if (std::string(api->cmd_tuples(res.get())) != "1") {
      ASSIGN_OR_RETURN(Json row,
                       ParseJson(r.op == "insert" || r.op == "update" ? r.new_row : r.old_row));
      conflicts->push_back(
          {{"table", r.schema + "." + r.table}, {"op", r.op}, {"row", row}, {"why", why}});
    }
  }
  return Status::Ok();
}

}  // namespace airlock::pg
