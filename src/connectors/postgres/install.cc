#include "connectors/postgres/install.h"

namespace airlock::pg {
namespace {

// Inside airlock's functions: true when capture is on (the setting is NULL in a session
// that never set it).
constexpr const char* kCaptureOn = "coalesce(current_setting('airlock.capture', true), '') <> ''";
// The row triggers' WHEN clause, evaluated for every row of the application's own writes
// before any function is called: as cheap as it can be. NULL (never set) counts as false.
constexpr const char* kCaptureOnWhen = "current_setting('airlock.capture', true) <> ''";

// The same test quoted for a string literal inside format().
std::string Doubled(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out;
}

std::string SchemaSql() {
  const std::string on = kCaptureOn;
  const std::string on_quoted = Doubled(kCaptureOnWhen);
  return R"SQL(
CREATE SCHEMA IF NOT EXISTS airlock;
CREATE TABLE IF NOT EXISTS airlock.schemas(name text PRIMARY KEY);
CREATE UNLOGGED TABLE IF NOT EXISTS airlock.changes(
  seq bigserial PRIMARY KEY, tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
  schema_name text NOT NULL, table_name text NOT NULL, op text NOT NULL,
  old_row jsonb, new_row jsonb);
CREATE UNLOGGED TABLE IF NOT EXISTS airlock.ddl(
  seq bigserial PRIMARY KEY, tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
  phase text NOT NULL, command_tag text NOT NULL, object_type text, schema_name text,
  object_identity text);
CREATE TABLE IF NOT EXISTS airlock.applied(
  action_id text NOT NULL, kind text NOT NULL, at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY(action_id, kind));

CREATE OR REPLACE FUNCTION airlock.capture_row() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO airlock.changes(schema_name, table_name, op, old_row, new_row)
  VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, lower(TG_OP),
          CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END,
          CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END);
  RETURN NULL;
END $f$;

-- TRUNCATE has no row triggers: record every row it removes as a delete.
CREATE OR REPLACE FUNCTION airlock.capture_truncate() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  EXECUTE format('INSERT INTO airlock.changes(schema_name, table_name, op, old_row) '
                 'SELECT %L, %L, ''truncate'', to_jsonb(t) FROM %I.%I t',
                 TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME);
  RETURN NULL;
END $f$;

CREATE OR REPLACE FUNCTION airlock.attach(t regclass) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
  EXECUTE format('CREATE OR REPLACE TRIGGER airlock_capture AFTER INSERT OR UPDATE OR DELETE '
                 'ON %s FOR EACH ROW WHEN ()SQL" +
         on_quoted + R"SQL() '
                 'EXECUTE FUNCTION airlock.capture_row()', t);
  EXECUTE format('CREATE OR REPLACE TRIGGER airlock_capture_truncate BEFORE TRUNCATE '
                 'ON %s FOR EACH STATEMENT WHEN ()SQL" +
         on_quoted + R"SQL() '
                 'EXECUTE FUNCTION airlock.capture_truncate()', t);
END $f$;

CREATE OR REPLACE FUNCTION airlock.on_ddl_end() RETURNS event_trigger LANGUAGE plpgsql AS $f$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
    -- Tables created later in a listed schema get the capture trigger too.
    IF r.object_type = 'table' AND r.command_tag IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
       AND r.schema_name IN (SELECT name FROM airlock.schemas) THEN
      PERFORM airlock.attach(r.objid::regclass);
    END IF;
    IF )SQL" +
         on + R"SQL(
       AND NOT (r.command_tag = 'CREATE TRIGGER' AND r.object_identity LIKE 'airlock\_capture%') THEN
      INSERT INTO airlock.ddl(phase, command_tag, object_type, schema_name, object_identity)
      VALUES ('end', r.command_tag, r.object_type, r.schema_name, r.object_identity);
    END IF;
  END LOOP;
END $f$;

CREATE OR REPLACE FUNCTION airlock.on_sql_drop() RETURNS event_trigger LANGUAGE plpgsql AS $f$
DECLARE r record;
BEGIN
  IF NOT ()SQL" +
         on + R"SQL() THEN RETURN; END IF;
  FOR r IN SELECT * FROM pg_event_trigger_dropped_objects() WHERE original LOOP
    INSERT INTO airlock.ddl(phase, command_tag, object_type, schema_name, object_identity)
    VALUES ('drop', tg_tag, r.object_type, r.schema_name, r.object_identity);
  END LOOP;
END $f$;
)SQL";
}

