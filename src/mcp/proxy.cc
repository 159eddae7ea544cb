#include "mcp/proxy.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "connectors/mcp/mcp_connector.h"
#include "core/crash.h"
#include "core/json.h"
#include "core/trace.h"
#include "mcp/http_upstream.h"
#include "mcp/jsonrpc.h"
#include "mcp/sandboxed_upstream.h"
#include "mcp/upstream.h"

namespace airlock::mcp {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kStatusTool = "airlock_action_status";
constexpr const char* kBuiltinServer = "airlock";
constexpr int kMaxRestartsPerMinute = 5;
constexpr auto kInitTimeout = std::chrono::seconds(30);

void Log(const std::string& what) {
  std::fprintf(stderr, "airlock mcp: %s\n", what.c_str());
}

Json TextResult(const std::string& text, bool is_error, Json structured = nullptr) {
  Json r = {{"content", Json::array({{{"type", "text"}, {"text", text}}})}, {"isError", is_error}};
  if (!structured.is_null()) r["structuredContent"] = std::move(structured);
  return r;
}

// A tools/call's params member `key` when it is an object, else null.
const Json* ObjectParam(const Json& params, const char* key) {
  auto it = params.find(key);
  return it != params.end() && it->is_object() ? &*it : nullptr;
}

std::string Reasons(const Action& a) {
  std::string out;
  for (const auto& r : a.reasons) out += (out.empty() ? "" : "; ") + r;
  return out;
}

Json StatusToolDefinition() {
  return {
      {"name", kStatusTool},
      {"title", "airlock: action status"},
      {"description",
       "Ask airlock about an action it holds for approval: its status (pending, applied, "
       "rejected, expired, denied, failed), its risk and why, and the tool's answer once "
       "it was applied by an approval."},
      {"inputSchema",
       {{"type", "object"},
        {"properties", {{"id", {{"type", "string"}, {"description", "the action id (act_...)"}}}}},
        {"required", Json::array({"id"})}}},
      {"annotations", {{"readOnlyHint", true}}}};
}

// A read tool call made on the client's thread (Session::InlineRead): its record and the
// upstream's answer meet here, and whichever comes second finishes the call.
struct InlineReadState {
  std::mutex mu;
  Gateway::McpReadTicket ticket;
  Json client_id = nullptr;
  std::string client_key;  // CanonicalJson(client_id)
  std::shared_ptr<std::atomic<bool>> cancelled;
  std::optional<Status> recorded;      // GUARDED_BY(mu)
  std::optional<Result<Json>> answer;  // GUARDED_BY(mu)
  // The reply as the server's text with the client's id (ReplyEarly), and whether it went.
  std::string reply_text;  // GUARDED_BY(mu)
  bool replied = false;    // GUARDED_BY(mu)
};

// What one request to the upstream is waiting for.
struct InFlight {
  enum class Kind { kForward, kToolsList, kInternal, kInlineRead };
  Kind kind = Kind::kForward;
  Json client_id = nullptr;  // kForward / kToolsList / kInlineRead
  std::string client_key;    // CanonicalJson(client_id), its key in client_to_upstream_
  // kInternal: the answer (or an error) is handed over here.
  std::shared_ptr<std::promise<Result<Json>>> answer;
  std::shared_ptr<InlineReadState> read;  // kInlineRead
};

// Threads for gated calls, kept for reuse: a call that waits for a human holds its thread
// for up to approval_wait, so there is no fixed number; one more starts whenever every kept
// thread is busy, and a thread idle for a while ends. Reuse spares each call a thread's start
// (clone, a fresh stack and its page faults), which is most of what a read call costs here.
class GateThreads {
 public:
  GateThreads() = default;
  ~GateThreads() {
    std::unique_lock<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
    done_cv_.wait(lock, [&] { return threads_ == 0; });
  }
  GateThreads(const GateThreads&) = delete;
  GateThreads& operator=(const GateThreads&) = delete;

  void Run(std::function<void()> task) {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(task));
    // Every queued task needs a waiting thread of its own; else one more starts.
    if (idle_ >= static_cast<int>(queue_.size())) {
      cv_.notify_one();
      return;
    }
    ++threads_;
    std::thread([this] { Loop(); }).detach();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      ++idle_;
      const bool got = cv_.wait_for(lock, std::chrono::seconds(30),
                                    [&] { return !queue_.empty() || stopping_; });
      --idle_;
      if (!got || queue_.empty()) break;  // idle too long, or stopping with nothing to do
      std::function<void()> task = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
    --threads_;
    done_cv_.notify_all();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable done_cv_;
  std::deque<std::function<void()>> queue_;  // GUARDED_BY(mu_)
  int idle_ = 0;                             // GUARDED_BY(mu_): threads waiting for a task
  int threads_ = 0;                          // GUARDED_BY(mu_)
  bool stopping_ = false;                    // GUARDED_BY(mu_)
};

class Session;

// The connector's way to the live upstream of this session.
class SessionCaller : public McpToolCaller {
 public:
  explicit SessionCaller(Session* s) : session_(s) {}
  Result<Json> CallTool(const Json& params) override;
  Result<Json> CallToolOverlapped(const Json& params,
                                  const std::function<Status()>& in_flight) override;
  Result<std::string> SandboxUpper() override;
  Status ResetSandbox() override;

 private:
  Session* session_;
};

class Session {
 public:
  Session(Gateway& gw, const McpServerSpec& spec, const AgentSpec* agent,
          std::optional<std::string> token, ClientChannel& channel)
      : gw_(gw),
        token_(std::move(token)),
        channel_(channel),
        spec_(spec),
        sees_server_(agent != nullptr && AgentSeesMcpServer(*agent, spec.name)),
        agent_(agent ? agent->name : ""),
        agent_spec_(agent) {}

  // One message from the client, valid JSON-RPC.
  // `text`: the message as the client wrote it, when there is one (stdio), so that a read
  // tool call can go upstream as that text (InlineRead).
  void HandleMessage(const Message& m, std::string_view text = {});
  // One message's text: parse errors are answered through the channel.
  void HandleClientText(std::string_view text);
  // Waiting calls stop waiting, calls being applied finish and are recorded, the upstream
  // is stopped. Idempotent.
  void Close();
  bool closing() const { return closing_; }
  const McpServerSpec& spec() const { return spec_; }
  const std::string& agent() const { return agent_; }

  // A tools/call made by the gateway's apply, on this session's upstream. `in_flight`, if
  // given, runs on this thread once the request is sent, while the upstream works on it; if
  // it fails, the answer is still awaited (the upstream's id must be retired) but withheld.
  Result<Json> CallUpstream(const std::string& method, const Json& params, const Json& client_id,
                            const std::function<Status()>* in_flight = nullptr);
  // A server in a sandbox: its upper layer's path, starting it if needed.
  Result<std::string> SandboxUpper();
  // Stops the sandboxed server (and with it its overlay); the next request starts it afresh.
  Status ResetSandbox();

