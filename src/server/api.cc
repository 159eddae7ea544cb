#include "server/api.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>
#include <optional>
#include <vector>

#include "audit/audit.h"
#include "core/json.h"
#include "server/ui_assets.h"

namespace airlock::server {
namespace {

constexpr size_t kStreamBatchBytes = 64 << 10;

constexpr std::string_view kContentSecurityPolicy =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

HttpResponse JsonResponse(int status, const Json& j) {
  HttpResponse r;
  r.status = status;
  r.body = CanonicalJson(j);
  return r;
}

Json ErrorJson(std::string_view code, std::string_view message) {
  return {{"error", {{"code", std::string(code)}, {"message", std::string(message)}}}};
}

HttpResponse BadRequest(const std::string& message) {
  return ErrorResponse(400, "bad_request", message);
}

// The HTTP form of a gateway status, for a caller whose token was already authenticated: a
// PermissionDenied can then only be a refusal of the caller's role.
std::pair<int, std::string_view> HttpStatusFor(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument:
      return {400, "bad_request"};
    case StatusCode::kNotFound:
      return {404, "not_found"};
    case StatusCode::kPermissionDenied:
      return {403, "forbidden"};
    case StatusCode::kFailedPrecondition:
    case StatusCode::kConflict:
      return {409, "conflict"};
    default:
      return {500, "internal"};
  }
}

HttpResponse StatusResponse(const Status& st) {
  auto [status, code] = HttpStatusFor(st.code());
  return ErrorResponse(status, code, st.message());
}

// What an outcome answers: a submission (202 while pending; a recorded failure is airlock's
// unless the input was bad) or a request about an existing action.
enum class Answering { kSubmission, kExisting };

// A successful outcome's reply, from its action's JSON form `j` (ActionToJson).
HttpResponse ActionResponse(const Outcome& out, Answering answering, Json j) {
  if (!out.report.is_null() && !out.report.empty()) j["report"] = out.report;
  const bool pending = out.action->status == ActionStatus::kPending;
  return JsonResponse(pending && answering == Answering::kSubmission ? 202 : 200, j);
}

// The action as `airlock sql|show --json` prints it (cli/main.cc Report), or, when the
// request failed, the error with the action (if one was recorded) beside it.
HttpResponse OutcomeResponse(const Outcome& out, Answering answering) {
  const bool submission = answering == Answering::kSubmission;
  const bool has_report = !out.report.is_null() && !out.report.empty();
  if (!out.status.ok()) {
    auto [status, code] = HttpStatusFor(out.status.code());
    // A submission recorded as failed for a missing target file, say, is an error inside
    // airlock: 404 would wrongly say that the route or the action is unknown.
    if (submission && out.action && status != 400) {
      status = 500;
      code = "internal";
    }
    Json j = ErrorJson(code, out.status.message());
    if (out.action) j["action"] = ActionToJson(*out.action);
    if (has_report) j["report"] = out.report;
    return JsonResponse(status, j);
  }
  if (!out.action) return ErrorResponse(500, "internal", "the gateway returned no action");
  return ActionResponse(out, answering, ActionToJson(*out.action));
}

Reply Now(HttpResponse r) {
  Reply reply;
  reply.response = std::move(r);
  return reply;
}

// ---- request parsing -------------------------------------------------------------------------

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = HexDigit(s[i + 1]);
      const int lo = HexDigit(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// "a=1&b=x" -> {a: 1, b: x}; a repeated or undecodable parameter is an error.
std::optional<std::string> ParseQuery(std::string_view query,
                                      std::map<std::string, std::string>* out) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    auto key = PercentDecode(pair.substr(0, eq));
    auto value = PercentDecode(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
    if (!key || !value) return "bad percent-encoding in the query";
    if (!out->emplace(*key, *value).second) return "query parameter '" + *key + "' is repeated";
  }
  return std::nullopt;
}

bool Contains(std::string_view list, std::string_view name) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    if (list.substr(0, comma) == name) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

// The body as a JSON object holding only `allowed` fields (comma-separated); no body is {}.
std::optional<HttpResponse> ReadBody(const HttpRequest& req, std::string_view allowed, Json* out) {
  *out = Json::object();
  if (req.body.empty()) return std::nullopt;
  if (MediaType(req.Header("content-type")) != "application/json") {
    return ErrorResponse(
        415, "unsupported_media_type",
        "the body must be application/json, not '" + std::string(req.Header("content-type")) + "'");
  }
  auto parsed = ParseJson(req.body);
  if (!parsed.ok()) return ErrorResponse(400, "bad_json", parsed.status().message());
  if (!parsed->is_object()) return ErrorResponse(400, "bad_json", "the body is not a JSON object");
  for (const auto& [key, value] : parsed->items()) {
    if (!Contains(allowed, key)) {
      return ErrorResponse(
          400, "unknown_field",
          "unknown field '" + key + "' (this route takes: " + std::string(allowed) + ")");
    }
  }
  *out = std::move(*parsed);
  return std::nullopt;
}

std::optional<HttpResponse> StringField(const Json& body, const char* name, bool required,
                                        std::string* out) {
  if (!body.contains(name)) {
    if (!required) return std::nullopt;
    return ErrorResponse(400, "missing_field", std::string("field '") + name + "' is required");
  }
  if (!body[name].is_string())
    return BadRequest(std::string("field '") + name + "' must be a string");
  *out = body[name].get<std::string>();
  return std::nullopt;
}

std::optional<int64_t> ParseInt(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// A query parameter that must be an integer in [lo, hi]; `fallback` when absent.
std::optional<HttpResponse> IntParam(const std::map<std::string, std::string>& query,
                                     const std::string& name, int64_t lo, int64_t hi,
                                     int64_t fallback, int64_t* out) {
  auto it = query.find(name);
  if (it == query.end()) {
    *out = fallback;
    return std::nullopt;
  }
  auto v = ParseInt(it->second);
  if (!v || *v < lo || *v > hi) {
    return BadRequest("'" + name + "' must be an integer from " + std::to_string(lo) + " to " +
                      std::to_string(hi));
  }
  *out = *v;
  return std::nullopt;
}

std::string Param(const std::map<std::string, std::string>& query, const std::string& name) {
  auto it = query.find(name);
  return it == query.end() ? "" : it->second;
}

// ---- long replies ----------------------------------------------------------------------------

// One of a bounded number of concurrent long replies; released when the reply ends (or is
// dropped unrun).
class Slot {
 public:
  static std::shared_ptr<Slot> Take(std::atomic<int>& count, int max) {
    if (count.fetch_add(1) >= max) {
      --count;
      return nullptr;
    }
    return std::shared_ptr<Slot>(new Slot(count));
  }
  ~Slot() { --count_; }

 private:
  explicit Slot(std::atomic<int>& count) : count_(count) {}
  std::atomic<int>& count_;
};

std::string OneLine(std::string s) {
  std::replace_if(
      s.begin(), s.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  return s;
}

std::string SseMessage(const HubEvent& e) {
  return "id: " + std::to_string(e.seq) + "\nevent: " + OneLine(e.event) +
         "\ndata: " + CanonicalJson(e.ToJson()) + "\n\n";
}

const char* RoleName(Principal::Role role) {
  switch (role) {
    case Principal::Role::kAgent:
      return "agent";
    case Principal::Role::kApprover:
      return "approver";
    case Principal::Role::kOperator:
      return "operator";
  }
  return "unknown";
}

}  // namespace

struct Api::Call {
  const HttpRequest& request;
  std::map<std::string, std::string> query;
  std::string id;     // the {id} segment
  std::string token;  // the bearer token ("" when none)
  Principal who;      // authenticated routes only
};

const Api::Route Api::kRoutes[] = {
    {"GET", "/healthz", &Api::Healthz, false, ""},
    {"GET", "/metrics", &Api::MetricsText, false, ""},
    {"GET", "/v1/whoami", &Api::WhoAmI, true, ""},
    {"POST", "/v1/actions", &Api::Submit, true, ""},
    {"GET", "/v1/actions", &Api::ListActions, true, "status,agent,target,limit"},
    {"GET", "/v1/actions/{id}", &Api::ShowAction, true, ""},
    {"POST", "/v1/actions/{id}/approve", &Api::Approve, true, ""},
    {"POST", "/v1/actions/{id}/reject", &Api::Reject, true, ""},
    {"POST", "/v1/actions/{id}/rollback", &Api::Rollback, true, ""},
    {"GET", "/v1/breakers", &Api::Breakers, true, ""},
    {"POST", "/v1/breakers/reset", &Api::ResetBreaker, true, ""},
    {"GET", "/v1/audit", &Api::Audit, true, "after,limit,action"},
    {"GET", "/v1/audit/verify", &Api::VerifyAudit, true, ""},
    {"GET", "/v1/events", &Api::Events, true, "after"},
};

namespace {

// Whether `path` matches `pattern`; the {id} segment goes to *id. Segment by segment,
// without lists of either: every request is matched against the routes (RouteLabel).
bool Matches(std::string_view pattern, std::string_view path, std::string* id) {
  if (pattern.empty() || pattern[0] != '/' || path.empty() || path[0] != '/') return false;
  std::string_view want = pattern.substr(1);
  std::string_view got = path.substr(1);
  std::optional<std::string_view> id_segment;
  for (;;) {
    const size_t want_slash = want.find('/');
    const size_t got_slash = got.find('/');
    const std::string_view w = want.substr(0, want_slash);
    const std::string_view g = got.substr(0, got_slash);
    if (w == "{id}") {
      if (g.empty()) return false;
      id_segment = g;
    } else if (w != g) {
      return false;
    }
    if ((want_slash == std::string_view::npos) != (got_slash == std::string_view::npos)) {
      return false;  // one has more segments than the other
    }
    if (want_slash == std::string_view::npos) break;
    want.remove_prefix(want_slash + 1);
    got.remove_prefix(got_slash + 1);
  }
  if (id_segment) *id = std::string(*id_segment);
  return true;
}

std::string_view PathOf(std::string_view target) {
  return target.substr(0, target.find('?'));
}

bool IsUiPath(std::string_view path) {
  return path == "/" || path.rfind("/ui/", 0) == 0;
}

std::optional<HttpResponse> ReadQuery(std::string_view target, std::string_view allowed,
                                      std::map<std::string, std::string>* out) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  if (auto bad = ParseQuery(target.substr(q + 1), out)) return BadRequest(*bad);
  for (const auto& [key, value] : *out) {
    if (!Contains(allowed, key)) {
      return BadRequest(
          "unknown query parameter '" + key + "'" +
          (allowed.empty() ? "" : " (this route takes: " + std::string(allowed) + ")"));
    }
  }
  return std::nullopt;
}

HttpResponse UiResponse(const HttpRequest& req, std::string_view path) {
  if (req.method != "GET") {
    HttpResponse r = ErrorResponse(405, "method_not_allowed", req.method + " is not allowed here");
    r.headers.emplace_back("Allow", "GET");
    return r;
  }
  const UiAsset* asset = FindUiAsset(path);
  if (asset == nullptr) return ErrorResponse(404, "not_found", "no such page");
  HttpResponse r;
  r.content_type = std::string(asset->content_type);
  r.body = std::string(asset->body);
  r.headers.emplace_back("Content-Security-Policy", std::string(kContentSecurityPolicy));
  r.headers.emplace_back("X-Frame-Options", "DENY");
  return r;
}

}  // namespace

std::string Api::RouteLabel(std::string_view target) {
  const std::string_view path = PathOf(target);
  if (IsUiPath(path)) return "/ui";
  std::string id;
  if (McpHttp::IsMcpPath(path, &id)) return "/mcp/{server}";
  for (const Route& r : kRoutes) {
    if (Matches(r.pattern, path, &id)) return std::string(r.pattern);
  }
  return "other";
}

Api::Api(Gateway& gateway, EventHub& hub, Metrics& metrics, const notify::Notifier* notifier,
         ApiOptions options)
    : gateway_(gateway),
      hub_(hub),
      metrics_(metrics),
      notifier_(notifier),
      options_(options),
      mcp_(gateway, options.mcp) {}

Reply Api::Handle(const HttpRequest& request) {
  const std::string_view path = PathOf(request.target);
  if (IsUiPath(path)) return Now(UiResponse(request, path));
  if (std::string server; McpHttp::IsMcpPath(path, &server)) return mcp_.Handle(request, server);
  Call c{request, {}, {}, {}, {}};
  const Route* route = nullptr;
  std::string allow;
  for (const Route& r : kRoutes) {
    std::string id;
    if (!Matches(r.pattern, path, &id)) continue;
    allow += (allow.empty() ? "" : ", ") + std::string(r.method);
    if (r.method == request.method) {
      route = &r;
      c.id = std::move(id);
    }
  }
  if (allow.empty()) return Now(ErrorResponse(404, "not_found", "no route " + std::string(path)));
  if (route == nullptr) {
    HttpResponse r = ErrorResponse(405, "method_not_allowed",
                                   request.method + " is not allowed on " + std::string(path));
    r.headers.emplace_back("Allow", allow);
    return Now(std::move(r));
  }
  if (!route->authenticated) return (this->*(route->handler))(c);
  if (auto refused = ReadQuery(request.target, route->query, &c.query)) return Now(*refused);
  c.token = BearerToken(request);
  // Never the operator over HTTP: a missing token is an empty one, which nobody holds.
  auto who = gateway_.WhoIs(c.token);
  if (!who.ok()) {
    if (who.status().code() == StatusCode::kPermissionDenied) {
      return Now(ErrorResponse(401, "unauthenticated",
                               "a valid 'Authorization: Bearer TOKEN' header is required"));
    }
    return Now(StatusResponse(who.status()));
  }
  c.who = *who;
  return (this->*(route->handler))(c);
}

// ---- routes ----------------------------------------------------------------------------------

Reply Api::Healthz(const Call&) {
  return Now(JsonResponse(200, {{"status", "ok"}}));
}

Reply Api::MetricsText(const Call&) {
  std::optional<notify::Stats> stats;
  if (notifier_ != nullptr) stats = notifier_->stats();
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = metrics_.Render(gateway_, stats ? &*stats : nullptr);
  return Now(std::move(r));
}

Reply Api::WhoAmI(const Call& c) {
  return Now(JsonResponse(200, {{"role", RoleName(c.who.role)}, {"name", c.who.name}}));
}

namespace {

// {target, sql} -> an SQL action; {target, command: [argv...]} -> a shell action; {target,
// to, cc?, bcc?, subject, body, attachments?} -> a mail action, as `airlock sql`, `airlock
// exec` and `airlock send` build them. `idempotency_key` (optional) makes a retry safe.
std::optional<HttpResponse> ParseSubmission(const Json& body, int64_t max_wait_ms,
                                            SubmitRequest* req, int64_t* wait_ms) {
  if (auto e = StringField(body, "target", true, &req->target)) return e;
  const bool sql = body.contains("sql");
  const bool command = body.contains("command");
  const bool mail = body.contains("subject") || body.contains("to");
  const bool request = body.contains("method") || body.contains("path");
  if (int(sql) + int(command) + int(mail) + int(request) > 1) {
    return BadRequest(
        "give one of 'sql', 'command', a message ('to', 'subject', 'body') or 'method'+'path'");
  }
  if (!sql && !command && !mail && !request) {
    return ErrorResponse(400, "missing_field",
                         "field 'sql', 'command', 'to' with 'subject' and 'body', or "
                         "'method'+'path' is required");
  }
  if (!request && body.contains("json"))
    return BadRequest("field 'json' goes with 'method'+'path'");
  if (body.contains("idempotency_key")) {
    if (auto e = StringField(body, "idempotency_key", false, &req->idempotency_key)) return e;
  }
  if (mail) {
    // The connector validates every field (addresses, header injection, attachments); the
    // API only picks the message's fields out of the request.
    req->kind = "mail";
    req->args = Json::object();
    for (const char* k : {"to", "cc", "bcc", "subject", "body", "attachments"}) {
      if (body.contains(k)) req->args[k] = body[k];
    }
  } else if (request) {
    // {target, method, path, json?} -> an HTTP request, as `airlock http` builds it.
    std::string method, path;
    if (auto e = StringField(body, "method", true, &method)) return e;
    if (auto e = StringField(body, "path", true, &path)) return e;
    req->kind = "http";
    req->args = {{"method", method}, {"path", path}};
    if (body.contains("json")) req->args["json"] = body["json"];
  } else if (sql) {
    std::string text;
    if (auto e = StringField(body, "sql", true, &text)) return e;
    req->kind = "sql";
    req->args = {{"sql", text}};
  } else {
    const Json& argv = body["command"];
    const bool strings =
        argv.is_array() &&
        std::all_of(argv.begin(), argv.end(), [](const Json& a) { return a.is_string(); });
    if (!strings || argv.empty()) {
      return BadRequest("field 'command' must be a non-empty array of strings");
    }
    req->kind = "shell";
    req->args = {{"argv", argv}};
  }
  *wait_ms = 0;
  if (body.contains("wait_ms")) {
    const Json& w = body["wait_ms"];
    if (!w.is_number_integer() || w.get<int64_t>() < 0 || w.get<int64_t>() > max_wait_ms) {
      return BadRequest("field 'wait_ms' must be an integer from 0 to " +
                        std::to_string(max_wait_ms));
    }
    *wait_ms = w.get<int64_t>();
  }
  return std::nullopt;
}

// What answers a read on the fast path: its reply is built on the caller's thread, before
// the record is queued, and the store's committer thread only sends it (or, if the record
// failed, an error without the rows). Nothing may escape onto the committer (an exception
// would end it).
std::function<Gateway::ReadFinish(const Outcome&, std::string)> ReadResponder(
    const Responder& respond) {
  return [respond](const Outcome& ok, std::string text) -> Gateway::ReadFinish {
    // ActionResponse's answer, from the action's text (a read has no report; one that did
    // would go through the tree, so that it is not lost).
    std::shared_ptr<HttpResponse> reply;
    if (ok.report.is_null() || ok.report.empty()) {
      reply = std::make_shared<HttpResponse>();
      reply->status = ok.action->status == ActionStatus::kPending ? 202 : 200;
      reply->body = std::move(text);
    } else {
      reply = std::make_shared<HttpResponse>(
          ActionResponse(ok, Answering::kSubmission, Json::parse(text)));
    }
    return [respond, reply](const Status& recorded, std::shared_ptr<const void> hold) {
      try {
        if (recorded.ok()) {
          reply->hold = std::move(hold);
          respond(std::move(*reply));
        } else {
          HttpResponse error = OutcomeResponse({recorded, std::nullopt}, Answering::kSubmission);
          error.hold = std::move(hold);
          respond(std::move(error));
        }
      } catch (const std::exception& e) {
        respond(ErrorResponse(500, "internal", std::string("the reply failed: ") + e.what()));
      } catch (...) {
        respond(ErrorResponse(500, "internal", "the reply failed"));
      }
    };
  };
}

}  // namespace

bool Api::HandleInline(const HttpRequest& request, const Responder& respond) {
  if (request.method != "POST" || request.target != "/v1/actions") return false;
  // Only what Submit would parse without complaint; any error is answered by Handle.
  Json body;
  if (ReadBody(request,
               "target,sql,command,method,path,json,wait_ms,to,cc,bcc,subject,body,"
               "attachments,idempotency_key",
               &body)) {
    return false;
  }
  SubmitRequest req;
  int64_t wait_ms = 0;
  if (ParseSubmission(body, options_.max_wait_ms, &req, &wait_ms) || wait_ms != 0) return false;
  return gateway_.SubmitReadPrepared(BearerToken(request), req, ReadResponder(respond));
}

Reply Api::Submit(const Call& c) {
  Json body;
  if (auto e = ReadBody(c.request,
                        "target,sql,command,method,path,json,wait_ms,to,cc,bcc,subject,body,"
                        "attachments,idempotency_key",
                        &body)) {
    return Now(*e);
  }
  SubmitRequest req;
  int64_t wait_ms = 0;
  if (auto e = ParseSubmission(body, options_.max_wait_ms, &req, &wait_ms)) return Now(*e);
  // Nothing to wait for: a read is answered by the committer, without a blocked worker.
  if (wait_ms == 0) {
    Reply r;
    r.async = [this, token = c.token, req = std::move(req)](const Responder& respond) {
      if (gateway_.SubmitReadPrepared(token, req, ReadResponder(respond))) return;
      respond(OutcomeResponse(gateway_.Submit(token, req), Answering::kSubmission));
    };
    return r;
  }
  Outcome out = gateway_.Submit(c.token, req);
  const bool pending =
      out.status.ok() && out.action && out.action->status == ActionStatus::kPending;
  if (!pending || wait_ms == 0) return Now(OutcomeResponse(out, Answering::kSubmission));
  // Waiting holds a thread of the long-reply pool; when every slot is taken the caller gets
  // the pending action now, which `wait_ms` ("up to") allows.
  auto slot = Slot::Take(waits_, options_.max_waits);
  if (!slot) return Now(OutcomeResponse(out, Answering::kSubmission));
  Reply r;
  r.deferred = [this, slot, token = c.token, id = out.action->id,
                wait_ms](const ReplyContext& context) {
    return WaitForDecision(token, id, wait_ms, context);
  };
  return r;
}

HttpResponse Api::WaitForDecision(const std::string& token, const std::string& id, int64_t wait_ms,
                                  const ReplyContext& context) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(wait_ms);
  for (;;) {
    const int64_t left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    // In slices, so that a shutdown ends the wait soon.
    const int slice = static_cast<int>(std::min<int64_t>(left, 1000));
    if (hub_.WaitForDecision(id, slice) || context.Stopping()) break;
  }
  return OutcomeResponse(gateway_.Show(token, id), Answering::kSubmission);
}

