// The PostgreSQL store (`store: postgres://...` or `store_dsn_env`): the same Store, shared by
// several `airlock serve` processes so that they act as one gateway. See pg_store.cc for how
// writers on different instances are kept in order.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "store/store.h"

namespace airlock {

// Whether a policy's `store:` value names a PostgreSQL server rather than a file.
bool IsPostgresStoreUrl(const std::string& store);

struct PgMigration {
  int64_t from_version = 0;  // 0: the schema did not exist
  int64_t to_version = 0;
};

// Creates the schema `airlock_store` (with its version table) or upgrades it to this build's
// version, in one transaction. FailedPrecondition if the schema is newer than this build.
Result<PgMigration> MigratePgStore(const std::string& dsn);

// Opens the store, creating or upgrading its schema first.
Result<std::unique_ptr<Store>> OpenPgStore(const std::string& dsn);

// Copies every action, vote, undo record, breaker and audit event of `from` into `to`, which
// must hold no audit event yet. The chain is re-appended event by event and each hash must
// come out as recorded, so the copy verifies exactly as the source did. All or nothing.
// Returns the number of audit events copied.
Result<int64_t> CopyStore(Store& from, Store& to);

}  // namespace airlock
