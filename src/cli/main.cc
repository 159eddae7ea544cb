// airlock: the command-line front end. It parses, calls the gateway, and prints; nothing
// else. The commands, flags, JSON fields and exit codes are a public contract (DESIGN.md).
#include <unistd.h>

#include <sqlite3.h>
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>

#include "audit/audit.h"
#include "audit/checkpoint.h"
#include "cli/backend.h"
#include "cli/render.h"
#include "connectors/postgres/postgres_connector.h"
#include "connectors/shell/sandbox.h"
#include "connectors/smtp/message.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/trace.h"
#include "doctor/doctor.h"
#include "gateway/gateway.h"
#include "mcp/proxy.h"
#include "policy/policy.h"
#include "server/serve.h"
#include "store/pg_store.h"

namespace airlock::cli {
namespace {

struct Options {
  std::string config;
  std::string server;  // --server / AIRLOCK_SERVER: act through a running `airlock serve`
  bool json = false;
  std::string target;
  std::string sql;
  std::string id;
  std::string reason;
  std::string agent;
  std::string action_filter;
  std::string migrate_from;             // store migrate --from
  std::string checkpoints, public_key;  // audit verify --checkpoints --public-key
  std::string key_file;                 // audit checkpoint --key, audit keygen --out
  int64_t gc_older_than_hours = 24;     // store gc
  bool gc_dry_run = false;
  std::string token_name;
  std::string token_role = "agent";
  std::vector<std::string> argv;  // exec: the command and its arguments
  // send: the message
  std::vector<std::string> to, cc, bcc, attach;
  std::string subject, body, body_file, idempotency_key;
  bool body_given = false;
  std::string http_method;  // http: METHOD PATH [--json BODY]
  std::string http_path;
  std::optional<std::string> http_body;
};

Style OutputStyle() {
  Style s;
  s.color = isatty(STDOUT_FILENO) && std::getenv("NO_COLOR") == nullptr;
  return s;
}

std::optional<std::string> CallerToken() {
  const char* t = std::getenv("AIRLOCK_TOKEN");
  if (t == nullptr) return std::nullopt;
  return std::string(t);
}

int ExitForStatus(const Status& st) {
  switch (st.code()) {
    case StatusCode::kOk:
      return kExitOk;
    case StatusCode::kInvalidArgument:
      return kExitUsage;
    case StatusCode::kPermissionDenied:
    case StatusCode::kConflict:
      return kExitDenied;
    default:
      return kExitError;
  }
}

void PrintJson(const Json& j) {
  std::cout << CanonicalJson(j) << std::endl;
}

// Errors that end a command before any action record exists.
int Fail(const Options& o, const Status& st) {
  const int code = ExitForStatus(st);
  if (o.json) {
    const bool denied = code == kExitDenied;
    PrintJson({{"id", nullptr},
               {"status", denied ? "denied" : "error"},
               {"risk", nullptr},
               {"reasons", Json::array({st.message()})},
               {"effect", nullptr},
               {"result", nullptr},
               {"error", st.message()},
               {"error_code", StatusCodeSlug(st.code())}});
  } else {
    std::cerr << "airlock: " << (code == kExitDenied ? "denied: " : "") << st.message() << "\n";
  }
  return code;
}

Result<std::unique_ptr<Gateway>> OpenGateway(const Options& o, const GatewayOptions& options = {}) {
  ASSIGN_OR_RETURN(auto policy, LoadPolicyFile(o.config));
  TraceMark("cli: policy loaded");
  auto g = Gateway::Open(std::move(policy), options);
  TraceMark("cli: gateway open");
  if (!g.ok()) return g.status().Annotate("cannot open the airlock store");
  return g;
}

// The local gateway on the policy's store, or the server named by --server.
Result<std::unique_ptr<Backend>> OpenBackend(const Options& o, const GatewayOptions& options = {}) {
  if (!o.server.empty()) return RemoteBackend(o.server, CallerToken());
  ASSIGN_OR_RETURN(auto g, OpenGateway(o, options));
  return LocalBackend(std::move(g), CallerToken());
}

// Prints an outcome of submit/vote/rollback and returns the exit code.
int Report(const Options& o, const Outcome& out, bool full) {
  if (!out.action) return Fail(o, out.status);
  const Action& a = *out.action;
  int code = out.status.ok() ? ExitCodeFor(a.status) : ExitForStatus(out.status);
  if (o.json) {
    Json j = ActionToJson(a);
    if (!out.status.ok()) {
      j["error"] = out.status.message();
      j["error_code"] = StatusCodeSlug(out.status.code());
    }
    if (!out.report.is_null() && !out.report.empty()) j["report"] = out.report;
    PrintJson(j);
    return code;
  }
  Style s = OutputStyle();
  if (a.risk == Risk::kRead && a.status == ActionStatus::kApplied && full) {
    std::cout << ResultTable(a.result);
  } else {
    std::cout << (full ? ShowAction(a, s) : StatusLine(a, s));
  }
  if (!out.status.ok()) {
    std::cerr << "airlock: " << out.status.message() << "\n";
    if (!out.report.is_null() && out.report.contains("conflicts")) {
      for (const auto& c : out.report["conflicts"]) std::cerr << "  conflict: " << c.dump() << "\n";
    }
  }
  return code;
}

// A whole file (or /dev/stdin), refused past `max_bytes`.
Result<std::string> ReadWholeFile(const std::string& path, const char* what,
                                  size_t max_bytes = SIZE_MAX) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::InvalidArgument(std::string("cannot read ") + what + " " + path);
  std::string text;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > max_bytes) {
      return Status::InvalidArgument(std::string(what) + " " + path + " is larger than " +
                                     std::to_string(max_bytes) + " bytes");
    }
  }
  if (in.bad()) return Status::InvalidArgument(std::string("cannot read ") + what + " " + path);
  return text;
}

// --to a,b --to c: every value may hold several comma-separated addresses.
Json AddressList(const std::vector<std::string>& values) {
  Json out = Json::array();
  for (const std::string& v : values) {
    size_t start = 0;
    while (start <= v.size()) {
      size_t comma = v.find(',', start);
      if (comma == std::string::npos) comma = v.size();
      std::string one = v.substr(start, comma - start);
      size_t b = one.find_first_not_of(' '), e = one.find_last_not_of(' ');
      out.push_back(b == std::string::npos ? "" : one.substr(b, e - b + 1));
      start = comma + 1;
    }
  }
  return out;
}

// The mail action's arguments (connectors/smtp/message.h); the connector validates them.
Result<Json> MailArgs(const Options& o) {
  if (o.body_given == !o.body_file.empty()) {
    return Status::InvalidArgument("give the body with exactly one of --body and --body-file");
  }
  Json args = {{"to", AddressList(o.to)}, {"subject", o.subject}};
  if (!o.cc.empty()) args["cc"] = AddressList(o.cc);
  if (!o.bcc.empty()) args["bcc"] = AddressList(o.bcc);
  if (o.body_given) {
    args["body"] = o.body;
  } else {
    ASSIGN_OR_RETURN(args["body"], ReadWholeFile(o.body_file, "--body-file"));
  }
  if (!o.attach.empty()) {
    Json list = Json::array();
    for (const std::string& path : o.attach) {
      ASSIGN_OR_RETURN(std::string content, ReadWholeFile(path, "--attach"));
      list.push_back({{"name", std::filesystem::path(path).filename().string()},
                      {"content_base64", mail::Base64Encode(content)}});
    }
    args["attachments"] = std::move(list);
  }
  return args;
}

