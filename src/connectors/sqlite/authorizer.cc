#include "connectors/sqlite/authorizer.h"

#include <strings.h>

#include <cctype>

#include <set>
#include <string_view>

namespace airlock::sqlite {
namespace {

std::string Str(const char* s) { return s ? s : ""; }

bool IEquals(const char* a, const char* b) { return a && b && strcasecmp(a, b) == 0; }

bool IsInternalTable(const char* name) {
  return name && strncasecmp(name, "sqlite_", 7) == 0;
}

// Pragmas whose argument names an object to report on, not a value to set.
bool IsReadPragmaWithArgument(const char* name) {
  static const std::set<std::string, std::less<>> kReads = {
      "table_info",      "table_xinfo",        "table_list",     "index_info",
      "index_xinfo",     "index_list",         "foreign_key_list", "foreign_key_check",
      "integrity_check", "quick_check",        "function_list",  "module_list",
      "pragma_list",     "collation_list",     "database_list",  "compile_options"};
  std::string lower;
  for (const char* p = name; p && *p; ++p) lower += static_cast<char>(std::tolower(*p));
  return kReads.count(lower) > 0;
}

// Pragmas that change state even without a value.
bool IsSideEffectPragma(const char* name) {
  return IEquals(name, "optimize") || IEquals(name, "wal_checkpoint") ||
         IEquals(name, "incremental_vacuum") || IEquals(name, "shrink_memory");
}

}  // namespace

Authorizer::Authorizer(sqlite3* db) : db_(db) { sqlite3_set_authorizer(db_, &Callback, this); }

Authorizer::~Authorizer() { sqlite3_set_authorizer(db_, nullptr, nullptr); }

void Authorizer::BeginStatement() {
  ddl_.clear();
  dml_.clear();
  refusal_.clear();
  not_executed_.clear();
  recording_ = true;
}

int Authorizer::Callback(void* self, int code, const char* a1, const char* a2, const char* db,
                         const char* trigger) {
  // No exception may cross SQLite's C frames; an authorizer that cannot decide denies.
  try {
    return static_cast<Authorizer*>(self)->Decide(code, a1, a2, db, trigger);
  } catch (...) {
    return SQLITE_DENY;
  }
}

void Authorizer::Record(std::string op, const char* object, const char* table,
                        std::string detail) {
  if (!recording_) return;
  DdlOp d;
  d.op = std::move(op);
  d.object = Str(object);
  d.table = Str(table);
  d.detail = std::move(detail);
  ddl_.push_back(std::move(d));
}

int Authorizer::Refuse(std::string reason) {
  if (refusal_.empty()) refusal_ = std::move(reason);
  return SQLITE_DENY;
}

int Authorizer::NotExecuted(std::string op, const char* object, std::string detail,
                            std::string why) {
  Record(std::move(op), object, nullptr, std::move(detail));
  if (not_executed_.empty()) not_executed_ = std::move(why);
  return SQLITE_DENY;
}

int Authorizer::Decide(int code, const char* a1, const char* a2, const char* db,
                       const char* trigger) {
  if (internal_) return SQLITE_OK;
  const bool temp = IEquals(db, "temp");
  std::string temp_detail = temp ? "temp" : "";
  switch (code) {
    case SQLITE_TRANSACTION:
      return Refuse(std::string("transaction control (") + Str(a1) +
                    ") is not allowed: airlock runs the whole text as one transaction");
    case SQLITE_INSERT:
    case SQLITE_UPDATE:
    case SQLITE_DELETE:
      if (IEquals(a1, kAppliedTable)) {
        return Refuse(std::string("writing the reserved table ") + kAppliedTable +
                      " is not allowed");
      }
      if (recording_ && !IsInternalTable(a1) && IEquals(db, "main")) {
        dml_.push_back({code, Str(a1), trigger == nullptr});
      }
      return SQLITE_OK;
    case SQLITE_DROP_TABLE:
    case SQLITE_DROP_TEMP_TABLE:
    case SQLITE_DROP_VTABLE:
    case SQLITE_CREATE_TABLE:
    case SQLITE_CREATE_TEMP_TABLE:
    case SQLITE_CREATE_VTABLE:
    case SQLITE_ALTER_TABLE: {
      // ALTER_TABLE reports (database, table); the others (table, ...).
      const char* table = code == SQLITE_ALTER_TABLE ? a2 : a1;
      if (IEquals(table, kAppliedTable)) {
        return Refuse(std::string("changing the reserved table ") + kAppliedTable +
                      " is not allowed");
      }
      std::string detail = temp_detail;
      if (code == SQLITE_DROP_VTABLE || code == SQLITE_CREATE_VTABLE) detail = "virtual";
      const char* op = code == SQLITE_ALTER_TABLE ? "alter_table"
                       : (code == SQLITE_CREATE_TABLE || code == SQLITE_CREATE_TEMP_TABLE ||
                          code == SQLITE_CREATE_VTABLE)
                           ? "create_table"
                           : "drop_table";
      Record(op, table, table, detail);
      return SQLITE_OK;
    }
    case SQLITE_CREATE_INDEX:
    case SQLITE_CREATE_TEMP_INDEX:
    case SQLITE_DROP_INDEX:
    case SQLITE_DROP_TEMP_INDEX:
    case SQLITE_CREATE_TRIGGER:
    case SQLITE_CREATE_TEMP_TRIGGER:
    case SQLITE_DROP_TRIGGER:
    case SQLITE_DROP_TEMP_TRIGGER: {
      if (IEquals(a2, kAppliedTable)) {
        return Refuse(std::string("changing the reserved table ") + kAppliedTable +
                      " is not allowed");
      }
      const bool index = code == SQLITE_CREATE_INDEX || code == SQLITE_CREATE_TEMP_INDEX ||
                         code == SQLITE_DROP_INDEX || code == SQLITE_DROP_TEMP_INDEX;
      const bool create = code == SQLITE_CREATE_INDEX || code == SQLITE_CREATE_TEMP_INDEX ||
                          code == SQLITE_CREATE_TRIGGER || code == SQLITE_CREATE_TEMP_TRIGGER;
      // DROP TABLE reports DROP_TRIGGER for each of its triggers: they belong to the
      // drop_table op (DdlOp::triggers), not separate ops.
      if (!create && !index) {
        for (const DdlOp& d : ddl_) {
          if (d.op == "drop_table" && IEquals(d.object.c_str(), a2)) return SQLITE_OK;
        }
      }
      std::string op = std::string(create ? "create_" : "drop_") + (index ? "index" : "trigger");
      Record(op, a1, a2, temp_detail);
      return SQLITE_OK;
    }
    case SQLITE_CREATE_VIEW:
    case SQLITE_CREATE_TEMP_VIEW:
      Record("create_view", a1, nullptr, temp_detail);
      return SQLITE_OK;
    case SQLITE_DROP_VIEW:
    case SQLITE_DROP_TEMP_VIEW:
      Record("drop_view", a1, nullptr, temp_detail);
      return SQLITE_OK;
    case SQLITE_REINDEX:
      // CREATE INDEX reports a REINDEX of the index it builds: part of create_index.
      for (const DdlOp& d : ddl_) {
        if (d.op == "create_index" && IEquals(d.object.c_str(), a1)) return SQLITE_OK;
      }
      Record("reindex", a1, nullptr, "");
      return SQLITE_OK;
    case SQLITE_ANALYZE:
      Record("analyze", a1, nullptr, "");
      return SQLITE_OK;
    case SQLITE_ATTACH:
      return NotExecuted("attach", a1, Str(a1),
                         "ATTACH changes the connection outside the transaction");
    case SQLITE_DETACH:
      return NotExecuted("detach", a1, Str(a1),
                         "DETACH changes the connection outside the transaction");
    case SQLITE_PRAGMA:
      if ((a2 != nullptr && !IsReadPragmaWithArgument(a1)) || IsSideEffectPragma(a1)) {
        return NotExecuted("pragma_write", a1, Str(a1) + "=" + Str(a2),
                           "PRAGMA " + Str(a1) + " has effects outside the transaction");
      }
      return SQLITE_OK;
    default:
      return SQLITE_OK;
  }
}

}  // namespace airlock::sqlite
