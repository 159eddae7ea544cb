#include "connectors/mcp/mcp_connector.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>

#include "connectors/shell/shell_connector.h"
#include "core/hash.h"
#include "core/json.h"
#include "mcp/http_upstream.h"
#include "mcp/upstream.h"

namespace airlock {
namespace {

constexpr int64_t kOneShotTimeoutMs = 120'000;
constexpr int64_t kMaxHeldAnswerBytes = 64LL << 20;

thread_local McpToolCaller* tl_session_caller = nullptr;

Result<std::string> ToolOf(const Json& args) {
  if (!args.is_object() || !args.contains("tool") || !args["tool"].is_string() ||
      args["tool"].get_ref<const std::string&>().empty()) {
    return Status::InvalidArgument("an MCP action needs \"tool\": the tool's name");
  }
  if (args.contains("arguments") && !args["arguments"].is_object() &&
      !args["arguments"].is_null()) {
    return Status::InvalidArgument("an MCP tool's \"arguments\" must be an object");
  }
  return args["tool"].get<std::string>();
}

const Json& EmptyObject() {
  static const Json* const empty = new Json(Json::object());
  return *empty;
}

// The call's arguments ({} when absent), and its annotations (null when absent): references
// into `args`, so that the effect built from them copies them once.
const Json& ArgumentsOf(const Json& args) {
  auto it = args.find("arguments");
  return it != args.end() && it->is_object() ? *it : EmptyObject();
}

const Json& AnnotationsOf(const Json& args) {
  static const Json* const none = new Json(nullptr);
  auto it = args.find("annotations");
  return it != args.end() ? *it : *none;
}

// Starts the upstream for one call (an approval applied from a process with no session).
class OneShotCaller : public McpToolCaller {
 public:
  explicit OneShotCaller(const Json& fields) : fields_(fields) {}
  Result<Json> CallTool(const Json& params) override {
    size_t max_bytes = 4u << 20;
    if (fields_.contains("max_message_bytes") && fields_["max_message_bytes"].is_number_integer()) {
      max_bytes = fields_["max_message_bytes"].get<size_t>();
    }
    if (fields_.contains("url") && fields_["url"].is_string() &&
        !fields_["url"].get_ref<const std::string&>().empty()) {
      mcp::HttpUpstreamOptions h;
      h.url = fields_["url"].get<std::string>();
      h.max_message_bytes = max_bytes;
      if (fields_.contains("headers") && fields_["headers"].is_object()) {
        for (const auto& [name, value] : fields_["headers"].items()) {
          if (value.is_string()) h.headers.emplace_back(name, value.get<std::string>());
        }
      }
      ASSIGN_OR_RETURN(auto up, mcp::HttpUpstream::Start(h));
      return mcp::CallToolOnce(std::unique_ptr<mcp::Upstream>(std::move(up)), params,
                               std::chrono::milliseconds(kOneShotTimeoutMs));
    }
    if (fields_.contains("sandbox") && fields_["sandbox"].is_string() &&
        !fields_["sandbox"].get_ref<const std::string&>().empty()) {
      return Status::FailedPrecondition(
          "a call on an MCP server in a shell sandbox is made by a live session, in its "
          "sandbox; nothing was called");
    }
    mcp::UpstreamOptions o;
    if (fields_.contains("command") && fields_["command"].is_array()) {
      for (const auto& a : fields_["command"]) {
        if (a.is_string()) o.argv.push_back(a.get<std::string>());
      }
    }
    if (fields_.contains("env") && fields_["env"].is_object()) {
      for (const auto& [k, v] : fields_["env"].items()) {
        if (v.is_string()) o.env[k] = v.get<std::string>();
      }
    }
    o.max_message_bytes = max_bytes;
    return mcp::CallToolOnce(o, params, std::chrono::milliseconds(kOneShotTimeoutMs));
  }

