#include "gateway/gateway.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <set>
#include <string_view>

#include "approval/approval.h"
#include "connectors/http/http_connector.h"
#include "connectors/http/send.h"
#include "connectors/mcp/mcp_connector.h"
#include "connectors/shell/shell_connector.h"
#include "core/clock.h"
#include "core/crash.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/trace.h"
#include "gateway/claim_lock.h"
#include "gateway/egress_gate.h"
#include "store/pg_store.h"

namespace airlock {
namespace {

// A tool answer bigger than this is not kept for an agent that asks later (only its shape).
constexpr size_t kMaxStoredToolResultBytes = 256 * 1024;

std::string McpToolName(const Json& args) {
  if (args.is_object() && args.contains("tool") && args["tool"].is_string()) {
    return args["tool"].get<std::string>();
  }
  return "";
}

// Kinds whose effect is the outbound call itself (an MCP tool call, an HTTP request): nothing
// can run them in a sandbox, so even a read runs only in apply, and nothing can undo them.
bool IsOutbound(const std::string& kind) {
  return kind == "mcp" || kind == "http";
}

// Whether an action of `kind` goes to a target of `target_kind` at all.
bool KindFits(const std::string& kind, const std::string& target_kind) {
  return (kind == "sql" && (target_kind == "sqlite" || target_kind == "postgres")) ||
         (kind == "shell" && target_kind == "shell") || (kind == "mail" && target_kind == "smtp") ||
         (kind == "mcp" && target_kind == "mcp") || (kind == "http" && target_kind == "http");
}

// An audit payload with the approver's reason, when one was given.
Json WithReason(Json payload, const std::string& reason) {
  if (reason.empty()) return payload;
  if (!payload.is_object()) payload = Json::object();
  payload["reason"] = reason;
  return payload;
}

// The same agent and key always give the same id; another agent's key never gives it.
std::string IdempotentActionId(const std::string& agent, const std::string& key) {
  return "act_" + Sha256Hex("airlock idempotency\n" + agent + "\n" + key).substr(0, 16);
}

Status CheckIdempotencyKey(const std::string& key) {
  if (key.size() > 128) return Status::InvalidArgument("idempotency_key is longer than 128 bytes");
  for (unsigned char c : key) {
    if (c < 0x21 || c > 0x7E) {
      return Status::InvalidArgument("idempotency_key must be printable ASCII without spaces");
    }
  }
  return Status::Ok();
}

int64_t RecipientCount(const Effect& e) {
  auto it = e.extra.find("recipient_count");
  return it != e.extra.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

Json RequestJson(const SubmitRequest& r) {
  return {{"target", r.target}, {"kind", r.kind}, {"args", r.args}};
}

std::string ShellStateRoot(const Policy& p) {
  return p.store_path + ".shell";
}

std::string JournalDir(const Policy& p) {
  return p.store_path + ".journal";
}

Json ReadSummary(const Json& result) {
  if (!result.is_object()) return result;
  if (result.contains("exit_code")) {
    // A command's read: its exit and how much it printed, not the output itself.
    Json summary = Json::object();
    for (const char* key : {"exit_code", "signal", "stdout_bytes", "stderr_bytes", "killed_by"}) {
      if (result.contains(key)) summary[key] = result[key];
    }
    return summary;
  }
  Json summary = Json::object();
  for (const char* key : {"columns", "truncated"}) {
    if (result.contains(key)) summary[key] = result[key];
  }
  summary["row_count"] =
      result.contains("rows") && result["rows"].is_array() ? result["rows"].size() : 0;
  return summary;
}

std::string RateText(const Limit& l) {
  const char* unit = l.rate_window_ms == 1000 ? "s" : l.rate_window_ms == 3600000 ? "h" : "min";
  return std::to_string(l.rate_count) + "/" + unit;
}

std::string LimitLocation(const Policy& p, const Limit& l) {
  return std::filesystem::path(p.source_path).filename().string() + ":" +
         std::to_string(l.loc.line);
}

bool LimitMatches(const Limit& l, const std::string& agent, const std::string& target) {
  return (!l.match_target || *l.match_target == target) &&
         (!l.match_agent || *l.match_agent == agent);
}

// Sends a held egress request as it was previewed: its method, URL and JSON body, no other
// header (the command's own headers were not kept; credentials are never added). Redirects
// are not followed and the answer is capped, as for an http target.
Result<ApplyOutcome> SendHeldEgress(const Action& a) {
  http_target::OutboundRequest req;
  req.method = a.args.value("method", "");
  req.url = a.args.value("url", "");
  if (req.method.empty() || req.url.rfind("http://", 0) != 0) {
    return Status::FailedPrecondition("this held request has no method or http:// URL to send");
  }
  if (a.args.contains("json")) {
    req.has_body = true;
    req.body = a.args["json"].dump();
  }
  ASSIGN_OR_RETURN(http_target::InboundResponse resp, http_target::SendRequest(req));
  ApplyOutcome out;
  out.effect_matched = true;  // nothing re-runs: the request is the previewed one
  out.effect = a.effect;
  out.result = {{"status", resp.status},       {"content_type", resp.content_type},
                {"body", resp.body},           {"body_bytes", resp.body.size()},
                {"truncated", resp.truncated}, {"max_response_bytes", req.max_response_bytes}};
  if (!resp.location.empty()) out.result["redirect_not_followed"] = resp.location;
  out.undo.kind = "http";
  out.undo.reversible = false;
  out.undo.note = "an HTTP request that was sent cannot be undone by airlock";
  return out;
}

}  // namespace

// What the audit keeps of a decided action: the full arguments, the effect and why.
Json DecisionPayload(const Action& a) {
  Json p = {{"agent", a.agent},
            {"target", a.target},
            {"kind", a.kind},
            {"args", a.args},
            {"status", ActionStatusName(a.status)},
            {"risk", RiskName(a.risk)},
            {"reasons", a.reasons},
            {"quorum", a.quorum},
            {"effect", EffectToJson(a.effect)}};
  if (!a.error.empty()) p["error"] = a.error;
  if (a.dry_run) p["would_status"] = a.would_status;
  return p;
}

namespace {

// The keys of DecisionPayload, which ActionToJson writes with the same values. GatewayTest
// checks the two forms against each other over random actions, and a read recorded this way
// against one recorded with DecisionPayload.
bool IsDecisionPayloadKey(std::string_view key) {
  static const std::set<std::string_view> kKeys = {
      "agent", "args", "effect", "error", "kind", "quorum", "reasons", "risk", "status", "target"};
  return kKeys.count(key) > 0;
}

// DecisionPayload's "would_status", into a text of its other keys: it sorts after every one
// of them, and the object is never empty (agent).
void AddWouldStatus(const Action& a, std::string* payload) {
  if (a.dry_run) {
    payload->insert(payload->size() - 1, ",\"would_status\":" + CanonicalJson(a.would_status));
  }
}

}  // namespace

std::string CanonicalDecisionPayload(const Action& a) {
  std::string out = ActionJsonText(a, IsDecisionPayloadKey);
  AddWouldStatus(a, &out);
  return out;
}

// "act_", the time in ms (11 hex digits, enough until the year 2527), then 52 random bits.
// Ids that sort by time land at the end of every index keyed by them (the actions' primary
// key, the audit's by-action index) instead of on a random page each: a batch of a server's
// actions then writes a few pages to the store, not two per action. docs/BENCHMARKS.md has
// the numbers. 52 bits make two ids of the same millisecond collide about once in 10^15
// pairs; a collision fails that action's insert with an error, and nothing is overwritten
// (a journaled MCP read, whose answer is out already, would lose its record at recovery).
std::string NewActionId() {
  char time_hex[16];
  std::snprintf(time_hex, sizeof time_hex, "%011llx",
                static_cast<unsigned long long>(NowMs()) & 0xFFFFFFFFFFFull);
  return "act_" + std::string(time_hex) + RandomHex(7).substr(0, 13);
}

Result<std::string> StoreDsn(const Policy& p) {
  if (!p.store_url.empty()) return p.store_url;
  const char* v = p.store_dsn_env.empty() ? nullptr : std::getenv(p.store_dsn_env.c_str());
  if (v == nullptr || *v == '\0') {
    return Status::FailedPrecondition("the policy's store_dsn_env names " + p.store_dsn_env +
                                      ", which is not set: set it to the PostgreSQL store's "
                                      "connection string");
  }
  return std::string(v);
}

namespace {

std::string LockFileFor(const Policy& p) {
  return p.store_path + ".locks";
}

}  // namespace

std::string Principal::Label() const {
  switch (role) {
    case Role::kAgent:
      return "agent:" + name;
    case Role::kApprover:
      return "approver:" + name;
    case Role::kOperator:
      return "operator";
  }
  return "unknown";
}

Gateway::Gateway(std::shared_ptr<const Policy> policy, std::unique_ptr<Store> store,
                 const GatewayOptions& options)
    : policy_(policy), options_(options), classifier_(policy), store_(std::move(store)) {}

namespace {

// Every file the policy names as a credential's source: dsn_file, password_file, and the
// file: values of headers (HTTP targets, MCP servers reached by url). Already absolute.
std::vector<std::string> CredentialFiles(const Policy& policy) {
  std::vector<std::string> files;
  for (const auto& [name, spec] : policy.targets) {
    const Json& f = spec.fields;
    for (const char* key : {"dsn_file", "password_file"}) {
      if (f.contains(key) && f[key].is_string() && !f[key].get_ref<const std::string&>().empty()) {
        files.push_back(f[key].get<std::string>());
      }
    }
    if (f.contains("headers") && f["headers"].is_object()) {
      for (const auto& [header, value] : f["headers"].items()) {
        if (value.is_string() && value.get_ref<const std::string&>().rfind("file:", 0) == 0) {
          files.push_back(value.get<std::string>().substr(5));
        }
      }
    }
  }
  return files;
}

// A target's connector configuration: its policy fields, plus what the gateway adds.
Result<ConnectorConfig> ConfigOfTarget(const Policy& policy, const std::string& target) {
  const TargetSpec* spec = policy.FindTarget(target);
  if (spec == nullptr) return Status::NotFound("unknown target '" + target + "'");
  ConnectorConfig config{spec->name, spec->kind, spec->fields};
  if (spec->kind == "shell") {
    // The sandbox keeps its layers, pre-images and journals beside the store, and must not
    // show a command airlock's own files: the store (with its WAL and lock files), that
    // state, and the policy.
    const std::string& store = policy.store_path;
    config.fields["state_dir"] = ShellStateRoot(policy) + "/" + spec->name;
    config.fields["hide_always"] = {store,
                                    store + "-wal",
                                    store + "-shm",
                                    store + "-journal",
                                    store + ".locks",
                                    JournalDir(policy),
                                    ShellStateRoot(policy),
                                    policy.source_path};
    // The files the policy reads credentials from: a command must not read what airlock
    // keeps from agents (an API key, a DSN with its password).
    for (const std::string& file : CredentialFiles(policy)) {
      config.fields["hide_always"].push_back(file);
    }
  }
  // An MCP server in a sandbox previews, commits and undoes its calls' file effects with its
  // shell target's sandbox and state.
  if (spec->kind == "mcp" && spec->fields.contains("sandbox") &&
      spec->fields["sandbox"].is_string() &&
      !spec->fields["sandbox"].get_ref<const std::string&>().empty()) {
    const std::string shell = spec->fields["sandbox"].get<std::string>();
    if (shell == target) return Status::Internal("an MCP server cannot be its own sandbox");
    ASSIGN_OR_RETURN(ConnectorConfig sandbox, ConfigOfTarget(policy, shell));
    config.fields["sandbox_target"] = {
        {"name", sandbox.name}, {"kind", sandbox.kind}, {"fields", sandbox.fields}};
  }
  return config;
}

// GatewayOptions::prestart_target: the shell target's connector, with its sandbox being
// built. Anything else, or any error, is nullptr: Submit then takes the usual path and
// reports the error itself.
std::unique_ptr<Connector> Prestarted(const Policy& policy, const GatewayOptions& options) {
  if (options.prestart_target.empty()) return nullptr;
  // Only a shell target: creating another kind's connector early could connect to its
  // server before the caller is known, and would gain nothing.
  const TargetSpec* spec = policy.FindTarget(options.prestart_target);
  if (spec == nullptr || spec->kind != "shell") return nullptr;
  auto config = ConfigOfTarget(policy, options.prestart_target);
  if (!config.ok()) return nullptr;
  auto connector = CreateConnector(*config);
  if (!connector.ok()) return nullptr;
  (*connector)->Prestart(options.prestart_args);
  return std::move(*connector);
}

}  // namespace

Result<std::unique_ptr<Gateway>> Gateway::Open(std::shared_ptr<const Policy> policy) {
  return Open(std::move(policy), GatewayOptions{});
}

Result<std::unique_ptr<Gateway>> Gateway::Open(std::shared_ptr<const Policy> policy,
                                               const GatewayOptions& options) {
  // A store is created on first use. But a missing store beside the files its use leaves
  // (its claim-lock file, its WAL) was deleted or moved: starting a fresh, empty history
  // there would silently lose every pending action, undo record and audit event.
  namespace fs = std::filesystem;
  std::error_code ec;
  if (policy->UsesPostgresStore()) {
    ASSIGN_OR_RETURN(std::string dsn, StoreDsn(*policy));
    // The local files (claim locks, sandbox layers) live where a SQLite store would.
    fs::create_directories(fs::path(policy->store_path).parent_path(), ec);
    if (ec) {
      return Status::IoError("creating " + fs::path(policy->store_path).parent_path().string() +
                             ": " + ec.message());
    }
    std::unique_ptr<Connector> prestarted = Prestarted(*policy, options);
    ASSIGN_OR_RETURN(auto store, OpenPgStore(dsn));
    std::unique_ptr<Gateway> g(new Gateway(std::move(policy), std::move(store), options));
    if (prestarted) g->connectors_[options.prestart_target] = std::move(prestarted);
    RETURN_IF_ERROR(g->Recover());
    ASSIGN_OR_RETURN(int expired, g->ExpireDue());
    (void)expired;
    return g;
  }
  if (!fs::exists(policy->store_path, ec)) {
    for (const std::string& trace : {LockFileFor(*policy), policy->store_path + "-wal"}) {
      if (fs::exists(trace, ec)) {
        return Status::NotFound("the airlock store " + policy->store_path + " is missing, but " +
                                trace + " shows it existed: restore the store, or remove " + trace +
                                " to start a new, empty history");
      }
    }
  }
  std::unique_ptr<Connector> prestarted = Prestarted(*policy, options);
  ASSIGN_OR_RETURN(auto store, OpenSqliteStore(policy->store_path));
  TraceMark("gateway: store open");
  std::unique_ptr<Gateway> g(new Gateway(std::move(policy), std::move(store), options));
  if (prestarted) g->connectors_[options.prestart_target] = std::move(prestarted);
  RETURN_IF_ERROR(g->Recover());
  TraceMark("gateway: recovered");
  ASSIGN_OR_RETURN(int expired, g->ExpireDue());
  (void)expired;
  TraceMark("gateway: expired");
  if (g->connectors_.count(options.prestart_target) != 0) {
    // The sandbox is still being built: the record of its outcome is compiled meanwhile
    // rather than after it (~0.1 ms of a CLI command's tail). An error here is the record's
    // to report, when it is made.
    (void)g->store_->PrepareRecordStatements();
    TraceMark("gateway: record statements prepared");
  }
  // The command journal, should the outcome be a read (FinishRead); opened while the
  // sandbox is built. If it cannot be, the store records the read.
  if (g->options_.journal_reads) {
    auto j = CommandJournal::Open(JournalDir(*g->policy_));
    if (j.ok()) {
      g->command_journal_ = std::move(*j);
    } else {
      std::fprintf(stderr, "airlock: no command journal (%s); a read is committed instead\n",
                   j.status().message().c_str());
    }
    TraceMark("gateway: read journal made");
  }
  return g;
}

Result<std::unique_ptr<Gateway>> Gateway::OpenWithStore(std::shared_ptr<const Policy> policy,
                                                        std::unique_ptr<Store> store) {
  return OpenWithStore(std::move(policy), std::move(store), GatewayOptions{});
}

Result<std::unique_ptr<Gateway>> Gateway::OpenWithStore(std::shared_ptr<const Policy> policy,
                                                        std::unique_ptr<Store> store,
                                                        const GatewayOptions& options) {
  std::unique_ptr<Gateway> g(new Gateway(std::move(policy), std::move(store), options));
  RETURN_IF_ERROR(g->Recover());
  ASSIGN_OR_RETURN(int expired, g->ExpireDue());
  (void)expired;
  return g;
}

// ---- authentication --------------------------------------------------------------------------

Result<Principal> Gateway::Authenticate(const std::optional<std::string>& token) const {
  if (!token || token->empty()) return Status::PermissionDenied("authentication failed");
  const std::string hash = Sha256Hex(*token);
  // Compare against every known hash without stopping at a match, so the time taken does
  // not reveal which principal (or whether any) matched.
  std::optional<Principal> found;
  for (const auto& a : policy_->agents) {
    if (ConstantTimeEquals(hash, a.token_sha256))
      found = Principal{Principal::Role::kAgent, a.name};
  }
  for (const auto& a : policy_->approvers) {
    if (ConstantTimeEquals(hash, a.token_sha256)) {
      found = Principal{Principal::Role::kApprover, a.name};
    }
  }
  if (!found) return Status::PermissionDenied("authentication failed");
  return *found;
}

Result<Principal> Gateway::AuthenticateApprover(const std::optional<std::string>& token,
                                                const std::string& operation,
                                                const std::string& id) {
  auto who = Authenticate(token);
  Json payload = {{"operation", operation}};
  if (!who.ok()) {
    RETURN_IF_ERROR(AuditOnly(id, "anonymous", "auth_failed", payload));
    return who.status();
  }
  if (who->role != Principal::Role::kApprover) {
    payload["why"] = "only approvers may " + operation;
    RETURN_IF_ERROR(AuditOnly(id, who->Label(), "denied", payload));
    return Status::PermissionDenied(who->Label() + " cannot " + operation + ": only approvers may");
  }
  return who;
}

// ---- store helpers ---------------------------------------------------------------------------

Status Gateway::Commit(const std::function<Status(StoreTxn&)>& fn) {
  if (options_.group_commit) return store_->TransactGroupedWait(fn);
  std::lock_guard<std::mutex> flushing(flush_mu_);
  std::vector<QueuedWrite> queued;
  {
    std::lock_guard<std::mutex> lock(queued_mu_);
    queued.swap(queued_);
  }
  // The staged reads (RecordMcpRead) are moved into the chain first: fn may change one, and
  // everything it writes comes after them. The queued read results ride along in this commit:
  // they cost no fsync of their own.
  bool ingest_failed = false;
  Status st = store_->Transact([&](StoreTxn& t) -> Status {
    Status ingested = t.IngestStaged().status();
    ingest_failed = !ingested.ok();
    RETURN_IF_ERROR(ingested);
    for (const QueuedWrite& q : queued) RETURN_IF_ERROR(q.write(t));
    return fn(t);
  });
  if (queued.empty() && !ingest_failed) return st;
  if (st.ok()) {
    QueuedWritesDone(queued, /*committed=*/true);
    return st;
  }
  // They must not cost this change its record: it is tried alone, after the staged reads
  // unless moving them was what failed (fn may concern one of them). If it then commits,
  // the rest was what failed: the result records are dropped (a read's result size is the
  // part a crash may lose too), and staged reads stay staged (committed) for the next try. If
  // not, the store is failing, and they wait for the next commit.
  Status alone = store_->Transact([&](StoreTxn& t) -> Status {
    if (!ingest_failed) RETURN_IF_ERROR(t.IngestStaged().status());
    return fn(t);
  });
  if (alone.ok()) {
    std::fprintf(
        stderr, "airlock: the result records of %zu read(s) could not be written%s: %s\n",
        queued.size(),
        ingest_failed ? ", and the staged reads could not be moved (they stay staged)" : "",
        st.message().c_str());
    QueuedWritesDone(queued, /*committed=*/false);
    return alone;
  }
  PutBack(std::move(queued));
  return alone;
}

void Gateway::QueuedWritesDone(const std::vector<QueuedWrite>& queued, bool committed) {
  unwritten_.fetch_sub(queued.size());
  for (const QueuedWrite& q : queued) {
    if (q.journaled) journal_->Done(q.journal_file, committed);
    if (!committed || !observer_) continue;
    if (q.journaled) observer_(*q.action, "read");
    observer_(*q.action, "read_result");
  }
}

Gateway::~Gateway() {
  if (flusher_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(flusher_mu_);
      flusher_stop_ = true;
    }
    flusher_cv_.notify_all();
    flusher_.join();
  }
  Status st = FlushReadResults();
  if (!st.ok()) {
    std::fprintf(stderr, "airlock: the result records of the last reads were not written: %s\n",
                 st.message().c_str());
  }
}

Status Gateway::FlushReadResults() {
  std::lock_guard<std::mutex> flushing(flush_mu_);
  std::vector<QueuedWrite> queued;
  {
    std::lock_guard<std::mutex> lock(queued_mu_);
    queued.swap(queued_);
  }
  const bool staged = staged_.exchange(0) > 0;
  if (queued.empty() && !staged) return Status::Ok();
  Status st = store_->Transact([&](StoreTxn& t) -> Status {
    RETURN_IF_ERROR(t.IngestStaged().status());
    for (const QueuedWrite& q : queued) RETURN_IF_ERROR(q.write(t));
    return Status::Ok();
  });
  if (st.ok()) {
    QueuedWritesDone(queued, /*committed=*/true);
    return st;
  }
  // One write the store refuses every time (an id it holds already) must not keep every
  // later read out of the chain: each is tried alone, and one that fails while another
  // commits is dropped (a journaled read's line stays for the next start). If two fail and
  // none commits, the store itself is failing: they all wait for the next try.
  std::vector<QueuedWrite> committed, failed, waiting;
  for (QueuedWrite& q : queued) {
    if (committed.empty() && failed.size() >= 2) {
      waiting.push_back(std::move(q));
      continue;
    }
    Status one = store_->Transact([&](StoreTxn& t) -> Status {
      RETURN_IF_ERROR(t.IngestStaged().status());
      return q.write(t);
    });
    (one.ok() ? committed : failed).push_back(std::move(q));
  }
  if (committed.empty()) {
    if (staged) staged_.fetch_add(1);  // still staged: the next flush tries again
    for (QueuedWrite& q : waiting) failed.push_back(std::move(q));
    PutBack(std::move(failed));
    return st;
  }
  QueuedWritesDone(committed, /*committed=*/true);
  QueuedWritesDone(failed, /*committed=*/false);
  if (!failed.empty()) {
    std::fprintf(stderr,
                 "airlock: %zu read record(s) could not be written and were dropped "
                 "(a journaled read's is written at the next start): %s\n",
                 failed.size(), st.message().c_str());
  }
  PutBack(std::move(waiting));
  return Status::Ok();
}

void Gateway::PutBack(std::vector<QueuedWrite> writes) {
  if (writes.empty()) return;
  // In front of what was queued meanwhile: the oldest stays first.
  std::lock_guard<std::mutex> lock(queued_mu_);
  queued_.insert(queued_.begin(), std::make_move_iterator(writes.begin()),
                 std::make_move_iterator(writes.end()));
}

void Gateway::FlushLoop() {
  std::unique_lock<std::mutex> lock(flusher_mu_);
  while (!flusher_stop_) {
    // Woken for a full batch (RecordJournaledRead), else a look four times a second.
    flusher_cv_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(
                                   1, std::min<int64_t>(options_.quiet_flush_ms / 4, 250))));
    if (flusher_stop_) break;
    int64_t oldest = 0;
    size_t waiting = 0;
    {
      std::lock_guard<std::mutex> q(queued_mu_);
      if (!queued_.empty()) oldest = queued_.front().queued_ms;
      waiting = queued_.size();
    }
    if (waiting < kReadResultBatch && (oldest == 0 || NowMs() - oldest < options_.quiet_flush_ms))
      continue;
    lock.unlock();
    Status st = FlushReadResults();
    if (!st.ok()) {
      std::fprintf(stderr, "airlock: the records of the last reads wait for the next commit: %s\n",
                   st.message().c_str());
    }
    lock.lock();
  }
}