Reply Api::ListActions(const Call& c) {
  ActionFilter filter;
  const std::string status = Param(c.query, "status");
  if (!status.empty()) {
    filter.status = ParseActionStatus(status);
    if (!filter.status) return Now(BadRequest("unknown status '" + status + "'"));
  }
  int64_t limit = 0;
  if (auto e = IntParam(c.query, "limit", 1, 1000, 100, &limit)) return Now(*e);
  filter.limit = static_cast<int>(limit);
  filter.agent = Param(c.query, "agent");
  const std::string target = Param(c.query, "target");
  Result<std::vector<Action>> list = filter.status == ActionStatus::kPending
                                         ? gateway_.Pending(c.token)
                                         : gateway_.List(c.token, filter, target);
  if (!list.ok()) return Now(StatusResponse(list.status()));
  Json actions = Json::array();
  for (const Action& a : *list) {
    // Pending() takes no filters: it orders what needs a human most first.
    if (!filter.agent.empty() && a.agent != filter.agent) continue;
    if (!target.empty() && a.target != target) continue;
    if (static_cast<int64_t>(actions.size()) >= limit) break;
    actions.push_back(ActionToJson(a));
  }
  return Now(JsonResponse(200, {{"actions", std::move(actions)}}));
}

Reply Api::ShowAction(const Call& c) {
  return Now(OutcomeResponse(gateway_.Show(c.token, c.id), Answering::kExisting));
}

