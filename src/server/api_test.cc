// The API's routes over a real gateway, store, SQLite target and event hub (no network: the
// transport has its own tests): status codes and error slugs of docs/API.md, the CLI's JSON,
// role refusals, wait_ms, and the event stream's filtering and cap.
#include "server/api.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include "core/hash.h"
#include "core/json.h"

namespace airlock::server {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kBot = "bot-token";
const std::string kOther = "other-token";
const std::string kDba = "dba-token";
const std::string kSec = "sec-token";

struct Answer {
  int status = 0;
  Json json;
  HttpResponse response;
  Reply reply;
  bool taken_inline = false;  // answered through HandleInline, not Handle
};

class Context : public ReplyContext {
 public:
  bool Stopping() const override { return false; }
};

// Collects what a stream sends until told to stop.
class CollectingSink : public StreamSink {
 public:
  bool Send(std::string bytes) override {
    std::lock_guard<std::mutex> lock(mu);
    sent += bytes;
    return true;
  }
  bool Stopping() const override { return stop; }
  std::string Sent() {
    std::lock_guard<std::mutex> lock(mu);
    return sent;
  }
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::string sent;  // GUARDED_BY(mu)
};

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("airlock-api-" + RandomHex(6));
    fs::create_directories(dir_);
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "prod.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);"
                           "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n "
                           "WHERE i < 200) INSERT INTO users SELECT i, 'u' || i FROM n;",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
    const std::string yaml =
        "version: 1\nstore: ./state/airlock.db\nagents:\n"
        "  - {name: bot, token_sha256: \"" +
        Sha256Hex(kBot) + "\", scopes: [db]}\n" + "  - {name: other, token_sha256: \"" +
        Sha256Hex(kOther) + "\", scopes: [db]}\n" + "approvers:\n  - {name: dba, token_sha256: \"" +
        Sha256Hex(kDba) + "\"}\n" + "  - {name: sec, token_sha256: \"" + Sha256Hex(kSec) + "\"}\n" +
        "targets:\n  db: {kind: sqlite, path: ./prod.db}\n";
    auto policy = LoadPolicyText(yaml, (dir_ / "airlock.yaml").string());
    ASSERT_TRUE(policy.ok()) << policy.status().ToString();
    auto g = Gateway::Open(*policy, GatewayOptions::WithGroupCommit());
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    gateway_ = std::move(*g);
    hub_ = std::make_unique<EventHub>(*gateway_, EventHub::Options{});
    gateway_->SetObserver([this](const Action&, const std::string&) { hub_->Poke(); });
    MakeApi(ApiOptions{});
  }
  void TearDown() override {
    api_.reset();
    hub_.reset();
    gateway_.reset();
    fs::remove_all(dir_);
  }
  void MakeApi(ApiOptions o) {
    o.stream_poll_ms = 50;
    api_ = std::make_unique<Api>(*gateway_, *hub_, metrics_, nullptr, o);
  }

  Answer Call(const std::string& method, const std::string& target, const std::string& token,
              const std::string& body = "", const std::string& type = "application/json",
              std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpRequest req;
    req.method = method;
    req.target = target;
    req.body = body;
    if (!token.empty()) headers.emplace_back("authorization", "Bearer " + token);
    if (!body.empty()) headers.emplace_back("content-type", type);
    req.headers = std::move(headers);
    Answer a;
    // As the server does: the io thread's offer first, then a worker's Handle.
    auto answer = std::make_shared<std::promise<HttpResponse>>();
    auto got = answer->get_future();
    auto once = std::make_shared<std::once_flag>();
    Responder respond = [answer, once](HttpResponse r) {
      std::call_once(*once, [&] { answer->set_value(std::move(r)); });
    };
    if (api_->HandleInline(req, respond)) {
      a.taken_inline = true;
      a.response = got.get();
    } else {
      a.reply = api_->Handle(req);
      a.response = a.reply.response;
      if (a.reply.async) {
        a.reply.async(respond);
        a.response = got.get();
      }
    }
    if (a.reply.deferred && !a.reply.stream) return a;  // the caller runs it
    a.status = a.response.status;
    auto j = ParseJson(a.response.body);
    if (j.ok()) a.json = *j;
    return a;
  }
  static Answer Finish(Answer a) {
    a.response = a.reply.deferred(Context());
    a.status = a.response.status;
    auto j = ParseJson(a.response.body);
    if (j.ok()) a.json = *j;
    return a;
  }
  Answer Submit(const std::string& token, const std::string& sql, int64_t wait_ms = 0) {
    Json body = {{"target", "db"}, {"sql", sql}};
    if (wait_ms > 0) body["wait_ms"] = wait_ms;
    return Call("POST", "/v1/actions", token, body.dump());
  }
  static std::string Code(const Answer& a) {
    return a.json.contains("error") ? a.json["error"]["code"].get<std::string>() : "";
  }
  static std::string Header(const Answer& a, const std::string& name) {
    for (const auto& [k, v] : a.response.headers) {
      if (k == name) return v;
    }
    return "";
  }
  int64_t AuditLength() {
    auto head = gateway_->AuditHeadNow();
    EXPECT_TRUE(head.ok());
    return head.ok() ? head->seq : -1;
  }
  int CountAudit(const std::string& event) {
    int n = 0;
    EXPECT_TRUE(gateway_
                    ->ScanAudit(std::nullopt, "",
                                [&](const AuditEvent& e) {
                                  n += e.event == event;
                                  return true;
                                })
                    .ok());
    return n;
  }

  fs::path dir_;
  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<EventHub> hub_;
  Metrics metrics_;
  std::unique_ptr<Api> api_;
};