void Gateway::RecordJournaledRead(const Action& action, const std::string& principal, int64_t at_ms,
                                  uint64_t journal_file) {
  auto kept = std::make_shared<const Action>(action);
  // Built when the batch is written, on the same thread, but not before the next call.
  auto write = [kept, principal, at_ms](StoreTxn& t) -> Status {
    RETURN_IF_ERROR(t.InsertAction(*kept));
    AuditEvent read;
    read.action_id = kept->id;
    read.principal = principal;
    read.event = "read";
    read.at_ms = at_ms;
    read.canonical_payload = CanonicalJson(DecisionPayload(*kept));
    RETURN_IF_ERROR(t.AppendAudit(std::move(read)).status());
    AuditEvent result;
    result.action_id = kept->id;
    result.principal = principal;
    result.event = "read_result";
    result.canonical_payload = CanonicalJson(Json{{"result", kept->result}});
    return t.AppendAudit(std::move(result)).status();
  };
  size_t waiting = 0;
  {
    std::lock_guard<std::mutex> lock(queued_mu_);
    QueuedWrite q{std::move(kept), std::move(write)};
    q.journaled = true;
    q.journal_file = journal_file;
    q.queued_ms = NowMs();
    queued_.push_back(std::move(q));
    waiting = queued_.size();
  }
  const size_t unwritten = unwritten_.fetch_add(1) + 1;
  {
    // A full batch is the flusher's to write, off this thread (which may be the one that
    // reads the next answer). Notified under its lock: never between its look and its wait.
    std::lock_guard<std::mutex> lock(flusher_mu_);
    if (!flusher_.joinable()) flusher_ = std::thread([this] { FlushLoop(); });
    if (waiting >= kReadResultBatch) flusher_cv_.notify_one();
  }
  // A flusher that cannot keep up (a store locked for seconds) is helped here, so that the
  // queue stays bounded.
  if (unwritten >= kMaxQueuedReads) {
    Status st = FlushReadResults();
    if (!st.ok()) {
      std::fprintf(stderr, "airlock: the records of the last reads wait for the next commit: %s\n",
                   st.message().c_str());
    }
  }
}

