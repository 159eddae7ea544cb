// Pre-images of tables an approved action drops: `pg_dump` (Debian's postgresql-client) of
// those tables only, as SQL that a rollback runs to recreate them with their rows, indexes,
// constraints and triggers.
#pragma once

#include <string>

#include "connectors/postgres/libpq.h"

namespace airlock::pg {

// Above this a table gets no pre-image (its drop stays irreversible, and says so): the
// pre-image is kept in the undo record of the store.
inline constexpr size_t kMaxPreImageBytes = 64 << 20;

// Runs pg_dump --table=`identity` --inserts against the DSN's database. The DSN reaches
// pg_dump through PG* environment variables (never argv, which other local users can read);
// a DSN with a keyword that has no environment variable fails. The result is ready for
// Conn::Exec: psql meta-commands (\restrict) and airlock's own capture triggers (recreated by
// the DDL event trigger) are left out.
Result<std::string> DumpTable(const std::string& dsn, const std::string& identity);

}  // namespace airlock::pg