 private:
  Json fields_;
};

// The hash a sandboxed call's approval binds: the call, the layer a commit applies, and the
// upstream's held answer (so an approved call returns exactly the answer it was shown with).
std::string SandboxedEffectHash(const Effect& e) {
  const Json& x = e.extra;
  auto get = [&](const char* k) { return x.contains(k) ? x[k] : Json(nullptr); };
  return Sha256Hex(CanonicalJson(Json{{"server", get("server")},
                                      {"tool", get("tool")},
                                      {"arguments", get("arguments")},
                                      {"layer", get("layer")},
                                      {"refused", get("refused_count")},
                                      {"held_answer", get("held_answer")}}));
}

class McpConnector : public IrreversibleConnector {
 public:
  McpConnector(ConnectorConfig config, std::shared_ptr<McpToolCaller> caller)
      : IrreversibleConnector("a tool call on an MCP server cannot be undone by airlock"),
        config_(std::move(config)),
        caller_(std::move(caller)) {
    const Json& f = config_.fields;
    if (f.contains("sandbox_target") && f["sandbox_target"].is_object()) {
      const Json& t = f["sandbox_target"];
      sandbox_ = ConnectorConfig{t.value("name", ""), t.value("kind", ""),
                                 t.contains("fields") ? t["fields"] : Json::object()};
    }
  }

  Result<DryRunResult> DryRun(const Json& args) override {
    if (sandbox_) return SandboxedDryRun(args);
    ASSIGN_OR_RETURN(std::string tool, ToolOf(args));
    DryRunResult r;
    r.effect = McpCallEffect(config_.name, tool, ArgumentsOf(args), AnnotationsOf(args));
    return r;
  }

  Result<ApplyOutcome> Apply(
      const std::string& action_id, const Json& args, const Effect& expected,
      const std::function<Status(const UndoRecord&)>& before_commit) override {
    if (sandbox_) return SandboxedApply(action_id, expected, before_commit);
    ApplyOutcome out;
    ASSIGN_OR_RETURN(Json params, PrepareCall(args, expected, &out));
    if (!out.effect_matched) return out;
    RETURN_IF_ERROR(before_commit(out.undo));
    ASSIGN_OR_RETURN(out.result, Caller()->CallTool(params));
    return out;
  }

  // A read: the call is sent, the gateway's record of it is made while the server works,
  // and the answer is handed back once both are done. A sandboxed call already ran in its
  // dry-run, so there is nothing to overlap: the default order (record, then commit).
  Result<ApplyOutcome> ApplyRead(const std::string& action_id, const Json& args,
                                 const Effect& expected,
                                 const std::function<Status()>& in_flight) override {
    if (sandbox_) return Connector::ApplyRead(action_id, args, expected, in_flight);
    ApplyOutcome out;
    ASSIGN_OR_RETURN(Json params, PrepareCall(args, expected, &out));
    if (!out.effect_matched) return out;
    ASSIGN_OR_RETURN(out.result, Caller()->CallToolOverlapped(params, in_flight));
    return out;
  }

  // A sandboxed call's file effect was committed like a shell action's: so it is undone.
  Status Rollback(const std::string& action_id, const UndoRecord& undo, Json* report) override {
    if (sandbox_ && undo.kind == "shell") {
      ASSIGN_OR_RETURN(Connector * shell, Shell());
      return shell->Rollback(action_id, undo, report);
    }
    return IrreversibleConnector::Rollback(action_id, undo, report);
  }
  Result<bool> IsApplied(const std::string& action_id) override {
    if (!sandbox_) return false;
    ASSIGN_OR_RETURN(Connector * shell, Shell());
    return shell->IsApplied(action_id);
  }
  Result<bool> IsRolledBack(const std::string& action_id) override {
    if (!sandbox_) return false;
    ASSIGN_OR_RETURN(Connector * shell, Shell());
    return shell->IsRolledBack(action_id);
  }