void Gateway::RecordReadResult(const Action& action, const std::string& principal) {
  Json payload = {{"result", action.result}};
  std::string canonical = CanonicalJson(payload);
  // One copy of the action, shared by the write and the observer.
  auto kept = std::make_shared<const Action>(action);
  auto write = [kept, principal, canonical](StoreTxn& t) -> Status {
    RETURN_IF_ERROR(t.UpdateAction(*kept));
    AuditEvent e;
    e.action_id = kept->id;
    e.principal = principal;
    e.event = "read_result";
    e.payload = nullptr;
    e.canonical_payload = canonical;
    return t.AppendAudit(std::move(e)).status();
  };
  if (options_.group_commit) {
    // The committer thread batches it with the next calls' records; nobody waits for it.
    (void)store_->TransactGrouped(std::move(write));
    return;
  }
  size_t waiting = 0;
  {
    std::lock_guard<std::mutex> lock(queued_mu_);
    QueuedWrite q{std::move(kept), std::move(write)};
    q.queued_ms = NowMs();
    queued_.push_back(std::move(q));
    waiting = queued_.size();
  }
  unwritten_.fetch_add(1);
  // The staged reads and their results reach the chain together, one commit per batch: the
  // commit costs about as much CPU as the records in it, so it is not made per call.
  if (waiting >= kReadResultBatch) {
    Status st = FlushReadResults();
    if (!st.ok()) {
      std::fprintf(stderr, "airlock: the records of the last reads wait for the next commit: %s\n",
                   st.message().c_str());
    }
  }
}

std::mutex& Gateway::TargetMutex(const std::string& target) {
  std::lock_guard<std::mutex> lock(target_mu_);
  auto& m = target_locks_[target];
  if (!m) m = std::make_unique<std::mutex>();
  return *m;
}

Status Gateway::Record(const Action& action, const std::string& event, const std::string& principal,
                       Json payload, bool insert) {
  // The payload is serialised once, outside the store's lock: a grouped commit may run this
  // closure twice (a savepoint retry), and the committer thread should only write.
  std::string canonical = CanonicalJson(payload);
  Status st = Commit([&](StoreTxn& t) -> Status {
    RETURN_IF_ERROR(insert ? t.InsertAction(action) : t.UpdateAction(action));
    AuditEvent e;
    e.action_id = action.id;
    e.principal = principal;
    e.event = event;
    e.payload = nullptr;  // canonical_payload is what the store writes and hashes
    e.canonical_payload = canonical;
    return t.AppendAudit(std::move(e)).status();
  });
  if (st.ok() && observer_) observer_(action, event);
  return st;
}

Status Gateway::AuditOnly(const std::string& action_id, const std::string& principal,
                          const std::string& event, Json payload) {
  return Commit([&](StoreTxn& t) -> Status {
    AuditEvent e;
    e.action_id = action_id;
    e.principal = principal;
    e.event = event;
    e.payload = payload;  // a copy: a grouped or retried commit runs this more than once
    return t.AppendAudit(std::move(e)).status();
  });
}

Result<Json> Gateway::CollectGarbage(int64_t older_than_s, bool dry_run) {
  // A blob is named by its record within seconds to minutes of being written or reused (a
  // command's preview when its action is recorded, a commit's pre-images when its undo is):
  // a blob younger than that may be one a record in the making is about to name, unseen by
  // the snapshot below. An hour is the least margin taken.
  if (older_than_s < kMinGcAgeSeconds) {
    return Status::InvalidArgument(
        "--older-than must be at least 1 hour: younger contents may "
        "belong to an action being recorded right now");
  }
  // What a record may still need, by shell target: an action that may still be committed
  // (its layer; an MCP call's held answer), or one that may still be rolled back, or whose
  // end a crash left open (its undo layer). The actions of a shell target are its own and
  // those of the MCP servers run in its sandbox.
  std::map<std::string, ShellLiveRecords> live;
  std::map<std::string, std::string> shell_of;  // target or MCP server -> shell target
  for (const auto& [name, spec] : policy_->targets) {
    if (spec.kind == "shell") {
      live[name];
      shell_of[name] = name;
    }
  }
  for (const auto& [name, spec] : policy_->targets) {
    if (spec.kind != "mcp" || !spec.fields.contains("sandbox") ||
        !spec.fields["sandbox"].is_string()) {
      continue;
    }
    const std::string shell = spec.fields["sandbox"].get<std::string>();
    if (live.count(shell) != 0) shell_of[name] = shell;
  }
  if (live.empty()) return Json{{"targets", Json::array()}, {"errors", Json::array()}};
  Status read = store_->Read([&](StoreTxn& t) -> Status {
    for (ActionStatus status :
         {ActionStatus::kPending, ActionStatus::kApplying, ActionStatus::kRollingBack,
          ActionStatus::kApplied, ActionStatus::kFailed}) {
      for (const auto& [target, shell] : shell_of) {
        ActionFilter f;
        f.status = status;
        f.target = target;
        f.limit = std::numeric_limits<int>::max();
        ASSIGN_OR_RETURN(std::vector<Action> actions, t.ListActions(f));
        for (const Action& a : actions) {
          auto it = live.find(shell);
          const Json& x = a.effect.extra;
          const bool may_commit =
              status == ActionStatus::kPending || status == ActionStatus::kApplying;
          if (may_commit && x.is_object()) {
            if (x.contains("layer") && x["layer"].is_string()) {
              it->second.layers.push_back(x["layer"].get<std::string>());
            }
            if (x.contains("held_answer") && x["held_answer"].is_string()) {
              it->second.held_answers.push_back(x["held_answer"].get<std::string>());
            }
          }
          if (status == ActionStatus::kPending) continue;  // no undo before the commit
          ASSIGN_OR_RETURN(std::optional<UndoRecord> undo, t.GetUndo(a.id));
          if (!undo || undo->kind != "shell") continue;
          auto data = ParseJson(undo->data);
          if (!data.ok() || !data->is_object() || !(*data)["layer"].is_string()) {
            return Status::Corruption("the undo record of " + a.id +
                                      " is not a shell undo; nothing was removed");
          }
          it->second.undo_layers.push_back((*data)["layer"].get<std::string>());
        }
      }
    }
    return Status::Ok();
  });
  RETURN_IF_ERROR(read);
  const int64_t cutoff_s = NowMs() / 1000 - older_than_s;
  Json out = {{"targets", Json::array()}, {"errors", Json::array()}};
  for (const auto& [name, records] : live) {
    ASSIGN_OR_RETURN(ConnectorConfig config, ConnectorConfigFor(name));
    auto report = CollectShellGarbage(config, records, cutoff_s, dry_run);
    if (report.ok()) {
      out["targets"].push_back(*report);
    } else {
      out["errors"].push_back({{"target", name}, {"error", report.status().message()}});
    }
  }
  return out;
}

Result<ConnectorConfig> Gateway::ConnectorConfigFor(const std::string& target) const {
  return ConfigOfTarget(*policy_, target);
}

Result<Connector*> Gateway::ConnectorFor(const std::string& target) {
  std::lock_guard<std::mutex> lock(connectors_mu_);
  auto it = connectors_.find(target);
  if (it != connectors_.end()) return it->second.get();
  ASSIGN_OR_RETURN(ConnectorConfig config, ConnectorConfigFor(target));
  ASSIGN_OR_RETURN(auto connector, CreateConnector(config));
  if (options_.keep_warm) connector->KeepWarm();
  Connector* raw = connector.get();
  connectors_[target] = std::move(connector);
  return raw;
}

Result<ClaimLock> Gateway::Claim(const std::string& action_id, bool wait) {
  ASSIGN_OR_RETURN(std::optional<std::function<void()>> held,
                   store_->ClaimAction(action_id, wait));
  if (held) return ClaimLock::Held(std::move(*held));
  return ClaimLock::Acquire(LockFileFor(*policy_), action_id, wait);
}

// ---- submit ----------------------------------------------------------------------------------

Outcome Gateway::Deny(Action action, const std::string& event, const std::string& why,
                      const Principal& who) {
  action.status = ActionStatus::kDenied;
  action.error = why;
  if (action.reasons.empty()) action.reasons.push_back(why);
  Status st = Record(action, event, who.Label(), DecisionPayload(action), /*insert=*/true);
  if (!st.ok()) return {st.Annotate("recording the denial"), action};
  return {Status::Ok(), action};
}

Outcome Gateway::Fail(Action action, bool insert, const Status& why, const Principal& who) {
  action.status = ActionStatus::kFailed;
  action.error = why.message();
  action.error_code = StatusCodeSlug(why.code());
  Status st = Record(action, "failed", who.Label(), DecisionPayload(action), insert);
  return {st.ok() ? why : st, action};
}

