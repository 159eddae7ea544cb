// The SQLite target: dry-run in a rolled-back transaction observed by the session extension
// and the authorizer; apply with an effect check; undo from an inverted changeset and
// pre-images of tables touched by DDL.
#pragma once

#include <memory>

#include "connectors/connector.h"

namespace airlock {

// fields: path (required, absolute), max_preview_rows (default 20),
//         busy_timeout_ms (default 5000).
Result<std::unique_ptr<Connector>> CreateSqliteConnector(const ConnectorConfig& config);

}  // namespace airlock