 private:
  // The session's caller when a session made this call (serve's /mcp, mcp stdio), else the
  // connector's own.
  McpToolCaller* Caller() {
    return tl_session_caller != nullptr ? tl_session_caller : caller_.get();
  }

  // What Apply and ApplyRead share: the call's effect checked against the approved one, its
  // undo note, and the tools/call parameters. out->effect_matched false: send nothing.
  Result<Json> PrepareCall(const Json& args, const Effect& expected, ApplyOutcome* out) {
    ASSIGN_OR_RETURN(std::string tool, ToolOf(args));
    out->effect = McpCallEffect(config_.name, tool, ArgumentsOf(args), AnnotationsOf(args));
    out->effect_matched = out->effect.effect_hash == expected.effect_hash;
    out->undo.kind = "mcp";
    out->undo.reversible = false;
    out->undo.note = note();
    Json params = {{"name", tool}, {"arguments", ArgumentsOf(args)}};
    if (args.contains("_meta") && args["_meta"].is_object()) params["_meta"] = args["_meta"];
    return params;
  }

  // The call itself, made on the live session's sandboxed upstream. The gateway runs the
  // dry-runs of one target one at a time, so no other call of this process writes into the
  // overlay meanwhile: what the upper layer holds after the call is this call's effect,
  // provided it held nothing before. If it did (a pending call's staged change, a change
  // committed since by someone else that the overlay still hides), the upstream is restarted
  // on a fresh overlay first: its view is then the real workspace again.
  Result<DryRunResult> SandboxedDryRun(const Json& args) {
    ASSIGN_OR_RETURN(std::string tool, ToolOf(args));
    McpToolCaller* caller = tl_session_caller;
    if (caller == nullptr) {
      return Status::FailedPrecondition(
          "the MCP server '" + config_.name + "' runs in the sandbox of '" + sandbox_->name +
          "': its calls are made by a live session (airlock mcp stdio or airlock serve's "
          "/mcp/" +
          config_.name + "); nothing was called");
    }
    ASSIGN_OR_RETURN(std::string upper, caller->SandboxUpper());
    ASSIGN_OR_RETURN(shell::CapturedLayer before, CaptureShellLayer(*sandbox_, upper));
    if (!before.changes.empty() || !before.refused.empty()) {
      RETURN_IF_ERROR(caller->ResetSandbox());
      ASSIGN_OR_RETURN(upper, caller->SandboxUpper());
      ASSIGN_OR_RETURN(before, CaptureShellLayer(*sandbox_, upper));
      if (!before.changes.empty() || !before.refused.empty()) {
        return Status::Internal("the fresh sandbox of '" + config_.name +
                                "' already differs from the workspace; nothing was called");
      }
    }
    Json params = {{"name", tool}, {"arguments", ArgumentsOf(args)}};
    if (args.contains("_meta") && args["_meta"].is_object()) params["_meta"] = args["_meta"];
    ASSIGN_OR_RETURN(Json answer, caller->CallTool(params));
    auto after = CaptureShellLayer(*sandbox_, upper);
    if (!after.ok()) return after.status().Annotate("reading the call's file effect");
    DryRunResult r;
    r.effect = McpCallEffect(config_.name, tool, ArgumentsOf(args), AnnotationsOf(args));
    RETURN_IF_ERROR(AddShellFileEffect(*sandbox_, *after, &r.effect).status());
    // A nonce keeps two equal answers apart: each held answer is removed once delivered.
    const Json held = {{"nonce", RandomHex(16)}, {"answer", answer}};
    ASSIGN_OR_RETURN(std::string key, HoldAnswer(CanonicalJson(held)));
    r.effect.extra["held_answer"] = key;
    r.effect.extra["sandbox"] = sandbox_->name;
    r.effect.effect_hash = SandboxedEffectHash(r.effect);
    r.result = std::move(answer);
    return r;
  }