Outcome Gateway::Submit(const std::optional<std::string>& token, const SubmitRequest& request) {
  TraceMark("gateway: submit");
  // 1. authenticate
  auto who = Authenticate(token);
  if (!who.ok()) {
    Status st = AuditOnly("", "anonymous", "auth_failed",
                          {{"operation", "submit"}, {"request", RequestJson(request)}});
    if (!st.ok()) return {st.Annotate("audit write failed"), std::nullopt};
    return {who.status(), std::nullopt};
  }
  if (who->role != Principal::Role::kAgent) {
    Status st = AuditOnly("", who->Label(), "denied",
                          {{"operation", "submit"},
                           {"why", "only agents submit actions"},
                           {"request", RequestJson(request)}});
    if (!st.ok()) return {st.Annotate("audit write failed"), std::nullopt};
    return {Status::PermissionDenied(who->Label() + " cannot submit actions: only agents may"),
            std::nullopt};
  }

  Action a = NewAction(*who, request);

  if (!request.idempotency_key.empty()) {
    Status bad = CheckIdempotencyKey(request.idempotency_key);
    if (!bad.ok()) return {bad, std::nullopt};
    a.id = IdempotentActionId(who->name, request.idempotency_key);
    std::optional<Action> earlier;
    Status st = store_->Read([&](StoreTxn& t) -> Status {
      ASSIGN_OR_RETURN(earlier, t.GetAction(a.id));
      return Status::Ok();
    });
    if (!st.ok()) return {st.Annotate("looking up the idempotency key"), std::nullopt};
    if (earlier) {
      if (earlier->target != a.target || earlier->kind != a.kind || earlier->args != a.args) {
        return {Status::InvalidArgument("idempotency_key was already used for a different "
                                        "action (" + earlier->id + "); nothing was done"),
                std::nullopt};
      }
      // A retry: the first try's action, as it stands now. Nothing runs again.
      Status audited = AuditOnly(a.id, who->Label(), "retried",
                                 {{"idempotency_key", request.idempotency_key},
                                  {"status", ActionStatusName(earlier->status)}});
      if (!audited.ok()) return {audited.Annotate("audit write failed"), std::nullopt};
      return {Status::Ok(), earlier};
    }
  }

  // 2. scope
  const TargetSpec* spec = policy_->FindTarget(request.target);
  if (spec == nullptr) return Deny(a, "denied", "unknown target '" + request.target + "'", *who);
  const AgentSpec* agent = policy_->FindAgent(who->name);
  const bool in_scope =
      agent != nullptr &&
      (spec->kind == "mcp"
           ? AgentMayCallTool(*agent, request.target, McpToolName(request.args))
           : std::find(agent->scopes.begin(), agent->scopes.end(), request.target) !=
                 agent->scopes.end());
  if (!in_scope && spec->kind == "mcp") {
    return Deny(a, "denied",
                "tool '" + McpToolName(request.args) + "' on MCP server '" + request.target +
                    "' is not in the scopes of agent '" + who->name + "'",
                *who);
  }
  if (!in_scope) {
    return Deny(a, "denied",
                "target '" + request.target + "' is not in the scopes of agent '" + who->name + "'",
                *who);
  }
  if (!KindFits(request.kind, spec->kind)) {
    return Fail(std::move(a), /*insert=*/true,
                Status::InvalidArgument("target '" + request.target + "' is a " + spec->kind +
                                        " target; it does not take " + request.kind + " actions"),
                *who);
  }

  // The read fast path: a plain read needs none of the serialisation below (it changes
  // nothing, counts against no limit, and its effect is empty whatever runs beside it), so
  // reads of one target run in parallel. Anything the connector cannot show to be a read, or
  // that the policy does not classify read, takes the full path (a read run twice changes
  // nothing).
  if (!IsOutbound(request.kind)) {
    auto connector = ConnectorFor(request.target);
    std::optional<DryRunResult> fast =
        connector.ok() ? (*connector)->TryRead(request.args) : std::nullopt;
    if (fast) {
      Classification cls = classifier_.Classify(a.agent, a.target, fast->effect);
      if (cls.risk == Risk::kRead) {
        a.effect = std::move(fast->effect);
        a.risk = cls.risk;
        a.reasons = std::move(cls.reasons);
        return FinishRead(std::move(a), std::move(*fast), *who);
      }
    }
  }

  // Submissions on one target are decided one at a time: a rate limit counts the writes
  // recorded before this one, and a command's preview is taken against the workspace as the
  // previous commit left it. A read lets go before its (grouped) audit write.
  std::unique_lock<std::mutex> target_lock(TargetMutex(request.target));

  // 3. dry-run in the sandbox. Any error here fails closed: nothing runs for real.
  TraceMark("gateway: authenticated, in scope");
  auto connector = ConnectorFor(request.target);
  TraceMark("gateway: connector");
  // A command on a `network: proxy` target makes its requests through this gate while it
  // runs; each is decided and recorded as its own http action.
  GatewayEgressGate egress(this, *who, a.id, request.target);
  Result<DryRunResult> dry = connector.ok() ? (*connector)->DryRunWithEgress(request.args, &egress)
                                            : Result<DryRunResult>(connector.status());
  // A connector that refuses the action outright (an HTTP path outside the target's allow
  // list) denies it; any other error fails it.
  if (!dry.ok() && dry.status().code() == StatusCode::kPermissionDenied) {
    return Deny(std::move(a), "denied", dry.status().message(), *who);
  }
  if (!dry.ok()) return Fail(std::move(a), /*insert=*/true, dry.status(), *who);
  TraceMark("gateway: dry run");
  a.effect = std::move(dry->effect);

  // 4. classify by the observed effect
  Classification cls = classifier_.Classify(a.agent, a.target, a.effect);
  a.risk = cls.risk;
  a.reasons = std::move(cls.reasons);
  if (request.read_only && (!a.effect.IsRead() || IsOutbound(a.kind))) {
    a.reasons.push_back("only a read was asked for");
    return Deny(a, "denied",
                "only a read was asked for (sql_query), and this would change something: " +
                    (a.reasons.size() > 1 ? a.reasons.front() : std::string("a write")),
                *who);
  }
  // A tool call cannot be previewed by running it: even a read one runs only in apply.
  if (a.risk == Risk::kRead && !IsOutbound(a.kind)) {
    target_lock.unlock();
    return FinishRead(std::move(a), std::move(*dry), *who);
  }
  for (const auto& t : a.effect.tables) {
    if (!t.has_primary_key) a.reversible = false;
  }
  // Approvers see it before they vote: a tool call, a request and a sent message cannot be
  // undone.
  if (IsOutbound(a.kind) || a.kind == "mail") a.reversible = false;
  a.quorum = policy_->approvals.QuorumFor(a.risk);

  // 5. limits and breakers
  Status limits = ApplyLimits(&a);
  if (!limits.ok()) return Deny(a, "denied", "could not check limits: " + limits.message(), *who);
  if (a.status == ActionStatus::kDenied) return Deny(a, "denied", a.error, *who);

  // 6. decide
  if (policy_->mode == PolicyMode::kDryRun) {
    a.dry_run = true;
    a.would_status = a.quorum > 0 ? "pending" : "applied";
    return Deny(a, "denied",
                "mode: dry-run: previewed, classified and audited only; nothing was "
                "applied",
                *who);
  }
  if (a.quorum > 0) {
    a.status = ActionStatus::kPending;
    a.expires_ms = a.created_ms + policy_->approvals.timeout_ms;
    Status st = Record(a, "submitted", who->Label(), DecisionPayload(a), true);
    if (!st.ok()) return {st.Annotate("recording the pending action"), std::nullopt};
    return {Status::Ok(), a};
  }
  if (IsOutbound(a.kind) && a.risk == Risk::kRead) {
    return McpRead(std::move(a), *who, target_lock);
  }
  auto lock = Claim(a.id, /*wait=*/true);
  if (!lock.ok()) return Deny(a, "denied", lock.status().message(), *who);
  a.status = ActionStatus::kApplying;
  // A command's output comes from its sandboxed run (the commit does not re-run it).
  if (a.kind == "shell") a.result = dry->result;
  Status st = Record(a, "submitted", who->Label(), DecisionPayload(a), true);
  if (!st.ok()) return {st.Annotate("recording the action"), std::nullopt};
  // A tool call may take long (a build, a long query). The limits counted it when it was
  // recorded above, and its effect is its arguments, so the next call need not wait for it.
  if (IsOutbound(a.kind)) target_lock.unlock();
  return ApplyClaimed(std::move(a), *who);
}

Action Gateway::NewAction(const Principal& who, SubmitRequest request) {
  Action a;
  a.id = NewActionId();
  a.created_ms = a.updated_ms = NowMs();
  a.agent = who.name;
  a.target = std::move(request.target);
  a.kind = std::move(request.kind);
  a.args = std::move(request.args);
  return a;
}

namespace {

// A read as it is recorded: it "ran" (its rows come from the sandbox or the read fast path).
// The store keeps what was read (columns, how many rows), not the rows themselves: the
// caller gets them once, and the store does not become a copy of production data.
void ReadAsRecorded(Action* a, const DryRunResult& dry) {
  a->status = ActionStatus::kApplied;
  a->result = ReadSummary(dry.result);
  // Nor does it keep a command's output (the effect shows approvers the head of it).
  a->effect.extra.erase("stdout_head");
  a->effect.extra.erase("stderr_head");
}

}  // namespace

bool Gateway::SubmitReadPrepared(
    const std::optional<std::string>& token, const SubmitRequest& request,
    const std::function<ReadFinish(const Outcome&, std::string)>& prepare) {
  // Everything below only looks: a request that is not plainly an agent's read of a target
  // in its scopes goes back to the caller untouched, for Submit to decide and audit.
  if (!options_.group_commit || !request.idempotency_key.empty() || request.read_only ||
      IsOutbound(request.kind)) {
    return false;
  }
  auto who = Authenticate(token);
  if (!who.ok() || who->role != Principal::Role::kAgent) return false;
  const TargetSpec* spec = policy_->FindTarget(request.target);
  if (spec == nullptr || !KindFits(request.kind, spec->kind)) return false;
  const AgentSpec* agent = policy_->FindAgent(who->name);
  if (agent == nullptr ||
      std::find(agent->scopes.begin(), agent->scopes.end(), request.target) == agent->scopes.end()) {
    return false;
  }
  auto connector = ConnectorFor(request.target);
  if (!connector.ok()) return false;
  std::optional<DryRunResult> fast = (*connector)->TryRead(request.args);
  if (!fast) return false;
  Classification cls = classifier_.Classify(who->name, request.target, fast->effect);
  if (cls.risk != Risk::kRead) return false;

  // What the committer needs, all made here: the committer is the one thread that every
  // grouped record waits for, so it only binds, hashes the chain and sends. The closure may
  // run twice (a savepoint retry), so it only reads these.
  struct Read {
    Action action;
    std::string principal;
    std::string body;     // the action row's body (StoredActionBody)
    std::string payload;  // the audit event's canonical payload
    ReadFinish finish;
  };
  auto read = std::make_shared<Read>();
  read->action = NewAction(*who, request);
  read->action.effect = std::move(fast->effect);
  read->action.risk = cls.risk;
  read->action.reasons = std::move(cls.reasons);
  ReadAsRecorded(&read->action, *fast);
  read->principal = who->Label();
  // The event's payload, the row's body (without the votes and the approval count) and the
  // reply (with the rows), written as text from the action in one pass: no JSON tree is
  // built, and the values they share (the effect, the arguments) are written once.
  std::string reply;
  ActionJsonTexts(read->action,
                  {{IsDecisionPayloadKey, nullptr, &read->payload},  // CanonicalDecisionPayload
                   {IsStoredBodyKey, nullptr, &read->body},          // StoredActionBody
                   {[](std::string_view) { return true; }, &fast->result, &reply}});
  AddWouldStatus(read->action, &read->payload);
  // The action as it is recorded, lent to `prepare` (not copied), and the reply's text.
  Outcome recorded{Status::Ok(), std::move(read->action)};
  read->finish = prepare(recorded, std::move(reply));
  read->action = std::move(*recorded.action);
  store_->TransactGroupedAsync(
      [read](StoreTxn& t) -> Status {
        RETURN_IF_ERROR(t.InsertAction(read->action, read->body));
        AuditEvent e;
        e.action_id = read->action.id;
        e.principal = read->principal;
        e.event = "read";
        e.payload = nullptr;  // canonical_payload is what the store writes and hashes
        e.canonical_payload = read->payload;
        return t.AppendAudit(std::move(e)).status();
      },
      [this, read](Status st) mutable {
        if (!read) return;  // called once (GroupCommitQueue); a second call finds nothing
        // The store has dropped the closure above, so `read` holds the last reference; the
        // finish takes it (GroupedWork).
        ReadFinish finish = std::exchange(read->finish, nullptr);
        // Fail closed: the rows go out only with a durable record of their read.
        if (!st.ok()) {
          if (finish)
            finish(st.Annotate("audit write failed; the result is withheld"), std::move(read));
          return;
        }
        if (observer_) observer_(read->action, "read");
        if (finish) finish(Status::Ok(), std::move(read));
      });
  return true;
}

Outcome Gateway::FinishRead(Action a, DryRunResult dry, const Principal& who) {
  ReadAsRecorded(&a, dry);
  if (command_journal_ && a.kind == "shell" && !observer_) {
    // One synced line instead of a store commit and the checkpoint it would cost at the
    // close: a later start writes the record (WriteDeadReadJournals).
    Status journaled =
        command_journal_->Append(JournalLine(a, who.Label(), NowMs(), /*full=*/true));
    if (journaled.ok()) {
      TraceMark("gateway: read journaled");
      a.result = std::move(dry.result);
      return {Status::Ok(), a};
    }
    std::fprintf(stderr, "airlock: %s; the read is committed to the store instead\n",
                 journaled.message().c_str());
  }
  Status st = Record(a, "read", who.Label(), DecisionPayload(a), true);
  TraceMark("gateway: read recorded");
  if (!st.ok()) return {st.Annotate("audit write failed; the result is withheld"), std::nullopt};
  a.result = std::move(dry.result);
  return {Status::Ok(), a};
}