Reply Api::Approve(const Call& c) {
  return Vote(c, true);
}
Reply Api::Reject(const Call& c) {
  return Vote(c, false);
}

Reply Api::Vote(const Call& c, bool approve) {
  Json body;
  if (auto e = ReadBody(c.request, "reason", &body)) return Now(*e);
  std::string reason;
  if (auto e = StringField(body, "reason", false, &reason)) return Now(*e);
  return Now(OutcomeResponse(gateway_.Vote(c.token, c.id, approve, reason), Answering::kExisting));
}

Reply Api::Rollback(const Call& c) {
  Json body;
  if (auto e = ReadBody(c.request, "reason", &body)) return Now(*e);
  std::string reason;
  if (auto e = StringField(body, "reason", false, &reason)) return Now(*e);
  return Now(OutcomeResponse(gateway_.Rollback(c.token, c.id, reason), Answering::kExisting));
}

Reply Api::Breakers(const Call&) {
  auto list = gateway_.Breakers();
  if (!list.ok()) return Now(StatusResponse(list.status()));
  Json out = Json::array();
  for (const Breaker& b : *list) {
    out.push_back({{"target", b.target},
                   {"agent", b.agent},
                   {"open", b.open},
                   {"changed_ms", b.changed_ms},
                   {"reason", b.reason}});
  }
  return Now(JsonResponse(200, {{"breakers", std::move(out)}}));
}