int CmdSend(const Options& o) {
  auto args = MailArgs(o);
  if (!args.ok()) return Fail(o, args.status());
  auto g = OpenBackend(o);
  if (!g.ok()) return Fail(o, g.status());
  SubmitRequest req{o.target, "mail", *args};
  req.idempotency_key = o.idempotency_key;
  return Report(o, (*g)->Submit(req), /*full=*/true);
}

int CmdSql(const Options& o) {
  auto g = OpenBackend(o);
  if (!g.ok()) return Fail(o, g.status());
  SubmitRequest req{o.target, "sql", {{"sql", o.sql}}};
  return Report(o, (*g)->Submit(req), /*full=*/true);
}

// A request that was sent (a read, or a write allowed at once) prints the response body on
// stdout, like curl; anything else (pending, denied, failed) is reported like every other
// action. The response status is in --json output (result.status), not in the exit code.
int CmdHttp(const Options& o) {
  SubmitRequest req{o.target, "http", {{"method", o.http_method}, {"path", o.http_path}}};
  if (o.http_body) {
    Json body = Json::parse(*o.http_body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) {
      return Fail(o, Status::InvalidArgument("--json: the request body is not valid JSON"));
    }
    req.args["json"] = std::move(body);
  }
  req.idempotency_key = o.idempotency_key;
  auto g = OpenBackend(o);
  if (!g.ok()) return Fail(o, g.status());
  Outcome out = (*g)->Submit(req);
  if (!out.status.ok() || !out.action || out.action->status != ActionStatus::kApplied || o.json) {
    return Report(o, out, /*full=*/true);
  }
  const Action& a = *out.action;
  const Json& r = a.result;
  if (r.is_object() && r.contains("body") && r["body"].is_string()) {
    std::cout << r["body"].get<std::string>();
    std::cout.flush();
  }
  if (r.is_object()) {
    if (r.value("truncated", false)) {
      std::cerr << "airlock: response cut at " << FormatCount(r.value("max_response_bytes", 0))
                << " bytes (max_response_bytes)\n";
    }
    if (r.contains("redirect_not_followed")) {
      std::cerr << "airlock: HTTP " << r.value("status", 0)
                << ": redirect not followed (airlock never follows redirects): "
                << ValueText(r["redirect_not_followed"]) << "\n";
    }
  }
  if (a.risk != Risk::kRead) {
    std::cerr << "airlock: " << a.id << " applied (" << RiskName(a.risk)
              << "): " << (a.reasons.empty() ? "" : a.reasons.front()) << "\n";
  }
  return kExitOk;
}

// A command that ran (a read, or a write committed at once) behaves like the command itself:
// its output on stdout/stderr and its own exit status (DESIGN.md, issue 3). Anything else
// (pending, denied, failed) is reported like every other action.
int CmdExec(const Options& o) {
  // The command runs in a sandbox of this process unless a server runs it: its network
  // namespace is made while the policy loads (unused if the target turns out to have the
  // network on).
  if (o.server.empty()) shell::MakeNetworkNamespaceEarly();
  SubmitRequest req{o.target, "shell", {{"argv", o.argv}}};
  // The sandbox is built while the store opens; the command starts only once Submit has
  // decided that it may run.
  GatewayOptions options;
  options.prestart_target = req.target;
  options.prestart_args = req.args;
  // A read's record is a synced journal line, taken into the store by a later command.
  options.journal_reads = true;
  auto g = OpenBackend(o, options);
  if (!g.ok()) return Fail(o, g.status());
  Outcome out = (*g)->Submit(req);
  TraceMark("cli: submitted");
  if (!out.status.ok() || !out.action || out.action->status != ActionStatus::kApplied) {
    return Report(o, out, /*full=*/true);
  }
  const Action& a = *out.action;
  const Json& r = a.result;
  const int exit_code =
      r.is_object() && r.contains("exit_code") && r["exit_code"].is_number_integer()
          ? r["exit_code"].get<int>()
          : 0;
  if (o.json) {
    PrintJson(ActionToJson(a));
  } else {
    if (r.is_object()) {
      if (r.contains("stdout") && r["stdout"].is_string())
        std::cout << r["stdout"].get<std::string>();
      if (r.contains("stderr") && r["stderr"].is_string())
        std::cerr << r["stderr"].get<std::string>();
      std::cout.flush();
      if (r.value("stdout_truncated", false) || r.value("stderr_truncated", false)) {
        std::cerr << "airlock: output cut at " << FormatCount(r.value("output_cap_bytes", 0))
                  << " bytes per stream (the command wrote "
                  << FormatCount(r.value("stdout_bytes", 0)) << " to stdout, "
                  << FormatCount(r.value("stderr_bytes", 0)) << " to stderr)\n";
      }
    }
    if (a.risk != Risk::kRead) {
      std::cerr << "airlock: " << a.id << " applied (" << RiskName(a.risk)
                << "): " << (a.reasons.empty() ? "" : a.reasons.front()) << "\n";
    }
  }
  return exit_code >= 0 && exit_code < 256 ? exit_code : kExitError;
}

int CmdVote(const Options& o, bool approve) {
  auto g = OpenBackend(o);
  if (!g.ok()) return Fail(o, g.status());
  return Report(o, (*g)->Vote(o.id, approve, o.reason), /*full=*/false);
}

int CmdRollback(const Options& o) {
  auto g = OpenBackend(o);
  if (!g.ok()) return Fail(o, g.status());
  return Report(o, (*g)->Rollback(o.id, o.reason), /*full=*/false);
}

int CmdShow(const Options& o) {
  auto g = OpenBackend(o);
  if (!g.ok()) return Fail(o, g.status());
  Outcome out = (*g)->Show(o.id);
  if (!out.status.ok()) return Fail(o, out.status);
  if (o.json) {
    PrintJson(ActionToJson(*out.action));
  } else {
    std::cout << ShowAction(*out.action, OutputStyle());
  }
  return kExitOk;
}

int CmdPending(const Options& o) {
  auto g = OpenBackend(o);
  if (!g.ok()) return Fail(o, g.status());
  auto list = (*g)->Pending();
  if (!list.ok()) return Fail(o, list.status());
  if (o.json) {
    Json arr = Json::array();
    for (const auto& a : *list) arr.push_back(ActionToJson(a));
    PrintJson({{"pending", arr}, {"count", arr.size()}});
  } else {
    std::cout << PendingTable(*list, OutputStyle());
  }
  return kExitOk;
}