// A tool call the policy marks read. The request goes out at once, and the action with its
// `read` event and full arguments is committed while the server works on it (the connector
// runs the record once the request is sent): the answer is handed back only once that
// record is durable, and withheld if it fails. The fsync thus hides behind the round trip.
// The answer's size and shape follow in a `read_result` event that does not hold up the
// reply (RecordReadResult). A crash between the two leaves an applied read with no result
// (null): the call was made, its answer's size is unknown; recovery leaves it so.
// An HTTP read keeps the older order: made first, then recorded once with its result.
Outcome Gateway::McpRead(Action a, const Principal& who, std::unique_lock<std::mutex>& target_lock) {
  target_lock.unlock();
  if (a.kind == "mcp") return OverlappedMcpRead(std::move(a), who);
  auto connector = ConnectorFor(a.target);
  Result<ApplyOutcome> out = connector.ok()
                                 ? (*connector)->Apply(a.id, a.args, a.effect,
                                                       [](const UndoRecord&) { return Status::Ok(); })
                                 : Result<ApplyOutcome>(connector.status());
  a.updated_ms = NowMs();
  if (!out.ok()) return Fail(std::move(a), /*insert=*/true, out.status(), who);
  if (!out->effect_matched) {
    return Fail(std::move(a), /*insert=*/true,
                Status::Internal("the call changed between its preview and its run"), who);
  }
  a.status = ActionStatus::kApplied;
  // An HTTP response's shape is kept flat ({status, body_bytes, ...}), as for a write.
  a.result = a.kind == "http" ? HttpResultSummary(out->result)
                              : Json{{"summary", McpResultSummary(out->result)}};
  Json payload = DecisionPayload(a);
  payload["result"] = a.result;  // the answer's size and shape, never its content
  Status st = Record(a, "read", who.Label(), std::move(payload), /*insert=*/true);
  if (!st.ok()) return {st.Annotate("audit write failed; the result is withheld"), std::nullopt};
  if (a.kind == "http") {
    a.result = out->result;  // the response, capped by the connector
  } else {
    a.result = {{"summary", a.result["summary"]}, {"tool_result", out->result}};
  }
  return {Status::Ok(), a};
}

Outcome Gateway::OverlappedMcpRead(Action a, const Principal& who) {
  auto connector = ConnectorFor(a.target);
  if (!connector.ok()) return Fail(std::move(a), /*insert=*/true, connector.status(), who);
  a.status = ActionStatus::kApplied;  // recorded once the request has left: it was made
  a.result = nullptr;                 // unknown until the answer is in
  const McpServerSpec* server = policy_->FindMcpServer(a.target);
  McpReadTicket ticket{std::move(a), who, server != nullptr && server->sync_reads};
  std::optional<Status> recorded;  // set once the connector ran the record
  auto record = [&]() -> Status {
    recorded = RecordMcpRead(ticket);
    return *recorded;
  };
  Result<ApplyOutcome> out = (*connector)->ApplyRead(ticket.action.id, ticket.action.args,
                                                     ticket.action.effect, record);
  if (!recorded) {
    // Never sent: recorded as failed, as before any call.
    Action& b = ticket.action;
    b.updated_ms = NowMs();
    if (!out.ok()) return Fail(std::move(b), /*insert=*/true, out.status(), who);
    if (!out->effect_matched) {
      return Fail(std::move(b), /*insert=*/true,
                  Status::Internal("the call changed between its preview and its run"), who);
    }
    // Fail closed: an answer with no durable record is never handed back.
    return Fail(std::move(b), /*insert=*/true,
                Status::Internal("the read was not recorded before its answer; withheld"), who);
  }
  Result<Json> answer = out.ok() ? Result<Json>(std::move(out->result)) : Result<Json>(out.status());
  return FinishMcpRead(std::move(ticket), *recorded, std::move(answer));
}

std::optional<Gateway::McpReadTicket> Gateway::BeginMcpRead(const std::optional<std::string>& token,
                                                            SubmitRequest request) {
  // Everything here only looks, as Submit would up to its decision; anything else goes back
  // to the caller untouched, for Submit to decide and audit.
  if (request.kind != "mcp" || !request.idempotency_key.empty() || request.read_only ||
      policy_->mode == PolicyMode::kDryRun) {
    return std::nullopt;
  }
  auto who = Authenticate(token);
  if (!who.ok() || who->role != Principal::Role::kAgent) return std::nullopt;
  const TargetSpec* spec = policy_->FindTarget(request.target);
  if (spec == nullptr || !KindFits(request.kind, spec->kind)) return std::nullopt;
  // A call into a sandboxed server runs in its dry-run, one at a time: Submit's path.
  const McpServerSpec* server = policy_->FindMcpServer(request.target);
  if (server == nullptr || !server->sandbox.empty()) return std::nullopt;
  const AgentSpec* agent = policy_->FindAgent(who->name);
  if (agent == nullptr || !AgentMayCallTool(*agent, request.target, McpToolName(request.args))) {
    return std::nullopt;
  }
  auto connector = ConnectorFor(request.target);
  if (!connector.ok()) return std::nullopt;
  // The call's effect, as the connector's DryRun gives it (no I/O), but without its hash: the
  // decision does not need it, and RecordMcpRead computes it once the request has left.
  Result<Effect> effect = McpCallEffectUnhashed(request.target, request.args);
  if (!effect.ok()) return std::nullopt;
  Action a = NewAction(*who, std::move(request));  // `request` is not used below
  a.effect = std::move(*effect);
  Classification cls = classifier_.Classify(a.agent, a.target, a.effect);
  if (cls.risk != Risk::kRead) return std::nullopt;
  a.risk = cls.risk;
  a.reasons = std::move(cls.reasons);
  a.reversible = false;  // a tool call cannot be undone
  a.quorum = policy_->approvals.QuorumFor(a.risk);
  // An open breaker, or a limit that asks for approval or denies: Submit's path.
  if (!ApplyLimits(&a).ok() || a.status == ActionStatus::kDenied || a.quorum > 0) {
    return std::nullopt;
  }
  a.status = ActionStatus::kApplied;  // recorded once the request has left: it was made
  a.result = nullptr;                 // unknown until the answer is in
  return McpReadTicket{std::move(a), *who, server->sync_reads};
}

Status Gateway::RecordMcpRead(McpReadTicket& ticket) {
  HashMcpCallEffect(&ticket.action.effect);  // left for now by BeginMcpRead
  CrashPoint("mcp_read_sent");
  if (options_.group_commit) {
    Status st = Record(ticket.action, "read", ticket.who.Label(), DecisionPayload(ticket.action),
                       /*insert=*/true);
    if (st.ok()) CrashPoint("mcp_read_recorded");
    return st;
  }
  // Journaled unless the server says `sync_reads: true`: one line, in the operating system
  // when this returns, so a crash or kill of airlock loses nothing; the store's record is
  // queued once the reply is out (FinishMcpRead) and written with the next batch (32 reads,
  // a quiet second, any other commit), one synced commit each, so a power cut can lose the
  // records of the reads answered in the last second or so. The staged commit it replaces
  // cost ~80 us of CPU per call while the server worked, on two CPUs shared with the client
  // and the server; waiting for the disk, ~300-400 us a call on this project's machines, more
  // than the server's whole answer. A call that may write always waits. So does a read while
  // the store has not taken the last batches (JournalBacklogged): it fails closed again.
  if (!ticket.sync_record && !JournalBacklogged()) {
    if (ReadJournal* journal = Journal()) {
      ticket.at_ms = NowMs();
      ASSIGN_OR_RETURN(ticket.journal_file,
                       journal->Append(ticket.action, ticket.who.Label(), ticket.at_ms));
      ticket.journaled = true;
      CrashPoint("mcp_read_recorded");
      return Status::Ok();
    }
  }
  return StageMcpRead(ticket);
}

// Staged: a staged record is one page where the full one is seven. It reaches actions and
// the chain with the next commit, the next batch of read results, the session's end, or any
// airlock process's start (Recover). Unsynced unless `sync_reads`.
Status Gateway::StageMcpRead(McpReadTicket& ticket) {
  AuditEvent e;
  e.action_id = ticket.action.id;
  e.principal = ticket.who.Label();
  e.event = "read";
  e.at_ms = ticket.journaled ? ticket.at_ms : NowMs();
  e.canonical_payload = CanonicalJson(DecisionPayload(ticket.action));
  auto stage = [&](StoreTxn& t) -> Status { return t.StageRecord(ticket.action, e); };
  Status st = ticket.sync_record ? store_->Transact(stage) : store_->TransactUnsynced(stage);
  if (!st.ok()) return st;
  staged_.fetch_add(1);
  if (observer_) observer_(ticket.action, "read");
  if (!ticket.journaled) CrashPoint("mcp_read_recorded");
  return st;
}

bool Gateway::JournalBacklogged() {
  // A store that has not taken the last batches (locked, failing): new reads are committed
  // before their answers again, so that a failing store withholds them (fail closed) and the
  // memory and the journal stop growing.
  // Counted from queueing to commit or drop: a batch being written (out of queued_ meanwhile)
  // is still waiting.
  return unwritten_.load() >= kMaxQueuedReads;
}

ReadJournal* Gateway::Journal() {
  std::lock_guard<std::mutex> lock(journal_mu_);
  if (journal_ && journal_->broken()) return nullptr;
  if (!journal_tried_) {
    journal_tried_ = true;
    // A PostgreSQL store is shared by instances on other hosts, and this host's disk may not
    // outlive this process (a container's): its reads are committed there before the reply.
    if (!policy_->store_path.empty() && !policy_->UsesPostgresStore()) {
      auto j = ReadJournal::Create(JournalDir(*policy_));
      if (j.ok()) {
        journal_ = std::move(*j);
      } else {
        std::fprintf(stderr,
                     "airlock: no read journal (%s); read calls are committed to the "
                     "store before their answer\n",
                     j.status().message().c_str());
      }
    }
  }
  return journal_.get();
}

Outcome Gateway::FinishMcpRead(McpReadTicket ticket, const Status& recorded,
                               Result<Json> answer) {
  // A journaled record goes to the store now that the reply is out (or about to be). If it
  // cannot, the line stays in the journal, and the next airlock process's start writes it.
  if (ticket.journaled && recorded.ok() && answer.ok()) {
    // The common case: the whole record waits for the next batch (the journal holds it).
    Action& a = ticket.action;
    a.updated_ms = NowMs();
    a.result = Json{{"summary", McpResultSummary(*answer)}};
    RecordJournaledRead(a, ticket.who.Label(), ticket.at_ms, ticket.journal_file);
    a.result = {{"summary", a.result["summary"]}, {"tool_result", std::move(*answer)}};
    return {Status::Ok(), std::move(a)};
  }
  bool in_store = true;
  if (ticket.journaled) {
    Status staged = StageMcpRead(ticket);
    in_store = staged.ok();
    if (!in_store) {
      std::fprintf(stderr,
                   "airlock: the record of read %s stays in the journal %s until the "
                   "next start: %s\n",
                   ticket.action.id.c_str(), journal_->path().c_str(), staged.message().c_str());
    }
    journal_->Done(ticket.journal_file, in_store);
  }
  // The record's sync, now that the reply is out or about to be: started earlier, its system
  // calls and wake-ups would compete for the CPU with the call itself.
  if (!ticket.sync_record) store_->StartSync();
  Action& a = ticket.action;
  a.updated_ms = NowMs();
  // Fail closed: the answer goes out only with a committed record of the call (synced to
  // disk too with sync_reads; else right after the reply, see RecordMcpRead).
  if (!recorded.ok()) {
    return {recorded.Annotate("audit write failed; the result is withheld"), std::nullopt};
  }
  if (!answer.ok()) return Fail(std::move(a), /*insert=*/!in_store, answer.status(), ticket.who);
  a.result = Json{{"summary", McpResultSummary(*answer)}};
  // Its result record needs the action in the store: without it, the size is not kept.
  if (in_store) RecordReadResult(a, ticket.who.Label());
  a.result = {{"summary", a.result["summary"]}, {"tool_result", std::move(*answer)}};
  return {Status::Ok(), std::move(a)};
}

// ---- egress (network: proxy) ----------------------------------------------------------------

