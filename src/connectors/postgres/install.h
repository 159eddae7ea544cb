// `airlock pg install` / `uninstall`: the capture machinery inside the target database.
//
// An `airlock` schema holds
//   - airlock.changes / airlock.ddl: what the capture triggers saw in the current transaction
//     (unlogged; airlock reads them before it rolls back or deletes them before it commits);
//   - airlock.applied: action ids applied / rolled back, written in the target's own
//     transaction so that crash recovery can ask the target what it committed;
//   - a row trigger `airlock_capture` (and `airlock_capture_truncate`) on every table of the
//     listed schemas, which records OLD/NEW as jsonb only when the transaction set
//     `airlock.capture` (set_config(..., true)): the WHEN clause is evaluated before any
//     function is called, so the application's own writes pay one expression per row;
//   - event triggers for DDL (ddl_command_end, sql_drop), which record schema changes under
//     capture and attach the row trigger to tables created later in a listed schema.
#pragma once

#include <string>
#include <vector>

#include "connectors/postgres/libpq.h"

namespace airlock::pg {

inline constexpr const char* kCaptureSetting = "airlock.capture";

// Both are idempotent and run in one transaction. `report` says what was done, for people.
Status InstallCapture(Conn* conn, const std::vector<std::string>& schemas, std::string* report);
Status UninstallCapture(Conn* conn, std::string* report);

// Ok if the event triggers are installed and enabled; FailedPrecondition naming the command
// to run otherwise. A dry-run without them would see no schema change: fail closed.
Status CheckInstalled(Conn* conn, const std::string& target);

}  // namespace airlock::pg