int CmdBreakerReset(const Options& o) {
  auto g = OpenBackend(o);
  if (!g.ok()) return Fail(o, g.status());
  Status st = (*g)->ResetBreaker(o.target, o.agent);
  if (!st.ok()) return Fail(o, st);
  if (o.json) {
    PrintJson({{"status", "reset"}, {"target", o.target}, {"agent", o.agent}});
  } else {
    std::cout << "breaker reset for " << (o.agent.empty() ? "every agent" : o.agent) << " on "
              << o.target << "\n";
  }
  return kExitOk;
}

int CmdAuditVerify(const Options& o) {
  if (o.checkpoints.empty() != o.public_key.empty()) {
    return Fail(o, Status::InvalidArgument(
                       "--checkpoints FILE and --public-key FILE go together: the checkpoints "
                       "are checked against the key that signed them"));
  }
  std::string checkpoint_text;
  if (!o.checkpoints.empty()) {
    auto text = ReadWholeFile(o.checkpoints, "--checkpoints", 64u << 20);
    if (!text.ok()) return Fail(o, text.status());
    checkpoint_text = std::move(*text);
  }
  auto g = OpenBackend(o);
  if (!g.ok()) return Fail(o, g.status());
  auto rep = (*g)->VerifyAudit();
  if (!rep.ok()) return Fail(o, rep.status());
  std::optional<audit::CheckpointReport> checked;
  if (!o.checkpoints.empty()) {
    auto c = audit::CheckCheckpoints(checkpoint_text, o.public_key,
                                     [&](const auto& fn) { return (*g)->ScanAudit("", fn); });
    if (!c.ok()) return Fail(o, c.status());
    checked = std::move(*c);
  }
  const bool ok = rep->ok && (!checked || checked->problems.empty());
  if (o.json) {
    Json out = {{"ok", ok},
                {"events", rep->events},
                {"first_bad_seq", rep->ok ? Json(nullptr) : Json(rep->first_bad_seq)},
                {"problem", rep->problem}};
    if (checked) {
      out["checkpoints"] = checked->checked;
      out["checkpoint_problems"] = checked->problems;
      out["newest_checkpoint"] = checked->valid == 0 ? Json(nullptr)
                                                     : Json{{"seq", checked->newest_seq},
                                                            {"at_ms", checked->newest_at_ms}};
    }
    PrintJson(out);
  } else {
    if (rep->ok) {
      std::cout << "audit chain intact: " << FormatCount(rep->events) << " events verified\n";
    } else {
      std::cout << "audit chain BROKEN at event " << rep->first_bad_seq << ": " << rep->problem
                << "\n";
    }
    if (checked && checked->valid > 0) {
      std::cout << "newest checkpoint: event " << FormatCount(checked->newest_seq) << ", signed "
                << FormatTimeMs(checked->newest_at_ms) << "\n";
    }
    if (checked && checked->problems.empty()) {
      std::cout << "checkpoints: " << FormatCount(checked->checked)
                << " checked, every one signed by the key and matched by the chain\n";
    } else if (checked) {
      std::cout << "checkpoints: " << FormatCount(checked->checked) << " checked, "
                << FormatCount(static_cast<int64_t>(checked->problems.size())) << " FAILED:\n";
      for (const std::string& p : checked->problems) std::cout << "  " << p << "\n";
    }
  }
  return ok ? kExitOk : kExitError;
}

// Signs the head of the (verified) chain: one line to keep elsewhere.
int CmdAuditCheckpoint(const Options& o) {
  auto g = OpenBackend(o);
  if (!g.ok()) return Fail(o, g.status());
  auto rep = (*g)->VerifyAudit();
  if (!rep.ok()) return Fail(o, rep.status());
  if (!rep->ok) {
    return Fail(o, Status::Corruption("the audit chain is broken at event " +
                                      std::to_string(rep->first_bad_seq) + " (" + rep->problem +
                                      "); a checkpoint of it would vouch for a tampered chain"));
  }
  // What was verified: the chain up to its last verified event. A server's report does not
  // carry that event's hash; it is read from the log then (appends are chained, so what is
  // read is still a prefix of the chain that verifies).
  int64_t seq = rep->last_seq;
  std::string hash = rep->last_hash;
  if (hash.empty()) {
    seq = 0;
    hash = kGenesisHash;
    Status scanned = (*g)->ScanAudit("", [&](const AuditEvent& e) {
      seq = e.seq;
      hash = e.hash;
      return true;
    });
    if (!scanned.ok()) return Fail(o, scanned);
  }
  auto c = audit::SignCheckpoint(o.key_file, seq, hash, NowMs());
  if (!c.ok()) return Fail(o, c.status());
  std::cout << audit::CheckpointLine(*c) << std::endl;
  // A line that did not reach its file (a full disk under `>> FILE`) must not pass as made.
  if (!std::cout.good()) {
    std::cerr << "airlock: the checkpoint could not be written to standard output\n";
    return kExitError;
  }
  return kExitOk;
}

int CmdAuditKeygen(const Options& o) {
  auto id = audit::WriteKeyPair(o.key_file);
  if (!id.ok()) return Fail(o, id.status());
  if (o.json) {
    PrintJson({{"private_key", o.key_file}, {"public_key", o.key_file + ".pub"}, {"key_id", *id}});
  } else {
    std::cout << "private key " << o.key_file
              << " (keep it where no sandbox can read it: under /root, or a hide: path)\n"
              << "public key  " << o.key_file << ".pub (give it to whoever verifies them)\n"
              << "key id      " << *id << "\n";
  }
  return kExitOk;
}

// Creates or upgrades the PostgreSQL store's schema; with --from, copies a SQLite store into
// it (into an empty store only), with the audit chain re-hashed event by event.
int CmdStoreMigrate(const Options& o) {
  auto policy = LoadPolicyFile(o.config);
  if (!policy.ok()) return Fail(o, policy.status());
  if (!(*policy)->UsesPostgresStore()) {
    return Fail(o, Status::InvalidArgument(
                       "the policy's store is the SQLite file " + (*policy)->store_path +
                       ", which airlock creates and upgrades itself; store migrate is for a "
                       "PostgreSQL store (store: postgres://... or store_dsn_env)"));
  }
  auto dsn = StoreDsn(**policy);
  if (!dsn.ok()) return Fail(o, dsn.status());
  auto migrated = MigratePgStore(*dsn);
  if (!migrated.ok()) return Fail(o, migrated.status());
  Json out = {{"from_version", migrated->from_version}, {"to_version", migrated->to_version}};
  if (!o.migrate_from.empty()) {
    std::error_code ec;
    if (!std::filesystem::exists(o.migrate_from, ec)) {
      return Fail(o, Status::NotFound("no SQLite store at " + o.migrate_from));
    }
    StoreOptions opts;
    opts.create_if_missing = false;
    auto from = OpenSqliteStore(o.migrate_from, opts);
    if (!from.ok()) return Fail(o, from.status());
    // Reads an `airlock mcp stdio` session staged or journaled (and a crash left there)
    // belong to the chain being copied.
    Status moved = WriteDeadReadJournals(o.migrate_from + ".journal", **from);
    if (moved.ok()) {
      moved = (*from)->Transact([](StoreTxn& t) { return t.IngestStaged().status(); });
    }
    if (!moved.ok()) return Fail(o, moved.Annotate("moving staged reads into " + o.migrate_from));
    auto to = OpenPgStore(*dsn);
    if (!to.ok()) return Fail(o, to.status());
    auto copied = CopyStore(**from, **to);
    if (!copied.ok()) return Fail(o, copied.status());
    out["copied_audit_events"] = *copied;
    out["from"] = o.migrate_from;
  }
  if (o.json) {
    PrintJson(out);
  } else {
    std::cout << "PostgreSQL store schema: version " << migrated->from_version << " -> "
              << migrated->to_version << "\n";
    if (out.contains("copied_audit_events")) {
      std::cout << "copied " << o.migrate_from << ": "
                << FormatCount(out["copied_audit_events"].get<int64_t>())
                << " audit events, chain re-verified while copying\n";
    }
  }
  return kExitOk;
}