Reply Api::ResetBreaker(const Call& c) {
  Json body;
  if (auto e = ReadBody(c.request, "target,agent", &body)) return Now(*e);
  std::string target, agent;
  if (auto e = StringField(body, "target", true, &target)) return Now(*e);
  if (auto e = StringField(body, "agent", false, &agent)) return Now(*e);
  Status st = gateway_.ResetBreaker(c.token, target, agent);
  if (!st.ok()) return Now(StatusResponse(st));
  return Now(JsonResponse(200, {{"reset", true}}));
}

Reply Api::Audit(const Call& c) {
  int64_t after = 0, limit = 0;
  if (auto e = IntParam(c.query, "after", 0, INT64_MAX, 0, &after)) return Now(*e);
  if (auto e = IntParam(c.query, "limit", 1, 10000, 1000, &limit)) return Now(*e);
  Json events = Json::array();
  int64_t next_after = after;
  Status st =
      gateway_.ScanAudit(c.token, after, Param(c.query, "action"), [&](const AuditEvent& e) {
        events.push_back(AuditEventToJson(e));
        next_after = e.seq;
        return static_cast<int64_t>(events.size()) < limit;
      });
  if (!st.ok()) return Now(StatusResponse(st));
  return Now(JsonResponse(200, {{"events", std::move(events)}, {"next_after", next_after}}));
}

