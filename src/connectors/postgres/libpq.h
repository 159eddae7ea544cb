// libpq, loaded on first use, and the few RAII wrappers the PostgreSQL target needs.
//
// Linking libpq costs every `airlock` command its 24 shared libraries at start (OpenSSL,
// GnuTLS, Kerberos, LDAP, SASL). Measured on the shared 2-vCPU VM: `airlock policy --help`
// takes 18-37 ms, and 68-75 ms with libpq.so.5 preloaded; a C program linked with -lpq
// starts in ~45 ms against 10-18 ms without. Only commands on a postgres target use it. So, like
// libcurl (net/curl.h), nothing links it: the first caller dlopen()s libpq.so.5 and reaches
// the functions below through pointers. <libpq-fe.h> is included for its types only. A
// missing libpq is an error ("install libpq5"), never a crash.
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace airlock::pg {

inline constexpr const char* kLibpq = "libpq.so.5";

// The libpq functions airlock calls.
struct PqApi {
  PGconn* (*connectdb)(const char* conninfo) = nullptr;
  ConnStatusType (*status)(const PGconn* conn) = nullptr;
  char* (*error_message)(const PGconn* conn) = nullptr;
  void (*finish)(PGconn* conn) = nullptr;
  PGresult* (*exec)(PGconn* conn, const char* query) = nullptr;
  PGresult* (*exec_params)(PGconn* conn, const char* command, int n_params, const Oid* types,
                           const char* const* values, const int* lengths, const int* formats,
                           int result_format) = nullptr;
  ExecStatusType (*result_status)(const PGresult* res) = nullptr;
  char* (*result_error_field)(const PGresult* res, int field) = nullptr;
  char* (*result_error_message)(const PGresult* res) = nullptr;
  void (*clear)(PGresult* res) = nullptr;
  int (*ntuples)(const PGresult* res) = nullptr;
  int (*nfields)(const PGresult* res) = nullptr;
  char* (*fname)(const PGresult* res, int field) = nullptr;
  char* (*getvalue)(const PGresult* res, int row, int field) = nullptr;
  int (*getisnull)(const PGresult* res, int row, int field) = nullptr;
  char* (*cmd_tuples)(PGresult* res) = nullptr;
  PGTransactionStatusType (*transaction_status)(const PGconn* conn) = nullptr;
  PGresult* (*get_result)(PGconn* conn) = nullptr;
  int (*put_copy_end)(PGconn* conn, const char* errormsg) = nullptr;
  PQnoticeProcessor (*set_notice_processor)(PGconn* conn, PQnoticeProcessor proc,
                                            void* arg) = nullptr;
  PQconninfoOption* (*conninfo_parse)(const char* conninfo, char** errmsg) = nullptr;
  void (*conninfo_free)(PQconninfoOption* options) = nullptr;
  void (*freemem)(void* ptr) = nullptr;
  int (*socket)(const PGconn* conn) = nullptr;
  int (*consume_input)(PGconn* conn) = nullptr;
  PGnotify* (*notifies)(PGconn* conn) = nullptr;
};

// Loads the library once per process (thread-safe); later calls return the same table.
Result<const PqApi*> Pq();

// Replaces every occurrence of the DSN and of the password it holds with "[redacted]": the
// connection string is airlock's secret and must never reach an error, the audit or output.
class Redactor {
 public:
  Redactor() = default;
  explicit Redactor(const std::string& dsn);
  std::string operator()(std::string text) const;

 private:
  std::vector<std::string> secrets_;
};

struct ResultDeleter {
  void operator()(PGresult* r) const;
};
using ResultHandle = std::unique_ptr<PGresult, ResultDeleter>;

// One connection. Every error message passes through the redactor.
class Conn {
 public:
  static Result<std::unique_ptr<Conn>> Open(const std::string& dsn);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  bool Healthy() const;
  bool InTransaction() const;
  bool Idle() const;
  // Runs one statement without parameters through the simple protocol (several statements
  // allowed: only for airlock's own SQL).
  Status Exec(const std::string& sql);
  // Runs exactly one statement through the extended protocol, which refuses a second one:
  // text from an agent goes only through here. `params` are text values ($1, $2, ...).
  Result<ResultHandle> Query(const std::string& sql, const std::vector<std::string>& params = {});
  // LISTEN: the connection's socket (poll it for input), and the number of notifications
  // that arrived (read and discarded); IoError when the connection is lost.
  int Socket() const;
  Result<int> TakeNotifications();
  // The SQLSTATE of the last failed Query/Exec ("" if none).
  const std::string& last_sqlstate() const { return last_sqlstate_; }
  const Redactor& redact() const { return redact_; }

 private:
  Conn(const PqApi* api, PGconn* conn, Redactor redact)
      : api_(api), conn_(conn), redact_(std::move(redact)) {}
  Result<ResultHandle> Check(PGresult* res, const std::string& what);

  const PqApi* api_;
  PGconn* conn_;
  Redactor redact_;
  std::string last_sqlstate_;
};

// Text of a cell, "" for NULL.
std::string Cell(const PGresult* res, int row, int col);
bool IsNull(const PGresult* res, int row, int col);
int Rows(const PGresult* res);

std::string QuoteIdent(const std::string& name);
std::string QuoteLiteral(const std::string& text);

}  // namespace airlock::pg
