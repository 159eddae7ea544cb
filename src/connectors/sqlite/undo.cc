#include "connectors/sqlite/undo.h"

#include "connectors/sqlite/changeset.h"
#include "core/hash.h"
#include "core/json.h"

namespace airlock::sqlite {
namespace {

Json ObjectJson(const SchemaObject& o) {
  return {{"type", o.type}, {"name", o.name}, {"table", o.table}, {"sql", o.sql}};
}

// Field accessors that never throw: a missing or mistyped field is Corruption.
Result<std::string> Str(const Json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) {
    return Status::Corruption(std::string("undo record: missing string '") + key + "'");
  }
  return j[key].get<std::string>();
}

Result<std::string> Hex(const Json& j, const char* key) {
  ASSIGN_OR_RETURN(std::string hex, Str(j, key));
  bool ok = false;
  std::string bytes = HexDecodeOrEmpty(hex, &ok);
  if (!ok) return Status::Corruption(std::string("undo record: bad hex in '") + key + "'");
  // Validate the structure now, so that SQLite is only ever handed well-formed changesets.
  RETURN_IF_ERROR(DecodeChangeset(bytes).status());
  return bytes;
}

Result<const Json*> Array(const Json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_array()) {
    return Status::Corruption(std::string("undo record: missing list '") + key + "'");
  }
  return &j[key];
}

Result<SchemaObject> ObjectFrom(const Json& j) {
  SchemaObject o;
  ASSIGN_OR_RETURN(o.type, Str(j, "type"));
  ASSIGN_OR_RETURN(o.name, Str(j, "name"));
  ASSIGN_OR_RETURN(o.table, Str(j, "table"));
  ASSIGN_OR_RETURN(o.sql, Str(j, "sql"));
  if (o.type != "table" && o.type != "index" && o.type != "trigger" && o.type != "view") {
    return Status::Corruption("undo record: unknown object type '" + o.type + "'");
  }
  return o;
}

Result<TableSnapshot> TableFrom(const Json& j) {
  TableSnapshot t;
  ASSIGN_OR_RETURN(t.name, Str(j, "name"));
  ASSIGN_OR_RETURN(t.sql, Str(j, "sql"));
  ASSIGN_OR_RETURN(t.rows, Hex(j, "rows_hex"));
  ASSIGN_OR_RETURN(t.after, Str(j, "after"));
  if (!j.contains("has_rowid") || !j["has_rowid"].is_boolean()) {
    return Status::Corruption("undo record: missing 'has_rowid'");
  }
  t.has_rowid = j["has_rowid"].get<bool>();
  ASSIGN_OR_RETURN(const Json* columns, Array(j, "columns"));
  for (const Json& c : *columns) {
    if (!c.is_string()) return Status::Corruption("undo record: bad column name");
    t.columns.push_back(c.get<std::string>());
  }
  if (t.columns.empty()) return Status::Corruption("undo record: table without columns");
  ASSIGN_OR_RETURN(const Json* deps, Array(j, "dependents"));
  for (const Json& d : *deps) {
    ASSIGN_OR_RETURN(SchemaObject o, ObjectFrom(d));
    t.dependents.push_back(std::move(o));
  }
  return t;
}

Result<std::vector<WatchedObject>> WatchedFrom(const Json& j, const char* key) {
  ASSIGN_OR_RETURN(const Json* list, Array(j, key));
  std::vector<WatchedObject> out;
  for (const Json& item : *list) {
    WatchedObject w;
    ASSIGN_OR_RETURN(w.object, ObjectFrom(item));
    ASSIGN_OR_RETURN(w.after, Str(item, "after"));
    out.push_back(std::move(w));
  }
  return out;
}

}  // namespace

std::string EncodeUndo(const UndoData& undo) {
  Json tables = Json::array();
  for (const TableSnapshot& t : undo.tables) {
    Json deps = Json::array();
    for (const SchemaObject& d : t.dependents) deps.push_back(ObjectJson(d));
    tables.push_back({{"name", t.name},
                      {"sql", t.sql},
                      {"has_rowid", t.has_rowid},
                      {"columns", t.columns},
                      {"rows_hex", HexEncode(t.rows)},
                      {"after", t.after},
                      {"dependents", deps}});
  }
  auto watched = [](const std::vector<WatchedObject>& list) {
    Json out = Json::array();
    for (const WatchedObject& w : list) {
      Json o = ObjectJson(w.object);
      o["after"] = w.after;
      out.push_back(std::move(o));
    }
    return out;
  };
  Json j = {{"v", 1},
            {"changeset_hex", HexEncode(undo.inverted_changeset)},
            {"tables", tables},
            {"objects", watched(undo.objects)},
            {"created", watched(undo.created)}};
  return CanonicalJson(j);
}

Result<UndoData> DecodeUndo(std::string_view data) {
  auto parsed = ParseJson(data, 16);
  if (!parsed.ok()) return Status::Corruption("undo record: " + parsed.status().message());
  const Json& j = *parsed;
  if (!j.is_object() || !j.contains("v") || j["v"] != 1) {
    return Status::Corruption("undo record: unknown version");
  }
  UndoData undo;
  ASSIGN_OR_RETURN(undo.inverted_changeset, Hex(j, "changeset_hex"));
  ASSIGN_OR_RETURN(const Json* tables, Array(j, "tables"));
  for (const Json& t : *tables) {
    ASSIGN_OR_RETURN(TableSnapshot snap, TableFrom(t));
    undo.tables.push_back(std::move(snap));
  }
  ASSIGN_OR_RETURN(undo.objects, WatchedFrom(j, "objects"));
  ASSIGN_OR_RETURN(undo.created, WatchedFrom(j, "created"));
  return undo;
}

}  // namespace airlock::sqlite