TEST_F(ApiTest, AMissingOrUnknownTokenIs401AndAudited) {
  EXPECT_EQ(Call("GET", "/v1/whoami", "").status, 401);
  Answer a =
      Call("POST", "/v1/actions", "nobody-holds-this", R"({"target":"db","sql":"SELECT 1"})");
  EXPECT_EQ(a.status, 401);
  EXPECT_EQ(Code(a), "unauthenticated");
  EXPECT_EQ(CountAudit("auth_failed"), 2);
  Answer bearerless = Call("GET", "/v1/whoami", "", "", "", {{"authorization", kDba}});
  EXPECT_EQ(bearerless.status, 401) << "a token must come as 'Bearer TOKEN'";
}

TEST_F(ApiTest, APlainReadIsTakenOnTheIoThreadAndAnythingElseGoesToAWorker) {
  const int64_t before = AuditLength();
  Answer read = Submit(kBot, "SELECT name FROM users WHERE id = 1");
  EXPECT_TRUE(read.taken_inline);
  EXPECT_EQ(read.status, 200) << read.response.body;
  EXPECT_EQ(read.json["status"], "applied");
  EXPECT_EQ(AuditLength(), before + 1) << "one durable record per read";
  for (const auto& [token, body] : std::vector<std::pair<std::string, std::string>>{
           {kBot, R"({"target":"db","sql":"UPDATE users SET name = 'x' WHERE id = 1"})"},
           {kBot, R"({"target":"db","sql":"SELECT 1","wait_ms":10})"},
           {kBot, R"({"target":"db","sql":"SELECT 1","bogus":1})"},
           {kBot, "not json"},
           {"nobody-holds-this", R"({"target":"db","sql":"SELECT 1"})"},
           {kDba, R"({"target":"db","sql":"SELECT 1"})"}}) {
    Answer a = Call("POST", "/v1/actions", token, body);
    EXPECT_FALSE(a.taken_inline) << body;
    EXPECT_NE(a.status, 0) << body;
  }
}

TEST_F(ApiTest, WhoAmINamesTheRole) {
  Answer a = Call("GET", "/v1/whoami", kBot);
  EXPECT_EQ(a.json, Json({{"role", "agent"}, {"name", "bot"}}));
  a = Call("GET", "/v1/whoami", kDba);
  EXPECT_EQ(a.json, Json({{"role", "approver"}, {"name", "dba"}}));
}

TEST_F(ApiTest, AReadReturnsTheActionAsTheCliPrintsIt) {
  Answer a = Submit(kBot, "SELECT id, name FROM users WHERE id <= 2 ORDER BY id");
  ASSERT_EQ(a.status, 200) << a.response.body;
  EXPECT_EQ(a.json["status"], "applied");
  EXPECT_EQ(a.json["result"]["rows"], Json::parse(R"([[1,"u1"],[2,"u2"]])"));
  Outcome shown = gateway_->Show(std::nullopt, a.json["id"].get<std::string>());
  ASSERT_TRUE(shown.action);
  Json cli = ActionToJson(*shown.action);
  cli["result"] = a.json["result"];  // the store keeps a read's summary, not its rows
  EXPECT_EQ(a.json, cli);
}

