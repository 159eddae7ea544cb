// Untrusted SQL through the SQLite connector's dry-run. Whatever the text, the dry-run must
// return a value or a Status (never crash) and must leave the target file byte for byte as it
// was: a dry-run that changes production is the one bug airlock cannot have.
#include <sqlite3.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "connectors/sqlite/sqlite_connector.h"
#include "core/hash.h"

namespace {

std::string FileHash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return airlock::Sha256Hex(ss.str());
}

struct Fixture {
  std::string dir;
  std::string path;
  std::string hash;
  std::unique_ptr<airlock::Connector> connector;

  Fixture() {
    char tmpl[] = "/tmp/airlock_sql_fuzz_XXXXXX";
    if (mkdtemp(tmpl) == nullptr) std::abort();
    dir = tmpl;
    path = dir + "/prod.db";
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    const char* schema =
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, status TEXT, balance REAL);"
        "CREATE INDEX idx_status ON users(status);"
        "CREATE TABLE logs(msg TEXT);"
        "CREATE TABLE audit(id INTEGER PRIMARY KEY, user_id INT, what TEXT);"
        "CREATE TRIGGER t AFTER UPDATE ON users BEGIN "
        "  INSERT INTO audit(user_id, what) VALUES (old.id, 'update'); END;"
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) "
        "INSERT INTO users SELECT i, 'u' || i, CASE i % 3 WHEN 0 THEN 'inactive' ELSE 'active' "
        "END, i * 1.5 FROM n;"
        "INSERT INTO logs VALUES ('a'), ('b');";
    if (sqlite3_exec(db, schema, nullptr, nullptr, nullptr) != SQLITE_OK) std::abort();
    sqlite3_close(db);
    hash = FileHash(path);
    airlock::ConnectorConfig config{
        "app-db", "sqlite", {{"path", path}, {"timeout_ms", 100}, {"max_preview_rows", 5}}};
    auto c = airlock::CreateSqliteConnector(config);
    if (!c.ok()) std::abort();
    connector = std::move(*c);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* fx = new Fixture();
  std::string sql(reinterpret_cast<const char*>(data), size);
  auto r = fx->connector->DryRun({{"sql", sql}});
  (void)r;
  if (FileHash(fx->path) != fx->hash) {
    std::fprintf(stderr, "the dry-run changed the target file for: %s\n", sql.c_str());
    std::abort();
  }
  return 0;
}