  // Commits exactly the previewed layer (the shell target's commit: the workspace must still
  // hold what the preview saw) and returns the held answer.
  Result<ApplyOutcome> SandboxedApply(
      const std::string& action_id, const Effect& expected,
      const std::function<Status(const UndoRecord&)>& before_commit) {
    ApplyOutcome out;
    out.effect = expected;
    if (SandboxedEffectHash(expected) != expected.effect_hash) {
      out.effect.effect_hash = SandboxedEffectHash(expected);
      return out;  // not the effect that was previewed: nothing is applied
    }
    const std::string key = expected.extra.value("held_answer", "");
    ASSIGN_OR_RETURN(std::string held_bytes, ReadHeldAnswer(key));
    ASSIGN_OR_RETURN(Json held, ParseJson(held_bytes, 64));
    if (!held.is_object() || !held.contains("answer")) {
      return Status::Corruption("the held answer of " + action_id + " is damaged");
    }
    if (expected.extra.value("layer_paths", 0) > 0) {
      ASSIGN_OR_RETURN(Connector * shell, Shell());
      ASSIGN_OR_RETURN(ApplyOutcome committed,
                       shell->Apply(action_id, Json::object(), expected, before_commit));
      if (!committed.effect_matched) return committed;
      out.undo = committed.undo;
    } else {
      out.undo.kind = "mcp";
      out.undo.reversible = false;
      out.undo.note = note();
      RETURN_IF_ERROR(before_commit(out.undo));
    }
    out.effect_matched = true;
    out.result = std::move(held["answer"]);
    ::unlink(HeldPath(key).c_str());
    return out;
  }

  // Held answers live in the shell target's state (hidden from every sandbox), one file each,
  // named by the hash of their bytes. They are written without fsync: every read call holds
  // one for a moment, and a crash that loses a pending call's answer makes its approval fail
  // ("the held answer ... is missing"), with nothing committed.
  std::string HeldPath(const std::string& key) const {
    return sandbox_->fields.value("state_dir", "") + "/held/" + key;
  }

  Result<std::string> HoldAnswer(const std::string& bytes) {
    const std::string dir = sandbox_->fields.value("state_dir", "") + "/held";
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return Status::IoError("create " + dir + ": " + std::strerror(errno));
    }
    const std::string key = Sha256Hex(bytes);
    const std::string tmp = HeldPath(key) + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return Status::IoError("create " + tmp + ": " + std::strerror(errno));
    const bool written =
        ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
    const int err = errno;
    ::close(fd);
    if (!written || ::rename(tmp.c_str(), HeldPath(key).c_str()) != 0) {
      ::unlink(tmp.c_str());
      return Status::IoError("write " + tmp + ": " + std::strerror(written ? errno : err));
    }
    return key;
  }

  Result<std::string> ReadHeldAnswer(const std::string& key) {
    // The key comes from the stored effect: anything but 64 hex digits could leave the dir.
    if (key.size() != 64 || key.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return Status::Corruption("the effect names no held answer");
    }
    int fd = ::open(HeldPath(key).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      return Status::FailedPrecondition("the held answer " + key + " is missing (" +
                                        std::strerror(errno) + "); nothing was committed");
    }
    std::string bytes;
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) {
      bytes.append(buf, static_cast<size_t>(n));
      if (static_cast<int64_t>(bytes.size()) > kMaxHeldAnswerBytes) break;
    }
    ::close(fd);
    if (Sha256Hex(bytes) != key) {
      return Status::Corruption("the held answer " + key + " does not match its hash");
    }
    return bytes;
  }

  Result<Connector*> Shell() {
    std::lock_guard<std::mutex> lock(shell_mu_);
    if (!shell_) {
      ASSIGN_OR_RETURN(shell_, CreateShellConnector(*sandbox_));
    }
    return shell_.get();
  }

  ConnectorConfig config_;
  std::shared_ptr<McpToolCaller> caller_;
  std::optional<ConnectorConfig> sandbox_;  // the shell target whose sandbox the server runs in
  std::mutex shell_mu_;
  std::unique_ptr<Connector> shell_;  // GUARDED_BY(shell_mu_): that target's commits
};

}  // namespace