// Removes what the shell targets' stores hold that no record still needs.
int CmdStoreGc(const Options& o) {
  if (!o.server.empty()) {
    return Fail(o, Status::InvalidArgument(
                       "store gc works on the files of the machine that holds the store: run it "
                       "there, without --server"));
  }
  auto g = OpenGateway(o);
  if (!g.ok()) return Fail(o, g.status());
  auto out = (*g)->CollectGarbage(o.gc_older_than_hours * 3600, o.gc_dry_run);
  if (!out.ok()) return Fail(o, out.status());
  (*out)["dry_run"] = o.gc_dry_run;
  (*out)["older_than_hours"] = o.gc_older_than_hours;
  if (o.json) {
    PrintJson(*out);
  } else {
    const char* verb = o.gc_dry_run ? "would remove" : "removed";
    for (const Json& t : (*out)["targets"]) {
      std::cout << "shell target " << t["target"].get<std::string>() << ": " << verb << " "
                << FormatCount(t["blobs_removed"].get<int64_t>()) << " blob(s), "
                << FormatCount(t["bytes_removed"].get<int64_t>()) << " bytes; kept "
                << FormatCount(t["blobs_kept"].get<int64_t>()) << "; " << verb << " "
                << FormatCount(t["temporaries_removed"].get<int64_t>())
                << " half-written blob(s) and "
                << FormatCount(t["held_answers_removed"].get<int64_t>()) << " held MCP answer(s)\n";
    }
    if ((*out)["targets"].empty() && (*out)["errors"].empty()) {
      std::cout << "no shell targets: nothing to collect\n";
    }
    for (const Json& e : (*out)["errors"]) {
      std::cerr << "airlock: shell target " << e["target"].get<std::string>() << ": "
                << e["error"].get<std::string>() << "\n";
    }
  }
  return (*out)["errors"].empty() ? kExitOk : kExitError;
}

int CmdAuditLog(const Options& o) {
  auto g = OpenBackend(o);
  if (!g.ok()) return Fail(o, g.status());
  Status st = (*g)->ScanAudit(o.action_filter, [&](const AuditEvent& e) {
    std::cout << (o.json ? audit::ToJsonLine(e) : audit::FormatEventLine(e)) << "\n";
    return true;
  });
  if (!st.ok()) return Fail(o, st);
  return kExitOk;
}

int CmdPolicyCheck(const Options& o) {
  auto policy = LoadPolicyFile(o.config);
  if (!policy.ok()) {
    if (o.json) {
      PrintJson({{"ok", false}, {"error", policy.status().message()}});
    } else {
      std::cerr << policy.status().message() << "\n";
    }
    return kExitUsage;
  }
  const Policy& p = **policy;
  // MCP servers are targets too (kind mcp), but people count them apart.
  const size_t servers = p.mcp_servers.size();
  const size_t targets = p.targets.size() - servers;
  if (o.json) {
    PrintJson({{"ok", true},
               {"mcp_servers", servers},
               {"file", p.source_path},
               {"mode", p.mode == PolicyMode::kDryRun ? "dry-run" : "enforce"},
               {"agents", p.agents.size()},
               {"approvers", p.approvers.size()},
               {"targets", targets},
               {"rules", p.rules.size()},
               {"limits", p.limits.size()}});
  } else {
    auto n = [](size_t count, const char* what) {
      return std::to_string(count) + " " + what + (count == 1 ? "" : "s");
    };
    std::cout << p.source_path << ": ok ("
              << (p.mode == PolicyMode::kDryRun ? "dry-run" : "enforce") << " mode; "
              << n(p.agents.size(), "agent") << ", " << n(p.approvers.size(), "approver") << ", "
              << n(targets, "target") << ", "
              << (servers ? n(servers, "MCP server") + ", " : std::string())
              << n(p.rules.size(), "rule") << ", " << n(p.limits.size(), "limit") << ")\n";
  }
  return kExitOk;
}

int CmdTokenNew(const Options& o) {
  const std::string token = NewToken();
  const std::string hash = Sha256Hex(token);
  const std::string name = o.token_name.empty() ? "NAME" : o.token_name;
  const std::string yaml = "- {name: " + name + ", token_sha256: \"" + hash + "\"" +
                           (o.token_role == "agent" ? ", scopes: []" : "") + "}";
  if (o.json) {
    PrintJson({{"token", token}, {"token_sha256", hash}, {"yaml", yaml}});
  } else {
    std::cout << "token:  " << token << "\n"
              << "give the token to its holder (AIRLOCK_TOKEN); airlock keeps only its hash.\n"
              << "policy (" << (o.token_role == "agent" ? "agents" : "approvers") << "):\n  "
              << yaml << "\n";
  }
  return kExitOk;
}

// `airlock serve` flags, as given (sizes and durations are parsed like the policy's).
struct ServeFlags {
  std::string listen = "127.0.0.1:7070";
  std::string max_body = "1MiB";
  int max_connections = 512;
  std::string header_timeout = "10s";
  std::string body_timeout = "30s";
  std::string max_wait = "60s";
  int threads = 0;
  std::vector<std::string> mcp_allow_origins;
  std::string events_poll = "500ms";
  bool no_standby = false;
  std::string gc_every = "24h";
  int64_t gc_older_than_hours = 24;
  std::string checkpoint_every = "off";
  std::string checkpoint_key, checkpoint_file;
};

// The longest --gc-every and --checkpoint-every: a year (a longer wait would overflow the
// clock's nanoseconds in the standard library's timed waits).
constexpr int64_t kMaxIntervalMs = 365LL * 24 * 3600 * 1000;

// serve and the MCP proxy run sandboxes from many threads: their supervisors are forked by
// the sandbox launcher, started here while this process has one thread
// (connectors/shell/launcher.h says why).
void StartSandboxLauncher() {
  Status st = shell::StartSandboxLauncher();
  if (!st.ok()) {
    std::cerr << "airlock: " << st.message()
              << "; each sandbox is forked by the thread that runs it\n";
  }
}

