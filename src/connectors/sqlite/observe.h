// Runs the caller's SQL inside an open transaction while the session extension and the
// authorizer watch, and turns what they saw into an Effect. DryRun and Apply share this, so
// an approved preview and the real run are computed the same way and their hashes compare.
#pragma once

#include <sqlite3.h>

#include <list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "connectors/sqlite/db.h"
#include "core/status.h"
#include "core/types.h"

namespace airlock::sqlite {

// Statements of the read fast path kept prepared on one connection, by their exact text, so
// that a read sent again is not parsed again: only a text that is a single statement, which
// the probe found a plain read and ran without error. One connection's, used only by whoever
// holds that connection. SQLite prepares a kept statement again by itself when the schema
// changes, under the connection's authorizer, which polices it then as any re-prepare.
class ReadStatementCache {
 public:
  static constexpr size_t kCapacity = 32;
  // What one kept statement may hold, so that a pool of readers keeps at most a few MiB
  // whatever the agents send (a text may be up to 1 MiB): a longer text, or a program that
  // takes more memory, is prepared afresh each time.
  static constexpr size_t kMaxTextBytes = 4096;
  static constexpr int kMaxStatementBytes = 32 * 1024;
  // The statement kept for exactly `sql`, reset, or nullptr.
  sqlite3_stmt* Find(std::string_view sql);
  // Keeps `stmt` (reset) for `sql` unless either is over its bound; the least recently used
  // goes beyond kCapacity.
  void Keep(std::string_view sql, StmtHandle stmt);
  size_t size() const { return entries_.size(); }

 private:
  std::list<std::pair<std::string, StmtHandle>> entries_;  // most recently used first
};

struct ObserveOptions {
  int64_t max_preview_rows = 20;
  int64_t max_result_rows = 1000;
  // The read fast path: no session is attached, and the run stops (Observation::not_a_read)
  // before the first statement that is not plainly a read, or at any error. The caller then
  // takes the full path, which reports the effect or the error the usual way.
  bool read_probe = false;
  // read_probe only: statements kept between runs on this connection (nullptr: none).
  ReadStatementCache* cache = nullptr;
};

struct Observation {
  Effect effect;
  Json result = nullptr;  // {"columns","rows","truncated"} of the last statement with columns
  // Raw session changesets of the main database, in execution order: a new segment starts
  // before each statement that drops or alters a table.
  std::vector<std::string> segments;
  bool touched_no_pk = false;  // rows of tables the changeset cannot see were written
  bool not_a_read = false;     // read_probe only: stopped; nothing here is meaningful
};

class Authorizer;

// The caller owns the transaction; this never commits or rolls back. Malformed SQL and
// refused statements are InvalidArgument carrying the reason (SQLite's message for SQL).
// `installed`: an authorizer the caller keeps installed on `db` (nullptr: one is installed for
// this run). Installing an authorizer expires every statement prepared on the connection
// (sqlite3_set_authorizer), so a connection that keeps prepared statements installs one once.
Result<Observation> ExecuteObserved(sqlite3* db, std::string_view sql,
                                    const ObserveOptions& options, Authorizer* installed = nullptr);

}  // namespace airlock::sqlite
