// The CLI's client of `airlock serve` (docs/API.md): one HTTP/1.1 request per call over
// Boost.Beast, the reply turned back into the Outcome the local gateway would have given,
// so that printing and exit codes are shared with the local path.
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "cli/backend.h"
#include "core/json.h"

namespace airlock::cli {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// A command's sandbox run or a wait for approval can take minutes; a server that says
// nothing for this long is treated as gone.
constexpr int kReplyTimeoutSeconds = 900;
constexpr size_t kMaxReplyBytes = 64 << 20;

struct Endpoint {
  std::string host, port, prefix;
};

Result<Endpoint> ParseUrl(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) {
    return Status::InvalidArgument("--server must be an http:// URL (got '" + url + "')");
  }
  std::string rest = url.substr(scheme.size());
  Endpoint e;
  size_t slash = rest.find('/');
  if (slash != std::string::npos) {
    e.prefix = rest.substr(slash);
    rest.resize(slash);
    while (!e.prefix.empty() && e.prefix.back() == '/') e.prefix.pop_back();
  }
  size_t colon = rest.rfind(':');
  if (colon == std::string::npos || rest.find(']') != std::string::npos) {
    e.host = rest;
    e.port = "80";
  } else {
    e.host = rest.substr(0, colon);
    e.port = rest.substr(colon + 1);
  }
  if (e.host.size() > 2 && e.host.front() == '[' && e.host.back() == ']') {
    e.host = e.host.substr(1, e.host.size() - 2);
  }
  if (e.host.empty() || e.port.empty()) {
    return Status::InvalidArgument("--server URL has no host or port: '" + url + "'");
  }
  return e;
}

struct Reply {
  int code = 0;
  Json body;
};

// "a=b&c=d" with each value percent-encoded.
std::string Query(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string q;
  for (const auto& [k, v] : params) {
    if (v.empty()) continue;
    q += q.empty() ? "?" : "&";
    q += k + "=";
    for (unsigned char c : v) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
        q += static_cast<char>(c);
      } else {
        static const char* hex = "0123456789ABCDEF";
        q += '%';
        q += hex[c >> 4];
        q += hex[c & 15];
      }
    }
  }
  return q;
}

// Each request is its own connection; the error names the server so that "connection
// refused" is not mistaken for a decision.
class Client {
 public:
  Client(Endpoint e, std::string url, std::optional<std::string> token)
      : e_(std::move(e)), url_(std::move(url)), token_(std::move(token)) {}

  Result<Reply> Call(http::verb method, const std::string& target, const Json* body) {
    try {
      return CallOrThrow(method, target, body);
    } catch (const std::exception& ex) {
      return Status::IoError("airlock server at " + url_ + ": " + ex.what());
    }
  }

 private:
  Result<Reply> CallOrThrow(http::verb method, const std::string& target, const Json* body) {
    asio::io_context io;
    tcp::resolver resolver(io);
    tcp::socket socket(io);
    asio::connect(socket, resolver.resolve(e_.host, e_.port));
    timeval tv{kReplyTimeoutSeconds, 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

    http::request<http::string_body> req{method, e_.prefix + target, 11};
    req.set(http::field::host, e_.host + ":" + e_.port);
    req.set(http::field::user_agent, "airlock-cli");
    req.set(http::field::accept, "application/json");
    if (token_) req.set(http::field::authorization, "Bearer " + *token_);
    if (body != nullptr) {
      req.set(http::field::content_type, "application/json");
      req.body() = body->dump(-1, ' ', false, Json::error_handler_t::replace);
    }
    req.prepare_payload();
    http::write(socket, req);

    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxReplyBytes);
    http::read(socket, buffer, parser);
    beast::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);

    Reply r;
    r.code = static_cast<int>(parser.get().result_int());
    const std::string& text = parser.get().body();
    r.body = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (r.body.is_discarded()) {
      return Status::IoError("airlock server at " + url_ + " replied " + std::to_string(r.code) +
                             " with a body that is not JSON");
    }
    return r;
  }

  Endpoint e_;
  std::string url_;
  std::optional<std::string> token_;
};

// An error reply ({"error": {"code", "message"}}) as the Status the gateway would return.
Status ErrorStatus(const Reply& r) {
  std::string message = "server replied " + std::to_string(r.code);
  std::string code;
  if (r.body.is_object() && r.body.contains("error") && r.body["error"].is_object()) {
    const Json& e = r.body["error"];
    if (e.contains("message") && e["message"].is_string()) message = e["message"];
    if (e.contains("code") && e["code"].is_string()) code = e["code"];
  }
  if (code == "unauthenticated" || code == "forbidden") return Status::PermissionDenied(message);
  if (code == "not_found") return Status::NotFound(message);
  if (code == "conflict") return Status::FailedPrecondition(message);
  if (r.code >= 400 && r.code < 500) return Status::InvalidArgument(message);
  return Status::Internal(message);
}

// A reply that carries an action (with `error`/`error_code` when it failed).
Outcome ActionOutcome(const Result<Reply>& reply) {
  if (!reply.ok()) return {reply.status(), std::nullopt};
  const Json& b = reply->body;
  if (!b.is_object() || !b.contains("id") || b["id"].is_null()) return {ErrorStatus(*reply), {}};
  auto action = ActionFromJson(b);
  if (!action.ok()) return {action.status().Annotate("the server's reply"), std::nullopt};
  Outcome out{Status::Ok(), std::move(*action), nullptr};
  if (b.contains("result")) out.action->result = b["result"];
  if (b.contains("report")) out.report = b["report"];
  if (b.contains("error_code") && b["error_code"].is_string()) {
    auto code = StatusCodeFromSlug(b["error_code"].get<std::string>());
    std::string msg =
        b.contains("error") && b["error"].is_string() ? b["error"].get<std::string>() : "failed";
    out.status = Status(code.value_or(StatusCode::kInternal), msg);
  }
  return out;
}