constexpr const char* kEventTriggersSql = R"SQL(
DROP EVENT TRIGGER IF EXISTS airlock_ddl_end;
CREATE EVENT TRIGGER airlock_ddl_end ON ddl_command_end EXECUTE FUNCTION airlock.on_ddl_end();
DROP EVENT TRIGGER IF EXISTS airlock_sql_drop;
CREATE EVENT TRIGGER airlock_sql_drop ON sql_drop EXECUTE FUNCTION airlock.on_sql_drop();
)SQL";

// Runs `body` in a transaction; rolls back on any error.
template <typename Fn>
Status InTransaction(Conn* conn, Fn body) {
  RETURN_IF_ERROR(conn->Exec("BEGIN"));
  Status st = body();
  if (!st.ok()) {
    (void)conn->Exec("ROLLBACK");
    return st;
  }
  return conn->Exec("COMMIT");
}

}  // namespace

Status InstallCapture(Conn* conn, const std::vector<std::string>& schemas, std::string* report) {
  return InTransaction(conn, [&]() -> Status {
    // Event triggers first off: attaching triggers below is DDL they would otherwise see.
    RETURN_IF_ERROR(
        conn->Exec("DROP EVENT TRIGGER IF EXISTS airlock_ddl_end; "
                   "DROP EVENT TRIGGER IF EXISTS airlock_sql_drop;"));
    RETURN_IF_ERROR(conn->Exec(SchemaSql()));
    RETURN_IF_ERROR(conn->Exec("DELETE FROM airlock.schemas"));
    int64_t tables = 0;
    for (const std::string& s : schemas) {
      ASSIGN_OR_RETURN(ResultHandle r, conn->Query("INSERT INTO airlock.schemas VALUES ($1)", {s}));
      ASSIGN_OR_RETURN(ResultHandle t,
                       conn->Query("SELECT count(airlock.attach(c.oid)) FROM pg_class c "
                                   "JOIN pg_namespace n ON n.oid = c.relnamespace "
                                   "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')",
                                   {s}));
      tables += std::stoll(Cell(t.get(), 0, 0));
    }
    RETURN_IF_ERROR(conn->Exec(kEventTriggersSql));
    if (report) {
      *report = "installed: schema airlock, DDL event triggers, capture triggers on " +
                std::to_string(tables) + " table(s)";
    }
    return Status::Ok();
  });
}

Status UninstallCapture(Conn* conn, std::string* report) {
  return InTransaction(conn, [&]() -> Status {
    RETURN_IF_ERROR(
        conn->Exec("DROP EVENT TRIGGER IF EXISTS airlock_ddl_end; "
                   "DROP EVENT TRIGGER IF EXISTS airlock_sql_drop;"));
    // The row triggers depend on airlock's functions: CASCADE removes them with the schema.
    RETURN_IF_ERROR(conn->Exec("DROP SCHEMA IF EXISTS airlock CASCADE"));
    if (report) *report = "uninstalled: schema airlock, its triggers and event triggers";
    return Status::Ok();
  });
}

Status CheckInstalled(Conn* conn, const std::string& target) {
  ASSIGN_OR_RETURN(ResultHandle r,
                   conn->Query("SELECT count(*) FROM pg_event_trigger WHERE evtname IN "
                               "('airlock_ddl_end', 'airlock_sql_drop') AND evtenabled <> 'D'"));
  if (Cell(r.get(), 0, 0) != "2") {
    return Status::FailedPrecondition("target '" + target +
                                      "': airlock's capture is not installed in this database; "
                                      "run `airlock pg install --target " +
                                      target + "`");
  }
  return Status::Ok();
}

}  // namespace airlock::pg
