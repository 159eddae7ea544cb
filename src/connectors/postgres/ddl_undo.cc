#include "connectors/postgres/ddl_undo.h"

#include <set>

namespace airlock::pg {
namespace {

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The kinds a rollback can drop again or recreate: relations, whose names pg_class holds.
bool UndoableKind(const std::string& object_type) {
  return object_type == "table" || object_type == "index" || object_type == "view" ||
         object_type == "sequence";
}

bool Has(const UndoData& undo, const std::string& op, const std::string& identity) {
  for (const DdlUndo& u : undo.ddl) {
    if (u.op == op && u.identity == identity) return true;
  }
  return false;
}

}  // namespace

bool ConcernsTable(const std::string& identity, const std::string& table) {
  // Identities are quoted as PostgreSQL's quote_ident does, so a '.' or " on " inside a name
  // is inside quotes and cannot fake one of these forms for another table.
  return identity == table || StartsWith(identity, table + ".") ||
         StartsWith(identity, "for " + table + ".") || EndsWith(identity, " on " + table);
}

std::vector<DdlUndo> CreatedObjects(const std::vector<CapturedDdl>& ddl) {
  std::vector<DdlUndo> out;
  std::set<std::string> seen;
  for (const CapturedDdl& d : ddl) {
    if (d.phase != "end" || !UndoableKind(d.object_type)) continue;
    if (!StartsWith(d.command_tag, "CREATE ") && d.command_tag != "SELECT INTO") continue;
    if (!seen.insert(d.identity).second) continue;
    out.push_back({"drop_created", d.object_type, d.identity, "", ""});
  }
  return out;
}

std::vector<std::string> NotUndone(const std::vector<CapturedDdl>& ddl, const UndoData& undo) {
  std::vector<std::string> out;
  for (const CapturedDdl& d : ddl) {
    if (d.phase == "end" && StartsWith(d.command_tag, "DROP ")) continue;  // its drop records count
    bool undone = false;
    if (d.command_tag == "ALTER TABLE") {
      for (const DdlUndo& u : undo.ddl) {
        undone = undone || (u.op == "replace_table" && ConcernsTable(d.identity, u.identity));
      }
    } else if (d.phase == "end") {
      // A created object, or the OWNED BY that a CREATE TABLE sets on its serial sequence.
      const bool created_here = StartsWith(d.command_tag, "CREATE ") ||
                                d.command_tag == "SELECT INTO" || d.command_tag == "ALTER SEQUENCE";
      undone = created_here && UndoableKind(d.object_type) && Has(undo, "drop_created", d.identity);
    } else if (d.phase == "drop" && d.object_type == "table") {
      for (const PreImage& p : undo.pre_images) undone = undone || p.table == d.identity;
    } else if (d.phase == "drop" && UndoableKind(d.object_type)) {
      undone = Has(undo, "recreate", d.identity);
    }
    if (!undone) out.push_back(DdlOpName(d) + " " + d.identity);
  }
  return out;
}

}  // namespace airlock::pg