Reply Api::VerifyAudit(const Call& c) {
  if (c.who.role != Principal::Role::kApprover) {
    return Now(ErrorResponse(403, "forbidden", c.who.Label() + " cannot verify the audit log"));
  }
  auto rep = gateway_.VerifyAudit();
  if (!rep.ok()) return Now(StatusResponse(rep.status()));
  // As `airlock audit verify --json` prints it.
  return Now(
      JsonResponse(200, {{"ok", rep->ok},
                         {"events", rep->events},
                         {"first_bad_seq", rep->ok ? Json(nullptr) : Json(rep->first_bad_seq)},
                         {"problem", rep->problem}}));
}

Reply Api::Events(const Call& c) {
  std::optional<int64_t> after;
  std::string resume = Param(c.query, "after");
  if (resume.empty()) resume = std::string(c.request.Header("last-event-id"));
  if (!resume.empty()) {
    after = ParseInt(resume);
    if (!after || *after < 0)
      return Now(BadRequest("'after' / Last-Event-ID must be a seq number"));
  }
  auto slot = Slot::Take(streams_, options_.max_streams);
  if (!slot) {
    return Now(ErrorResponse(503, "too_many_streams",
                             "more than " + std::to_string(options_.max_streams) +
                                 " event streams are open; try again later"));
  }
  if (after) {
    // A resume point past the chain's head was not seen on this chain (the store was
    // replaced, or the id came from elsewhere). Taken as given, it would silently drop the
    // next events up to it; the stream starts at the head instead. Every event appended
    // after this read has a higher seq, so none is lost.
    auto head = gateway_.AuditHeadNow();
    if (!head.ok()) return Now(StatusResponse(head.status()));
    if (*after > head->seq) after = head->seq;
  }
  std::function<bool(const HubEvent&)> filter = [](const HubEvent&) { return true; };
  if (c.who.role != Principal::Role::kApprover) {
    // Only events of its own actions: a breaker event names an agent but is not an action's.
    filter = [name = c.who.name](const HubEvent& e) {
      return !e.action_id.empty() && e.agent == name;
    };
  }
  std::shared_ptr<EventHub::Subscription> sub = hub_.Subscribe(after, std::move(filter));
  Reply r;
  r.response.content_type = "text/event-stream";
  r.stream = [this, slot, sub](StreamSink& sink) { Stream(*sub, sink); };
  return r;
}

void Api::Stream(EventHub::Subscription& sub, StreamSink& sink) {
  using Clock = std::chrono::steady_clock;
  // At once, so that a client knows its subscription is in place (and proxies see bytes).
  if (!sink.Send(": keep-alive\n\n")) return;
  auto last_write = Clock::now();
  while (!sink.Stopping()) {
    std::optional<HubEvent> e = sub.Next(static_cast<int>(options_.stream_poll_ms));
    if (e) {
      // What else is already queued goes in the same write: one round trip per burst.
      std::string batch = SseMessage(*e);
      while (batch.size() < kStreamBatchBytes && (e = sub.Next(0))) batch += SseMessage(*e);
      if (!sink.Send(std::move(batch))) return;
      last_write = Clock::now();
      continue;
    }
    if (sub.closed()) return;
    if (Clock::now() - last_write >= std::chrono::milliseconds(options_.keepalive_ms)) {
      if (!sink.Send(": keep-alive\n\n")) return;
      last_write = Clock::now();
    }
  }
}

}  // namespace airlock::server
