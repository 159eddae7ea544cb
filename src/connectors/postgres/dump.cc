#include "connectors/postgres/dump.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <sstream>
#include <vector>

namespace airlock::pg {
namespace {

// libpq's connection keywords and the environment variables that carry them.
const std::map<std::string, std::string>& EnvForKeyword() {
  static const std::map<std::string, std::string> m = {
      {"host", "PGHOST"},
      {"hostaddr", "PGHOSTADDR"},
      {"port", "PGPORT"},
      {"dbname", "PGDATABASE"},
      {"user", "PGUSER"},
      {"password", "PGPASSWORD"},
      {"passfile", "PGPASSFILE"},
      {"service", "PGSERVICE"},
      {"options", "PGOPTIONS"},
      {"application_name", "PGAPPNAME"},
      {"connect_timeout", "PGCONNECT_TIMEOUT"},
      {"sslmode", "PGSSLMODE"},
      {"sslrootcert", "PGSSLROOTCERT"},
      {"sslcert", "PGSSLCERT"},
      {"sslkey", "PGSSLKEY"},
      {"sslcrl", "PGSSLCRL"},
      {"gssencmode", "PGGSSENCMODE"},
      {"channel_binding", "PGCHANNELBINDING"},
      {"target_session_attrs", "PGTARGETSESSIONATTRS"},
  };
  return m;
}

Result<std::vector<std::string>> DumpEnvironment(const std::string& dsn) {
  ASSIGN_OR_RETURN(const PqApi* api, Pq());
  char* err = nullptr;
  PQconninfoOption* opts = api->conninfo_parse(dsn.c_str(), &err);
  if (err != nullptr) api->freemem(err);
  if (opts == nullptr) return Status::InvalidArgument("the DSN does not parse");
  std::vector<std::string> env = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"};
  Status st;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || o->val[0] == '\0') continue;
    auto it = EnvForKeyword().find(o->keyword);
    if (it == EnvForKeyword().end()) {
      st = Status::FailedPrecondition(std::string("the DSN keyword ") + o->keyword +
                                      " cannot be passed to pg_dump");
      break;
    }
    env.push_back(it->second + "=" + o->val);
  }
  api->conninfo_free(opts);
  if (!st.ok()) return st;
  return env;
}

// Reads both pipes to their end (a full stderr pipe must not block the child).
Status Drain(int out_fd, int err_fd, std::string* out, std::string* err) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  char buf[65536];
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return Status::IoError(std::string("poll: ") + std::strerror(errno));
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        std::string* dst = i == 0 ? out : err;
        if (dst->size() < kMaxPreImageBytes + 1) dst->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  return Status::Ok();
}

// pg_dump's text without what Conn::Exec cannot or must not run.
std::string ForExec(const std::string& dump) {
  std::istringstream in(dump);
  std::string line, out;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '\\') continue;  // \restrict / \unrestrict (psql only)
    // The DDL event trigger attaches these to the recreated table already.
    if (line.rfind("CREATE TRIGGER airlock_capture", 0) == 0) continue;
    out += line + "\n";
  }
  return out;
}

}  // namespace

Result<std::string> DumpTable(const std::string& dsn, const std::string& identity) {
  ASSIGN_OR_RETURN(std::vector<std::string> env, DumpEnvironment(dsn));
  std::vector<std::string> args = {"pg_dump", "--table=" + identity, "--inserts",
                                   "--rows-per-insert=500", "--no-password"};
  std::vector<char*> argv, envp;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0)
    return Status::IoError("pipe: " + std::string(std::strerror(errno)));
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]);
    close(out[1]);
    return Status::IoError("pipe: " + std::string(std::strerror(errno)));
  }
  pid_t pid = fork();
  if (pid < 0) {
    for (int fd : {out[0], out[1], err[0], err[1]}) close(fd);
    return Status::IoError("fork: " + std::string(std::strerror(errno)));
  }
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(err[1], 2);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    if (chdir("/") != 0) _exit(126);
    execve("/usr/bin/pg_dump", argv.data(), envp.data());
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  std::string text, errors;
  Status drained = Drain(out[0], err[0], &text, &errors);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  RETURN_IF_ERROR(drained);
  Redactor redact(dsn);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
      return Status::NotFound("pg_dump not found: install postgresql-client");
    }
    while (!errors.empty() && errors.back() == '\n') errors.pop_back();
    return Status::IoError("pg_dump of " + identity + " failed: " + redact(errors));
  }
  if (text.size() > kMaxPreImageBytes) {
    return Status::FailedPrecondition("the pre-image of " + identity + " is larger than " +
                                      std::to_string(kMaxPreImageBytes >> 20) + " MiB");
  }
  return ForExec(text);
}

}  // namespace airlock::pg