 private:
  void ToClient(const Json& message);
  void HandleRequest(const Message& m, std::string_view text);
  void HandleNotification(const Message& m);
  void HandleLocally(const Message& m);  // an agent without the server's scope
  Status EnsureUpstream();
  Status StartUpstreamLocked();
  void ReaderLoop(std::shared_ptr<Upstream> up);
  void ReplyEarly(const std::string& line);
  void UpstreamMessage(Message m);
  int64_t Forward(const Message& m, InFlight::Kind kind);
  Json FilterToolsList(Json result);
  // The gateway's request for a tools/call (params checked by the caller).
  SubmitRequest McpRequest(const std::string& tool, const Json& params);
  // The same call as the upstream's tools/call request, without its id.
  static Json UpstreamToolCall(const std::string& tool, const Json& params);
  // A read tool call, without a gate thread: true when it was sent (and is then finished by
  // ReadMet), false when Gate must decide it.
  bool InlineRead(const Message& m, std::string_view text);
  static bool SentAsWritten(const Message& m, std::string_view text);
  static bool ReadsAlike(const Json& v);
  // The record or the answer of an inline read is in; the second one finishes it.
  void ReadMet(const std::shared_ptr<InlineReadState>& read, std::optional<Status> recorded,
               std::optional<Result<Json>> answer);
  void Gate(Json client_id, Json params);
  // Ends a call counted in gates_running_ (counted before it was handed on): Close waits for
  // every such call.
  struct CallDone {
    Session* s;
    ~CallDone() {
      std::lock_guard<std::mutex> lock(s->gate_mu_);
      --s->gates_running_;
      s->gate_cv_.notify_all();
    }
  };
  void ActionStatusTool(const Json& client_id, const Json& params);
  Json ResultFor(const Action& a);
  // The built-in server (`--server airlock`): airlock's own targets as tools.
  void HandleBuiltin(const Message& m);
  Json BuiltinTools();
  std::vector<std::string> ScopedTargets(const std::string& kind);
  bool BuiltinRequest(const std::string& tool, const Json& arguments, SubmitRequest* req,
                      std::string* why);

  Gateway& gw_;
  const std::optional<std::string> token_;
  ClientChannel& channel_;
  const McpServerSpec& spec_;
  const bool sees_server_;
  const bool builtin_ = spec_.name == kBuiltinServer;
  const std::string agent_;
  const AgentSpec* const agent_spec_;

  SessionCaller caller_{this};

  std::mutex restart_mu_;
  std::mutex up_mu_;  // guards everything below up to the next blank line
  std::shared_ptr<Upstream> up_;
  std::string sandbox_upper_;        // up_'s upper layer when it runs in a sandbox
  bool deliberate_restart_ = false;  // the next start follows ResetSandbox, not a crash
  std::vector<std::thread> readers_;
  bool ever_started_ = false;
  Json client_init_ = nullptr;  // the client's initialize params, replayed on restart
  bool client_initialized_ = false;
  int64_t next_id_ = 1;
  std::map<int64_t, InFlight> inflight_;
  std::map<std::string, int64_t> client_to_upstream_;  // canonical client id -> upstream id
  std::vector<Clock::time_point> restarts_;
  std::map<std::string, Json> annotations_;  // tool -> the upstream's annotations

