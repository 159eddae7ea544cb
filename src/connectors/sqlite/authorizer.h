// What the SQLite authorizer tells airlock about each statement while it is prepared.
//
// Classification comes from here (and from the session changeset), never from the SQL
// text: the authorizer reports exactly what the compiled program will touch, whatever
// spelling or obfuscation the text used.
#pragma once

#include <sqlite3.h>

#include <string>
#include <vector>

#include "core/types.h"

namespace airlock::sqlite {

// A write to a user table reported by the authorizer (the session extension does not see
// rowid tables without a PRIMARY KEY, so these are counted from here).
struct DmlEvent {
  int code = 0;            // SQLITE_INSERT / SQLITE_UPDATE / SQLITE_DELETE
  std::string table;
  bool top_level = false;  // false: issued by a trigger body
};

class Authorizer {
 public:
  // Installs itself on `db`; uninstalls in the destructor.
  explicit Authorizer(sqlite3* db);
  ~Authorizer();
  Authorizer(const Authorizer&) = delete;
  Authorizer& operator=(const Authorizer&) = delete;

  // Called around the prepare of each statement of the caller's text: only those calls are
  // recorded (automatic re-prepares during step are still policed, never recorded twice).
  void BeginStatement();
  void EndPrepare() { recording_ = false; }

  // The statement's schema operations and DML targets, as recorded during its prepare.
  const std::vector<DdlOp>& ddl() const { return ddl_; }
  const std::vector<DmlEvent>& dml() const { return dml_; }

  // Non-empty when the statement was refused (transaction control, a write to
  // airlock_applied): the caller reports this instead of SQLite's "not authorized".
  const std::string& refusal() const { return refusal_; }
  // Non-empty when airlock itself denied the statement because it cannot run inside the
  // dry-run transaction (ATTACH, DETACH, PRAGMA writes): the op is recorded, not executed.
  const std::string& not_executed() const { return not_executed_; }

  // While an Internal scope lives, airlock's own statements run unobserved and unpoliced.
  class Internal {
   public:
    explicit Internal(Authorizer* a) : a_(a), saved_(a->internal_) { a_->internal_ = true; }
    ~Internal() { a_->internal_ = saved_; }
    Internal(const Internal&) = delete;
    Internal& operator=(const Internal&) = delete;

   private:
    Authorizer* a_;
    bool saved_;
  };

 private:
  static int Callback(void* self, int code, const char* a1, const char* a2, const char* db,
                      const char* trigger);
  int Decide(int code, const char* a1, const char* a2, const char* db, const char* trigger);
  void Record(std::string op, const char* object, const char* table, std::string detail);
  int Refuse(std::string reason);
  int NotExecuted(std::string op, const char* object, std::string detail, std::string why);

  sqlite3* db_;
  bool recording_ = false;
  bool internal_ = false;
  std::vector<DdlOp> ddl_;
  std::vector<DmlEvent> dml_;
  std::string refusal_;
  std::string not_executed_;
};

// The reserved table in which airlock records applied / rolled back actions.
inline constexpr const char* kAppliedTable = "airlock_applied";

}  // namespace airlock::sqlite
