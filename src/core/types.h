// The values that move down the pipeline: Risk, ActionStatus, Effect, Action.
// No I/O here; everything is a plain value with a JSON form.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace airlock {

using Json = nlohmann::json;

// Ordered: a higher value is riskier. The policy can raise a risk, never lower it.
enum class Risk { kRead = 0, kLow = 1, kHigh = 2, kCritical = 3 };
const char* RiskName(Risk r);                  // "read", "low", "high", "critical"
std::optional<Risk> ParseRisk(std::string_view s);
inline Risk MaxRisk(Risk a, Risk b) { return a < b ? b : a; }

// DESIGN.md "Statuses". `applying` and `rolling_back` are internal, transient states that
// exist only between "decided" and "recorded": crash recovery resolves them (never shown
// as final to a caller).
enum class ActionStatus {
  kApplied,
  kPending,
  kDenied,
  kExpired,
  kRejected,
  kFailed,
  kRolledBack,
  kEffectChanged,
  kApplying,
  kRollingBack,
};
const char* ActionStatusName(ActionStatus s);  // "applied", "effect_changed", ...
std::optional<ActionStatus> ParseActionStatus(std::string_view s);
bool IsFinal(ActionStatus s);  // everything except pending / applying / rolling_back

// CLI exit codes (DESIGN.md, the CLI contract).
enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,
  kExitUsage = 2,
  kExitPending = 10,
  kExitDenied = 11,
};
int ExitCodeFor(ActionStatus s);

// ---- Effects -------------------------------------------------------------------------------
// What an action did in the sandbox (dry-run) or for real (apply). Connector-neutral fields
// are typed; connector-specific detail goes to `extra`.

// Rows changed in one table.
struct TableChange {
  std::string table;
  int64_t inserted = 0;
  int64_t updated = 0;
  int64_t deleted = 0;
  // Rows the table holds after the change (in the dry-run transaction); -1 if unknown.
  // Lets the classifier see "every row" without counting the whole table (cheap to compute:
  // see the SQLite connector).
  int64_t rows_after = -1;
  bool all_rows_updated = false;  // every row of a non-empty table was updated
  bool all_rows_deleted = false;  // the table had rows and has none left
  bool has_primary_key = true;    // false: the session extension cannot see or undo its rows
};

// One schema operation, as the SQLite authorizer (or another connector) reported it.
// op: drop_table, drop_index, drop_trigger, drop_view, create_table, create_index,
//     create_trigger, create_view, alter_table, attach, detach, pragma_write, vacuum_into,
//     vacuum, reindex, analyze.
struct DdlOp {
  std::string op;
  std::string object;   // the table / index / trigger / database name
  std::string table;    // for indexes and triggers: the table they belong to
  int64_t rows = -1;    // for drop_table / alter_table: rows in the table before; else -1
  std::vector<std::string> indexes;   // for drop_table: indexes that go with it
  std::vector<std::string> triggers;  // for drop_table: triggers that go with it
  std::string detail;   // e.g. the pragma name and value, the attached file
};

// One changed row for the preview. Values are JSON: null, number, string, or
// {"blob_hex": "..."} for blobs.
struct RowChange {
  std::string table;
  std::string op;  // insert | update | delete
  Json before;     // object column -> value, null for insert
  Json after;      // object column -> value, null for delete
};

// One file-tree change a shell command made (relative to its workspace).
struct FileChange {
  std::string path;         // relative to the workspace, '/'-separated
  std::string op;           // added | changed | deleted
  std::string type;         // file | dir | symlink | other: the type after (before if deleted)
  std::string type_before;  // for changed: the type before ("" = same)
  int64_t size_before = -1; // -1: absent / not a file
  int64_t size_after = -1;
  int mode_before = -1;     // permission bits, -1: absent
  int mode_after = -1;
  std::string link_target;  // symlinks (after)
  std::string diff;         // unified diff for small text files, else ""
  bool binary = false;      // a file whose content is not shown as text
};