  std::mutex gate_mu_;
  std::condition_variable gate_cv_;
  int gates_running_ = 0;
  std::map<std::string, std::shared_ptr<std::atomic<bool>>> cancelled_;  // gated calls
  std::atomic<bool> closing_{false};
  std::once_flag closed_;
  GateThreads gate_threads_;  // last: its threads end before the rest goes
};

thread_local Json tl_client_id = nullptr;  // the gated call this thread is applying

Result<Json> SessionCaller::CallTool(const Json& params) {
  return session_->CallUpstream("tools/call", params, tl_client_id);
}

Result<Json> SessionCaller::CallToolOverlapped(const Json& params,
                                               const std::function<Status()>& in_flight) {
  return session_->CallUpstream("tools/call", params, tl_client_id, &in_flight);
}

Result<std::string> SessionCaller::SandboxUpper() {
  return session_->SandboxUpper();
}

Status SessionCaller::ResetSandbox() {
  return session_->ResetSandbox();
}

Result<std::string> Session::SandboxUpper() {
  if (spec_.sandbox.empty()) {
    return Status::FailedPrecondition("the MCP server '" + spec_.name + "' runs in no sandbox");
  }
  RETURN_IF_ERROR(EnsureUpstream());
  std::lock_guard<std::mutex> lock(up_mu_);
  if (!up_ || sandbox_upper_.empty()) return Status::IoError("the MCP server is not running");
  return sandbox_upper_;
}

Status Session::ResetSandbox() {
  std::shared_ptr<Upstream> old;
  {
    std::lock_guard<std::mutex> lock(up_mu_);
    old = up_;
    if (!old) return Status::Ok();
    deliberate_restart_ = true;
  }
  Log("restarting the MCP server '" + spec_.name +
      "' on a fresh sandbox: its overlay held changes that are not in the workspace");
  old->Stop(std::chrono::milliseconds(500));
  // Its reader notices the end, clears up_ and fails the requests that were in flight on it,
  // all under up_mu_; only then may the next start register requests of its own.
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(up_mu_);
      if (up_ != old) return Status::Ok();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void Session::ToClient(const Json& message) {
  if (!channel_.Send(message)) closing_ = true;
}

Status Session::StartUpstreamLocked() {
  const auto now = Clock::now();
  std::erase_if(restarts_, [&](Clock::time_point t) { return now - t > std::chrono::minutes(1); });
  if (static_cast<int>(restarts_.size()) >= kMaxRestartsPerMinute) {
    return Status::FailedPrecondition("the MCP server '" + spec_.name + "' crashed " +
                                      std::to_string(restarts_.size()) +
                                      " times in a minute; airlock stopped restarting it");
  }
  // A restart airlock asked for (a fresh overlay) is no crash.
  if (!deliberate_restart_) restarts_.push_back(now);
  deliberate_restart_ = false;
  sandbox_upper_.clear();
  if (!spec_.sandbox.empty()) {
    SandboxedUpstreamOptions o;
    ASSIGN_OR_RETURN(o.sandbox, gw_.ConnectorConfigFor(spec_.sandbox));
    o.argv = spec_.command;
    o.env = spec_.env;
    o.read_paths = spec_.read_paths;
    o.max_message_bytes = static_cast<size_t>(spec_.max_message_bytes);
    ASSIGN_OR_RETURN(auto started, SandboxedUpstream::Start(o));
    sandbox_upper_ = started->upper_path();
    up_ = std::shared_ptr<Upstream>(std::move(started));
  } else if (!spec_.url.empty()) {
    HttpUpstreamOptions o;
    o.url = spec_.url;
    o.headers = spec_.headers;
    o.max_message_bytes = static_cast<size_t>(spec_.max_message_bytes);
    ASSIGN_OR_RETURN(auto started, HttpUpstream::Start(o));
    up_ = std::shared_ptr<Upstream>(std::move(started));
  } else {
    UpstreamOptions o;
    o.argv = spec_.command;
    o.env = spec_.env;
    o.max_message_bytes = static_cast<size_t>(spec_.max_message_bytes);
    ASSIGN_OR_RETURN(auto started, UpstreamProcess::Start(o));
    up_ = std::shared_ptr<Upstream>(std::move(started));
  }
  readers_.emplace_back([this, up = up_] { ReaderLoop(up); });
  return Status::Ok();
}

Status Session::EnsureUpstream() {
  // One restart at a time, and nobody sends before the restarted server is initialized.
  std::lock_guard<std::mutex> restart(restart_mu_);
  Json init;
  {
    std::lock_guard<std::mutex> lock(up_mu_);
    if (up_) return Status::Ok();
    if (closing_) return Status::FailedPrecondition("the session has ended");
    const bool restart = ever_started_;
    RETURN_IF_ERROR(StartUpstreamLocked());
    ever_started_ = true;
    // The first start: the client's own initialize is on its way.
    if (!restart || client_init_.is_null()) return Status::Ok();
    init = client_init_;
  }
  // A restart: the new process gets the client's initialize again; its answer stays here.
  Log("restarting the MCP server '" + spec_.name + "'");
  auto r = CallUpstream("initialize", init, nullptr);
  if (!r.ok()) return r.status().Annotate("re-initializing the restarted MCP server");
  std::lock_guard<std::mutex> lock(up_mu_);
  if (up_ && client_initialized_) up_->Send(MakeNotification("notifications/initialized", nullptr));
  return Status::Ok();
}

Result<Json> Session::CallUpstream(const std::string& method, const Json& params,
                                   const Json& client_id,
                                   const std::function<Status()>* in_flight) {
  if (method != "initialize") RETURN_IF_ERROR(EnsureUpstream());
  auto answer = std::make_shared<std::promise<Result<Json>>>();
  auto fut = answer->get_future();
  int64_t id;
  {
    std::lock_guard<std::mutex> lock(up_mu_);
    if (!up_) return Status::IoError("the MCP server is not running");
    id = next_id_++;
    InFlight f;
    f.kind = InFlight::Kind::kInternal;
    f.answer = answer;
    inflight_[id] = f;
    if (!client_id.is_null()) client_to_upstream_[CanonicalJson(client_id)] = id;
    if (!up_->Send(MakeRequest(id, method, params))) {
      inflight_.erase(id);
      return Status::IoError("the MCP server closed its input");
    }
  }
  if (method == "initialize" && fut.wait_for(kInitTimeout) != std::future_status::ready) {
    std::lock_guard<std::mutex> lock(up_mu_);
    inflight_.erase(id);
    return Status::IoError("the MCP server did not answer initialize in time");
  }
  // Outside up_mu_: the reader thread may deliver the answer meanwhile.
  const Status overlapped = in_flight != nullptr ? (*in_flight)() : Status::Ok();
  Result<Json> r = fut.get();
  {
    std::lock_guard<std::mutex> lock(up_mu_);
    if (!client_id.is_null()) client_to_upstream_.erase(CanonicalJson(client_id));
  }
  if (!overlapped.ok()) return overlapped;
  return r;
}

int64_t Session::Forward(const Message& m, InFlight::Kind kind) {
  Status st = EnsureUpstream();
  if (!st.ok()) {
    ToClient(MakeError(m.id, kUpstreamUnavailable, st.message()));
    return 0;
  }
  std::lock_guard<std::mutex> lock(up_mu_);
  if (!up_) {
    ToClient(MakeError(m.id, kUpstreamUnavailable, "the MCP server is not running"));
    return 0;
  }
  const int64_t id = next_id_++;
  InFlight f;
  f.kind = kind;
  f.client_id = m.id;
  f.client_key = CanonicalJson(m.id);
  const std::string key = f.client_key;
  inflight_[id] = std::move(f);
  client_to_upstream_[key] = id;
  Json out = m.raw;
  out["id"] = id;
  if (!up_->Send(out)) {
    inflight_.erase(id);
    client_to_upstream_.erase(key);
    ToClient(MakeError(m.id, kUpstreamUnavailable, "the MCP server closed its input"));
    return 0;
  }
  return id;
}

void Session::ReaderLoop(std::shared_ptr<Upstream> up) {
  std::string line;
  for (;;) {
    auto ev = up->Receive(&line);
    if (ev == LineReader::Event::kTooLong) {
      Log("the MCP server '" + spec_.name + "' sent a message over " +
          std::to_string(spec_.max_message_bytes) + " bytes; dropped");
      continue;
    }
    if (ev != LineReader::Event::kLine) break;
    if (channel_.TakesText()) ReplyEarly(line);
    ParseResult p = Parse(line, SIZE_MAX);
    if (!p.message) {
      Log("the MCP server '" + spec_.name + "' sent a malformed message: " + p.failure.message);
      // A malformed answer (response-shaped: unanswerable, with an id) to one of airlock's
      // requests fails that request, rather than leaving its caller waiting for a reply
      // that never comes. Neither of its values goes anywhere.
      if (!p.failure.answerable && p.failure.id.is_number_integer()) {
        Message m;
        m.type = Message::Type::kError;
        m.id = p.failure.id;
        m.raw = MakeError(
            m.id, kInternalError,
            "the MCP server '" + spec_.name + "' sent a malformed answer: " + p.failure.message);
        m.error = m.raw["error"];
        UpstreamMessage(std::move(m));
      }
      continue;
    }
    UpstreamMessage(std::move(*p.message));
  }
  // The upstream is gone: every request waiting on it gets an error now.
  const std::string how = up->Stop(std::chrono::milliseconds(200));
  std::map<int64_t, InFlight> orphans;
  {
    std::lock_guard<std::mutex> lock(up_mu_);
    if (up_ == up) up_.reset();
    orphans.swap(inflight_);
    client_to_upstream_.clear();
  }
  const std::string why = "the MCP server '" + spec_.name + "' stopped (" + how +
                          "); airlock starts it again on the next request";
  if (!closing_) Log(why);
  for (auto& [id, f] : orphans) {
    if (f.kind == InFlight::Kind::kInternal) {
      f.answer->set_value(Status::IoError(why));
    } else if (f.kind == InFlight::Kind::kInlineRead) {
      ReadMet(f.read, std::nullopt, Status::IoError(why));  // recorded as failed
    } else if (!closing_) {
      ToClient(MakeError(f.client_id, kUpstreamUnavailable, why));
    }
  }
}

// The answer to a read tool call goes to the client as the server's own text with the
// client's id spliced in, before the message is built: the DOM, the reply's build and its
// serialisation come after the reply (1-12 us of the round trip at p50 in A/B runs,
// docs/BENCHMARKS.md), and the client gets the server's bytes. ScanResponse makes Parse's
// checks first, so the client reads what Parse reads (the record keeps its summary). The reply
// still waits for the call's record: if the record is not made yet, ReadMet sends the text
// once it is. Other channels (airlock serve's /mcp) get the rebuilt message.
void Session::ReplyEarly(const std::string& line) {
  std::optional<ResponseShape> shape = ScanResponse(line, SIZE_MAX);
  if (!shape) return;
  std::shared_ptr<InlineReadState> read;
  {
    std::lock_guard<std::mutex> lock(up_mu_);
    auto it = inflight_.find(shape->id);
    if (it == inflight_.end() || it->second.kind != InFlight::Kind::kInlineRead) return;
    read = it->second.read;
  }
  std::lock_guard<std::mutex> lock(read->mu);
  read->reply_text = SpliceId(line, *shape, read->client_key);
  if (!read->recorded || !read->recorded->ok() || read->cancelled->load() || closing_) return;
  if (!channel_.SendText(read->reply_text)) closing_ = true;
  read->replied = true;
  TraceMark("mcp: read replied");
}

void Session::UpstreamMessage(Message m) {
  if (m.IsResponse()) {
    if (!m.id.is_number_integer()) return;  // not one of ours
    InFlight f;
    {
      std::lock_guard<std::mutex> lock(up_mu_);
      auto it = inflight_.find(m.id.get<int64_t>());
      if (it == inflight_.end()) return;  // cancelled, or a stray answer
      f = std::move(it->second);
      inflight_.erase(it);
      if (f.kind != InFlight::Kind::kInternal) client_to_upstream_.erase(f.client_key);
    }
    if (f.kind == InFlight::Kind::kInternal || f.kind == InFlight::Kind::kInlineRead) {
      Result<Json> answer = std::move(m.result);
      if (m.type == Message::Type::kError) {
        std::string msg = m.error.contains("message") && m.error["message"].is_string()
                              ? m.error["message"].get<std::string>()
                              : std::string("an error");
        answer = Status::IoError("the MCP server answered: " + msg);
      }
      if (f.kind == InFlight::Kind::kInternal) {
        f.answer->set_value(std::move(answer));
      } else {
        TraceMark("mcp: read answered");
        ReadMet(f.read, std::nullopt, std::move(answer));
      }
      return;
    }
    Json out = std::move(m.raw);
    out["id"] = f.client_id;
    if (f.kind == InFlight::Kind::kToolsList && m.type == Message::Type::kResponse) {
      out["result"] = FilterToolsList(m.result);
    }
    ToClient(out);
    return;
  }
  // Requests to the client (sampling, elicitation, roots) and notifications pass through;
  // the client answers requests with the upstream's own ids, which go straight back.
  ToClient(m.raw);
}

Json Session::FilterToolsList(Json result) {
  if (!result.is_object()) return result;
  Json kept = Json::array();
  if (result.contains("tools") && result["tools"].is_array()) {
    std::lock_guard<std::mutex> lock(up_mu_);
    for (auto& tool : result["tools"]) {
      if (!tool.is_object() || !tool.contains("name") || !tool["name"].is_string()) continue;
      const std::string name = tool["name"].get<std::string>();
      if (name == kStatusTool) continue;  // airlock's own name wins
      if (agent_spec_ == nullptr || !AgentMayCallTool(*agent_spec_, spec_.name, name)) continue;
      annotations_[name] = tool.contains("annotations") ? tool["annotations"] : Json(nullptr);
      kept.push_back(tool);
    }
  }
  // The last page (or the only one) also lists airlock's own tool.
  if (!result.contains("nextCursor") || result["nextCursor"].is_null()) {
    kept.push_back(StatusToolDefinition());
  }
  result["tools"] = kept;
  return result;
}

Json Session::ResultFor(const Action& a) {
  // A tool call that was made: the server's own answer, as it gave it.
  if (a.status == ActionStatus::kApplied && a.result.is_object() &&
      a.result.contains("tool_result")) {
    return a.result["tool_result"];
  }
  const std::string id = a.id;
  const std::string why = Reasons(a);
  Json structured = {{"airlock_action", id},
                     {"status", ActionStatusName(a.status)},
                     {"risk", RiskName(a.risk)},
                     {"reasons", a.reasons}};
  switch (a.status) {
    case ActionStatus::kApplied:
      if (a.kind != "mcp") {
        // The built-in tools: the rows read, the command's output, or what the write did.
        structured["result"] = a.result;
        if (!a.effect.IsRead()) structured["effect"] = EffectToJson(a.effect);
        // A sent message's bytes are the agent's own; the effect's summary says enough.
        if (structured.contains("effect") && structured["effect"].is_object() &&
            structured["effect"].contains("extra") && structured["effect"]["extra"].is_object()) {
          structured["effect"]["extra"].erase("message");
        }
        std::string text = "airlock: action " + id + " applied (" + RiskName(a.risk) + ")";
        if (a.effect.kind == "mail") {
          const Json& x = a.effect.extra;
          const int64_t n =
              x.contains("recipient_count") && x["recipient_count"].is_number_integer()
                  ? x["recipient_count"].get<int64_t>()
                  : 0;
          text += ": sent to " + FormatCount(n) + (n == 1 ? " recipient" : " recipients");
          if (x.contains("message_id") && x["message_id"].is_string())
            text += ", Message-ID " + x["message_id"].get<std::string>();
        } else if (!a.result.is_null()) {
          text += ":\n" + a.result.dump(2, ' ', false, Json::error_handler_t::replace);
        } else if (a.effect.kind == "shell") {
          text += ": " + FormatCount(a.effect.files_changed) +
                  (a.effect.files_changed == 1 ? " file changed" : " files changed");
        } else if (!a.effect.IsRead()) {
          text += ": " + FormatCount(a.effect.RowsChanged()) +
                  (a.effect.RowsChanged() == 1 ? " row changed" : " rows changed");
        }
        return TextResult(text, false, structured);
      }
      return TextResult(
          "airlock: action " + id + " was applied; the server's answer was too large to keep",
          false, structured);
    case ActionStatus::kPending:
      if (a.effect.extra.is_object() && a.effect.extra.contains("held_answer")) {
        // A sandboxed server: the call ran in its sandbox; what it wrote waits there.
        return TextResult(
            "airlock: this call ran in the sandbox and its file changes are staged, not in the "
            "workspace: it is pending approval. Action " +
                id + " is " + RiskName(a.risk) + " risk: " + why +
                ". A human approves it with `airlock approve " + id +
                "` or on airlock's web page; approval commits exactly the previewed changes, "
                "rejection or expiry discards them. Ask later with the tool " +
                kStatusTool + " {\"id\": \"" + id +
                "\"}; the server's answer is kept there once it is approved.",
            true, structured);
      }
      return TextResult(
          "airlock: this call is pending approval and was not made yet. Action " + id + " is " +
              RiskName(a.risk) + " risk: " + why + ". A human approves it with `airlock approve " +
              id + "` or on airlock's web page. Ask later with the tool " + kStatusTool +
              " {\"id\": \"" + id + "\"}; the answer is kept there once it is approved.",
          true, structured);
    default: {
      std::string text =
          "airlock: the call was not made: action " + id + " is " + ActionStatusName(a.status);
      if (!a.error.empty()) text += ": " + a.error;
      if (!why.empty() && why != a.error) text += " (" + why + ")";
      return TextResult(text, true, structured);
    }
  }
}

void Session::ActionStatusTool(const Json& client_id, const Json& params) {
  const Json& args = params.contains("arguments") ? params["arguments"] : Json(nullptr);
  if (!args.is_object() || !args.contains("id") || !args["id"].is_string()) {
    ToClient(MakeResult(client_id,
                        TextResult("airlock_action_status needs {\"id\": \"act_...\"}", true)));
    return;
  }
  Outcome o = gw_.Show(token_, args["id"].get<std::string>());
  if (!o.status.ok() || !o.action) {
    ToClient(MakeResult(client_id, TextResult("airlock: " + o.status.message(), true)));
    return;
  }
  Json r = ResultFor(*o.action);
  const bool tool_answer = o.action->status == ActionStatus::kApplied &&
                           o.action->result.is_object() && o.action->result.contains("tool_result");
  // The question was answered: the status itself is no error (a tool's own answer keeps its
  // own isError).
  if (!tool_answer && r.is_object()) r["isError"] = false;
  if (o.action->status == ActionStatus::kApplied && r.is_object() && r.contains("content") &&
      r["content"].is_array()) {
    const std::string text =
        "airlock: action " + o.action->id + " status applied; the server answered:";
    r["content"].insert(r["content"].begin(), Json{{"type", "text"}, {"text", text}});
  }
  ToClient(MakeResult(client_id, r));
}

// McpRequest and UpstreamToolCall fill their objects member by member: an initializer list
// builds each member as a two-element array first, which costs more than the copy itself.
SubmitRequest Session::McpRequest(const std::string& tool, const Json& params) {
  const Json* arguments = ObjectParam(params, "arguments");
  SubmitRequest req;
  req.target = spec_.name;
  req.kind = "mcp";
  req.args["tool"] = tool;
  req.args["arguments"] = arguments != nullptr ? *arguments : Json::object();
  {
    std::lock_guard<std::mutex> lock(up_mu_);
    auto it = annotations_.find(tool);
    if (it != annotations_.end() && !it->second.is_null()) req.args["annotations"] = it->second;
  }
  if (const Json* meta = ObjectParam(params, "_meta")) req.args["_meta"] = *meta;
  return req;
}

Json Session::UpstreamToolCall(const std::string& tool, const Json& params) {
  // The arguments and _meta as McpRequest has them, so the call sent is the call decided.
  const Json* arguments = ObjectParam(params, "arguments");
  Json call = Json::object();
  call["name"] = tool;
  call["arguments"] = arguments != nullptr ? *arguments : Json::object();
  if (const Json* meta = ObjectParam(params, "_meta")) call["_meta"] = *meta;
  // What MakeRequest builds, without copying `call` again.
  Json request = Json::object();
  request["jsonrpc"] = "2.0";
  request["method"] = "tools/call";
  request["params"] = std::move(call);
  return request;
}

// Whether a tools/call can go upstream as the client wrote it (id replaced): its text then
// says exactly what UpstreamToolCall would build from the decided parts, in the client's
// order and spelling, and the upstream parses the same value (Parse refused repeated keys
// and anything but strict UTF-8 JSON). So: "jsonrpc", "id", "method" and "params" at the top,
// and in params only "name", "arguments" (an object) and "_meta" (an object), which is what
// McpRequest decides on. Anything else is rebuilt, which drops the rest. No carriage
// return: a line-splitting upstream might split on it.
bool Session::SentAsWritten(const Message& m, std::string_view text) {
  if (text.empty() || text.find('\r') != std::string_view::npos || m.raw.size() != 4 ||
      !m.raw.contains("jsonrpc") || !m.raw.contains("id") || !m.raw.contains("method") ||
      !m.params.is_object() || m.raw.find("params") == m.raw.end()) {
    return false;
  }
  for (const auto& [k, v] : m.params.items()) {
    if (k == "name") continue;
    if ((k == "arguments" || k == "_meta") && v.is_object() && ReadsAlike(v)) continue;
    return false;
  }
  return m.params.contains("arguments");
}

// Whether every parser reads this value as airlock did: no number that airlock's parser may
// have rounded (a fraction, an exponent, an integer past 64 bits: nlohmann keeps these as
// doubles, another parser may keep the digits), and no two keys of one object that a
// case-insensitive parser takes for one (Go's encoding/json binds the last of them, so the
// client's order would choose): no non-ASCII key, none equal to another but for ASCII case.
bool Session::ReadsAlike(const Json& v) {
  if (v.is_number_float()) return false;
  if (v.is_array()) {
    for (const Json& e : v) {
      if (!ReadsAlike(e)) return false;
    }
    return true;
  }
  if (!v.is_object()) return true;
  std::set<std::string> folded;
  for (const auto& [k, e] : v.items()) {
    std::string f = k;
    for (char& c : f) {
      if (static_cast<unsigned char>(c) >= 0x80) return false;
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (!folded.insert(std::move(f)).second || !ReadsAlike(e)) return false;
  }
  return true;
}

// A tool call the policy marks read, on a server outside any sandbox, is sent from here, its
// record is made here while the server works, and the answer goes back from the upstream's
// reader thread (or from here, if the record is the later of the two): no thread is handed
// the call and none waits for another. Gate does the same with a thread of its own blocked
// on the answer, which costs two more wake-ups per call. The price: while the record is made
// (an fsync; up to the store's busy timeout if another process holds it), the session's next
// messages wait for this thread.
bool Session::InlineRead(const Message& m, std::string_view text) {
  const Json& params = m.params;
  if (builtin_ || !spec_.sandbox.empty() || !params.is_object() || !params.contains("name") ||
      !params["name"].is_string()) {
    return false;
  }
  const std::string tool = params["name"].get<std::string>();
  if (tool == kStatusTool ||
      (params.contains("arguments") && !params["arguments"].is_object() &&
       !params["arguments"].is_null())) {
    return false;
  }
  // Close waits for this thread's part, as for a gate; the reader thread's part ends before
  // Close joins it.
  {
    std::lock_guard<std::mutex> lock(gate_mu_);
    ++gates_running_;
  }
  CallDone done{this};
  // The client's own text goes upstream, its id replaced, when it says exactly what is
  // decided (SentAsWritten); else the call is rebuilt from the decided parts. Built before
  // the request is handed to the gateway (which keeps its arguments without a copy), so
  // that the arguments are copied once for each.
  std::optional<std::pair<size_t, size_t>> id_span;
  if (SentAsWritten(m, text)) id_span = TopLevelValueSpan(text, "id");
  Json call = id_span ? Json() : UpstreamToolCall(tool, params);
  std::optional<Gateway::McpReadTicket> ticket = gw_.BeginMcpRead(token_, McpRequest(tool, params));
  if (!ticket) return false;
  TraceMark("mcp: read decided");
  // A server that is not running (or will not start) is Gate's to report and record.
  if (!EnsureUpstream().ok()) return false;
  auto read = std::make_shared<InlineReadState>();
  read->client_id = m.id;
  read->client_key = CanonicalJson(m.id);
  read->cancelled = std::make_shared<std::atomic<bool>>(false);
  const std::string& key = read->client_key;
  std::shared_ptr<Upstream> up;
  int64_t id;
  {
    std::lock_guard<std::mutex> lock(up_mu_);
    if (!up_) return false;
    up = up_;
    id = next_id_++;
    InFlight f;
    f.kind = InFlight::Kind::kInlineRead;
    f.client_id = m.id;
    f.client_key = key;
    f.read = read;
    read->ticket = std::move(*ticket);  // before the answer can arrive
    inflight_[id] = std::move(f);
    client_to_upstream_[key] = id;
  }
  // Sent without up_mu_ (Send is thread-safe): the write wakes the server, which may answer
  // while this thread is still in it or preempted right after it, and the reader thread
  // must not wait for this one to let go of up_mu_ before it can take the answer.
  bool sent;
  if (id_span && up->TakesText()) {
    sent = up->SendText(SpliceSpan(text, *id_span, std::to_string(id)));
  } else {
    if (call.is_null()) call = UpstreamToolCall(tool, params);
    call["id"] = id;
    sent = up->Send(call);
  }
  if (!sent) {
    std::lock_guard<std::mutex> lock(up_mu_);
    // Unless the reader, seeing the server gone, failed it meanwhile (then its answer is an
    // error that waits for a record that never comes: nothing more happens to it).
    inflight_.erase(id);
    auto it = client_to_upstream_.find(key);
    if (it != client_to_upstream_.end() && it->second == id) client_to_upstream_.erase(it);
    return false;  // nothing was sent: Gate tries, and records what becomes of it
  }
  {
    std::lock_guard<std::mutex> lock(gate_mu_);
    cancelled_[key] = read->cancelled;
  }
  TraceMark("mcp: read sent");
  Status recorded = gw_.RecordMcpRead(read->ticket);
  TraceMark("mcp: read recorded");
  ReadMet(read, std::move(recorded), std::nullopt);
  return true;
}

void Session::ReadMet(const std::shared_ptr<InlineReadState>& read, std::optional<Status> recorded,
                      std::optional<Result<Json>> answer) {
  bool replied_early;
  std::string reply_text;
  {
    std::lock_guard<std::mutex> lock(read->mu);
    if (recorded) read->recorded = std::move(recorded);
    if (answer) read->answer = std::move(answer);
    if (!read->recorded || !read->answer) return;  // the other one finishes it
    replied_early = read->replied;
    reply_text = std::move(read->reply_text);
  }
  const Json& client_id = read->client_id;
  // Recorded and answered: the answer goes out first, and the action and its result
  // record (FinishMcpRead) are built after it, off the client's wait. A failure on either
  // side is FinishMcpRead's to record, and its outcome is the reply.
  const bool replied = replied_early || (read->recorded->ok() && read->answer->ok() &&
                                         !read->cancelled->load() && !closing_);
  if (replied_early) {
    // Sent by ReplyEarly.
  } else if (replied && !reply_text.empty()) {
    if (!channel_.SendText(reply_text)) closing_ = true;
    TraceMark("mcp: read replied");
  } else if (replied) {
    // The answer is moved into the reply and back rather than copied: FinishMcpRead needs it.
    Json reply = MakeResult(client_id, nullptr);
    reply["result"] = std::move(**read->answer);
    ToClient(reply);
    **read->answer = std::move(reply["result"]);
    TraceMark("mcp: read replied");
  }
  Outcome o = gw_.FinishMcpRead(std::move(read->ticket), *read->recorded, std::move(*read->answer));
  {
    std::lock_guard<std::mutex> lock(gate_mu_);
    auto it = cancelled_.find(read->client_key);
    if (it != cancelled_.end() && it->second == read->cancelled) cancelled_.erase(it);
  }
  if (replied) {
    // Its result record is still queued here, as in Gate.
    CrashPoint("mcp_read_replied");
    return;
  }
  if (read->cancelled->load() || closing_) return;  // the client no longer wants an answer
  if (!o.action) {
    // The record failed: the answer is withheld (a protocol error, as Gate sends).
    ToClient(MakeError(client_id, kInvalidParams, "airlock: " + o.status.message()));
    return;
  }
  ToClient(MakeResult(client_id, ResultFor(*o.action)));
}

void Session::Gate(Json client_id, Json params) {
  CallDone done{this};
  const std::string key = CanonicalJson(client_id);
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  {
    std::lock_guard<std::mutex> lock(gate_mu_);
    cancelled_[key] = cancelled;
  }
  struct Forget {
    Session* s;
    std::string key;
    ~Forget() {
      std::lock_guard<std::mutex> lock(s->gate_mu_);
      s->cancelled_.erase(key);
    }
  } forget{this, key};

  if (!params.is_object() || !params.contains("name") || !params["name"].is_string()) {
    ToClient(MakeError(client_id, kInvalidParams, "tools/call needs params.name (a string)"));
    return;
  }
  const std::string tool = params["name"].get<std::string>();
  if (tool == kStatusTool) {
    ActionStatusTool(client_id, params);
    return;
  }
  if (params.contains("arguments") && !params["arguments"].is_object() &&
      !params["arguments"].is_null()) {
    ToClient(MakeError(client_id, kInvalidParams, "tools/call params.arguments must be an object"));
    return;
  }
  SubmitRequest req;
  if (builtin_) {
    std::string why;
    const Json args = params.contains("arguments") && params["arguments"].is_object()
                          ? params["arguments"]
                          : Json::object();
    if (!BuiltinRequest(tool, args, &req, &why)) {
      ToClient(MakeError(client_id, kInvalidParams, why));
      return;
    }
  }
  Json progress_token = nullptr;
  if (params.contains("_meta") && params["_meta"].is_object() &&
      params["_meta"].contains("progressToken")) {
    progress_token = params["_meta"]["progressToken"];
  }
  if (!builtin_) req = McpRequest(tool, params);

  tl_client_id = client_id;
  Outcome o;
  {
    // A call this session's gate applies is made on this session's upstream.
    ScopedMcpCaller use_session(builtin_ ? nullptr : &caller_);
    o = gw_.Submit(token_, req);
  }
  tl_client_id = nullptr;
  if (cancelled->load()) return;  // the client no longer wants an answer
  if (!o.action) {
    // Refused before an action existed (authentication, audit failure): a protocol error.
    ToClient(MakeError(client_id, kInvalidParams, "airlock: " + o.status.message()));
    return;
  }
  Action a = *o.action;
  if (!builtin_ && a.status == ActionStatus::kDenied &&
      a.error.find("not in the scopes") != std::string::npos) {
    // A tool this agent may not call does not exist for it.
    ToClient(MakeError(client_id, kInvalidParams, "Unknown tool: " + tool));
    return;
  }
  if (a.status == ActionStatus::kApplied) {
    ToClient(MakeResult(client_id, ResultFor(a)));
    // A read's result record is still queued here (Gateway::FlushReadResults): a crash now
    // must leave its durable `read` record and a chain that verifies.
    if (a.risk == Risk::kRead) CrashPoint("mcp_read_replied");
    return;
  }
  if (a.status != ActionStatus::kPending) {
    ToClient(MakeResult(client_id, ResultFor(a)));
    return;
  }
  // Pending: wait for a decision, up to approval_wait.
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::milliseconds(spec_.approval_wait_ms);
  auto next_progress = start;
  int64_t progress = 0;
  while (Clock::now() < deadline && !cancelled->load() && !closing_) {
    if (!progress_token.is_null() && Clock::now() >= next_progress) {
      ToClient(MakeNotification("notifications/progress",
                                {{"progressToken", progress_token},
                                 {"progress", ++progress},
                                 {"message", "waiting for a human to approve " + a.id + " (" +
                                                 RiskName(a.risk) + ": " + Reasons(a) + ")"}}));
      next_progress = Clock::now() + std::chrono::seconds(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    Outcome now = gw_.Show(token_, a.id);
    if (now.status.ok() && now.action) {
      a = *now.action;
      if (a.status != ActionStatus::kPending && a.status != ActionStatus::kApplying) break;
    }
  }
  if (cancelled->load() || closing_) return;
  ToClient(MakeResult(client_id, ResultFor(a)));
}

std::vector<std::string> Session::ScopedTargets(const std::string& kind) {
  std::vector<std::string> out;
  if (agent_spec_ == nullptr) return out;
  for (const auto& scope : agent_spec_->scopes) {
    const TargetSpec* t = gw_.policy().FindTarget(scope);
    if (t != nullptr && t->kind == kind) out.push_back(t->name);
  }
  return out;
}

Json Session::BuiltinTools() {
  Json tools = Json::array();
  auto target_schema = [](const std::vector<std::string>& names) {
    return Json{{"type", "string"}, {"enum", names}, {"description", "the target's name"}};
  };
  // Both SQL kinds take the same tools: the gateway routes by the target's kind.
  auto sql = ScopedTargets("sqlite");
  for (std::string& t : ScopedTargets("postgres")) sql.push_back(std::move(t));
  if (!sql.empty()) {
    Json schema = {{"type", "object"},
                   {"properties",
                    {{"target", target_schema(sql)},
                     {"sql", {{"type", "string"}, {"description", "one SQL statement"}}}}},
                   {"required", Json::array({"target", "sql"})}};
    tools.push_back({{"name", "sql_query"},
                     {"description",
                      "Read from a database through airlock. Only reads run: a statement that "
                      "would change anything is refused. Returns the columns and rows."},
                     {"inputSchema", schema},
                     {"annotations", {{"readOnlyHint", true}}}});
    tools.push_back(
        {{"name", "sql_execute"},
         {"description",
          "Change a database through airlock. The statement is run first on a copy; its "
          "effect decides: small changes apply at once, risky ones wait for a human's "
          "approval (the answer then names the action; ask with airlock_action_status)."},
         {"inputSchema", schema},
         {"annotations", {{"destructiveHint", true}}}});
  }
  const auto shell = ScopedTargets("shell");
  if (!shell.empty()) {
    tools.push_back(
        {{"name", "exec"},
         {"description",
          "Run a command in a workspace through airlock. It runs first in a copy-on-write "
          "sandbox; what it would change decides: reads and small changes commit at once, "
          "risky ones (deletions, protected files) wait for a human's approval."},
         {"inputSchema",
          {{"type", "object"},
           {"properties",
            {{"target", target_schema(shell)},
             {"argv",
              {{"type", "array"},
               {"items", {{"type", "string"}}},
               {"description",
                "the command and its arguments, e.g. [\"sh\", \"-c\", \"make\"]"}}}}},
           {"required", Json::array({"target", "argv"})}}},
         {"annotations", {{"destructiveHint", true}}}});
  }
  const auto mail = ScopedTargets("smtp");
  if (!mail.empty()) {
    auto addresses = [](const char* what) {
      return Json{{"type", "array"},
                  {"items", {{"type", "string"}}},
                  {"description", std::string(what) + ": bare addresses (local@domain)"}};
    };
    tools.push_back(
        {{"name", "send_mail"},
         {"description",
          "Send an email through airlock. The exact message is previewed first; one recipient "
          "goes out at once, several (To, Cc and Bcc all count) wait for a human's approval, "
          "and rate limits apply. A message cannot be recalled."},
         {"inputSchema",
          {{"type", "object"},
           {"properties",
            {{"target", target_schema(mail)},
             {"to", addresses("To")},
             {"cc", addresses("Cc")},
             {"bcc", addresses("Bcc")},
             {"subject", {{"type", "string"}}},
             {"body", {{"type", "string"}, {"description", "plain text"}}},
             {"idempotency_key",
              {{"type", "string"}, {"description", "the same key on a retry never sends twice"}}}}},
           {"required", Json::array({"target", "to", "subject", "body"})}}},
         {"annotations", {{"destructiveHint", true}, {"openWorldHint", true}}}});
  }
  const auto apis = ScopedTargets("http");
  if (!apis.empty()) {
    tools.push_back(
        {{"name", "http_request"},
         {"description",
          "Call an HTTP API through airlock, which adds the credentials (you never see them). "
          "GET and HEAD are made at once and return the response; other methods are checked "
          "against the target's allow list and rules: small ones are made at once, risky ones "
          "wait for a human's approval. A request that was sent cannot be undone."},
         {"inputSchema",
          {{"type", "object"},
           {"properties",
            {{"target", target_schema(apis)},
             {"method", {{"type", "string"}, {"description", "GET, HEAD, POST, PUT, PATCH, ..."}}},
             {"path",
              {{"type", "string"}, {"description", "below the target's base URL: /v1/items?x=1"}}},
             {"json", {{"description", "the request body, any JSON (optional)"}}}}},
           {"required", Json::array({"target", "method", "path"})}}},
         {"annotations", {{"destructiveHint", true}, {"openWorldHint", true}}}});
  }
  tools.push_back(StatusToolDefinition());
  return tools;
}

bool Session::BuiltinRequest(const std::string& tool, const Json& arguments, SubmitRequest* req,
                             std::string* why) {
  auto text = [&](const char* k) -> const std::string* {
    return arguments.contains(k) && arguments[k].is_string()
               ? &arguments[k].get_ref<const std::string&>()
               : nullptr;
  };
  const std::string* target = text("target");
  if (tool == "sql_query" || tool == "sql_execute") {
    const std::string* sql = text("sql");
    if (target == nullptr || sql == nullptr) {
      *why = tool + " needs {\"target\": NAME, \"sql\": TEXT}";
      return false;
    }
    *req = SubmitRequest{*target, "sql", {{"sql", *sql}}, tool == "sql_query"};
    return true;
  }
  if (tool == "exec") {
    if (target == nullptr || !arguments.contains("argv") || !arguments["argv"].is_array()) {
      *why = "exec needs {\"target\": NAME, \"argv\": [COMMAND, ARGS...]}";
      return false;
    }
    for (const auto& w : arguments["argv"]) {
      if (!w.is_string()) {
        *why = "exec: every argv item must be a string";
        return false;
      }
    }
    *req = SubmitRequest{*target, "shell", {{"argv", arguments["argv"]}}, false};
    return true;
  }
  if (tool == "send_mail") {
    if (target == nullptr) {
      *why = "send_mail needs {\"target\": NAME, \"to\": [...], \"subject\", \"body\"}";
      return false;
    }
    // The mail connector checks the rest (addresses, header injection) and says what is wrong.
    Json args = Json::object();
    for (const char* k : {"to", "cc", "bcc", "subject", "body"}) {
      if (arguments.contains(k)) args[k] = arguments[k];
    }
    *req = SubmitRequest{*target, "mail", std::move(args), false};
    if (const std::string* key = text("idempotency_key")) req->idempotency_key = *key;
    return true;
  }
  if (tool == "http_request") {
    const std::string* method = text("method");
    const std::string* path = text("path");
    if (target == nullptr || method == nullptr || path == nullptr) {
      *why = "http_request needs {\"target\": NAME, \"method\": M, \"path\": P}";
      return false;
    }
    // The HTTP connector checks the method, the path and the allow list, and says what is
    // wrong. Not read_only: a GET is made by the gateway's apply, like a tool call.
    Json args = {{"method", *method}, {"path", *path}};
    if (arguments.contains("json")) args["json"] = arguments["json"];
    *req = SubmitRequest{*target, "http", std::move(args), false};
    return true;
  }
  *why = "Unknown tool: " + tool;
  return false;
}

void Session::HandleBuiltin(const Message& m) {
  if (m.method == "initialize") {
    std::string version = kProtocolVersion;
    if (m.params.is_object() && m.params.contains("protocolVersion") &&
        m.params["protocolVersion"].is_string()) {
      const std::string asked = m.params["protocolVersion"].get<std::string>();
      for (const char* known : {"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"}) {
        if (asked == known) version = asked;
      }
    }
    ToClient(MakeResult(
        m.id, {{"protocolVersion", version},
               {"capabilities", {{"tools", {{"listChanged", false}}}}},
               {"serverInfo", {{"name", "airlock"}, {"version", "1"}}},
               {"instructions",
                "Every tool here acts through airlock: it is previewed, classified by its "
                "effect, and risky ones wait for a human's approval. A result that says "
                "'pending' names the action; ask about it with airlock_action_status."}}));
  } else if (m.method == "ping") {
    ToClient(MakeResult(m.id, Json::object()));
  } else if (m.method == "tools/list") {
    ToClient(MakeResult(m.id, {{"tools", BuiltinTools()}}));
  } else {
    ToClient(MakeError(m.id, kMethodNotFound, "the airlock server has no method " + m.method));
  }
}

void Session::HandleLocally(const Message& m) {
  if (m.method == "initialize") {
    std::string version = kProtocolVersion;
    if (m.params.is_object() && m.params.contains("protocolVersion") &&
        m.params["protocolVersion"].is_string()) {
      version = m.params["protocolVersion"].get<std::string>();
    }
    ToClient(MakeResult(m.id, {{"protocolVersion", version},
                               {"capabilities", {{"tools", Json::object()}}},
                               {"serverInfo", {{"name", "airlock"}, {"version", "1"}}}}));
  } else if (m.method == "ping") {
    ToClient(MakeResult(m.id, Json::object()));
  } else if (m.method == "tools/list") {
    ToClient(MakeResult(m.id, {{"tools", Json::array()}}));
  } else if (m.method == "tools/call") {
    // Through the gateway, so that the refusal is audited like any other.
    std::string tool =
        m.params.is_object() && m.params.contains("name") && m.params["name"].is_string()
            ? m.params["name"].get<std::string>()
            : "";
    SubmitRequest req{spec_.name, "mcp", {{"tool", tool}, {"arguments", Json::object()}}};
    if (!tool.empty()) (void)gw_.Submit(token_, req);
    ToClient(MakeError(m.id, kInvalidParams, "Unknown tool: " + tool));
  } else {
    ToClient(MakeError(m.id, kMethodNotFound,
                       "agent '" + agent_ + "' has no scope for the MCP server '" + spec_.name +
                           "': " + m.method + " is not available"));
  }
}

void Session::HandleNotification(const Message& m) {
  if (builtin_ && m.method == "notifications/cancelled" && m.params.is_object() &&
      m.params.contains("requestId")) {
    std::lock_guard<std::mutex> lock(gate_mu_);
    auto it = cancelled_.find(CanonicalJson(m.params["requestId"]));
    if (it != cancelled_.end()) it->second->store(true);
    return;
  }
  if (!sees_server_ || builtin_) return;
  if (m.method == "notifications/cancelled" && m.params.is_object() &&
      m.params.contains("requestId")) {
    const std::string key = CanonicalJson(m.params["requestId"]);
    {
      std::lock_guard<std::mutex> lock(gate_mu_);
      auto it = cancelled_.find(key);
      if (it != cancelled_.end()) it->second->store(true);
    }
    std::lock_guard<std::mutex> lock(up_mu_);
    auto it = client_to_upstream_.find(key);
    if (it == client_to_upstream_.end() || !up_) return;
    Json out = m.raw;
    out["params"]["requestId"] = it->second;
    up_->Send(out);
    return;
  }
  if (m.method == "notifications/initialized") {
    std::lock_guard<std::mutex> lock(up_mu_);
    client_initialized_ = true;
  }
  std::lock_guard<std::mutex> lock(up_mu_);
  if (up_) up_->Send(m.raw);
}

void Session::HandleRequest(const Message& m, std::string_view text) {
  if (builtin_ && m.method != "tools/call") {
    HandleBuiltin(m);
    return;
  }
  if (!sees_server_ && !builtin_) {
    HandleLocally(m);
    return;
  }
  if (m.method == "tools/call") {
    if (InlineRead(m, text)) return;
    {
      std::lock_guard<std::mutex> lock(gate_mu_);
      ++gates_running_;
    }
    gate_threads_.Run([this, id = m.id, params = m.params] { Gate(id, params); });
    return;
  }
  if (m.method == "initialize") {
    std::lock_guard<std::mutex> lock(up_mu_);
    client_init_ = m.params.is_null() ? Json::object() : m.params;
  }
  Forward(m, m.method == "tools/list" ? InFlight::Kind::kToolsList : InFlight::Kind::kForward);
}

void Session::HandleClientText(std::string_view text) {
  TraceMark("mcp: client message");
  ParseResult p = Parse(text, static_cast<size_t>(spec_.max_message_bytes));
  if (!p.message) {
    if (p.failure.answerable) ToClient(MakeError(p.failure.id, p.failure.code, p.failure.message));
    return;
  }
  HandleMessage(*p.message, text);
}

void Session::HandleMessage(const Message& m, std::string_view text) {
  if (closing_) {
    if (m.IsRequest()) ToClient(MakeError(m.id, kUpstreamUnavailable, "the session has ended"));
    return;
  }
  if (m.IsRequest()) {
    HandleRequest(m, text);
  } else if (m.IsNotification()) {
    HandleNotification(m);
  } else if (sees_server_ && !builtin_) {
    // An answer to a server-to-client request: the id is the upstream's own.
    std::lock_guard<std::mutex> lock(up_mu_);
    if (up_) up_->Send(m.raw);
  }
}

void Session::Close() {
  std::call_once(closed_, [this] {
    closing_ = true;
    {
      std::unique_lock<std::mutex> lock(gate_mu_);
      for (auto& [k, c] : cancelled_) c->store(true);
      gate_cv_.wait(lock, [&] { return gates_running_ == 0; });
    }
    std::shared_ptr<Upstream> up;
    {
      std::lock_guard<std::mutex> lock(up_mu_);
      up = up_;
    }
    if (up) up->Stop();
    std::vector<std::thread> readers;
    {
      std::lock_guard<std::mutex> lock(up_mu_);
      readers.swap(readers_);
    }
    for (auto& t : readers) t.join();
  });
}

// The client on this process's stdin/stdout, one message per line.
class StdioChannel : public ClientChannel {
 public:
  explicit StdioChannel(int fd) : fd_(fd) {}
  bool Send(const Json& message) override {
    std::lock_guard<std::mutex> lock(mu_);
    return WriteLine(fd_, Serialize(message));
  }
  bool TakesText() const override { return true; }
  bool SendText(std::string_view line) override {
    std::lock_guard<std::mutex> lock(mu_);
    return WriteLine(fd_, line);
  }

 private:
  const int fd_;
  std::mutex mu_;  // one writer at a time
};

const McpServerSpec& BuiltinSpec() {
  static const McpServerSpec* spec = [] {
    auto* s = new McpServerSpec;
    s->name = kBuiltinServer;
    return s;
  }();
  return *spec;
}

}  // namespace

struct McpSession::Impl {
  std::unique_ptr<Session> session;
};

Result<std::unique_ptr<McpSession>> McpSession::Open(Gateway& gateway, const std::string& server,
                                                     std::optional<std::string> token,
                                                     ClientChannel& channel) {
  const McpServerSpec* spec =
      server == kBuiltinServer ? &BuiltinSpec() : gateway.policy().FindMcpServer(server);
  if (spec == nullptr) {
    std::string names;
    for (const auto& [n, s] : gateway.policy().mcp_servers)
      names += (names.empty() ? "" : ", ") + n;
    return Status::NotFound("no MCP server '" + server + "' in the policy (mcp_servers: " +
                            (names.empty() ? "none" : names) + "; the built-in one is 'airlock')");
  }
  auto who = gateway.WhoIs(token);
  if (!who.ok() || who->role != Principal::Role::kAgent) {
    return Status::PermissionDenied(
        "an MCP session needs an agent's token (" +
        (who.ok() ? "it is " + who->Label() + "'s" : who.status().message()) + ")");
  }
  const AgentSpec* agent = gateway.policy().FindAgent(who->name);
  std::unique_ptr<McpSession> s(new McpSession);
  s->impl_ = std::make_unique<Impl>();
  s->impl_->session = std::make_unique<Session>(gateway, *spec, agent, std::move(token), channel);
  return s;
}

McpSession::McpSession() = default;

McpSession::~McpSession() {
  if (impl_) impl_->session->Close();
}

void McpSession::Handle(const Message& message) {
  impl_->session->HandleMessage(message);
}

void McpSession::HandleText(std::string_view text) {
  impl_->session->HandleClientText(text);
}

void McpSession::Close() {
  impl_->session->Close();
}

bool McpSession::closing() const {
  return impl_->session->closing();
}

size_t McpSession::max_message_bytes() const {
  return static_cast<size_t>(impl_->session->spec().max_message_bytes);
}

const std::string& McpSession::agent() const {
  return impl_->session->agent();
}

int RunStdioProxy(Gateway& gateway, const StdioProxyOptions& options) {
  // A client or upstream that goes away must not kill airlock mid-write.
  IgnoreSigpipe();
  StdioChannel channel(options.out_fd);
  auto opened = McpSession::Open(gateway, options.server, options.token, channel);
  if (!opened.ok()) {
    const std::string why =
        (opened.status().code() == StatusCode::kPermissionDenied ? "AIRLOCK_TOKEN: " : "") +
        opened.status().message();
    std::fprintf(stderr, "airlock mcp: %s\n", why.c_str());
    return kExitUsage;
  }
  McpSession& session = **opened;
  LineReader reader(options.in_fd, session.max_message_bytes());
  std::string line;
  for (;;) {
    auto ev = reader.Next(&line);
    if (ev == LineReader::Event::kTooLong) {
      channel.Send(MakeError(nullptr, kMessageTooLarge,
                             "message over " + std::to_string(session.max_message_bytes()) +
                                 " bytes (max_message_size); it was dropped"));
      continue;
    }
    if (ev != LineReader::Event::kLine) break;
    session.HandleText(line);
    if (session.closing()) break;
  }
  // The last reads' result records (Gateway::FlushReadResults) have no later commit to ride
  // along with: they are written now, before the upstream's stop, which can take long enough
  // (a server slow to exit) for the client to kill airlock (the SDK: SIGTERM after 2 s).
  Status st = gateway.FlushReadResults();
  // The client is gone: waiting calls stop waiting; calls being applied finish and are
  // recorded; then the upstream is stopped.
  session.Close();
  if (st.ok()) st = gateway.FlushReadResults();  // reads that finished meanwhile
  if (!st.ok()) {
    std::fprintf(stderr, "airlock mcp: the last reads' result records: %s\n", st.message().c_str());
  }
  return kExitOk;
}

}  // namespace airlock::mcp