Result<AuditEvent> EventFromJson(const Json& j) {
  if (!j.is_object()) return Status::InvalidArgument("audit event is not an object");
  AuditEvent e;
  e.seq = j.value("seq", int64_t{0});
  e.at_ms = j.value("at_ms", int64_t{0});
  e.action_id = j.value("action_id", "");
  e.principal = j.value("principal", "");
  e.event = j.value("event", "");
  e.payload = j.contains("payload") ? j["payload"] : Json::object();
  e.prev_hash = j.value("prev_hash", "");
  e.hash = j.value("hash", "");
  return e;
}

class Remote final : public Backend {
 public:
  explicit Remote(Client c) : c_(std::move(c)) {}

  Outcome Submit(const SubmitRequest& r) override {
    Json body = {{"target", r.target}};
    if (r.kind == "sql") {
      body["sql"] = r.args.value("sql", "");
    } else if (r.kind == "shell") {
      body["command"] = r.args.contains("argv") ? r.args["argv"] : Json::array();
    } else if (r.kind == "mail") {
      for (const auto& [k, v] : r.args.items()) body[k] = v;
    } else if (r.kind == "http") {
      body["method"] = r.args.value("method", "");
      body["path"] = r.args.value("path", "");
      if (r.args.contains("json")) body["json"] = r.args["json"];
    } else {
      return {Status::InvalidArgument("the server does not take " + r.kind + " actions"), {}};
    }
    if (!r.idempotency_key.empty()) body["idempotency_key"] = r.idempotency_key;
    return ActionOutcome(c_.Call(http::verb::post, "/v1/actions", &body));
  }
  Outcome Vote(const std::string& id, bool approve, const std::string& reason) override {
    Json body = {{"reason", reason}};
    return ActionOutcome(c_.Call(http::verb::post,
                                 "/v1/actions/" + Escaped(id) + (approve ? "/approve" : "/reject"),
                                 &body));
  }
  Outcome Rollback(const std::string& id, const std::string& reason) override {
    Json body = {{"reason", reason}};
    return ActionOutcome(
        c_.Call(http::verb::post, "/v1/actions/" + Escaped(id) + "/rollback", &body));
  }
  Outcome Show(const std::string& id) override {
    return ActionOutcome(c_.Call(http::verb::get, "/v1/actions/" + Escaped(id), nullptr));
  }
  Result<std::vector<Action>> Pending() override {
    ASSIGN_OR_RETURN(Reply r, c_.Call(http::verb::get, "/v1/actions?status=pending", nullptr));
    if (r.code != 200 || !r.body.contains("actions") || !r.body["actions"].is_array()) {
      return ErrorStatus(r);
    }
    std::vector<Action> out;
    for (const Json& j : r.body["actions"]) {
      ASSIGN_OR_RETURN(Action a, ActionFromJson(j));
      out.push_back(std::move(a));
    }
    return out;
  }
  Status ResetBreaker(const std::string& target, const std::string& agent) override {
    Json body = {{"target", target}};
    if (!agent.empty()) body["agent"] = agent;
    ASSIGN_OR_RETURN(Reply r, c_.Call(http::verb::post, "/v1/breakers/reset", &body));
    return r.code == 200 ? Status::Ok() : ErrorStatus(r);
  }
  Result<audit::VerifyReport> VerifyAudit() override {
    ASSIGN_OR_RETURN(Reply r, c_.Call(http::verb::get, "/v1/audit/verify", nullptr));
    if (r.code != 200 || !r.body.is_object()) return ErrorStatus(r);
    audit::VerifyReport rep;
    rep.ok = r.body.value("ok", false);
    rep.events = r.body.value("events", int64_t{0});
    if (r.body.contains("first_bad_seq") && r.body["first_bad_seq"].is_number_integer()) {
      rep.first_bad_seq = r.body["first_bad_seq"].get<int64_t>();
    }
    rep.problem = r.body.value("problem", "");
    return rep;
  }
  Status ScanAudit(const std::string& action_id,
                   const std::function<bool(const AuditEvent&)>& fn) override {
    int64_t after = 0;
    for (;;) {
      ASSIGN_OR_RETURN(
          Reply r,
          c_.Call(http::verb::get,
                  "/v1/audit" + Query({{"after", std::to_string(after)}, {"action", action_id}}),
                  nullptr));
      if (r.code != 200 || !r.body.contains("events") || !r.body["events"].is_array()) {
        return ErrorStatus(r);
      }
      if (r.body["events"].empty()) return Status::Ok();
      for (const Json& j : r.body["events"]) {
        ASSIGN_OR_RETURN(AuditEvent e, EventFromJson(j));
        if (e.seq <= after) return Status::Internal("the server's audit log went backwards");
        after = e.seq;
        if (!fn(e)) return Status::Ok();
      }
    }
  }

 private:
  static std::string Escaped(const std::string& id) {
    std::string q = Query({{"x", id}});
    return q.substr(3);  // drop "?x="
  }
  Client c_;
};

}  // namespace

Result<std::unique_ptr<Backend>> RemoteBackend(const std::string& url,
                                               std::optional<std::string> token) {
  ASSIGN_OR_RETURN(Endpoint e, ParseUrl(url));
  return std::unique_ptr<Backend>(std::make_unique<Remote>(Client(e, url, std::move(token))));
}

}  // namespace airlock::cli