int CmdServe(const Options& o, const ServeFlags& f) {
  StartSandboxLauncher();
  server::ServeOptions so;
  so.listen = f.listen;
  so.max_connections = f.max_connections;
  so.threads = f.threads;
  so.mcp_allowed_origins = f.mcp_allow_origins;
  so.standby_sandboxes = !f.no_standby;
  auto body = ParseSizeBytes(f.max_body);
  if (!body.ok()) return Fail(o, body.status().Annotate("--max-body"));
  so.max_body = static_cast<uint64_t>(*body);
  auto duration = [](const char* flag, const std::string& text, int64_t* out) {
    auto ms = ParseDurationMs(text);
    if (!ms.ok()) return ms.status().Annotate(flag);
    *out = *ms;
    return Status::Ok();
  };
  for (Status st : {duration("--header-timeout", f.header_timeout, &so.header_timeout_ms),
                    duration("--body-timeout", f.body_timeout, &so.body_timeout_ms),
                    duration("--max-wait", f.max_wait, &so.max_wait_ms),
                    duration("--events-poll", f.events_poll, &so.events_poll_ms)}) {
    if (!st.ok()) return Fail(o, st);
  }
  if (f.gc_every == "off" || f.gc_every == "0") {
    so.gc_every_ms = 0;
  } else if (Status st = duration("--gc-every", f.gc_every, &so.gc_every_ms); !st.ok()) {
    return Fail(o, st);
  } else if (so.gc_every_ms < 1000 || so.gc_every_ms > kMaxIntervalMs) {
    return Fail(o, Status::InvalidArgument("--gc-every: from 1s to 365d, or off"));
  }
  so.gc_older_than_s = f.gc_older_than_hours * 3600;
  if (f.checkpoint_every == "off" || f.checkpoint_every == "0") {
    so.checkpoint_every_ms = 0;
    if (!f.checkpoint_key.empty() || !f.checkpoint_file.empty()) {
      return Fail(o, Status::InvalidArgument(
                         "--checkpoint-key and --checkpoint-file go with --checkpoint-every"));
    }
  } else if (Status st =
                 duration("--checkpoint-every", f.checkpoint_every, &so.checkpoint_every_ms);
             !st.ok()) {
    return Fail(o, st);
  } else if (so.checkpoint_every_ms < 1000 || so.checkpoint_every_ms > kMaxIntervalMs) {
    return Fail(o, Status::InvalidArgument("--checkpoint-every: from 1s to 365d, or off"));
  }
  so.checkpoint_key = f.checkpoint_key;
  so.checkpoint_file = f.checkpoint_file;
  auto policy = LoadPolicyFile(o.config);
  if (!policy.ok()) return Fail(o, policy.status());
  Status st = server::Serve(*policy, so);
  return st.ok() ? kExitOk : Fail(o, st);
}

// `airlock pg install|uninstall --target T`: an administrator's step on the target database
// (it needs the rights to create event triggers); it is not an agent's action, so it does not
// pass the gateway.
int CmdPg(const Options& o, bool uninstall) {
  auto policy = LoadPolicyFile(o.config);
  if (!policy.ok()) return Fail(o, policy.status());
  const TargetSpec* spec = (*policy)->FindTarget(o.target);
  if (spec == nullptr || spec->kind != "postgres") {
    return Fail(
        o, Status::InvalidArgument("'" + o.target + "' is not a postgres target of " + o.config));
  }
  std::string report;
  Status st =
      PostgresInstall(ConnectorConfig{spec->name, spec->kind, spec->fields}, uninstall, &report);
  if (!st.ok()) return Fail(o, st);
  if (o.json) {
    PrintJson({{"ok", true}, {"target", o.target}, {"done", report}});
  } else {
    std::cout << o.target << ": " << report << "\n";
  }
  return kExitOk;
}

int CmdMcpStdio(const Options& o, const std::string& server_name) {
  StartSandboxLauncher();
  auto policy = LoadPolicyFile(o.config);
  if (!policy.ok()) return Fail(o, policy.status());
  // The built-in server's `exec` runs one command after another for as long as the session
  // lasts: each shell target keeps the next command's sandbox built ahead, as in serve.
  GatewayOptions options;
  options.keep_warm = server_name == "airlock";
  auto gw = Gateway::Open(*policy, options);
  if (!gw.ok()) return Fail(o, gw.status());
  mcp::StdioProxyOptions po;
  po.server = server_name;
  po.token = CallerToken();
  return mcp::RunStdioProxy(**gw, po);
}

// `airlock doctor` flags, as given.
struct DoctorFlags {
  std::vector<std::string> files;
  bool fix = false;
  std::string fix_out;
  std::string sandbox = "repo";
  bool strict = false;
};

// Exit: 2 when a file named on the command line could not be checked, 1 when a --fix copy
// could not be written or (--strict) a finding is high or critical, otherwise 0.
int CmdDoctor(const Options& o, const DoctorFlags& f, bool config_given) {
  doctor::Options d;
  d.files = f.files;
  const char* home = std::getenv("HOME");
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  d.home = home ? home : "";
  d.config_home = xdg ? xdg : "";
  std::error_code ec;
  d.cwd = std::filesystem::current_path(ec).string();  // absolute paths in every message
  d.fix = f.fix;
  d.fix_options.out_dir = f.fix_out;
  d.fix_options.sandbox = f.sandbox;
  if (config_given) d.fix_options.policy_path = std::filesystem::absolute(o.config, ec).string();
  const doctor::Report r = doctor::RunDoctor(d);
  if (o.json) {
    PrintJson(doctor::ReportToJson(r));
  } else {
    std::cout << doctor::FormatReport(r);
    for (const auto& file : r.files) {
      if (!file.status.ok()) std::cerr << "airlock: " << file.status.message() << "\n";
    }
  }
  if (r.NamedFileFailed()) return kExitUsage;
  if (r.AnyCopyFailed()) return kExitError;
  const bool serious = r.Count(doctor::Severity::kHigh) + r.Count(doctor::Severity::kCritical) > 0;
  return f.strict && serious ? kExitError : kExitOk;
}

// The subcommand the command line names: its first word that is neither an option nor the
// value of a global option (--config, --server), if that word is a subcommand's name; else
// empty. A flag given as one word (--config=FILE) is an option like any other.
std::string_view NamedSubcommand(int argc, char** argv) {
  static constexpr std::string_view kSubcommands[] = {
      "sql",     "exec",  "send",  "http",   "pending", "show", "approve", "reject", "rollback",
      "breaker", "audit", "store", "policy", "token",   "pg",   "serve",   "mcp",    "doctor"};
  for (int i = 1; i < argc; ++i) {
    const std::string_view word = argv[i];
    if (word == "--") return {};
    if (word == "--config" || word == "--server") {
      ++i;
      continue;
    }
    if (word.empty() || word[0] == '-') continue;
    for (std::string_view name : kSubcommands) {
      if (word == name) return name;
    }
    return {};
  }
  return {};
}

}  // namespace

