#include "connectors/postgres/effect.h"

#include <algorithm>
#include <cctype>

#include "core/hash.h"
#include "core/json.h"

namespace airlock::pg {
namespace {

std::string LengthPrefixed(const std::string& s) {
  return std::to_string(s.size()) + ":" + s;
}

std::string Snake(const std::string& s) {
  std::string out;
  for (char c : s) {
    out += std::isalnum(static_cast<unsigned char>(c))
               ? static_cast<char>(std::tolower(static_cast<unsigned char>(c)))
               : '_';
  }
  return out;
}

Result<Json> RowSide(const std::string& text, const CapturedRow& r, const char* side) {
  ASSIGN_OR_RETURN(Json j, ParseJson(text));
  if (!j.is_object()) {
    return Status::InvalidArgument("captured " + std::string(side) + " row of " +
                                   QualifiedName(r.schema, r.table) + " is not a JSON object");
  }
  return j;
}

Status CheckShape(const CapturedRow& r) {
  const bool has_old = !r.old_row.empty(), has_new = !r.new_row.empty();
  bool ok = (r.op == "insert" && !has_old && has_new) || (r.op == "update" && has_old && has_new) ||
            ((r.op == "delete" || r.op == "truncate") && has_old && !has_new);
  if (!ok) {
    return Status::InvalidArgument("captured change of " + QualifiedName(r.schema, r.table) +
                                   " is malformed (op '" + r.op + "')");
  }
  return Status::Ok();
}

}  // namespace

std::string QualifiedName(const std::string& schema, const std::string& table) {
  return schema + "." + table;
}

std::string DdlOpName(const CapturedDdl& d) {
  if (d.phase == "drop") {
    if (d.object_type == "table") return "drop_table";
    if (d.object_type == "index") return "drop_index";
    if (d.object_type == "view") return "drop_view";
    if (d.object_type == "trigger") return "drop_trigger";
    if (d.object_type == "table column") return "alter_table";
    return "drop_" + Snake(d.object_type);
  }
  if (d.command_tag == "CREATE TABLE" || d.command_tag == "CREATE TABLE AS" ||
      d.command_tag == "SELECT INTO") {
    if (d.object_type == "index") return "create_index";
    return d.object_type == "table" ? "create_table" : "create_" + Snake(d.object_type);
  }
  return Snake(d.command_tag);  // CREATE INDEX -> create_index, ALTER TABLE -> alter_table
}

Result<Effect> BuildEffect(const CaptureInput& in) {
  Effect e;
  e.kind = "sql";
  std::map<std::string, TableChange> tables;
  std::vector<std::string> canonical;
  canonical.reserve(in.rows.size());
  int64_t truncated_rows = 0;
  for (const CapturedRow& r : in.rows) {
    RETURN_IF_ERROR(CheckShape(r));
    const std::string name = QualifiedName(r.schema, r.table);
    TableChange& tc = tables[name];
    tc.table = name;
    if (r.op == "insert") ++tc.inserted;
    if (r.op == "update") ++tc.updated;
    if (r.op == "delete" || r.op == "truncate") ++tc.deleted;
    if (r.op == "truncate") ++truncated_rows;
    // jsonb's text form is canonical (keys ordered, one spelling per value), so equal rows
    // give equal strings whatever order the triggers fired in.
    canonical.push_back(LengthPrefixed(name) + LengthPrefixed(r.op) + LengthPrefixed(r.old_row) +
                        LengthPrefixed(r.new_row));
    if (static_cast<int64_t>(e.preview.size()) >= in.max_preview_rows) {
      ++e.preview_omitted;
      continue;
    }
    RowChange rc;
    rc.table = name;
    rc.op = r.op == "truncate" ? "delete" : r.op;
    rc.before = nullptr;
    rc.after = nullptr;
    if (!r.old_row.empty()) {
      ASSIGN_OR_RETURN(rc.before, RowSide(r.old_row, r, "old"));
    }
    if (!r.new_row.empty()) {
      ASSIGN_OR_RETURN(rc.after, RowSide(r.new_row, r, "new"));
    }
    e.preview.push_back(std::move(rc));
  }
  for (auto& [name, tc] : tables) {
    auto f = in.facts.find(name);
    if (f != in.facts.end()) {
      tc.has_primary_key = f->second.has_primary_key;
      tc.all_rows_deleted = tc.deleted > 0 && f->second.all_rows_deleted;
      tc.all_rows_updated = tc.updated > 0 && f->second.all_rows_updated;
      tc.rows_after = f->second.rows_after;
    }
    e.tables.push_back(tc);  // std::map order: sorted by name
  }
  for (const CapturedDdl& d : in.ddl) {
    if (d.phase == "end" && d.command_tag.rfind("DROP ", 0) == 0) continue;  // sql_drop has it
    DdlOp op;
    op.op = DdlOpName(d);
    op.object = d.identity;
    if (op.op == "drop_table") {
      auto it = in.rows_before.find(d.identity);
      op.rows = it == in.rows_before.end() ? -1 : it->second;
    }
    e.ddl.push_back(std::move(op));
  }
  if (truncated_rows > 0) e.extra["truncated_rows"] = truncated_rows;

  std::sort(canonical.begin(), canonical.end());
  std::string acc = "airlock.postgres.effect.v1\n";
  for (const std::string& r : canonical) acc += "row " + r + "\n";
  for (const DdlOp& d : e.ddl) {
    acc += "ddl " + LengthPrefixed(d.op) + LengthPrefixed(d.object) + std::to_string(d.rows) + "\n";
  }
  e.effect_hash = Sha256Hex(acc);
  return e;
}

}  // namespace airlock::pg
