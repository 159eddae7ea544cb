#include "connectors/postgres/postgres_connector.h"

#include <array>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "connectors/postgres/ddl_undo.h"
#include "connectors/postgres/dump.h"
#include "connectors/postgres/effect.h"
#include "connectors/postgres/install.h"
#include "connectors/postgres/libpq.h"
#include "connectors/postgres/undo.h"
#include "core/crash.h"
#include "core/hash.h"

namespace airlock::pg {
namespace {

struct Settings {
  std::string target;
  std::string dsn_env;
  std::string dsn_file;
  std::vector<std::string> schemas = {"public"};
  int64_t lock_timeout_ms = 2000;
  int64_t statement_timeout_ms = 30000;
  int64_t max_preview_rows = 20;
  int64_t max_result_rows = 1000;
};

constexpr size_t kMaxSqlBytes = 1 << 20;

Result<Settings> ReadSettings(const ConnectorConfig& c) {
  Settings s;
  s.target = c.name;
  const Json& f = c.fields;
  s.dsn_env = f.value("dsn_env", "");
  s.dsn_file = f.value("dsn_file", "");
  if (s.dsn_env.empty() == s.dsn_file.empty()) {
    return Status::InvalidArgument("target '" + c.name + "': exactly one of dsn_env, dsn_file");
  }
  if (f.contains("schemas") && f["schemas"].is_array()) {
    s.schemas.clear();
    for (const Json& n : f["schemas"]) s.schemas.push_back(n.get<std::string>());
  }
  s.lock_timeout_ms = f.value("lock_timeout_ms", s.lock_timeout_ms);
  s.statement_timeout_ms = f.value("statement_timeout_ms", s.statement_timeout_ms);
  s.max_preview_rows = f.value("max_preview_rows", s.max_preview_rows);
  return s;
}

// The DSN is read when a connection is opened, never kept in a message.
Result<std::string> ReadDsn(const Settings& s) {
  if (!s.dsn_env.empty()) {
    const char* v = std::getenv(s.dsn_env.c_str());
    if (v == nullptr || *v == '\0') {
      return Status::FailedPrecondition("target '" + s.target + "': environment variable " +
                                        s.dsn_env + " (dsn_env) is not set");
    }
    return std::string(v);
  }
  std::ifstream in(s.dsn_file);
  if (!in) {
    return Status::FailedPrecondition("target '" + s.target + "': cannot read dsn_file " +
                                      s.dsn_file);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string dsn = ss.str();
  while (!dsn.empty() && (dsn.back() == '\n' || dsn.back() == '\r')) dsn.pop_back();
  return dsn;
}

Result<std::string> SqlArg(const Json& args) {
  if (!args.is_object() || !args.contains("sql") || !args["sql"].is_string()) {
    return Status::InvalidArgument("postgres action needs args {\"sql\": \"<text>\"}");
  }
  std::string sql = args["sql"].get<std::string>();
  if (sql.size() > kMaxSqlBytes) {
    return Status::InvalidArgument("the SQL text is " + std::to_string(sql.size()) +
                                   " bytes; the limit is " + std::to_string(kMaxSqlBytes));
  }
  if (sql.find('\0') != std::string::npos) {
    return Status::InvalidArgument("the SQL text has a NUL byte");
  }
  return sql;
}

// The rows a statement returned, as the caller sees them (text values, NULL as null).
Json ResultJson(const PGresult* res, int64_t max_rows) {
  const PqApi* api = *Pq();
  const int ncol = api->nfields(res);
  if (ncol == 0) return nullptr;
  Json columns = Json::array();
  for (int c = 0; c < ncol; ++c) columns.push_back(api->fname(res, c));
  Json rows = Json::array();
  const int n = Rows(res);
  for (int r = 0; r < n && r < max_rows; ++r) {
    Json row = Json::array();
    for (int c = 0; c < ncol; ++c)
      row.push_back(IsNull(res, r, c) ? Json(nullptr) : Json(Cell(res, r, c)));
    rows.push_back(std::move(row));
  }
  return {{"columns", columns}, {"rows", rows}, {"truncated", n > max_rows}};
}

// Lock and statement timeouts name themselves; other errors are the SQL's own (bad input).
Status Explain(const Status& st, const std::string& sqlstate, const Settings& s) {
  if (sqlstate == "55P03") {
    return Status::FailedPrecondition("a lock was not granted within the target's lock_timeout (" +
                                      std::to_string(s.lock_timeout_ms) +
                                      " ms); nothing was changed");
  }
  if (sqlstate == "57014") {
    return Status::FailedPrecondition("the SQL ran longer than the target's statement_timeout (" +
                                      std::to_string(s.statement_timeout_ms) +
                                      " ms) and was stopped; nothing was changed");
  }
  return st;
}

// Rolls back whatever is open when it goes out of scope, unless committed.
class Txn {
 public:
  explicit Txn(Conn* c) : c_(c) {}
  ~Txn() {
    if (!c_->Idle()) (void)c_->Exec("ROLLBACK");
  }
  Status Begin(const Settings& s, bool read_only) {
    RETURN_IF_ERROR(c_->Exec(read_only ? "BEGIN READ ONLY" : "BEGIN"));
    return c_->Exec("SET LOCAL lock_timeout = " + std::to_string(s.lock_timeout_ms) +
                    "; SET LOCAL statement_timeout = " + std::to_string(s.statement_timeout_ms));
  }

 private:
  Conn* c_;
};

using WriteCounts = std::map<std::string, std::array<int64_t, 3>>;  // table -> ins, upd, del
Result<WriteCounts> ReadWriteCounts(Conn* c);
Status CheckCaptureComplete(const WriteCounts& before, const WriteCounts& after,
                            const std::vector<CapturedRow>& rows);

class PostgresConnector final : public Connector {
 public:
  explicit PostgresConnector(Settings s) : s_(std::move(s)) {}

  Result<DryRunResult> DryRun(const Json& args) override;
  Result<ApplyOutcome> Apply(
      const std::string& action_id, const Json& args, const Effect& expected,
      const std::function<Status(const UndoRecord&)>& before_commit) override;
  Status Rollback(const std::string& action_id, const UndoRecord& undo, Json* report) override;
  Result<bool> IsApplied(const std::string& action_id) override;
  Result<bool> IsRolledBack(const std::string& action_id) override;

 private:
  struct Observed {
    Effect effect;
    Json result = nullptr;
    std::vector<CapturedRow> rows;
    std::vector<CapturedDdl> ddl;
  };
  // What must be saved before the statement runs, because it is gone afterwards.
  struct BeforeApply {
    std::map<std::string, int64_t> rows_before;  // dropped tables -> rows
    std::set<std::string> existed;               // "created" objects that were already there
    std::string note;
  };
  Status TakePreImages(Conn* c, const Effect& expected, UndoData* undo, BeforeApply* before);
  Status PreImageTable(Conn* c, const std::string& identity, UndoData* undo, BeforeApply* before);
  Status PlanDdlUndo(Conn* c, const Observed& obs, const BeforeApply& before, UndoData* undo);
  Result<Conn*> Connection();  // requires mu_
  // Runs the agent's one statement in the caller's open transaction with capture on and
  // reads what it did. `rows_before`: rows of the tables it drops, counted before (apply);
  // null: count them afterwards by rolling back to a savepoint (dry-run).
  Result<Observed> Observe(Conn* c, const std::string& sql,
                           const std::map<std::string, int64_t>* rows_before);
  Status RunStatement(Conn* c, const std::string& sql, Json* result);
  Result<std::map<std::string, TableFacts>> Facts(Conn* c, const std::vector<CapturedRow>& rows);
  Result<bool> IsRecorded(const std::string& action_id, const char* kind);

  const Settings s_;
  std::mutex mu_;               // one transaction at a time on the connection
  std::unique_ptr<Conn> conn_;  // GUARDED_BY(mu_)
};

Result<Conn*> PostgresConnector::Connection() {
  if (conn_ && conn_->Healthy() && conn_->Idle()) return conn_.get();
  conn_.reset();
  ASSIGN_OR_RETURN(std::string dsn, ReadDsn(s_));
  auto c = Conn::Open(dsn);
  if (!c.ok())
    return Status(c.status().code(), "target '" + s_.target + "': " + c.status().message());
  conn_ = std::move(*c);
  return conn_.get();
}

// One statement (the extended protocol refuses two), which must leave airlock's transaction
// open: COMMIT, ROLLBACK or PREPARE TRANSACTION from the agent would end it.
Status PostgresConnector::RunStatement(Conn* c, const std::string& sql, Json* result) {
  auto res = c->Query(sql);
  if (!res.ok()) return Explain(res.status(), c->last_sqlstate(), s_);
  if (!c->InTransaction()) {
    return Status::InvalidArgument(
        "transaction control (COMMIT, ROLLBACK, ...) is not allowed "
        "through airlock");
  }
  if (result) *result = ResultJson(res->get(), s_.max_result_rows);
  return Status::Ok();
}

Result<DryRunResult> PostgresConnector::DryRun(const Json& args) {
  ASSIGN_OR_RETURN(std::string sql, SqlArg(args));
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(Conn * c, Connection());
  {
    // The read probe: whatever runs in a READ ONLY transaction changes nothing.
    Txn probe(c);
    RETURN_IF_ERROR(probe.Begin(s_, /*read_only=*/true));
    Json result = nullptr;
    Status st = RunStatement(c, sql, &result);
    if (st.ok()) {
      ASSIGN_OR_RETURN(Effect e, BuildEffect(CaptureInput{}));
      return DryRunResult{std::move(e), std::move(result)};
    }
    if (c->last_sqlstate() != "25006") return st;  // 25006: read_only_sql_transaction
  }
  Txn txn(c);
  RETURN_IF_ERROR(txn.Begin(s_, /*read_only=*/false));
  ASSIGN_OR_RETURN(Observed obs, Observe(c, sql, nullptr));
  RETURN_IF_ERROR(c->Exec("ROLLBACK"));  // a dry-run never commits
  return DryRunResult{std::move(obs.effect), nullptr};
}

Result<PostgresConnector::Observed> PostgresConnector::Observe(
    Conn* c, const std::string& sql, const std::map<std::string, int64_t>* rows_before) {
  RETURN_IF_ERROR(CheckInstalled(c, s_.target));
  // A value the agent cannot guess: if its statement turned capture off (or on again), the
  // value differs afterwards and the run is refused.
  const std::string token = RandomHex(16);
  RETURN_IF_ERROR(c->Query("SELECT set_config('airlock.capture', $1, true)", {token}).status());
  if (rows_before == nullptr) RETURN_IF_ERROR(c->Exec("SAVEPOINT airlock_action"));
  Observed obs;
  ASSIGN_OR_RETURN(WriteCounts counted_before, ReadWriteCounts(c));
  RETURN_IF_ERROR(RunStatement(c, sql, &obs.result));
  ASSIGN_OR_RETURN(WriteCounts counted_after, ReadWriteCounts(c));

  ASSIGN_OR_RETURN(ResultHandle now, c->Query("SELECT current_setting('airlock.capture', true)"));
  if (Cell(now.get(), 0, 0) != token) {
    return Status::PermissionDenied("the statement changed airlock.capture; refused");
  }
  RETURN_IF_ERROR(
      c->Exec("SET LOCAL airlock.capture = ''"));  // airlock's reads below: not captured
  CaptureInput in;
  in.max_preview_rows = s_.max_preview_rows;
  ASSIGN_OR_RETURN(ResultHandle rows,
                   c->Query("SELECT schema_name, table_name, op, coalesce(old_row::text, ''), "
                            "coalesce(new_row::text, '') FROM airlock.changes "
                            "WHERE tx = pg_current_xact_id() ORDER BY seq"));
  for (int i = 0; i < Rows(rows.get()); ++i) {
    in.rows.push_back({Cell(rows.get(), i, 0), Cell(rows.get(), i, 1), Cell(rows.get(), i, 2),
                       Cell(rows.get(), i, 3), Cell(rows.get(), i, 4)});
  }
  ASSIGN_OR_RETURN(ResultHandle ddl,
                   c->Query("SELECT phase, command_tag, coalesce(object_type, ''), "
                            "coalesce(schema_name, ''), coalesce(object_identity, '') "
                            "FROM airlock.ddl WHERE tx = pg_current_xact_id() ORDER BY seq"));
  for (int i = 0; i < Rows(ddl.get()); ++i) {
    in.ddl.push_back({Cell(ddl.get(), i, 0), Cell(ddl.get(), i, 1), Cell(ddl.get(), i, 2),
                      Cell(ddl.get(), i, 3), Cell(ddl.get(), i, 4)});
  }
  RETURN_IF_ERROR(CheckCaptureComplete(counted_before, counted_after, in.rows));
  ASSIGN_OR_RETURN(in.facts, Facts(c, in.rows));

  std::vector<std::string> dropped;
  for (const CapturedDdl& d : in.ddl) {
    if (DdlOpName(d) == "drop_table") dropped.push_back(d.identity);
  }
  if (rows_before != nullptr) {
    in.rows_before = *rows_before;
  } else if (!dropped.empty()) {
    // The dropped tables exist again once the statement is undone: count them then.
    RETURN_IF_ERROR(c->Exec("ROLLBACK TO SAVEPOINT airlock_action"));
    for (const std::string& t : dropped) {
      ASSIGN_OR_RETURN(ResultHandle n, c->Query("SELECT count(*) FROM " + t));
      in.rows_before[t] = std::stoll(Cell(n.get(), 0, 0));
    }
  }
  ASSIGN_OR_RETURN(obs.effect, BuildEffect(in));
  obs.rows = std::move(in.rows);
  obs.ddl = std::move(in.ddl);
  return obs;
}

// What the server counted for this backend: pg_stat_xact_* holds the current transaction's
// writes, plus those of earlier transactions that are not flushed to the shared statistics
// yet. So the statement's own writes are the difference between a reading before and one
// after it, inside one transaction (nothing is flushed during a transaction).
Result<WriteCounts> ReadWriteCounts(Conn* c) {
  ASSIGN_OR_RETURN(ResultHandle st,
                   c->Query("SELECT schemaname, relname, n_tup_ins, n_tup_upd, n_tup_del "
                            "FROM pg_stat_xact_user_tables WHERE schemaname <> 'airlock' "
                            "AND schemaname NOT LIKE 'pg\\_temp%' "
                            "AND n_tup_ins + n_tup_upd + n_tup_del > 0"));
  WriteCounts out;
  for (int i = 0; i < Rows(st.get()); ++i) {
    out[QualifiedName(Cell(st.get(), i, 0), Cell(st.get(), i, 1))] = {
        std::stoll(Cell(st.get(), i, 2)), std::stoll(Cell(st.get(), i, 3)),
        std::stoll(Cell(st.get(), i, 4))};
  }
  return out;
}

// Every write the server counted during the statement must have been captured, table by
// table: a table outside the listed schemas, a disabled trigger or
// session_replication_role = replica would otherwise hide writes from the preview.
Status CheckCaptureComplete(const WriteCounts& before, const WriteCounts& after,
                            const std::vector<CapturedRow>& rows) {
  WriteCounts captured;
  for (const CapturedRow& r : rows) {
    auto& n = captured[QualifiedName(r.schema, r.table)];
    if (r.op == "insert") n[0]++;
    if (r.op == "update") n[1]++;
    if (r.op == "delete") n[2]++;  // TRUNCATE is not counted by the server
  }
  for (const auto& [name, n] : after) {
    std::array<int64_t, 3> delta = n;
    if (auto b = before.find(name); b != before.end()) {
      for (int i = 0; i < 3; ++i) delta[i] -= b->second[i];
    }
    const auto it = captured.find(name);
    const std::array<int64_t, 3> seen =
        it == captured.end() ? std::array<int64_t, 3>{} : it->second;
    if (delta != seen) {
      return Status::PermissionDenied(
          "writes to " + name +
          " were not all captured (is the table outside the target's "
          "schemas, or its airlock trigger missing? run `airlock pg install`); refused");
    }
    captured.erase(name);
  }
  for (const auto& [name, n] : captured) {
    if (n[0] + n[1] + n[2] > 0) {
      return Status::PermissionDenied("the server did not count the captured writes to " + name +
                                      "; refused");
    }
  }
  return Status::Ok();
}

// Primary key and "every row" facts for the changed tables, from the state after the
// statement (inside the transaction). Cheap: no table is counted whole.
Result<std::map<std::string, TableFacts>> PostgresConnector::Facts(
    Conn* c, const std::vector<CapturedRow>& rows) {
  std::map<std::string, std::array<int64_t, 2>> changed;  // updated, deleted
  std::map<std::string, std::string> relation;
  for (const CapturedRow& r : rows) {
    const std::string name = QualifiedName(r.schema, r.table);
    relation[name] = QuoteIdent(r.schema) + "." + QuoteIdent(r.table);
    if (r.op == "update") changed[name][0]++;
    if (r.op == "delete" || r.op == "truncate") changed[name][1]++;
    changed[name];
  }
  std::map<std::string, TableFacts> out;
  for (const auto& [name, n] : changed) {
    const std::string& rel = relation[name];
    TableFacts f;
    ASSIGN_OR_RETURN(ResultHandle pk, c->Query("SELECT EXISTS (SELECT 1 FROM pg_index WHERE "
                                               "indrelid = $1::regclass AND indisprimary)",
                                               {rel}));
    f.has_primary_key = Cell(pk.get(), 0, 0) == "t";
    if (n[1] > 0) {
      ASSIGN_OR_RETURN(ResultHandle any, c->Query("SELECT EXISTS (SELECT 1 FROM " + rel + ")"));
      f.all_rows_deleted = Cell(any.get(), 0, 0) == "f";
      if (f.all_rows_deleted) f.rows_after = 0;
    }
    if (n[0] > 0) {
      ASSIGN_OR_RETURN(ResultHandle more, c->Query("SELECT EXISTS (SELECT 1 FROM " + rel +
                                                   " OFFSET " + std::to_string(n[0]) + ")"));
      f.all_rows_updated = Cell(more.get(), 0, 0) == "f";
    }
    out[name] = f;
  }
  return out;
}

// Objects that would not come back with a pre-image of `identity`: views on it, foreign keys
// and column defaults of other tables that use it (or rest on it, for an index), inheritance
// children or parents (a DROP ... CASCADE removes them; a replaced table would need it).
Result<bool> HasDependents(Conn* c, const std::string& identity) {
  ASSIGN_OR_RETURN(
      ResultHandle r,
      c->Query("SELECT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_rewrite w ON w.oid = d.objid "
               "WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = $1::regclass "
               "AND w.ev_class <> $1::regclass) "
               "OR EXISTS (SELECT 1 FROM pg_constraint WHERE confrelid = $1::regclass "
               "AND conrelid <> $1::regclass) "
               // A foreign key resting on a unique index (DROP INDEX ... CASCADE drops it).
               "OR EXISTS (SELECT 1 FROM pg_depend d JOIN pg_constraint k ON k.oid = d.objid "
               "WHERE d.classid = 'pg_constraint'::regclass AND d.refobjid = $1::regclass "
               "AND d.deptype = 'n' AND k.conrelid <> $1::regclass) "
               "OR EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = $1::regclass "
               "OR inhrelid = $1::regclass) "
               "OR EXISTS (SELECT 1 FROM pg_depend d JOIN pg_attrdef a ON a.oid = d.objid "
               "WHERE d.classid = 'pg_attrdef'::regclass AND d.refobjid = $1::regclass "
               "AND a.adrelid <> $1::regclass)",
               {identity}));
  return Cell(r.get(), 0, 0) == "t";
}

// pg_class.relkind of the relation PostgreSQL names `identity` ("" if none). Matched as
// text, not cast to regclass: an identity such as public.users.note (a column) must not be
// parsed as a relation name.
Result<std::string> RelKind(Conn* c, const std::string& identity) {
  ASSIGN_OR_RETURN(ResultHandle r, c->Query("SELECT c.relkind FROM pg_class c JOIN pg_namespace n "
                                            "ON n.oid = c.relnamespace "
                                            "WHERE format('%I.%I', n.nspname, c.relname) = $1",
                                            {identity}));
  return Rows(r.get()) == 0 ? std::string() : Cell(r.get(), 0, 0);
}

Status PostgresConnector::PreImageTable(Conn* c, const std::string& identity, UndoData* undo,
                                        BeforeApply* before) {
  for (const DdlUndo& u : undo->ddl) {
    if (u.op == "replace_table" && u.identity == identity) return Status::Ok();
  }
  ASSIGN_OR_RETURN(std::string kind, RelKind(c, identity));
  ASSIGN_OR_RETURN(bool dependents, HasDependents(c, identity));
  if (kind != "r" || dependents) {
    before->note += "no pre-image of " + identity +
                    " (a partitioned or inherited table, or other objects depend on it); ";
    return Status::Ok();
  }
  // As for a drop: the SHARE lock keeps writers out from the dump to the ALTER.
  Status locked = c->Exec("LOCK TABLE " + identity + " IN SHARE MODE");
  if (!locked.ok()) return Explain(locked, c->last_sqlstate(), s_);
  ASSIGN_OR_RETURN(std::string dsn, ReadDsn(s_));
  auto dump = DumpTable(dsn, identity);
  if (!dump.ok()) {
    before->note += "no pre-image of " + identity + ": " + dump.status().message() + "; ";
    return Status::Ok();
  }
  undo->ddl.push_back({"replace_table", "table", identity, std::move(*dump), ""});
  return Status::Ok();
}

Status PostgresConnector::TakePreImages(Conn* c, const Effect& expected, UndoData* undo,
                                        BeforeApply* before) {
  for (const DdlOp& d : expected.ddl) {
    if (d.op == "drop_table") {
      ASSIGN_OR_RETURN(std::string kind, RelKind(c, d.object));
      if (kind.empty()) continue;
      Status locked = c->Exec("LOCK TABLE " + d.object + " IN SHARE MODE");
      if (!locked.ok()) return Explain(locked, c->last_sqlstate(), s_);
      ASSIGN_OR_RETURN(ResultHandle n, c->Query("SELECT count(*) FROM " + d.object));
      before->rows_before[d.object] = std::stoll(Cell(n.get(), 0, 0));
      ASSIGN_OR_RETURN(bool dependents, HasDependents(c, d.object));
      if (dependents) {
        before->note += "no pre-image of " + d.object + " (other objects depend on it); ";
        continue;
      }
      ASSIGN_OR_RETURN(std::string dsn, ReadDsn(s_));
      auto dump = DumpTable(dsn, d.object);
      if (dump.ok()) {
        undo->pre_images.push_back({d.object, std::move(*dump)});
      } else {
        before->note += "no pre-image of " + d.object + ": " + dump.status().message() + "; ";
      }
    } else if (d.op == "drop_view" || d.op == "drop_sequence" || d.op == "drop_index") {
      ASSIGN_OR_RETURN(std::string kind, RelKind(c, d.object));
      const std::string want = d.op == "drop_view" ? "v" : d.op == "drop_sequence" ? "S" : "i";
      if (kind != want) continue;
      ASSIGN_OR_RETURN(bool dependents, HasDependents(c, d.object));
      if (dependents) {
        before->note += "no pre-image of " + d.object + " (other objects depend on it); ";
        continue;
      }
      const std::string object_type = d.op.substr(5);  // view | sequence | index
      if (d.op == "drop_index") {
        ASSIGN_OR_RETURN(ResultHandle def,
                         c->Query("SELECT pg_get_indexdef($1::regclass)", {d.object}));
        undo->ddl.push_back({"recreate", object_type, d.object, Cell(def.get(), 0, 0), ""});
        continue;
      }
      ASSIGN_OR_RETURN(std::string dsn, ReadDsn(s_));
      auto dump = DumpTable(dsn, d.object);
      if (dump.ok()) {
        undo->ddl.push_back({"recreate", object_type, d.object, std::move(*dump), ""});
      } else {
        before->note += "no pre-image of " + d.object + ": " + dump.status().message() + "; ";
      }
    } else if (d.op == "alter_table") {
      // The identity names the table or a part of it (public.users.note, c on public.users).
      ASSIGN_OR_RETURN(
          ResultHandle t,
          c->Query("SELECT ident FROM (SELECT format('%I.%I', n.nspname, c.relname) AS ident "
                   "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                   "WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'airlock') t "
                   "WHERE $1 = ident OR starts_with($1, ident || '.') "
                   "OR starts_with($1, 'for ' || ident || '.') "
                   "OR right($1, length(ident) + 4) = ' on ' || ident",
                   {d.object}));
      for (int i = 0; i < Rows(t.get()); ++i) {
        RETURN_IF_ERROR(PreImageTable(c, Cell(t.get(), i, 0), undo, before));
      }
    } else if (d.op.rfind("create_", 0) == 0) {
      // CREATE OR REPLACE VIEW reports a CREATE VIEW: what was there before is not dropped.
      ASSIGN_OR_RETURN(std::string kind, RelKind(c, d.object));
      if (!kind.empty()) before->existed.insert(d.object);
    }
  }
  return Status::Ok();
}

// After the statement: the objects it created (with the fingerprint of created tables) and
// the fingerprints of the tables it altered. Captured rows of those tables are left out of
// the row undo: dropping or replacing the table undoes them.
Status PostgresConnector::PlanDdlUndo(Conn* c, const Observed& obs, const BeforeApply& before,
                                      UndoData* undo) {
  for (DdlUndo& u : CreatedObjects(obs.ddl)) {
    if (!before.existed.count(u.identity)) undo->ddl.push_back(std::move(u));
  }
  std::set<std::string> whole_tables;
  for (DdlUndo& u : undo->ddl) {
    if (u.op == "recreate") continue;
    ASSIGN_OR_RETURN(u.fingerprint, ObjectFingerprint(c, u.kind, u.identity));
    if (u.kind == "table") whole_tables.insert(u.identity);
  }
  if (whole_tables.empty()) {
    undo->rows = obs.rows;
    return Status::Ok();
  }
  std::vector<CapturedRow> kept;
  std::map<std::pair<std::string, std::string>, bool> whole;  // (schema, table) -> left out
  for (const CapturedRow& r : obs.rows) {
    auto it = whole.find({r.schema, r.table});
    if (it == whole.end()) {
      // Quoted as the event trigger quotes identities (quote_ident), to compare with them.
      ASSIGN_OR_RETURN(ResultHandle id,
                       c->Query("SELECT format('%I.%I', $1::text, $2::text)", {r.schema, r.table}));
      const bool left_out = whole_tables.count(Cell(id.get(), 0, 0)) > 0;
      it = whole.emplace(std::make_pair(r.schema, r.table), left_out).first;
    }
    if (!it->second) kept.push_back(r);
  }
  undo->rows = std::move(kept);
  return Status::Ok();
}

Result<bool> PostgresConnector::IsRecorded(const std::string& action_id, const char* kind) {
  ASSIGN_OR_RETURN(Conn * c, Connection());
  ASSIGN_OR_RETURN(ResultHandle r,
                   c->Query("SELECT to_regclass('airlock.applied') IS NOT NULL AND EXISTS ("
                            "SELECT 1 FROM airlock.applied WHERE action_id = $1 AND kind = $2)",
                            {action_id, kind}));
  return Cell(r.get(), 0, 0) == "t";
}

Result<ApplyOutcome> PostgresConnector::Apply(
    const std::string& action_id, const Json& args, const Effect& expected,
    const std::function<Status(const UndoRecord&)>& before_commit) {
  ASSIGN_OR_RETURN(std::string sql, SqlArg(args));
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(Conn * c, Connection());
  Txn txn(c);
  RETURN_IF_ERROR(txn.Begin(s_, /*read_only=*/false));
  RETURN_IF_ERROR(CheckInstalled(c, s_.target));  // uninstalled since the preview: say so
  ASSIGN_OR_RETURN(ResultHandle done,
                   c->Query("SELECT EXISTS (SELECT 1 FROM airlock.applied WHERE action_id = $1 "
                            "AND kind = 'apply')",
                            {action_id}));
  if (Cell(done.get(), 0, 0) == "t") {
    return Status::FailedPrecondition("action " + action_id + " is already applied");
  }
  // What the approved effect drops or alters is saved first: afterwards it is gone.
  UndoData undo;
  BeforeApply before;
  RETURN_IF_ERROR(TakePreImages(c, expected, &undo, &before));
  std::string note = before.note;
  ASSIGN_OR_RETURN(Observed obs, Observe(c, sql, &before.rows_before));
  ApplyOutcome out;
  out.effect = std::move(obs.effect);
  out.result = std::move(obs.result);
  if (out.effect.effect_hash != expected.effect_hash) {
    RETURN_IF_ERROR(c->Exec("ROLLBACK"));
    out.effect_matched = false;  // the data changed since the preview: apply nothing
    return out;
  }
  out.undo.kind = "postgres";
  RETURN_IF_ERROR(PlanDdlUndo(c, obs, before, &undo));
  out.undo.data = EncodeUndo(undo);
  for (const std::string& d : NotUndone(obs.ddl, undo)) {
    out.undo.reversible = false;
    note += d +
            " is not undone (a rollback drops created tables, indexes, views and sequences, "
            "restores altered tables and dropped ones from their pre-images, nothing else); ";
  }
  for (const TableChange& t : out.effect.tables) {
    if (!t.has_primary_key) {
      note += "rows of " + t.table +
              " (no PRIMARY KEY) are undone best-effort, matched by "
              "their full row image; ";
    }
  }
  out.undo.note = note;
  // Captured rows never outlive the transaction that made them.
  RETURN_IF_ERROR(
      c->Exec("DELETE FROM airlock.changes WHERE tx = pg_current_xact_id(); "
              "DELETE FROM airlock.ddl WHERE tx = pg_current_xact_id()"));
  RETURN_IF_ERROR(before_commit(out.undo));  // the transaction rolls back on failure
  RETURN_IF_ERROR(
      c->Query("INSERT INTO airlock.applied(action_id, kind) VALUES ($1, 'apply')", {action_id})
          .status());
  CrashPoint("postgres_apply_before_commit");
  RETURN_IF_ERROR(c->Exec("COMMIT"));
  CrashPoint("postgres_apply_after_commit");
  out.effect_matched = true;
  return out;
}

Status PostgresConnector::Rollback(const std::string& action_id, const UndoRecord& record,
                                   Json* report) {
  if (record.kind != "postgres") {
    return Status::InvalidArgument("undo record of kind '" + record.kind + "' is not postgres");
  }
  if (!record.reversible) {
    return Status::FailedPrecondition("action " + action_id +
                                      " cannot be rolled back: " + record.note);
  }
  ASSIGN_OR_RETURN(UndoData undo, DecodeUndo(record.data));
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(Conn * c, Connection());
  Txn txn(c);
  RETURN_IF_ERROR(txn.Begin(s_, /*read_only=*/false));
  ASSIGN_OR_RETURN(ResultHandle rec,
                   c->Query("SELECT kind FROM airlock.applied WHERE action_id = $1", {action_id}));
  std::set<std::string> kinds;
  for (int i = 0; i < Rows(rec.get()); ++i) kinds.insert(Cell(rec.get(), i, 0));
  if (kinds.count("rollback")) {
    return Status::FailedPrecondition("action " + action_id + " is already rolled back");
  }
  if (!kinds.count("apply"))
    return Status::FailedPrecondition("action " + action_id + " was not applied");
  Json conflicts = Json::array();
  RETURN_IF_ERROR(RestorePreImages(c, undo.pre_images, &conflicts));
  if (conflicts.empty()) RETURN_IF_ERROR(UndoRows(c, undo.rows, &conflicts));
  if (conflicts.empty()) RETURN_IF_ERROR(UndoDdl(c, undo.ddl, &conflicts));
  if (!conflicts.empty()) {
    RETURN_IF_ERROR(c->Exec("ROLLBACK"));  // all or nothing: keep what is there now
    if (report) *report = {{"conflicts", conflicts}};
    return Status::Conflict("rollback would overwrite changes made since action " + action_id +
                            " was applied (" + std::to_string(conflicts.size()) +
                            " conflict(s), first: " + conflicts[0].dump() + ")");
  }
  RETURN_IF_ERROR(
      c->Query("INSERT INTO airlock.applied(action_id, kind) VALUES ($1, 'rollback')", {action_id})
          .status());
  CrashPoint("postgres_rollback_before_commit");
  RETURN_IF_ERROR(c->Exec("COMMIT"));
  CrashPoint("postgres_rollback_after_commit");
  // A pre-image's SET commands (pg_dump's header) outlive the transaction: reset the session.
  if (!undo.pre_images.empty() || !undo.ddl.empty()) (void)c->Exec("RESET ALL");
  if (report) *report = {{"conflicts", Json::array()}};
  return Status::Ok();
}

Result<bool> PostgresConnector::IsApplied(const std::string& action_id) {
  std::lock_guard<std::mutex> lock(mu_);
  return IsRecorded(action_id, "apply");
}

Result<bool> PostgresConnector::IsRolledBack(const std::string& action_id) {
  std::lock_guard<std::mutex> lock(mu_);
  return IsRecorded(action_id, "rollback");
}

}  // namespace
}  // namespace airlock::pg

namespace airlock {

Result<std::unique_ptr<Connector>> CreatePostgresConnector(const ConnectorConfig& config) {
  ASSIGN_OR_RETURN(pg::Settings s, pg::ReadSettings(config));
  return std::unique_ptr<Connector>(new pg::PostgresConnector(std::move(s)));
}

Status PostgresInstall(const ConnectorConfig& config, bool uninstall, std::string* report) {
  if (config.kind != "postgres") {
    return Status::InvalidArgument("target '" + config.name + "' is a " + config.kind +
                                   " target, not postgres");
  }
  ASSIGN_OR_RETURN(pg::Settings s, pg::ReadSettings(config));
  ASSIGN_OR_RETURN(std::string dsn, pg::ReadDsn(s));
  auto conn = pg::Conn::Open(dsn);
  if (!conn.ok()) {
    return Status(conn.status().code(), "target '" + s.target + "': " + conn.status().message());
  }
  return uninstall ? pg::UninstallCapture(conn->get(), report)
                   : pg::InstallCapture(conn->get(), s.schemas, report);
}

}  // namespace airlock