int Main(int argc, char** argv) {
  TraceMark("cli: main");
  // No bulk allocation of page-cache memory per SQLite connection: SQLite's default sets up
  // 20 pages of it at a connection's first read, writing a header into each, and a command,
  // whose connections use a few pages each, paid ~40 page faults for it (2026-12-02). Pages
  // then come from malloc one by one, as needed. Here, before SQLite initialises and while
  // this process has one thread (sqlite3_config is not thread-safe).
  (void)sqlite3_config(SQLITE_CONFIG_PAGECACHE, nullptr, 0, 0);
  Options o;
  CLI::App app{
      "airlock: every action of an AI agent, previewed, classified, approved, reversible "
      "and audited"};
  app.require_subcommand(1);
  app.fallthrough();
  const char* env_config = std::getenv("AIRLOCK_CONFIG");
  o.config = env_config ? env_config : "airlock.yaml";
  app.add_option("--config", o.config, "policy file (or AIRLOCK_CONFIG; default ./airlock.yaml)");
  app.add_flag("--json", o.json, "print one JSON object");
  const char* env_server = std::getenv("AIRLOCK_SERVER");
  if (env_server != nullptr) o.server = env_server;
  app.add_option("--server", o.server,
                 "act through a running `airlock serve` at this URL, e.g. http://127.0.0.1:7070 "
                 "(or AIRLOCK_SERVER); the token (AIRLOCK_TOKEN) is sent as a bearer token");
  std::function<int()> run;

  ServeFlags serve_flags;
  std::string mcp_server;
  DoctorFlags doctor_flags;
  // Only the subcommand that the command line names is built: building all of them costs
  // every command ~45 page faults and 0.2-0.8 ms. With none named (airlock --help), or a
  // word that names none (CLI11's own error), all are.
  std::string_view wanted = NamedSubcommand(argc, argv);
  auto want = [&wanted](std::string_view name) { return wanted.empty() || wanted == name; };
  if (want("sql")) {
    auto* sql = app.add_subcommand("sql", "submit an SQL action (dry-run, classify, decide)");
    sql->add_option("--target", o.target, "target name from the policy")->required();
    sql->add_option("SQL", o.sql, "one or several SQL statements")->required();
    sql->callback([&] { run = [&] { return CmdSql(o); }; });
  }

  if (want("exec")) {
    auto* exec = app.add_subcommand(
        "exec", "submit a shell action: run it in a sandbox, classify its file changes, decide");
    exec->add_option("--target", o.target, "target name from the policy (kind: shell)")->required();
    exec->add_option("COMMAND", o.argv, "the command and its arguments, after --");
    exec->callback([&] { run = [&] { return CmdExec(o); }; });
    exec->footer(
        "Example: airlock exec --target repo -- sed -i s/foo/bar/ README.md\n"
        "A command that ran exits with its own status; 10 = pending approval, "
        "11 = denied.");
  }

  if (want("send")) {
    auto* send = app.add_subcommand(
        "send", "submit a mail action: build the exact message, classify its recipients, decide");
    send->add_option("--target", o.target, "target name from the policy (kind: smtp)")->required();
    send->add_option("--to", o.to, "recipients (A[,B..]; may be repeated)");
    send->add_option("--cc", o.cc, "copy recipients (A[,B..]; may be repeated)");
    send->add_option("--bcc", o.bcc,
                     "blind copy recipients: in the envelope only, never in a header; counted");
    send->add_option("--subject", o.subject, "the subject (one line)")->required();
    send->add_option("--body", o.body, "the text of the message");
    send->add_option("--body-file", o.body_file, "read the text of the message from this file");
    send->add_option("--attach", o.attach, "attach this file (may be repeated)");
    send->add_option("--idempotency-key", o.idempotency_key,
                     "a retry with the same key returns the same action and never sends twice");
    send->callback([&, send] {  // send by value: the callback runs after this block
      o.body_given = send->count("--body") > 0;
      run = [&] { return CmdSend(o); };
    });
    send->footer(
        "Example: airlock send --target support-mail --to ann@example.com "
        "--subject 'Your ticket' --body-file reply.txt\n"
        "One recipient is low risk and goes out at once; more is a batch and waits for "
        "approval (exit 10). Sent mail cannot be rolled back.");
  }

  if (want("http")) {
    auto* http = app.add_subcommand(
        "http",
        "submit an HTTP request to an API target (kind: http) with the credentials airlock "
        "holds");
    http->add_option("--target", o.target, "target name from the policy (kind: http)")->required();
    http->add_option("METHOD", o.http_method, "GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS")
        ->required();
    http->add_option("PATH", o.http_path,
                     "path below the target's base_url, e.g. /v1/items?limit=5")
        ->required();
    http->add_option("--json", o.http_body, "the request body, as JSON (sent canonical)");
    http->add_option("--idempotency-key", o.idempotency_key,
                     "a key of the caller's: a retry with the same key and request returns the "
                     "first try's action and never sends again");
    http->callback([&] { run = [&] { return CmdHttp(o); }; });
    http->footer(
        "Example: airlock http --target api POST /v1/messages --json '{\"to\":[\"a@x\"]}'\n"
        "A request that was sent prints the response body and exits 0; 10 = pending "
        "approval, 11 = denied. For JSON output put --json before the subcommand: "
        "airlock --json http ...");
  }

  if (want("pending")) {
    auto* pending = app.add_subcommand("pending", "list actions waiting for approval");
    pending->callback([&] { run = [&] { return CmdPending(o); }; });
  }

  if (want("show")) {
    auto* show = app.add_subcommand("show", "one action: risk, reasons, effect preview, votes");
    show->add_option("ID", o.id, "action id")->required();
    show->callback([&] { run = [&] { return CmdShow(o); }; });
  }

  if (want("approve")) {
    auto* approve = app.add_subcommand("approve", "vote to approve an action (approver token)");
    approve->add_option("ID", o.id, "action id")->required();
    approve->add_option("--reason", o.reason, "why");
    approve->callback([&] { run = [&] { return CmdVote(o, true); }; });
  }

  if (want("reject")) {
    auto* reject = app.add_subcommand("reject", "reject an action (approver token)");
    reject->add_option("ID", o.id, "action id")->required();
    reject->add_option("--reason", o.reason, "why");
    reject->callback([&] { run = [&] { return CmdVote(o, false); }; });
  }

  if (want("rollback")) {
    auto* rollback = app.add_subcommand("rollback", "undo an applied action (approver token)");
    rollback->add_option("ID", o.id, "action id")->required();
    rollback->add_option("--reason", o.reason, "why (recorded in the audit log)");
    rollback->callback([&] { run = [&] { return CmdRollback(o); }; });
  }

  if (want("breaker")) {
    auto* breaker = app.add_subcommand("breaker", "circuit breakers");
    breaker->require_subcommand(1);
    auto* reset = breaker->add_subcommand("reset", "close a tripped breaker (approver token)");
    reset->add_option("--target", o.target, "target name")->required();
    reset->add_option("--agent", o.agent, "only this agent's breaker (default: every agent's)");
    reset->callback([&] { run = [&] { return CmdBreakerReset(o); }; });
  }

  if (want("audit")) {
    auto* audit = app.add_subcommand("audit", "the tamper-evident audit log");
    audit->require_subcommand(1);
    auto* verify = audit->add_subcommand("verify", "check the whole hash chain");
    verify->add_option("--checkpoints", o.checkpoints,
                       "also check these signed checkpoints (lines of airlock audit checkpoint)");
    verify->add_option("--public-key", o.public_key, "the public key that signed the checkpoints");
    verify->footer(
        "With --checkpoints, each line's signature must be the public key's, and the chain must\n"
        "hold, at the line's seq, the hash the line names: a history rewritten after the\n"
        "checkpoint was made fails, even when its own hashes are consistent. Exit 1 on any\n"
        "break or failed checkpoint.");
    verify->callback([&] { run = [&] { return CmdAuditVerify(o); }; });
    auto* checkpoint = audit->add_subcommand(
        "checkpoint", "sign the chain's head: one line to keep outside the store");
    checkpoint->add_option("--key", o.key_file, "the Ed25519 private key (airlock audit keygen)")
        ->required();
    checkpoint->footer(
        "Prints {airlock_checkpoint, seq, hash, at_ms, key_id, signature} on one line, after\n"
        "verifying the chain (a broken chain is not signed; exit 1). Append the lines to a file\n"
        "kept elsewhere (another machine, a log shipper) and check the store against them with\n"
        "airlock audit verify --checkpoints FILE --public-key KEY.pub: whoever can rewrite the\n"
        "store cannot rewrite those. The key must be readable by its owner only.");
    checkpoint->callback([&] { run = [&] { return CmdAuditCheckpoint(o); }; });
    auto* keygen = audit->add_subcommand("keygen", "make an Ed25519 key pair for checkpoints");
    keygen->add_option("--out", o.key_file, "the private key's file (FILE.pub gets the public key)")
        ->required();
    keygen->footer("Writes FILE (mode 0600) and FILE.pub; never overwrites either.");
    keygen->callback([&] { run = [&] { return CmdAuditKeygen(o); }; });
    auto* log = audit->add_subcommand("log", "print the log (JSON lines with --json)");
    log->add_option("--action", o.action_filter, "only the events of this action");
    log->callback([&] { run = [&] { return CmdAuditLog(o); }; });
  }

  if (want("store")) {
    auto* store = app.add_subcommand("store", "airlock's own store");
    store->require_subcommand(1);
    auto* migrate = store->add_subcommand(
        "migrate", "create or upgrade the PostgreSQL store's schema; --from copies a SQLite store");
    migrate->add_option("--from", o.migrate_from,
                        "a SQLite store (airlock.db) to copy into the empty PostgreSQL store");
    migrate->footer(
        "The policy names the PostgreSQL store with store: postgres://... or store_dsn_env: NAME.\n"
        "Safe to run again: the schema is versioned (airlock_store.schema_version), and --from\n"
        "refuses a store that already has audit events. The copy is one transaction.");
    migrate->callback([&] { run = [&] { return CmdStoreMigrate(o); }; });

    auto* gc = store->add_subcommand(
        "gc", "remove shell targets' stored file contents that no action still needs");
    gc->add_option("--older-than", o.gc_older_than_hours,
                   "keep anything written or reused in the last N hours (default 24, at least 1)")
        ->check(CLI::Range(int64_t{1}, int64_t{24 * 365 * 100}));
    gc->add_flag("--dry-run", o.gc_dry_run, "count what would be removed; remove nothing");
    gc->footer(
        "A shell target keeps the content of every file a command wrote (its preview) and of\n"
        "every file a commit replaced (its undo) under <store>.shell/NAME/blobs. gc keeps what a\n"
        "pending action would commit and what an applied action would restore on rollback, and\n"
        "removes the rest: the previews of denied, rejected, expired, failed and rolled-back\n"
        "actions, and the held answers of MCP calls no pending call names. Anything written or\n"
        "reused in the last --older-than hours (at least 1) stays, so a command running\n"
        "meanwhile loses nothing. A target whose records cannot be read, or with a commit waiting "
        "for\n"
        "recovery, loses nothing (exit 1). Run it on the machine that holds the store.");
    gc->callback([&] { run = [&] { return CmdStoreGc(o); }; });
  }

  if (want("policy")) {
    auto* policy = app.add_subcommand("policy", "the policy file");
    policy->require_subcommand(1);
    auto* check = policy->add_subcommand("check", "validate the policy file");
    check->callback([&] { run = [&] { return CmdPolicyCheck(o); }; });
  }

  if (want("token")) {
    auto* token = app.add_subcommand("token", "tokens");
    token->require_subcommand(1);
    auto* token_new =
        token->add_subcommand("new", "print a fresh random token and its policy line");
    token_new->add_option("--name", o.token_name, "the agent's or approver's name");
    token_new->add_option("--role", o.token_role, "agent or approver")
        ->check(CLI::IsMember({"agent", "approver"}));
    token_new->callback([&] { run = [&] { return CmdTokenNew(o); }; });
  }

  if (want("pg")) {
    auto* pg = app.add_subcommand("pg", "PostgreSQL targets: airlock's capture in the database");
    pg->require_subcommand(1);
    auto* pg_install = pg->add_subcommand(
        "install", "install the capture (schema airlock, triggers, event triggers); idempotent");
    pg_install->add_option("--target", o.target, "a postgres target of the policy")->required();
    pg_install->callback([&] { run = [&] { return CmdPg(o, /*uninstall=*/false); }; });
    pg_install->footer(
        "Creates schema airlock with its tables and functions, a row trigger airlock_capture on\n"
        "every table of the target's schemas (it records rows only inside airlock's own\n"
        "transactions), and DDL event triggers that also give tables created later the row\n"
        "trigger. Run it again after changing schemas: in the policy. Needs a role that may\n"
        "create event triggers (a superuser).");
    auto* pg_uninstall = pg->add_subcommand(
        "uninstall", "remove all of airlock's capture from the database; idempotent");
    pg_uninstall->add_option("--target", o.target, "a postgres target of the policy")->required();
    pg_uninstall->callback([&] { run = [&] { return CmdPg(o, /*uninstall=*/true); }; });
    pg_uninstall->footer(
        "Drops the event triggers and schema airlock (with the row triggers and\n"
        "the record of applied actions that crash recovery reads).");
  }

  if (want("serve")) {
    auto* serve = app.add_subcommand("serve", "HTTP API, approvers' web page and /metrics");
    serve->add_option("--listen", serve_flags.listen,
                      "HOST:PORT (default 127.0.0.1:7070; port 0: any)");
    serve->add_option("--max-body", serve_flags.max_body, "largest request body (default 1MiB)");
    serve
        ->add_option("--max-connections", serve_flags.max_connections,
                     "open connections before 503 (default 512)")
        ->check(CLI::PositiveNumber);
    serve->add_option("--header-timeout", serve_flags.header_timeout,
                      "time to send the request headers (default 10s)");
    serve->add_option("--body-timeout", serve_flags.body_timeout,
                      "time to send the request body (default 30s)");
    serve->add_option("--max-wait", serve_flags.max_wait, "largest wait_ms accepted (default 60s)");
    serve->add_option("--events-poll", serve_flags.events_poll,
                      "how often /v1/events looks for changes other processes made "
                      "(default 500ms; a PostgreSQL store also signals them at once)");
    serve
        ->add_option("--threads", serve_flags.threads,
                     "I/O threads (default: one per core, up to 4)")
        ->check(CLI::NonNegativeNumber);
    serve->add_option("--gc-every", serve_flags.gc_every,
                      "run `airlock store gc` this often in the background (default 24h; off: "
                      "never)");
    serve
        ->add_option("--gc-older-than", serve_flags.gc_older_than_hours,
                     "what the background gc keeps: anything written or reused in the last N "
                     "hours (default 24, at least 1)")
        ->check(CLI::Range(int64_t{1}, int64_t{24 * 365 * 100}));
    serve->add_option("--checkpoint-every", serve_flags.checkpoint_every,
                      "sign the audit chain's head this often, when it has grown, and append "
                      "the line to --checkpoint-file (default off; as `airlock audit "
                      "checkpoint`)");
    serve->add_option("--checkpoint-key", serve_flags.checkpoint_key,
                      "the private key (airlock audit keygen) the checkpoints are signed with");
    serve->add_option("--checkpoint-file", serve_flags.checkpoint_file,
                      "the file the checkpoint lines are appended to (keep a copy elsewhere)");
    serve->add_flag("--no-standby", serve_flags.no_standby,
                    "build each shell command's sandbox when the command comes, instead of "
                    "keeping one built ahead per shell target (the command is never chosen "
                    "before it is submitted)");
    serve
        ->add_option("--mcp-allow-origin", serve_flags.mcp_allow_origins,
                     "an Origin (https://host[:port]) whose browser pages may call /mcp/NAME, "
                     "besides loopback ones; repeatable")
        ->check([](const std::string& v) -> std::string {
          const size_t scheme = v.find("://");
          if ((v.rfind("http://", 0) != 0 && v.rfind("https://", 0) != 0) ||
              v.size() == scheme + 3 || v.find_first_of("/?#@", scheme + 3) != std::string::npos)
            return "expected an origin: http(s)://HOST[:PORT], no path";
          return "";
        });
    serve->callback([&] { run = [&] { return CmdServe(o, serve_flags); }; });
    serve->footer(
        "Serves until SIGTERM or SIGINT, then lets running requests finish (up to 10 s).\n"
        "MCP clients reach the servers of mcp_servers: (and the built-in 'airlock') at\n"
        "http://HOST:PORT/mcp/NAME (streamable HTTP), with an agent's token as bearer token.");
  }

  if (want("mcp")) {
    auto* mcp = app.add_subcommand("mcp", "the MCP gateway");
    mcp->require_subcommand(1);
    auto* mcp_stdio = mcp->add_subcommand(
        "stdio", "serve one MCP client on stdin/stdout, in front of an MCP server of the policy");
    mcp_stdio->add_option("--server", mcp_server, "the server's name under mcp_servers:")
        ->required();
    mcp_stdio->callback([&] { run = [&] { return CmdMcpStdio(o, mcp_server); }; });
    mcp_stdio->footer(
        "This is the command an MCP client's configuration runs, with the agent's token in\n"
        "AIRLOCK_TOKEN. airlock starts the server (command: and env: of its policy entry; it\n"
        "gets nothing else of this environment but PATH), passes the protocol through, lists\n"
        "only the tools the agent's scopes allow, and sends every tools/call through the\n"
        "gateway: read and low calls are made at once; others wait up to approval_wait for a\n"
        "human, then end as a tool error naming the action (see airlock_action_status).\n"
        "Messages go on stdout only; diagnostics on stderr. Exit: 0 when the client closed\n"
        "the session, 2 for an unknown server or a token that is not an agent's.");
  }

  if (want("doctor")) {
    auto* doctor =
        app.add_subcommand("doctor", "find unsandboxed agent set-ups in MCP client configurations");
    doctor->add_option("FILES", doctor_flags.files,
                       "client configurations to check (default: the usual places, below)");
    doctor->add_flag("--fix", doctor_flags.fix,
                     "write a copy of each configuration with every stdio server wrapped by "
                     "`airlock mcp stdio`, and print the policy entries to add");
    doctor->add_option("--fix-out", doctor_flags.fix_out,
                       "write the copies into this directory (default: NAME.airlock.json beside "
                       "each original)");
    doctor->add_option("--sandbox", doctor_flags.sandbox,
                       "the shell target the printed policy entries run servers in (default repo)");
    doctor->add_flag("--strict", doctor_flags.strict, "exit 1 when a finding is high or critical");
    doctor->add_flag("--json", o.json, "print {files, findings, summary, fix} as one JSON object");
    doctor->callback([&] {
      const bool config_given =
          app.get_option("--config")->count() > 0 || std::getenv("AIRLOCK_CONFIG") != nullptr;
      run = [&, config_given] { return CmdDoctor(o, doctor_flags, config_given); };
    });
    doctor->footer(
        "With no FILES it reads those of these that exist: ~/.config/Claude/ and\n"
        "~/Library/Application Support/Claude/claude_desktop_config.json (Claude Desktop),\n"
        "./.mcp.json and ~/.claude.json with its projects (Claude Code), ./.cursor/mcp.json and\n"
        "~/.cursor/mcp.json (Cursor), ./.vscode/mcp.json and VS Code's user mcp.json.\n"
        "Per server it reports, with a severity and a fix: credentials in args, env, url or\n"
        "headers (high; critical for a production host), a file-system root of / or a home\n"
        "directory (critical / high), production-looking hosts (high), servers not behind\n"
        "airlock (medium). Secrets are never printed: only their redacted form (sk-****).\n"
        "--fix never changes a configuration: it writes copies (mode 0600) whose stdio servers\n"
        "run `airlock mcp stdio --server NAME` with AIRLOCK_TOKEN=<agent token> (and\n"
        "AIRLOCK_CONFIG when --config or AIRLOCK_CONFIG names the policy), and prints the\n"
        "mcp_servers: entries with the original commands; remote servers are left as they are.\n"
        "Exit: 0 when it ran (findings or not), 1 with --strict and a high or critical finding\n"
        "or when a copy could not be written, 2 when a file named on the command line is\n"
        "missing, unreadable or not a client configuration.");
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  if (!run) return kExitUsage;
  TraceMark("cli: arguments parsed");
  const int code = run();
  TraceMark("cli: done");
  return code;
}

}  // namespace airlock::cli

int main(int argc, char** argv) {
  return airlock::cli::Main(argc, argv);
}