TEST_F(ApiTest, APendingWriteIs202ThenApprovalAppliesItAndASecondVoteConflicts) {
  Answer a = Submit(kBot, "DELETE FROM users WHERE id <= 150");
  ASSERT_EQ(a.status, 202) << a.response.body;
  EXPECT_EQ(a.json["status"], "pending");
  const std::string id = a.json["id"];
  const std::string approve = "/v1/actions/" + id + "/approve";

  Answer by_agent = Call("POST", approve, kOther, "{}");
  EXPECT_EQ(by_agent.status, 403);
  EXPECT_EQ(Code(by_agent), "forbidden");
  Answer voted = Call("POST", approve, kDba, R"({"reason":"ticket 7"})");
  EXPECT_EQ(voted.status, 200) << voted.response.body;
  EXPECT_EQ(voted.json["status"], "applied");
  EXPECT_EQ(voted.json["votes"][0]["reason"], "ticket 7");
  Answer again = Call("POST", approve, kSec, "");
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(Code(again), "conflict");
  EXPECT_EQ(again.json["action"]["status"], "applied") << "the refused vote shows the action";
}

TEST_F(ApiTest, RejectAndRollback) {
  Answer low = Submit(kBot, "UPDATE users SET name = 'x' WHERE id = 3");
  ASSERT_EQ(low.json["status"], "applied");
  const std::string id = low.json["id"];
  Answer back = Call("POST", "/v1/actions/" + id + "/rollback", kDba, "");
  EXPECT_EQ(back.status, 200) << back.response.body;
  EXPECT_EQ(back.json["status"], "rolled_back");
  Answer twice = Call("POST", "/v1/actions/" + id + "/rollback", kDba, "");
  EXPECT_EQ(twice.status, 409);

  Answer high = Submit(kBot, "DELETE FROM users WHERE id <= 150");
  Answer rejected =
      Call("POST", "/v1/actions/" + high.json["id"].get<std::string>() + "/reject", kSec, "");
  EXPECT_EQ(rejected.status, 200);
  EXPECT_EQ(rejected.json["status"], "rejected");
  EXPECT_EQ(Call("POST", "/v1/actions/act_0000000000000000/reject", kSec, "").status, 404);
}

TEST_F(ApiTest, RolesAreRefusedWith403) {
  Answer a = Submit(kDba, "SELECT 1");
  EXPECT_EQ(a.status, 403);
  EXPECT_EQ(Code(a), "forbidden");
  EXPECT_EQ(Call("GET", "/v1/audit", kBot).status, 403);
  EXPECT_EQ(Call("GET", "/v1/audit/verify", kBot).status, 403);
  EXPECT_EQ(Call("POST", "/v1/breakers/reset", kBot, R"({"target":"db"})").status, 403);
}

TEST_F(ApiTest, AgentsSeeOnlyTheirOwnActions) {
  const std::string id = Submit(kBot, "DELETE FROM users WHERE id <= 150").json["id"];
  EXPECT_EQ(Call("GET", "/v1/actions/" + id, kBot).status, 200);
  EXPECT_EQ(Call("GET", "/v1/actions/" + id, kOther).status, 404);
  EXPECT_EQ(Call("GET", "/v1/actions/" + id, kDba).status, 200);
  EXPECT_EQ(Call("GET", "/v1/actions?status=pending", kOther).json["actions"].size(), 0u);
  EXPECT_EQ(Call("GET", "/v1/actions?status=pending", kBot).json["actions"].size(), 1u);
}

TEST_F(ApiTest, BadBodiesGetTheDocumentedErrors) {
  struct Case {
    std::string body, type;
    int status;
    std::string code;
  } cases[] = {
      {"not json", "application/json", 400, "bad_json"},
      {"[1]", "application/json", 400, "bad_json"},
      {R"({"target":"db","sql":"SELECT 1","sqll":"x"})", "application/json", 400, "unknown_field"},
      {R"({"sql":"SELECT 1"})", "application/json", 400, "missing_field"},
      {R"({"target":"db"})", "application/json", 400, "missing_field"},
      {R"({"target":5,"sql":"SELECT 1"})", "application/json", 400, "bad_request"},
      {R"({"target":"db","sql":"SELECT 1","command":["ls"]})", "application/json", 400,
       "bad_request"},
      {R"({"target":"db","command":[]})", "application/json", 400, "bad_request"},
      {R"({"target":"db","sql":"SELECT 1","wait_ms":-1})", "application/json", 400, "bad_request"},
      {R"({"target":"db","sql":"SELECT 1","wait_ms":60001})", "application/json", 400,
       "bad_request"},
      {R"({"target":"db","sql":"SELECT 1"})", "text/plain", 415, "unsupported_media_type"},
      {R"({"target":"db","sql":"SELECT 1"})", "application/json; charset=utf-8", 200, ""},
  };
  for (const Case& c : cases) {
    Answer a = Call("POST", "/v1/actions", kBot, c.body, c.type);
    EXPECT_EQ(a.status, c.status) << c.body << " as " << c.type;
    EXPECT_EQ(Code(a), c.code) << c.body;
  }
  Answer named = Call("POST", "/v1/actions", kBot, R"({"target":"db","sql":"SELECT 1","sqll":1})");
  EXPECT_NE(named.json["error"]["message"].get<std::string>().find("'sqll'"), std::string::npos);
}