ScopedMcpCaller::ScopedMcpCaller(McpToolCaller* caller) : previous_(tl_session_caller) {
  if (caller != nullptr) tl_session_caller = caller;
}

ScopedMcpCaller::~ScopedMcpCaller() {
  tl_session_caller = previous_;
}

namespace {

// The hash is over CanonicalJson({"arguments": args, "server": server, "tool": tool}),
// written out here rather than built as an object (another copy of the arguments): the keys
// in their sorted order, each value as CanonicalJson writes it. Approvals and the audit log
// bind this hash, so its bytes must never change (McpCallEffectHashIsStable).
std::string CallHash(const std::string& server, const std::string& tool, const Json& args) {
  std::string hashed = "{\"arguments\":" + CanonicalJson(args);
  hashed += ",\"server\":" + CanonicalJson(server);
  hashed += ",\"tool\":" + CanonicalJson(tool);
  hashed += '}';
  return Sha256Hex(hashed);
}

Effect UnhashedCallEffect(const std::string& server, const std::string& tool, const Json& arguments,
                          const Json& annotations) {
  const Json& args = arguments.is_null() ? EmptyObject() : arguments;
  Effect e;
  e.kind = "mcp";
  // Member by member: an initializer list would build each as a two-element array first.
  e.extra = Json::object();
  e.extra["server"] = server;
  e.extra["tool"] = tool;
  e.extra["arguments"] = args;
  e.extra["annotations"] = annotations;
  return e;
}

}  // namespace

Effect McpCallEffect(const std::string& server, const std::string& tool, const Json& arguments,
                     const Json& annotations) {
  Effect e = UnhashedCallEffect(server, tool, arguments, annotations);
  e.effect_hash = CallHash(server, tool, e.extra["arguments"]);
  return e;
}

Result<Effect> McpCallEffectUnhashed(const std::string& server, const Json& args) {
  ASSIGN_OR_RETURN(std::string tool, ToolOf(args));
  return UnhashedCallEffect(server, tool, ArgumentsOf(args), AnnotationsOf(args));
}

void HashMcpCallEffect(Effect* e) {
  if (!e->effect_hash.empty() || !e->extra.is_object()) return;
  const Json& x = e->extra;
  if (!x.contains("server") || !x["server"].is_string() || !x.contains("tool") ||
      !x["tool"].is_string() || !x.contains("arguments")) {
    return;
  }
  e->effect_hash =
      CallHash(x["server"].get<std::string>(), x["tool"].get<std::string>(), x["arguments"]);
}

Json McpResultSummary(const Json& result) {
  Json s = Json::object();
  s["size_bytes"] = CanonicalJson(result).size();
  s["is_error"] = result.is_object() && result.contains("isError") &&
                  result["isError"].is_boolean() && result["isError"].get<bool>();
  std::set<std::string> types;
  if (result.is_object() && result.contains("content") && result["content"].is_array()) {
    s["content_items"] = result["content"].size();
    for (const auto& c : result["content"]) {
      if (c.is_object() && c.contains("type") && c["type"].is_string()) {
        types.insert(c["type"].get<std::string>());
      }
    }
  }
  s["content_types"] = Json(std::vector<std::string>(types.begin(), types.end()));
  if (result.is_object() && result.contains("structuredContent")) s["structured"] = true;
  return s;
}

Result<std::unique_ptr<Connector>> CreateMcpConnector(const ConnectorConfig& config) {
  return NewMcpConnector(config, std::make_shared<OneShotCaller>(config.fields));
}

std::unique_ptr<Connector> NewMcpConnector(const ConnectorConfig& config,
                                           std::shared_ptr<McpToolCaller> caller) {
  return std::make_unique<McpConnector>(config, std::move(caller));
}

}  // namespace airlock
