#include "connectors/http/http_connector.h"

#include <vector>

#include "connectors/http/credentials.h"
#include "connectors/http/send.h"
#include "connectors/http/url.h"
#include "core/hash.h"
#include "core/json.h"

namespace airlock {
namespace {

using http_target::AllowRule;
using http_target::BaseUrl;
using http_target::HeaderSpec;

constexpr size_t kMaxBodyBytes = 1 << 20;

struct Config {
  BaseUrl base;
  std::vector<AllowRule> allow;
  std::vector<HeaderSpec> headers;
  int64_t timeout_ms = 30'000;
  int64_t max_response_bytes = 1 << 20;
  // `recipients: /pointer`: where the body lists who the request reaches (an array of them,
  // or one string), so that max_recipients and max_recipients_per_hour count them as for mail.
  std::optional<Json::json_pointer> recipients;
};

// The fields were validated by the policy loader; they are checked again here because a
// connector must not trust what it was handed to build requests from.
Result<Config> ParseConfig(const ConnectorConfig& c) {
  const Json& f = c.fields;
  const std::string where = "target '" + c.name + "'";
  Config out;
  if (!f.contains("base_url") || !f["base_url"].is_string()) {
    return Status::InvalidArgument(where + ": base_url is required");
  }
  auto base = http_target::ParseBaseUrl(f["base_url"].get<std::string>());
  if (!base.ok()) return base.status().Annotate(where);
  out.base = *base;
  if (f.contains("allow") && f["allow"].is_array()) {
    for (const Json& a : f["allow"]) {
      if (!a.is_string()) return Status::InvalidArgument(where + ": allow holds a non-string");
      auto rule = http_target::ParseAllowRule(a.get<std::string>());
      if (!rule.ok()) return rule.status().Annotate(where + ": allow");
      out.allow.push_back(*rule);
    }
  }
  if (f.contains("headers") && f["headers"].is_object()) {
    for (const auto& [name, value] : f["headers"].items()) {
      if (!value.is_string()) return Status::InvalidArgument(where + ": header " + name);
      auto h = http_target::ParseHeaderSpec(name, value.get<std::string>());
      if (!h.ok()) return h.status().Annotate(where);
      out.headers.push_back(*h);
    }
  }
  if (f.contains("timeout_ms") && f["timeout_ms"].is_number_integer()) {
    out.timeout_ms = f["timeout_ms"].get<int64_t>();
  }
  if (f.contains("max_response_bytes") && f["max_response_bytes"].is_number_integer()) {
    out.max_response_bytes = f["max_response_bytes"].get<int64_t>();
  }
  if (f.contains("recipients") && f["recipients"].is_string()) {
    try {
      out.recipients = Json::json_pointer(f["recipients"].get<std::string>());
    } catch (const std::exception& ex) {
      return Status::InvalidArgument(where + ": recipients is not a JSON pointer: " + ex.what());
    }
  }
  return out;
}

// One request as the agent asked for it, checked and in canonical form.
struct Request {
  std::string method;
  std::string path;  // normalized
  std::string url;
  bool has_body = false;
  Json body = nullptr;
  std::string body_text;  // canonical JSON: what is sent
};

Result<Request> ParseRequest(const Config& config, const Json& args) {
  if (!args.is_object()) return Status::InvalidArgument("an http action's arguments are an object");
  auto str = [&](const char* key) -> std::string {
    auto it = args.find(key);
    return it != args.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  Request r;
  if (str("method").empty()) return Status::InvalidArgument("an http action needs \"method\"");
  if (str("path").empty()) return Status::InvalidArgument("an http action needs \"path\"");
  ASSIGN_OR_RETURN(r.method, http_target::NormalizeMethod(str("method")));
  ASSIGN_OR_RETURN(r.path, http_target::NormalizePath(str("path")));
  r.url = http_target::JoinUrl(config.base, r.path);
  if (args.contains("json") && !args["json"].is_null()) {
    if (r.method == "GET" || r.method == "HEAD") {
      return Status::InvalidArgument(r.method + " requests carry no body");
    }
    r.has_body = true;
    r.body = args["json"];
    r.body_text = CanonicalJson(r.body);
    if (r.body_text.size() > kMaxBodyBytes) {
      return Status::InvalidArgument("the JSON body is larger than 1 MiB");
    }
  }
  return r;
}

bool IsReadMethod(const std::string& method) {
  return method == "GET" || method == "HEAD";
}

Effect RequestEffect(const Config& config, const Request& r) {
  Effect e;
  e.kind = "http";
  Json names = Json::array();
  for (const HeaderSpec& h : config.headers) names.push_back(h.name);
  e.extra = {{"method", r.method},
             {"url", r.url},
             {"path", r.path},
             {"body", r.has_body ? r.body : Json(nullptr)},
             {"body_bytes", r.body_text.size()},
             {"headers", names},
             {"irreversible", !IsReadMethod(r.method)}};
  if (config.recipients) {
    // Counted from the body the effect hash covers: an array's entries, or one string.
    // Anything else there (absent, a number, an object) counts none.
    Json who = Json::array();
    if (r.has_body && r.body.contains(*config.recipients)) {
      const Json& v = r.body.at(*config.recipients);
      if (v.is_array()) who = v;
      if (v.is_string()) who.push_back(v);
    }
    e.extra["recipient_count"] = static_cast<int64_t>(who.size());
    e.extra["recipients"] = who;
  }
  Json hashed = {{"method", r.method}, {"url", r.url}, {"body", e.extra["body"]}};
  e.effect_hash = Sha256Hex(CanonicalJson(hashed));
  return e;
}

class HttpConnector : public IrreversibleConnector {
 public:
  HttpConnector(std::string name, Config config)
      : IrreversibleConnector("an HTTP request that was sent cannot be undone by airlock"),
        name_(std::move(name)),
        config_(std::move(config)) {}

  Result<DryRunResult> DryRun(const Json& args) override {
    ASSIGN_OR_RETURN(Request r, ParseRequest(config_, args));
    // Outside the allow list the request is refused outright: PermissionDenied is a denial,
    // recorded and audited like any other (gateway Submit).
    bool allowed = false;
    for (const AllowRule& a : config_.allow) {
      if (http_target::AllowMatches(a, r.method, r.path)) allowed = true;
    }
    if (!allowed) {
      return Status::PermissionDenied(r.method + " " + std::string(http_target::PathPart(r.path)) +
                                      " is not in the allow list of target '" + name_ + "'");
    }
    DryRunResult out;
    out.effect = RequestEffect(config_, r);
    return out;
  }

  Result<ApplyOutcome> Apply(
      const std::string& action_id, const Json& args, const Effect& expected,
      const std::function<Status(const UndoRecord&)>& before_commit) override {
    (void)action_id;
    ASSIGN_OR_RETURN(Request r, ParseRequest(config_, args));
    ApplyOutcome out;
    out.effect = RequestEffect(config_, r);
    out.effect_matched = out.effect.effect_hash == expected.effect_hash;
    if (!out.effect_matched) return out;
    out.undo.kind = "http";
    out.undo.reversible = false;
    out.undo.note = "an HTTP " + r.method + " request that was sent cannot be undone by airlock";
    RETURN_IF_ERROR(before_commit(out.undo));

    http_target::OutboundRequest req;
    req.method = r.method;
    req.url = r.url;
    req.has_body = r.has_body;
    req.body = r.body_text;
    req.timeout_ms = config_.timeout_ms;
    req.max_response_bytes = config_.max_response_bytes;
    // Credentials are read now, at the last moment, and live only in this request.
    for (const HeaderSpec& h : config_.headers) {
      ASSIGN_OR_RETURN(std::string value, http_target::ResolveHeaderValue(h));
      req.headers.push_back(h.name + ": " + value);
    }
    ASSIGN_OR_RETURN(http_target::InboundResponse resp, http_target::SendRequest(req));
    out.result = {
        {"status", resp.status},       {"content_type", resp.content_type},
        {"body", resp.body},           {"body_bytes", resp.body.size()},
        {"truncated", resp.truncated}, {"max_response_bytes", config_.max_response_bytes}};
    if (!resp.location.empty()) {
      out.result["redirect_not_followed"] = resp.location;
    }
    return out;
  }

 private:
  std::string name_;
  Config config_;
};

}  // namespace

Json HttpResultSummary(const Json& result) {
  Json s = Json::object();
  if (!result.is_object()) return s;
  for (const char* key :
       {"status", "content_type", "body_bytes", "truncated", "redirect_not_followed"}) {
    if (result.contains(key)) s[key] = result[key];
  }
  return s;
}

Result<std::unique_ptr<Connector>> CreateHttpConnector(const ConnectorConfig& config) {
  ASSIGN_OR_RETURN(Config c, ParseConfig(config));
  return std::unique_ptr<Connector>(std::make_unique<HttpConnector>(config.name, std::move(c)));
}

}  // namespace airlock