EgressDecision Gateway::DecideEgress(const Principal& who, const std::string& exec_id,
                                     const std::string& target, const EgressRequest& r,
                                     Action* started, ClaimLock* claim) {
  Action a;
  a.id = NewActionId();
  // The claim is taken before the action is recorded as applying. Its byte of the lock file
  // is chosen by the id: a busy byte (another live action) gets a fresh id rather than a wait
  // behind a tunnel that may stay open as long as the command runs.
  Result<ClaimLock> lock = Status::Internal("no claim");
  for (int i = 0; i < 16 && !lock.ok(); ++i) {
    if (i > 0) a.id = NewActionId();
    lock = Claim(a.id, /*wait=*/false);
  }
  a.created_ms = a.updated_ms = NowMs();
  a.agent = who.name;
  a.target = target;
  a.kind = "http";
  a.reversible = false;
  a.args = {
      {"method", r.method}, {"url", r.url}, {"via", "egress proxy"}, {"exec_action", exec_id}};
  const bool read = r.method == "GET" || r.method == "HEAD";
  a.effect.kind = "http";
  a.effect.extra = {{"method", r.method},
                    {"url", r.url},
                    {"host", r.host},
                    {"port", r.port},
                    {"path", r.path},
                    {"body", r.body},
                    {"body_bytes", r.body_bytes},
                    {"tunnel", r.method == "CONNECT"},
                    {"via", "egress proxy"},
                    {"exec_action", exec_id},
                    {"irreversible", !read}};
  a.effect.effect_hash = Sha256Hex(CanonicalJson(
      Json{{"method", r.method}, {"url", r.url}, {"body", r.body}, {"body_bytes", r.body_bytes}}));
  EgressDecision d;
  d.action_id = a.id;
  auto deny = [&](const std::string& why) {
    d.allowed = false;
    d.reason = why;
    if (!Deny(a, "denied", why, who).status.ok()) d.action_id.clear();
    return d;
  };
  if (!r.refused.empty()) return deny(r.refused);
  Classification cls = classifier_.Classify(a.agent, a.target, a.effect);
  a.risk = cls.risk;
  a.reasons = std::move(cls.reasons);
  a.quorum = policy_->approvals.QuorumFor(a.risk);
  // As in Submit: limits and breakers count writes; a read is never held back by them.
  if (a.risk != Risk::kRead) {
    Status limits = ApplyLimits(&a);
    if (!limits.ok()) return deny("could not check limits: " + limits.message());
    if (a.status == ActionStatus::kDenied) return deny(a.error);
  }
  if (policy_->mode == PolicyMode::kDryRun) {
    a.dry_run = true;
    a.would_status = a.quorum > 0 ? "pending" : "applied";
    return deny("mode: dry-run: previewed, classified and audited only; nothing was sent");
  }
  if (a.quorum > 0) {
    // The command is running now and its one run is the one observed: holding it open for
    // a vote would tie the sandbox to an approver. So the command gets its answer now (403),
    // and the request is held as a pending action: an approval sends exactly it, once, from
    // airlock, as an http target's apply would. What airlock cannot send again as previewed
    // (a TLS tunnel, a body that is not JSON) is refused instead.
    const std::string why = std::string(RiskName(a.risk)) + ": " +
                            (a.reasons.empty() ? std::string("policy") : a.reasons.back());
    if (r.method == "CONNECT") {
      return deny("needs approval (" + why + "); an HTTPS tunnel cannot be held for a vote "
                  "and sent later, so it was not opened (use an http target for requests "
                  "that need approval)");
    }
    if (r.body_bytes > 0 && r.body.is_null()) {
      return deny("needs approval (" + why + "); only a JSON body can be held for a vote and "
                  "sent later, so it was not sent");
    }
    if (r.body_bytes > 0) a.args["json"] = r.body;
    a.status = ActionStatus::kPending;
    a.expires_ms = a.created_ms + policy_->approvals.timeout_ms;
    Status st = Record(a, "submitted", who.Label(), DecisionPayload(a), /*insert=*/true);
    d.allowed = false;
    if (!st.ok()) {
      d.action_id.clear();
      d.reason = "needs approval (" + why + "), and it could not be recorded: not sent";
      return d;
    }
    d.reason = "needs approval (" + why + "): held as " + a.id + "; once approved (airlock "
               "approve " + a.id + "), airlock sends it, once; this command gets no answer "
               "from the server";
    return d;
  }
  if (!lock.ok()) return deny("could not claim the request: " + lock.status().message());
  a.status = ActionStatus::kApplying;
  Status st = Record(a, "submitted", who.Label(), DecisionPayload(a), /*insert=*/true);
  if (!st.ok()) {
    d.action_id.clear();
    d.reason = "could not record the request, so it was not sent: " + st.message();
    return d;
  }
  *started = a;
  *claim = std::move(*lock);
  d.allowed = true;
  return d;
}

void Gateway::FinishEgress(Action a, const Principal& who, const Status& sent, const Json& result) {
  a.updated_ms = NowMs();
  a.result = result;
  if (!sent.ok()) {
    (void)Fail(std::move(a), /*insert=*/false, sent, who);
    return;
  }
  a.status = ActionStatus::kApplied;
  // If this write fails the action stays `applying`; recovery records an http action in
  // that state as an unknown outcome, and nothing ever resends it.
  Status st = Record(a, "applied", who.Label(),
                     {{"effect_hash", a.effect.effect_hash},
                      {"result", result},
                      {"reversible", false},
                      {"undo_note", "an HTTP request that was sent cannot be undone by airlock"}});
  (void)st;
}

Status Gateway::ApplyRecipientLimits(Action* a) {
  const int64_t n = RecipientCount(a->effect);
  const TargetSpec* spec = policy_->FindTarget(a->target);
  if (spec != nullptr && spec->fields.contains("max_recipients") &&
      spec->fields["max_recipients"].is_number_integer() &&
      n > spec->fields["max_recipients"].get<int64_t>()) {
    a->status = ActionStatus::kDenied;
    a->error = FormatCount(n) + " recipients, over the target's max_recipients of " +
               FormatCount(spec->fields["max_recipients"].get<int64_t>());
    a->reasons.push_back(a->error);
    return Status::Ok();
  }
  for (const Limit& l : policy_->limits) {
    if (!LimitMatches(l, a->agent, a->target)) continue;
    const std::string where = " (limit at " + LimitLocation(*policy_, l) + ")";
    if (l.max_recipients && n > *l.max_recipients) {
      a->status = ActionStatus::kDenied;
      a->error = FormatCount(n) + " recipients, over the hard cap of " +
                 FormatCount(*l.max_recipients) + where;
      a->reasons.push_back(a->error);
      return Status::Ok();
    }
    if (!l.max_recipients_per_hour) continue;
    // Messages sent, being sent or waiting for approval count: an approval queue must not
    // be a way around the hourly cap.
    int64_t recent = 0;
    RETURN_IF_ERROR(store_->Read([&](StoreTxn& t) -> Status {
      ActionFilter f;
      f.agent = a->agent;
      f.target = a->target;
      f.newest_first = true;
      f.limit = 100000;
      ASSIGN_OR_RETURN(auto list, t.ListActions(f));
      for (const Action& x : list) {
        if (x.created_ms < a->created_ms - 3'600'000) break;
        if (x.status == ActionStatus::kApplied || x.status == ActionStatus::kPending ||
            x.status == ActionStatus::kApplying ||
            (x.status == ActionStatus::kFailed && x.error_code == "unknown_outcome")) {
          recent += RecipientCount(x.effect);
        }
      }
      return Status::Ok();
    }));
    if (recent + n > *l.max_recipients_per_hour) {
      a->status = ActionStatus::kDenied;
      a->error = "max_recipients_per_hour " + FormatCount(*l.max_recipients_per_hour) +
                 " exceeded by " + a->agent + " on " + a->target + ": " + FormatCount(recent) +
                 " in the last hour, " + FormatCount(n) + " more asked" + where;
      a->reasons.push_back(a->error);
      return Status::Ok();
    }
  }
  return Status::Ok();
}

Status Gateway::ApplyLimits(Action* a) {
  const int64_t now = a->created_ms;
  // Mail counts its recipients; an http target does when its policy says where the body
  // lists them (recipients: /pointer).
  if (a->kind == "mail" || a->effect.extra.contains("recipient_count")) {
    RETURN_IF_ERROR(ApplyRecipientLimits(a));
    if (a->status == ActionStatus::kDenied) return Status::Ok();
  }
  ASSIGN_OR_RETURN(std::optional<Breaker> breaker, store_->LookupBreaker(a->target, a->agent));
  for (const Limit& l : policy_->limits) {
    if (!LimitMatches(l, a->agent, a->target)) continue;
    const std::string where = " (limit at " + LimitLocation(*policy_, l) + ")";
    if (l.max_rows && a->effect.RowsChanged() > *l.max_rows) {
      a->status = ActionStatus::kDenied;
      a->error = "changes " + FormatCount(a->effect.RowsChanged()) +
                 " rows, over the hard cap of " + FormatCount(*l.max_rows) + where;
      a->reasons.push_back(a->error);
      return Status::Ok();
    }
    if (l.rate_count <= 0) continue;
    // A reset breaker starts a fresh window: the writes that tripped it are not counted again.
    int64_t since = now - l.rate_window_ms;
    if (breaker && !breaker->open) since = std::max(since, breaker->changed_ms);
    int64_t recent = 0;
    RETURN_IF_ERROR(store_->Read([&](StoreTxn& t) -> Status {
      ASSIGN_OR_RETURN(recent, t.CountWritesSince(a->agent, a->target, since));
      return Status::Ok();
    }));
    if (recent + 1 <= l.rate_count) continue;
    const std::string exceeded =
        "rate limit " + RateText(l) + " exceeded by " + a->agent + " on " + a->target + where;
    switch (l.on_exceed) {
      case OnExceed::kDeny:
        a->status = ActionStatus::kDenied;
        a->error = exceeded;
        a->reasons.push_back(exceeded);
        return Status::Ok();
      case OnExceed::kApprove:
        a->quorum = std::max(a->quorum, 1);
        a->reasons.push_back(exceeded + ": needs approval");
        break;
      case OnExceed::kTrip:
        a->reasons.push_back(exceeded + ": circuit breaker tripped");
        if (!breaker || !breaker->open) {
          Breaker b{a->target, a->agent, true, now, exceeded};
          RETURN_IF_ERROR(store_->Transact([&](StoreTxn& t) -> Status {
            RETURN_IF_ERROR(t.PutBreaker(b));
            AuditEvent e;
            e.principal = "airlock";
            e.event = "breaker_tripped";
            e.payload = {{"target", b.target},
                         {"agent", b.agent},
                         {"reason", b.reason},
                         {"tripped_by", a->id}};
            return t.AppendAudit(std::move(e)).status();
          }));
          breaker = b;
        }
        break;
    }
  }
  if (breaker && breaker->open) {
    a->quorum = std::max(a->quorum, 1);
    a->reasons.push_back("circuit breaker open for " + a->agent + " on " + a->target + " since " +
                         FormatTimeMs(breaker->changed_ms) +
                         ": every write needs approval until an approver resets it");
  }
  return Status::Ok();
}

// ---- apply -----------------------------------------------------------------------------------