TEST_F(ApiTest, ACommandBecomesAShellActionWithItsArgv) {
  // The target is SQL, so the gateway refuses the kind; what matters is what it was given.
  Answer a = Call("POST", "/v1/actions", kBot, R"({"target":"db","command":["ls","-l"]})");
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(a.json["action"]["kind"], "shell");
  EXPECT_EQ(a.json["action"]["args"], Json::parse(R"({"argv":["ls","-l"]})"));
}

TEST_F(ApiTest, RoutesMethodsAndQueries) {
  Answer none = Call("GET", "/v1/nothing", kDba);
  EXPECT_EQ(none.status, 404);
  EXPECT_EQ(Code(none), "not_found");
  Answer wrong = Call("DELETE", "/v1/actions", kDba);
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(Header(wrong, "Allow"), "POST, GET");
  EXPECT_EQ(Header(Call("GET", "/v1/actions/a/approve", kDba), "Allow"), "POST");
  EXPECT_EQ(Call("GET", "/v1/actions?stauts=pending", kDba).status, 400);
  EXPECT_EQ(Call("GET", "/v1/actions?limit=0", kDba).status, 400);
  EXPECT_EQ(Call("GET", "/v1/actions?limit=1001", kDba).status, 400);
  EXPECT_EQ(Call("GET", "/v1/actions?status=nope", kDba).status, 400);
  EXPECT_EQ(Call("GET", "/v1/actions?limit=1&limit=2", kDba).status, 400);
  EXPECT_EQ(Call("GET", "/v1/actions?agent=%zz", kDba).status, 400);
  EXPECT_EQ(Call("GET", "/v1/actions?agent=b%6Ft&limit=5", kDba).status, 200);
}

TEST_F(ApiTest, PendingIsListedRiskiestFirstAndFiltered) {
  const std::string high = Submit(kBot, "DELETE FROM users WHERE id <= 150").json["id"];
  const std::string critical = Submit(kBot, "DROP TABLE users").json["id"];
  Answer a = Call("GET", "/v1/actions?status=pending", kDba);
  ASSERT_EQ(a.json["actions"].size(), 2u);
  EXPECT_EQ(a.json["actions"][0]["id"], critical);
  EXPECT_EQ(a.json["actions"][1]["id"], high);
  EXPECT_EQ(Call("GET", "/v1/actions?status=pending&limit=1", kDba).json["actions"].size(), 1u);
  EXPECT_EQ(Call("GET", "/v1/actions?status=pending&agent=other", kDba).json["actions"].size(), 0u);
  Answer all = Call("GET", "/v1/actions?agent=bot", kDba);
  EXPECT_EQ(all.json["actions"][0]["id"], critical) << "newest first";
}

TEST_F(ApiTest, WaitMsReturnsTheDecisionMadeMeanwhile) {
  Answer a = Submit(kBot, "DELETE FROM users WHERE id <= 150", 20000);
  ASSERT_TRUE(a.reply.deferred) << a.response.body;
  auto pending = gateway_->Pending(std::nullopt);
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 1u);
  const std::string id = (*pending)[0].id;
  std::thread approver([&] {
    std::this_thread::sleep_for(200ms);
    Call("POST", "/v1/actions/" + id + "/approve", kDba, "");
  });
  Answer done = Finish(a);
  approver.join();
  EXPECT_EQ(done.status, 200) << done.response.body;
  EXPECT_EQ(done.json["status"], "applied");
}