struct Effect {
  std::string kind;                  // "sql", "shell", later "mail", ...
  std::vector<TableChange> tables;   // sorted by table name
  std::vector<DdlOp> ddl;            // in execution order
  std::vector<RowChange> preview;    // the first rows changed (bounded)
  int64_t preview_omitted = 0;       // changed rows (or files) not in the preview
  std::vector<FileChange> files;     // shell: the first file changes (bounded), by path
  int64_t files_changed = 0;         // shell: all file changes (files.size() + omitted)
  std::string effect_hash;           // hex SHA-256 over the canonical change set
  Json extra = Json::object();       // connector-specific

  bool IsRead() const { return tables.empty() && ddl.empty() && files_changed == 0; }
  int64_t RowsChanged() const;       // sum of inserted + updated + deleted
};

Json EffectToJson(const Effect& e);
Result<Effect> EffectFromJson(const Json& j);

// What a connector keeps so that an applied action can be undone. `data` is opaque bytes
// that only the connector that made it decodes (an inverted changeset plus pre-images).
struct UndoRecord {
  std::string kind;        // "sqlite", ...
  std::string data;        // connector-defined bytes
  bool reversible = true;  // false: nothing can undo it (mail sent, rows of a no-PK table)
  std::string note;        // for people: why it is not (fully) reversible
};

// ---- Actions -------------------------------------------------------------------------------

struct Vote {
  std::string approver;
  bool approve = false;
  std::string reason;
  int64_t at_ms = 0;
};

struct Action {
  std::string id;  // "act_" + 24 hex (time, then random: NewActionId)
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  std::string agent;         // the requesting agent's name
  std::string target;
  std::string kind;          // "sql", ...
  Json args = Json::object();  // the full arguments, e.g. {"sql": "..."}
  ActionStatus status = ActionStatus::kPending;
  Risk risk = Risk::kRead;
  std::vector<std::string> reasons;
  Effect effect;
  Json result = nullptr;     // rows for a query, stdout/exit for a command
  int quorum = 0;            // approvals needed
  int64_t expires_ms = 0;    // 0 = never (not pending)
  std::string error;         // why it failed / was denied, for people
  std::string error_code;    // stable machine code with `error`: "invalid_argument", ...
  std::vector<Vote> votes;
  bool reversible = true;    // false: rollback cannot undo it (mail, http, no-PK tables)
  bool dry_run = false;      // mode: dry-run: never applied
  std::string would_status;  // in dry-run mode: what enforce mode would have done
};

// The JSON form the CLI prints with --json and the API returns (DESIGN.md contract):
// id, status, risk, reasons, effect, result, plus the rest.
Json ActionToJson(const Action& a);
Result<Action> ActionFromJson(const Json& j);
// CanonicalJson(ActionToJson(a)) with only the keys `keep` accepts, written without building
// the tree; with `result`, that value stands in for a.result.
std::string ActionJsonText(const Action& a, const std::function<bool(std::string_view key)>& keep,
                           const Json* result = nullptr);
// One text of ActionJsonTexts: the keys it keeps, a stand-in for a.result (or null), and
// where it goes.
struct ActionText {
  std::function<bool(std::string_view key)> keep;
  const Json* result;
  std::string* out;
};
// ActionJsonText for several texts (at most 8) of one action at once: each value is written
// once, and copied into every text that keeps its key (a read on `airlock serve` writes
// three). Throws std::logic_error for more than 8.
void ActionJsonTexts(const Action& a, std::initializer_list<ActionText> texts);
// The action as a store keeps it in its row's body: its canonical JSON form without the
// votes (a table of their own holds those) and without the approval count derived from them.
std::string StoredActionBody(const Action& a);
// The keys StoredActionBody keeps.
bool IsStoredBodyKey(std::string_view key);

}  // namespace airlock
