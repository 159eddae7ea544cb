#include "connectors/postgres/libpq.h"

#include "core/dynlib.h"

#include <mutex>

namespace airlock::pg {
namespace {

Result<PqApi> Load() {
  ASSIGN_OR_RETURN(void* lib, OpenLibrary(kLibpq, "libpq5"));
  PqApi a;
  Status st = ResolveSymbol(lib, kLibpq, "PQconnectdb", &a.connectdb);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQstatus", &a.status);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQerrorMessage", &a.error_message);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQfinish", &a.finish);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQexec", &a.exec);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQexecParams", &a.exec_params);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQresultStatus", &a.result_status);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQresultErrorField", &a.result_error_field);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQresultErrorMessage", &a.result_error_message);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQclear", &a.clear);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQntuples", &a.ntuples);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQnfields", &a.nfields);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQfname", &a.fname);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQgetvalue", &a.getvalue);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQgetisnull", &a.getisnull);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQcmdTuples", &a.cmd_tuples);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQtransactionStatus", &a.transaction_status);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQgetResult", &a.get_result);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQputCopyEnd", &a.put_copy_end);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQsetNoticeProcessor", &a.set_notice_processor);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQconninfoParse", &a.conninfo_parse);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQconninfoFree", &a.conninfo_free);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQfreemem", &a.freemem);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQsocket", &a.socket);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQconsumeInput", &a.consume_input);
  if (st.ok()) st = ResolveSymbol(lib, kLibpq, "PQnotifies", &a.notifies);
  if (!st.ok()) {
    dlclose(lib);
    return st;
  }
  return a;  // the library stays loaded: the pointers above point into it
}

// Server notices (e.g. "schema airlock already exists, skipping") would go to stderr and
// into the CLI's output; airlock reports what matters itself.
void IgnoreNotice(void*, const char*) {}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

Result<const PqApi*> Pq() {
  static std::once_flag once;
  static PqApi api;
  static Status status;
  std::call_once(once, [] {
    Result<PqApi> loaded = Load();
    if (loaded.ok()) {
      api = *loaded;
    } else {
      status = loaded.status();
    }
  });
  if (!status.ok()) return status;
  return &api;
}

Redactor::Redactor(const std::string& dsn) {
  if (!dsn.empty()) secrets_.push_back(dsn);
  auto api = Pq();
  if (!api.ok()) return;
  char* err = nullptr;
  PQconninfoOption* opts = (*api)->conninfo_parse(dsn.c_str(), &err);
  if (err != nullptr) (*api)->freemem(err);
  if (opts == nullptr) return;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val != nullptr && std::string(o->keyword) == "password" && o->val[0] != '\0') {
      secrets_.push_back(o->val);
    }
  }
  (*api)->conninfo_free(opts);
}

std::string Redactor::operator()(std::string text) const {
  for (const std::string& s : secrets_) {
    if (s.empty()) continue;
    for (size_t at = text.find(s); at != std::string::npos; at = text.find(s, at)) {
      text.replace(at, s.size(), "[redacted]");
      at += 10;
    }
  }
  return text;
}

void ResultDeleter::operator()(PGresult* r) const {
  if (r == nullptr) return;
  auto api = Pq();
  if (api.ok()) (*api)->clear(r);
}

Result<std::unique_ptr<Conn>> Conn::Open(const std::string& dsn) {
  ASSIGN_OR_RETURN(const PqApi* api, Pq());
  Redactor redact(dsn);
  PGconn* c = api->connectdb(dsn.c_str());
  if (c == nullptr) return Status::Internal("libpq could not allocate a connection");
  if (api->status(c) != CONNECTION_OK) {
    std::string why = redact(Trim(api->error_message(c)));
    api->finish(c);
    return Status::IoError("connecting to PostgreSQL: " + why);
  }
  api->set_notice_processor(c, &IgnoreNotice, nullptr);
  return std::unique_ptr<Conn>(new Conn(api, c, std::move(redact)));
}

Conn::~Conn() {
  api_->finish(conn_);
}

int Conn::Socket() const {
  return api_->socket(conn_);
}

Result<int> Conn::TakeNotifications() {
  if (api_->consume_input(conn_) == 0) {
    return Status::IoError("PostgreSQL: " + redact_(Trim(api_->error_message(conn_))));
  }
  int n = 0;
  while (PGnotify* note = api_->notifies(conn_)) {
    api_->freemem(note);
    ++n;
  }
  return n;
}

bool Conn::Healthy() const {
  return api_->status(conn_) == CONNECTION_OK;
}
bool Conn::InTransaction() const {
  return api_->transaction_status(conn_) == PQTRANS_INTRANS;
}
bool Conn::Idle() const {
  return api_->transaction_status(conn_) == PQTRANS_IDLE;
}

Result<ResultHandle> Conn::Check(PGresult* raw, const std::string& what) {
  ResultHandle res(raw);
  last_sqlstate_.clear();
  if (!res) return Status::IoError("PostgreSQL: " + redact_(Trim(api_->error_message(conn_))));
  ExecStatusType st = api_->result_status(res.get());
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) return res;
  if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
    // COPY with the client's stream: airlock has no data to give or take. End it so the
    // connection is usable; the statement then fails.
    if (st == PGRES_COPY_IN) api_->put_copy_end(conn_, "COPY FROM STDIN is not supported");
    while (PGresult* r = api_->get_result(conn_)) api_->clear(r);
    return Status::InvalidArgument("COPY to or from the client is not supported through airlock");
  }
  const char* state = api_->result_error_field(res.get(), PG_DIAG_SQLSTATE);
  last_sqlstate_ = state ? state : "";
  std::string msg = redact_(Trim(api_->result_error_message(res.get())));
  return Status::InvalidArgument(
      (what.empty() ? "" : what + ": ") + msg +
      (last_sqlstate_.empty() ? "" : " (SQLSTATE " + last_sqlstate_ + ")"));
}

Status Conn::Exec(const std::string& sql) {
  auto r = Check(api_->exec(conn_, sql.c_str()), "");
  return r.ok() ? Status::Ok() : r.status();
}

Result<ResultHandle> Conn::Query(const std::string& sql, const std::vector<std::string>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const std::string& p : params) values.push_back(p.c_str());
  return Check(api_->exec_params(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                                 values.data(), nullptr, nullptr, 0),
               "");
}

std::string Cell(const PGresult* res, int row, int col) {
  const PqApi* api = *Pq();  // a result exists, so the library is loaded
  return api->getvalue(res, row, col);
}

bool IsNull(const PGresult* res, int row, int col) {
  return (*Pq())->getisnull(res, row, col) != 0;
}

int Rows(const PGresult* res) {
  return (*Pq())->ntuples(res);
}

std::string QuoteIdent(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string QuoteLiteral(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

}  // namespace airlock::pg