Outcome Gateway::ApplyClaimed(Action a, const Principal& who) {
  CrashPoint("gateway_after_claim");
  const std::string actor = who.Label();
  // A request a sandboxed command made through the egress proxy, held for a vote: its
  // target is the shell target, but what runs is the request, exactly as previewed.
  const bool held_egress = a.kind == "http" && a.args.contains("exec_action");
  auto connector = held_egress ? Result<Connector*>(nullptr) : ConnectorFor(a.target);
  Result<ApplyOutcome> out = Status::Internal("not run");
  if (held_egress) {
    out = SendHeldEgress(a);
    // Kept like any apply's undo record, so that rollback can say why it cannot undo it.
    if (out.ok()) {
      Status kept = store_->Transact([&](StoreTxn& t) { return t.PutUndo(a.id, out->undo); });
      if (!kept.ok()) out = kept.Annotate("the request was sent, but its record was not kept");
    }
  } else if (connector.ok()) {
    auto keep_undo = [&](const UndoRecord& undo) -> Status {
      Status st = store_->Transact([&](StoreTxn& t) { return t.PutUndo(a.id, undo); });
      CrashPoint("gateway_after_undo_saved");
      return st;
    };
    out = (*connector)->Apply(a.id, a.args, a.effect, keep_undo);
  } else {
    out = connector.status();
  }
  a.updated_ms = NowMs();
  if (!out.ok()) return Fail(std::move(a), /*insert=*/false, out.status(), who);
  if (!out->effect_matched) {
    a.status = ActionStatus::kEffectChanged;
    a.error = "the real effect differs from the approved preview; nothing was applied";
    a.result = {{"observed_effect", EffectToJson(out->effect)}};
    Status st = Record(a, "effect_changed", actor,
                       {{"approved_effect_hash", a.effect.effect_hash},
                        {"observed_effect_hash", out->effect.effect_hash},
                        {"observed_effect", EffectToJson(out->effect)}});
    return {st, a};
  }
  CrashPoint("gateway_after_target_commit");
  a.status = ActionStatus::kApplied;
  // A tool's answer: the agent that asked gets it from this call, so the store keeps only
  // its shape. Applied by an approver's vote, the asking agent is elsewhere (waiting in its
  // session, or asking later with airlock_action_status), so the answer is kept, capped.
  Json full_result = nullptr;
  if (a.kind == "mcp") {
    full_result = out->result;
    if (who.role == Principal::Role::kAgent ||
        CanonicalJson(out->result).size() > kMaxStoredToolResultBytes) {
      out->result = {{"summary", McpResultSummary(out->result)}};
    } else {
      out->result = {{"summary", McpResultSummary(out->result)}, {"tool_result", out->result}};
    }
  }
  if (a.kind == "http") {
    // An HTTP response likewise: the store keeps its status and size, and its body only for
    // an agent that will ask later (applied by a vote) and only when it is small.
    full_result = out->result;
    Json kept = HttpResultSummary(out->result);
    if (who.role != Principal::Role::kAgent && out->result.contains("body") &&
        out->result["body"].is_string() &&
        out->result["body"].get_ref<const std::string&>().size() <= kMaxStoredToolResultBytes) {
      kept["body"] = out->result["body"];
    }
    out->result = std::move(kept);
  }
  if (!out->result.is_null()) a.result = out->result;
  a.reversible = a.reversible && out->undo.reversible;
  // The audit keeps a tool answer's shape only, never its content.
  const Json audited_result =
      a.kind == "mcp" && a.result.is_object() && a.result.contains("summary")
          ? Json{{"summary", a.result["summary"]}}
      : a.kind == "http" ? HttpResultSummary(a.result)
                         : a.result;
  Status st = Record(a, "applied", actor,
                     {{"effect_hash", out->effect.effect_hash},
                      {"result", audited_result},
                      {"reversible", a.reversible},
                      {"undo_note", out->undo.note}});
  if (!full_result.is_null() && a.kind == "http") {
    a.result = std::move(full_result);
  } else if (!full_result.is_null()) {
    a.result = {{"summary", a.result["summary"]}, {"tool_result", full_result}};
  }
  return {st, a};
}

// ---- votes -----------------------------------------------------------------------------------

Outcome Gateway::Vote(const std::optional<std::string>& token, const std::string& id, bool approve,
                      const std::string& reason) {
  auto who = AuthenticateApprover(token, approve ? "approve" : "reject", id);
  if (!who.ok()) return {who.status(), std::nullopt};
  // Held across the vote and the apply it may trigger, so recovery never mistakes this
  // apply for a crashed one, and two quorum-reaching votes cannot both apply.
  auto lock = Claim(id, /*wait=*/true);
  if (!lock.ok()) return {lock.status(), std::nullopt};

  std::optional<Action> action;
  Status refused;
  bool apply = false;
  const int64_t now = NowMs();
  Status st = store_->Transact([&](StoreTxn& t) -> Status {
    ASSIGN_OR_RETURN(action, t.GetAction(id));
    if (!action) return Status::NotFound("no action " + id);
    Action& a = *action;
    auto audit = [&](const std::string& event, Json payload) {
      AuditEvent e;
      e.action_id = id;
      e.principal = event == "expired" ? "airlock" : who->Label();
      e.event = event;
      e.payload = std::move(payload);
      return t.AppendAudit(std::move(e)).status();
    };
    if (a.status == ActionStatus::kPending && a.expires_ms > 0 && a.expires_ms <= now) {
      a.status = ActionStatus::kExpired;
      a.updated_ms = now;
      a.error = "no decision before the timeout: expired (denied)";
      RETURN_IF_ERROR(t.UpdateAction(a));
      RETURN_IF_ERROR(audit("expired", {{"expires_ms", a.expires_ms}}));
    }
    refused = approval::CheckVoter(a, who->name);
    if (!refused.ok()) {
      return audit("vote_refused",
                   {{"vote", approve ? "approve" : "reject"}, {"why", refused.message()}});
    }
    ::airlock::Vote v{who->name, approve, reason, now};
    RETURN_IF_ERROR(t.AddVote(id, v));
    a.votes.push_back(v);
    RETURN_IF_ERROR(audit("vote", {{"vote", approve ? "approve" : "reject"},
                                   {"reason", reason},
                                   {"effect_hash", a.effect.effect_hash},
                                   {"progress", approval::Progress(a)}}));
    switch (approval::Count(a)) {
      case approval::Tally::kPending:
        return Status::Ok();
      case approval::Tally::kRejected:
        a.status = ActionStatus::kRejected;
        a.error = "rejected by " + who->name + (reason.empty() ? "" : ": " + reason);
        a.updated_ms = now;
        RETURN_IF_ERROR(t.UpdateAction(a));
        return audit("rejected", {{"by", who->name}, {"reason", reason}});
      case approval::Tally::kApproved:
        a.status = ActionStatus::kApplying;
        a.updated_ms = now;
        apply = true;
        RETURN_IF_ERROR(t.UpdateAction(a));
        return audit("approved",
                     {{"progress", approval::Progress(a)}, {"effect_hash", a.effect.effect_hash}});
    }
    return Status::Ok();
  });
  if (!st.ok()) return {st, action};
  // The vote is durable: tell the observer (a rejection is a decision; an approval that
  // reached the quorum is reported again once applied).
  if (observer_ && action) observer_(*action, apply ? "approved" : "vote");
  if (!refused.ok()) return {refused, action};
  if (!apply) return {Status::Ok(), action};
  return ApplyClaimed(std::move(*action), *who);
}

// ---- rollback --------------------------------------------------------------------------------

Outcome Gateway::Rollback(const std::optional<std::string>& token, const std::string& id,
                          const std::string& reason) {
  auto who = AuthenticateApprover(token, "roll back", id);
  if (!who.ok()) return {who.status(), std::nullopt};
  auto lock = Claim(id, /*wait=*/true);
  if (!lock.ok()) return {lock.status(), std::nullopt};

  std::optional<Action> action;
  std::optional<UndoRecord> undo;
  Status refused;
  Status st = store_->Transact([&](StoreTxn& t) -> Status {
    ASSIGN_OR_RETURN(action, t.GetAction(id));
    if (!action) return Status::NotFound("no action " + id);
    ASSIGN_OR_RETURN(undo, t.GetUndo(id));
    if (action->status != ActionStatus::kApplied || action->risk == Risk::kRead) {
      refused = Status::FailedPrecondition(
          id + " is " +
          (action->risk == Risk::kRead ? "a read" : ActionStatusName(action->status)) +
          ": only applied writes can be rolled back");
    } else if (!action->reversible || !undo || !undo->reversible) {
      refused = Status::FailedPrecondition(
          id + " cannot be rolled back: " +
          (undo && !undo->note.empty() ? undo->note : "it is irreversible"));
    }
    AuditEvent e;
    e.action_id = id;
    e.principal = who->Label();
    if (!refused.ok()) {
      e.event = "rollback_refused";
      e.payload = WithReason({{"why", refused.message()}}, reason);
      return t.AppendAudit(std::move(e)).status();
    }
    action->status = ActionStatus::kRollingBack;
    action->updated_ms = NowMs();
    RETURN_IF_ERROR(t.UpdateAction(*action));
    e.event = "rollback_started";
    e.payload = WithReason(nullptr, reason);
    return t.AppendAudit(std::move(e)).status();
  });
  if (!st.ok()) return {st, action};
  if (!refused.ok()) return {refused, action};
  CrashPoint("gateway_after_rollback_claim");

  Action& a = *action;
  Json report = Json::object();
  auto connector = ConnectorFor(a.target);
  Status done = connector.ok() ? (*connector)->Rollback(id, *undo, &report) : connector.status();
  a.updated_ms = NowMs();
  if (!done.ok()) {
    a.status = ActionStatus::kApplied;  // nothing was undone
    Status rec = Record(a, "rollback_refused", who->Label(),
                        WithReason({{"why", done.message()}, {"report", report}}, reason));
    return {rec.ok() ? done : rec, a, report};
  }
  a.status = ActionStatus::kRolledBack;
  Status rec =
      Record(a, "rolled_back", who->Label(), WithReason({{"undo_kind", undo->kind}}, reason));
  return {rec, a, report};
}

// ---- reads -----------------------------------------------------------------------------------

Outcome Gateway::Show(const std::optional<std::string>& token, const std::string& id) {
  std::optional<Principal> who;
  if (token) {
    auto w = Authenticate(token);
    if (!w.ok()) {
      Status st = AuditOnly(id, "anonymous", "auth_failed", {{"operation", "show"}});
      return {st.ok() ? w.status() : st, std::nullopt};
    }
    who = *w;
  }
  std::optional<Action> action;
  Status st = store_->Read([&](StoreTxn& t) -> Status {
    ASSIGN_OR_RETURN(action, t.GetAction(id));
    return Status::Ok();
  });
  if (!st.ok()) return {st, std::nullopt};
  // An agent sees only its own actions; others are "not found" so ids do not leak.
  if (!action || (who && who->role == Principal::Role::kAgent && action->agent != who->name)) {
    return {Status::NotFound("no action " + id), std::nullopt};
  }
  return {Status::Ok(), action};
}

Result<std::vector<Action>> Gateway::Pending(const std::optional<std::string>& token) {
  std::optional<Principal> who;
  if (token) {
    auto w = Authenticate(token);
    if (!w.ok()) {
      RETURN_IF_ERROR(AuditOnly("", "anonymous", "auth_failed", {{"operation", "pending"}}));
      return w.status();
    }
    who = *w;
  }
  std::vector<Action> out;
  RETURN_IF_ERROR(store_->Read([&](StoreTxn& t) -> Status {
    ActionFilter f;
    f.status = ActionStatus::kPending;
    if (who && who->role == Principal::Role::kAgent) f.agent = who->name;
    ASSIGN_OR_RETURN(out, t.ListActions(f));
    return Status::Ok();
  }));
  // Riskiest first, then oldest first: what needs a human most comes first.
  std::stable_sort(out.begin(), out.end(), [](const Action& x, const Action& y) {
    if (x.risk != y.risk) return x.risk > y.risk;
    return x.created_ms < y.created_ms;
  });
  return out;
}

Status Gateway::ResetBreaker(const std::optional<std::string>& token, const std::string& target,
                             const std::string& agent) {
  ASSIGN_OR_RETURN(Principal who, AuthenticateApprover(token, "reset breakers", ""));
  if (policy_->FindTarget(target) == nullptr) {
    return Status::NotFound("unknown target '" + target + "'");
  }
  int reset = 0;
  RETURN_IF_ERROR(store_->Transact([&](StoreTxn& t) -> Status {
    ASSIGN_OR_RETURN(auto all, t.ListBreakers());
    for (Breaker b : all) {
      if (b.target != target || !b.open || (!agent.empty() && b.agent != agent)) continue;
      b.open = false;
      b.changed_ms = NowMs();
      b.reason = "reset by " + who.name;
      RETURN_IF_ERROR(t.PutBreaker(b));
      AuditEvent e;
      e.principal = who.Label();
      e.event = "breaker_reset";
      e.payload = {{"target", b.target}, {"agent", b.agent}};
      RETURN_IF_ERROR(t.AppendAudit(std::move(e)).status());
      ++reset;
    }
    return Status::Ok();
  }));
  if (reset == 0) {
    return Status::NotFound("no open breaker for " + (agent.empty() ? "any agent" : agent) +
                            " on " + target);
  }
  return Status::Ok();
}

Result<std::vector<Action>> Gateway::List(const std::optional<std::string>& token,
                                          ActionFilter filter, const std::string& target) {
  std::optional<Principal> who;
  if (token) {
    auto w = Authenticate(token);
    if (!w.ok()) {
      RETURN_IF_ERROR(AuditOnly("", "anonymous", "auth_failed", {{"operation", "list"}}));
      return w.status();
    }
    who = *w;
  }
  // An agent sees only its own actions, whatever it asked for.
  if (who && who->role == Principal::Role::kAgent) filter.agent = who->name;
  filter.target = target;
  filter.newest_first = true;
  std::vector<Action> out;
  RETURN_IF_ERROR(store_->Read([&](StoreTxn& t) -> Status {
    ASSIGN_OR_RETURN(out, t.ListActions(filter));
    return Status::Ok();
  }));
  return out;
}

