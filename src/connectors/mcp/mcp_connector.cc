#include "connectors/mcp/mcp_connector.h"

#include <chrono>
#include <set>

#include "core/hash.h"
#include "core/json.h"
#include "mcp/http_upstream.h"
#include "mcp/upstream.h"

namespace airlock {
namespace {

constexpr int64_t kOneShotTimeoutMs = 120'000;

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

Json ArgumentsOf(const Json& args) {
  if (args.contains("arguments") && args["arguments"].is_object()) return args["arguments"];
  return Json::object();
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
      ASSIGN_OR_RETURN(auto up, mcp::HttpUpstream::Start(h));
      return mcp::CallToolOnce(std::unique_ptr<mcp::Upstream>(std::move(up)), params,
                               std::chrono::milliseconds(kOneShotTimeoutMs));
    }
    if (fields_.contains("sandbox") && fields_["sandbox"].is_string() &&
        !fields_["sandbox"].get_ref<const std::string&>().empty()) {
      return Status::FailedPrecondition(
          "running an MCP server inside a shell sandbox is not supported yet; nothing was "
          "called");
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

class McpConnector : public IrreversibleConnector {
 public:
  McpConnector(ConnectorConfig config, std::shared_ptr<McpToolCaller> caller)
      : IrreversibleConnector("a tool call on an MCP server cannot be undone by airlock"),
        config_(std::move(config)),
        caller_(std::move(caller)) {}

  Result<DryRunResult> DryRun(const Json& args) override {
    ASSIGN_OR_RETURN(std::string tool, ToolOf(args));
    DryRunResult r;
    r.effect = McpCallEffect(config_.name, tool, ArgumentsOf(args),
                             args.contains("annotations") ? args["annotations"] : Json(nullptr));
    return r;
  }

  Result<ApplyOutcome> Apply(
      const std::string& action_id, const Json& args, const Effect& expected,
      const std::function<Status(const UndoRecord&)>& before_commit) override {
    (void)action_id;
    ASSIGN_OR_RETURN(std::string tool, ToolOf(args));
    ApplyOutcome out;
    out.effect = McpCallEffect(config_.name, tool, ArgumentsOf(args),
                               args.contains("annotations") ? args["annotations"] : Json(nullptr));
    out.effect_matched = out.effect.effect_hash == expected.effect_hash;
    if (!out.effect_matched) return out;
    out.undo.kind = "mcp";
    out.undo.reversible = false;
    out.undo.note = note();
    RETURN_IF_ERROR(before_commit(out.undo));
    Json params = {{"name", tool}, {"arguments", ArgumentsOf(args)}};
    if (args.contains("_meta") && args["_meta"].is_object()) params["_meta"] = args["_meta"];
    McpToolCaller* caller = tl_session_caller != nullptr ? tl_session_caller : caller_.get();
    ASSIGN_OR_RETURN(out.result, caller->CallTool(params));
    return out;
  }

 private:
  ConnectorConfig config_;
  std::shared_ptr<McpToolCaller> caller_;
};

}  // namespace

ScopedMcpCaller::ScopedMcpCaller(McpToolCaller* caller) : previous_(tl_session_caller) {
  if (caller != nullptr) tl_session_caller = caller;
}

ScopedMcpCaller::~ScopedMcpCaller() {
  tl_session_caller = previous_;
}

Effect McpCallEffect(const std::string& server, const std::string& tool, const Json& arguments,
                     const Json& annotations) {
  Effect e;
  e.kind = "mcp";
  e.extra = {{"server", server},
             {"tool", tool},
             {"arguments", arguments.is_null() ? Json::object() : arguments},
             {"annotations", annotations}};
  Json hashed = {{"server", server}, {"tool", tool}, {"arguments", e.extra["arguments"]}};
  e.effect_hash = Sha256Hex(CanonicalJson(hashed));
  return e;
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
