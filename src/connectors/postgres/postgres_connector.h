// The PostgreSQL target: a read probe in BEGIN READ ONLY; writes dry-run in a rolled-back
// transaction observed by airlock's capture triggers (install.h); apply with an effect check;
// undo by inverse row operations.
#pragma once

#include <memory>
#include <string>

#include "connectors/connector.h"

namespace airlock {

// fields: dsn_env | dsn_file (one required), schemas (default ["public"]),
//         lock_timeout_ms (default 2000), statement_timeout_ms (default 30000),
//         max_preview_rows (default 20).
Result<std::unique_ptr<Connector>> CreatePostgresConnector(const ConnectorConfig& config);

// `airlock pg install|uninstall --target T`: idempotent; `report` says what was done.
Status PostgresInstall(const ConnectorConfig& config, bool uninstall, std::string* report);

}  // namespace airlock