TEST_F(ApiTest, WaitMsRunningOutReturns202) {
  Answer done = Finish(Submit(kBot, "DELETE FROM users WHERE id <= 150", 100));
  EXPECT_EQ(done.status, 202);
  EXPECT_EQ(done.json["status"], "pending");
}

TEST_F(ApiTest, WaitsBeyondTheCapAnswerAtOnce) {
  ApiOptions o;
  o.max_waits = 0;
  MakeApi(o);
  Answer a = Submit(kBot, "DELETE FROM users WHERE id <= 150", 20000);
  EXPECT_FALSE(a.reply.deferred);
  EXPECT_EQ(a.status, 202);
}

TEST_F(ApiTest, TheEventStreamGivesAgentsOnlyTheirOwnActions) {
  Answer approver_stream = Call("GET", "/v1/events", kDba);
  Answer other_stream = Call("GET", "/v1/events", kOther);
  ASSERT_TRUE(approver_stream.reply.stream);
  EXPECT_EQ(approver_stream.response.content_type, "text/event-stream");
  CollectingSink approver_sink, other_sink;
  std::thread t1([&] { approver_stream.reply.stream(approver_sink); });
  std::thread t2([&] { other_stream.reply.stream(other_sink); });
  const std::string id = Submit(kBot, "UPDATE users SET name = 'y' WHERE id = 4").json["id"];
  for (int i = 0; i < 500 && approver_sink.Sent().find("event: applied") == std::string::npos;
       ++i) {
    std::this_thread::sleep_for(10ms);
  }
  approver_sink.stop = other_sink.stop = true;
  t1.join();
  t2.join();
  const std::string seen = approver_sink.Sent();
  EXPECT_EQ(seen.rfind(": keep-alive\n\n", 0), 0u) << "a stream opens with a comment";
  EXPECT_NE(seen.find("event: applied\ndata: {"), std::string::npos) << seen;
  EXPECT_NE(seen.find("\"action_id\":\"" + id + "\""), std::string::npos) << seen;
  EXPECT_NE(seen.find("\nid: "), std::string::npos) << seen;
  EXPECT_EQ(other_sink.Sent().find(id), std::string::npos) << other_sink.Sent();
}