Result<Principal> Gateway::WhoIs(const std::optional<std::string>& token) {
  auto w = Authenticate(token);
  if (!w.ok()) {
    RETURN_IF_ERROR(AuditOnly("", "anonymous", "auth_failed", {{"operation", "whoami"}}));
  }
  return w;
}

Result<std::vector<ActionCount>> Gateway::CountActions() {
  std::vector<ActionCount> out;
  RETURN_IF_ERROR(store_->Read([&](StoreTxn& t) -> Status {
    ASSIGN_OR_RETURN(out, t.CountActions());
    return Status::Ok();
  }));
  return out;
}

Result<std::vector<Breaker>> Gateway::Breakers() {
  std::vector<Breaker> out;
  RETURN_IF_ERROR(store_->Read([&](StoreTxn& t) -> Status {
    ASSIGN_OR_RETURN(out, t.ListBreakers());
    return Status::Ok();
  }));
  return out;
}

Result<AuditHead> Gateway::AuditHeadNow() {
  return store_->RecordedHead();
}

Result<audit::VerifyReport> Gateway::VerifyAudit() {
  return audit::Verify(*store_);
}

Status Gateway::ScanAudit(const std::optional<std::string>& token, const std::string& action_id,
                          const std::function<bool(const AuditEvent&)>& fn) {
  return ScanAudit(token, /*after_seq=*/0, action_id, fn);
}

Status Gateway::ScanAudit(const std::optional<std::string>& token, int64_t after_seq,
                          const std::string& action_id,
                          const std::function<bool(const AuditEvent&)>& fn) {
  if (token) {
    auto w = Authenticate(token);
    if (!w.ok()) {
      RETURN_IF_ERROR(AuditOnly(action_id, "anonymous", "auth_failed", {{"operation", "audit"}}));
      return w.status();
    }
    if (w->role == Principal::Role::kAgent) {
      return Status::PermissionDenied(w->Label() + " cannot read the audit log");
    }
  }
  return store_->ScanAudit(after_seq, action_id, fn);
}

// ---- background duties -----------------------------------------------------------------------

Result<int> Gateway::ExpireDue() {
  // In batches, so that a long backlog is not one long transaction holding the writers' lock.
  constexpr int kBatch = 200;
  int expired = 0;
  const int64_t now = NowMs();
  for (;;) {
    std::vector<Action> done;
    size_t seen = 0;
    auto expire = [&](StoreTxn& t, std::vector<Action>& due) -> Status {
      seen = due.size();
      for (Action& a : due) {
        a.status = ActionStatus::kExpired;
        a.updated_ms = now;
        a.error = "no decision before the timeout: expired (denied)";
        RETURN_IF_ERROR(t.UpdateAction(a));
        AuditEvent e;
        e.action_id = a.id;
        e.principal = "airlock";
        e.event = "expired";
        e.payload = {{"expires_ms", a.expires_ms}, {"approvals", approval::Progress(a)}};
        RETURN_IF_ERROR(t.AppendAudit(std::move(e)).status());
        done.push_back(a);
      }
      return Status::Ok();
    };
    RETURN_IF_ERROR(store_->TransactDue(now, kBatch, expire));
    expired += static_cast<int>(done.size());
    if (observer_) {
      for (const Action& a : done) observer_(a, "expired");
    }
    if (seen < static_cast<size_t>(kBatch)) break;
  }
  return expired;
}

Status Gateway::IngestStaged() {
  // Sessions that died since the last start left their unrecorded reads in their journals.
  // A journal that cannot be written now must not keep the staged rows out of the chain.
  Status journals = RecoverJournals();
  if (!journals.ok()) {
    std::fprintf(stderr, "airlock: read journals not written to the store yet: %s\n",
                 journals.message().c_str());
  }
  bool any = false;
  RETURN_IF_ERROR(store_->Read([&](StoreTxn& t) -> Status {
    ASSIGN_OR_RETURN(any, t.AnyStaged());
    return Status::Ok();
  }));
  if (!any) return Status::Ok();
  return store_->Transact([](StoreTxn& t) { return t.IngestStaged().status(); });
}

// An applied read with a null result is not stuck: its `read_result` record was lost in a
// crash after the call was made and recorded (OverlappedMcpRead). The call happened; only
// its answer's size is unknown, and nothing here can learn it, so it is left as it is.
Status Gateway::RecoverJournals(size_t min_command_lines) {
  if (policy_->store_path.empty()) return Status::Ok();
  return WriteDeadReadJournals(JournalDir(*policy_), *store_, min_command_lines);
}

namespace {

// The reads of journal lines, into actions and the chain in one commit, each once.
Status WriteJournaledReads(Store& store, std::vector<JournaledRead>& reads) {
  if (reads.empty()) return Status::Ok();
  return store.Transact([&](StoreTxn& t) -> Status {
    for (JournaledRead& r : reads) {
      Action& a = r.action;
      // Only ever an applied read: a tool call's, or a command's with its full effect
      // (`airlock exec`). Anything else is not this journal's.
      const bool command = r.full && a.kind == "shell";
      if ((a.kind != "mcp" && !command) || a.status != ActionStatus::kApplied ||
          a.risk != Risk::kRead || a.quorum != 0 || !a.effect.IsRead()) {
        std::fprintf(stderr, "airlock: a read journal line for %s is not a read; skipped\n",
                     a.id.c_str());
        continue;
      }
      // Already written (the session got that far), or written by another recovery.
      ASSIGN_OR_RETURN(std::optional<Action> known, t.GetAction(a.id));
      if (known) continue;
      // The effect, as the call's dry-run derived it from its arguments (no I/O).
      const std::string hash = a.effect.effect_hash;
      if (a.kind == "mcp") {
        const Json& args = a.args;
        a.effect = McpCallEffect(
            a.target, McpToolName(args),
            args.contains("arguments") && args["arguments"].is_object() ? args["arguments"]
                                                                        : Json::object(),
            args.contains("annotations") ? args["annotations"] : Json(nullptr));
      }
      AuditEvent e;
      e.action_id = a.id;
      e.principal = r.principal;
      e.event = "read";
      e.at_ms = r.at_ms;
      if (command) {
        // A command's line is its record by design: straight into actions and the chain, as
        // FinishRead's commit would have made it (the staged table is for records made
        // while others are: mcp stdio). The row's body and the event's payload are written
        // as text from the action in one pass, as SubmitReadPrepared writes them.
        std::string body;
        ActionJsonTexts(a, {{IsDecisionPayloadKey, nullptr, &e.canonical_payload},
                            {IsStoredBodyKey, nullptr, &body}});
        AddWouldStatus(a, &e.canonical_payload);
        RETURN_IF_ERROR(t.InsertAction(a, body));
        RETURN_IF_ERROR(t.AppendAudit(std::move(e)).status());
        continue;
      }
      Json payload = DecisionPayload(a);
      payload["recovered"] =
          "from the read journal of a session that ended before "
          "writing this record";
      if (a.effect.effect_hash != hash) payload["journaled_effect_hash"] = hash;
      e.canonical_payload = CanonicalJson(payload);
      Status staged = t.StageRecord(a, e);
      if (staged.code() == StatusCode::kFailedPrecondition) continue;  // already staged
      RETURN_IF_ERROR(staged);
    }
    return t.IngestStaged().status();
  });
}

}  // namespace

Status WriteDeadReadJournals(const std::string& journal_dir, Store& store,
                             size_t min_command_lines) {
  auto write = [&](std::vector<JournaledRead>& reads) { return WriteJournaledReads(store, reads); };
  int torn = 0;
  Status st = ReadJournal::RecoverDead(journal_dir, write, &torn);
  int torn_commands = 0;
  Status commands = CommandJournal::Take(journal_dir, write, min_command_lines, &torn_commands);
  if (torn + torn_commands > 0) {
    std::fprintf(stderr,
                 "airlock: %d line(s) of a read journal were cut short (a crash or "
                 "power cut while writing them): those reads' records are lost\n",
                 torn + torn_commands);
  }
  return st.ok() ? commands : st;
}

Status Gateway::Recover() {
  // Best effort, as below: a journal that cannot be written now is tried at the next start.
  Status journals =
      RecoverJournals(options_.journal_reads ? GatewayOptions::kJournaledReadsTakenAt : 0);
  if (!journals.ok()) {
    std::fprintf(stderr, "airlock: read journals not written to the store yet: %s\n",
                 journals.message().c_str());
  }
  std::vector<Action> stuck;
  bool staged = false;
  RETURN_IF_ERROR(store_->Read([&](StoreTxn& t) -> Status {
    // Reads staged by a session that crashed, or by one still running: into the chain.
    ASSIGN_OR_RETURN(staged, t.AnyStaged());
    for (ActionStatus s : {ActionStatus::kApplying, ActionStatus::kRollingBack}) {
      ActionFilter f;
      f.status = s;
      f.limit = 100000;
      ASSIGN_OR_RETURN(auto some, t.ListActions(f));
      stuck.insert(stuck.end(), some.begin(), some.end());
    }
    return Status::Ok();
  }));
  // Best effort: a store whose staged reads cannot be moved now (locked past the busy
  // timeout, full) must not stop the command; they stay staged (committed).
  if (staged) {
    Status st = store_->Transact([](StoreTxn& t) { return t.IngestStaged().status(); });
    if (!st.ok()) {
      std::fprintf(stderr, "airlock: staged reads not moved into the audit chain yet: %s\n",
                   st.message().c_str());
    }
  }
  for (Action& a : stuck) {
    // A live worker holds the claim: leave its action alone.
    auto lock = Claim(a.id, /*wait=*/false);
    if (!lock.ok()) continue;
    // A target that cannot be asked now (its file moved, say) leaves the action unresolved
    // until it can be; it must not stop every other command from running.
    auto c = ConnectorFor(a.target);
    if (!c.ok()) continue;
    const bool applying = a.status == ActionStatus::kApplying;
    auto asked = applying ? (*c)->IsApplied(a.id) : (*c)->IsRolledBack(a.id);
    if (!asked.ok()) continue;
    const bool committed = *asked;
    Json payload = {{"was", ActionStatusName(a.status)}, {"target_committed", committed}};
    if (applying) {
      a.status = committed ? ActionStatus::kApplied : ActionStatus::kFailed;
      if (!committed && a.kind == "mail") {
        // SMTP has no way to ask a server whether it took a message: say so, and never
        // send it again.
        a.error = "interrupted while the message was being sent: whether the mail server "
                  "accepted it is unknown; airlock did not send it again";
        a.error_code = "unknown_outcome";
      } else if (!committed && a.kind == "http") {
        a.error =
            "interrupted while the HTTP request was in flight: whether the server acted "
            "on it is unknown; airlock did not send it again";
        a.error_code = "unknown_outcome";
      } else if (!committed && a.kind == "mcp") {
        // Nothing records whether an MCP server acted on a call in flight: say so, and never
        // send it again.
        a.error = "interrupted while the tool call was in flight: whether the MCP server "
                  "acted on it is unknown; airlock did not send it again";
        a.error_code = "unknown_outcome";
      } else if (!committed) {
        a.error = "interrupted before the target committed; nothing was applied";
        a.error_code = "interrupted";
      }
    } else {
      a.status = committed ? ActionStatus::kRolledBack : ActionStatus::kApplied;
    }
    a.updated_ms = NowMs();
    RETURN_IF_ERROR(store_->Transact([&](StoreTxn& t) -> Status {
      // Re-read inside the transaction: another process may have resolved it meanwhile.
      ASSIGN_OR_RETURN(auto now, t.GetAction(a.id));
      if (!now ||
          now->status != (applying ? ActionStatus::kApplying : ActionStatus::kRollingBack)) {
        return Status::Ok();
      }
      RETURN_IF_ERROR(t.UpdateAction(a));
      AuditEvent e;
      e.action_id = a.id;
      e.principal = "airlock";
      e.event = "recovered";
      payload["status"] = ActionStatusName(a.status);
      // Enough for a notification to say whose action on what needs checking.
      payload["agent"] = a.agent;
      payload["target"] = a.target;
      payload["kind"] = a.kind;
      if (!a.error.empty()) payload["error"] = a.error;
      if (!a.error_code.empty()) payload["error_code"] = a.error_code;
      e.payload = payload;
      return t.AppendAudit(std::move(e)).status();
    }));
  }
  return Status::Ok();
}

}  // namespace airlock