TEST_F(ApiTest, TheEventStreamResumesAfterLastEventId) {
  const std::string id = Submit(kBot, "UPDATE users SET name = 'z' WHERE id = 5").json["id"];
  Answer s = Call("GET", "/v1/events", kDba, "", "", {{"last-event-id", "0"}});
  CollectingSink sink;
  std::thread t([&] { s.reply.stream(sink); });
  for (int i = 0; i < 500 && sink.Sent().find(id) == std::string::npos; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  sink.stop = true;
  t.join();
  EXPECT_NE(sink.Sent().find("id: 1\n"), std::string::npos) << sink.Sent();
  EXPECT_NE(sink.Sent().find(id), std::string::npos);
  EXPECT_EQ(Call("GET", "/v1/events?after=-3", kDba).status, 400);
}

TEST_F(ApiTest, AResumePointPastTheChainsHeadStartsAtTheHead) {
  // A client says it saw up to seq 50 of a chain that holds a few events (an id from a
  // replaced store).
  const std::string before = Submit(kBot, "SELECT 1").json["id"];
  Answer s = Call("GET", "/v1/events", kDba, "", "", {{"last-event-id", "50"}});
  ASSERT_TRUE(s.reply.stream);
  CollectingSink sink;
  std::thread t([&] { s.reply.stream(sink); });
  // Taken at its word, the client would not see the next events.
  const std::string id = Submit(kBot, "UPDATE users SET name = 'w' WHERE id = 6").json["id"];
  for (int i = 0; i < 500 && sink.Sent().find(id) == std::string::npos; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  sink.stop = true;
  t.join();
  EXPECT_NE(sink.Sent().find(id), std::string::npos) << sink.Sent();
  EXPECT_EQ(sink.Sent().find(before), std::string::npos)
      << "nothing up to the head is replayed: " << sink.Sent();
}

TEST_F(ApiTest, EventStreamsAreCapped) {
  ApiOptions o;
  o.max_streams = 1;
  MakeApi(o);
  auto first = std::make_unique<Answer>(Call("GET", "/v1/events", kDba));
  ASSERT_TRUE(first->reply.stream);
  Answer second = Call("GET", "/v1/events", kDba);
  EXPECT_EQ(second.status, 503);
  EXPECT_EQ(Code(second), "too_many_streams");
  first.reset();  // the stream ended: its slot is free
  EXPECT_TRUE(Call("GET", "/v1/events", kDba).reply.stream);
}

TEST_F(ApiTest, TheAuditLogPagesAndVerifies) {
  Submit(kBot, "SELECT 1");
  Submit(kBot, "SELECT 2");
  Submit(kBot, "SELECT 3");
  Answer page = Call("GET", "/v1/audit?after=0&limit=2", kDba);
  ASSERT_EQ(page.status, 200);
  ASSERT_EQ(page.json["events"].size(), 2u);
  EXPECT_EQ(page.json["events"][1]["seq"], 2);
  EXPECT_EQ(page.json["next_after"], 2);
  Answer rest = Call("GET", "/v1/audit?after=2", kDba);
  EXPECT_EQ(rest.json["events"].size(), 1u);
  EXPECT_EQ(rest.json["next_after"], 3);
  Answer verify = Call("GET", "/v1/audit/verify", kDba);
  EXPECT_EQ(verify.json,
            Json({{"ok", true}, {"events", 3}, {"first_bad_seq", nullptr}, {"problem", ""}}));
}

TEST_F(ApiTest, BreakersListAndReset) {
  Answer list = Call("GET", "/v1/breakers", kBot);
  EXPECT_EQ(list.status, 200);
  EXPECT_EQ(list.json, Json({{"breakers", Json::array()}}));
  Answer reset = Call("POST", "/v1/breakers/reset", kDba, R"({"target":"db"})");
  EXPECT_EQ(reset.status, 404) << "no open breaker";
  EXPECT_EQ(Call("POST", "/v1/breakers/reset", kDba, R"({"agent":"bot"})").status, 400);
}

TEST_F(ApiTest, ThePageHealthAndMetricsNeedNoToken) {
  Answer page = Call("GET", "/", "");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(Header(page, "Content-Security-Policy").find("default-src 'self'"), std::string::npos);
  EXPECT_NE(Header(page, "Content-Security-Policy").find("frame-ancestors 'none'"),
            std::string::npos);
  EXPECT_EQ(Call("POST", "/", "", "{}").status, 405);
  EXPECT_EQ(Call("GET", "/ui/missing.js", "").status, 404);
  EXPECT_EQ(Call("GET", "/healthz", "").json, Json({{"status", "ok"}}));
  Answer metrics = Call("GET", "/metrics", "");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.response.body.find("airlock_pending_actions"), std::string::npos);
}

TEST(RouteLabel, IsTheRoutePatternNeverTheRawPath) {
  EXPECT_EQ(Api::RouteLabel("/v1/actions/act_12/approve?x=1"), "/v1/actions/{id}/approve");
  EXPECT_EQ(Api::RouteLabel("/v1/actions?status=pending"), "/v1/actions");
  EXPECT_EQ(Api::RouteLabel("/ui/app.js"), "/ui");
  EXPECT_EQ(Api::RouteLabel("/"), "/ui");
  EXPECT_EQ(Api::RouteLabel("/wp-admin.php"), "other");
  EXPECT_EQ(Api::RouteLabel(""), "other");
  // Segment by segment: an {id} is one whole, non-empty segment, and the counts must agree.
  EXPECT_EQ(Api::RouteLabel("/v1/actions/act_12"), "/v1/actions/{id}");
  EXPECT_EQ(Api::RouteLabel("/v1/actions/"), "other");
  EXPECT_EQ(Api::RouteLabel("/v1/actions//approve"), "other");
  EXPECT_EQ(Api::RouteLabel("/v1/actions/act_12/approve/"), "other");
  EXPECT_EQ(Api::RouteLabel("/v1/actions/act_12/approve/x"), "other");
  EXPECT_EQ(Api::RouteLabel("/v1/actions/a/b"), "other");
  EXPECT_EQ(Api::RouteLabel("v1/actions"), "other");
  EXPECT_EQ(Api::RouteLabel("//v1/actions"), "other");
  EXPECT_EQ(Api::RouteLabel("/v1/audit/verify"), "/v1/audit/verify");
  EXPECT_EQ(Api::RouteLabel("/v1/audit/verif"), "other");
  EXPECT_EQ(Api::RouteLabel("/v1/breakers/reset"), "/v1/breakers/reset");
  EXPECT_EQ(Api::RouteLabel("/healthz"), "/healthz");
}

}  // namespace
}  // namespace airlock::server
