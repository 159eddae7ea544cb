// Untrusted HTTP requests, end to end without a network: raw bytes -> the server's parser and
// limits (HandleRawRequest) -> the API's routes, query, headers and JSON body -> a real
// gateway on a real store and SQLite target. Whatever the bytes, the reply must be a known
// status, and every error must be `{"error": {"code", "message"}}` (docs/API.md).
//
// /mcp/NAME is reached too: the built-in MCP server ("airlock") needs no upstream process.
//
// The policy's tokens are fixed ("fuzz-agent", "fuzz-approver") so that seeds can reach past
// authentication; see fuzz/corpus/http/.
#include <sqlite3.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "core/hash.h"
#include "core/json.h"
#include "gateway/gateway.h"
#include "server/api.h"
#include "server/events.h"
#include "server/http.h"
#include "server/metrics.h"

namespace {

using namespace airlock;
using namespace airlock::server;

class NeverStopping : public ReplyContext {
 public:
  bool Stopping() const override { return false; }
};

// Takes the stream's first message, then ends it.
class OneMessageSink : public StreamSink {
 public:
  bool Send(std::string) override {
    sent_ = true;
    return true;
  }
  bool Stopping() const override { return sent_; }

 private:
  bool sent_ = false;
};

struct World {
  std::unique_ptr<Gateway> gateway;
  std::unique_ptr<EventHub> hub;
  Metrics metrics;
  std::unique_ptr<Api> api;
};

World* Setup() {
  char tmpl[] = "/tmp/airlock_http_fuzz_XXXXXX";
  const char* dir = mkdtemp(tmpl);
  if (dir == nullptr) abort();
  const std::string d = dir;
  sqlite3* db = nullptr;
  if (sqlite3_open((d + "/prod.db").c_str(), &db) != SQLITE_OK) abort();
  sqlite3_exec(db,
               "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);"
               "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 300) "
               "INSERT INTO users SELECT i, 'u' || i FROM n;",
               nullptr, nullptr, nullptr);
  sqlite3_close(db);
  const std::string yaml =
      "version: 1\nstore: ./state/airlock.db\nagents:\n"
      "  - {name: agent, token_sha256: \"" +
      Sha256Hex("fuzz-agent") + "\", scopes: [db]}\n" +
      "approvers:\n  - {name: approver, token_sha256: \"" + Sha256Hex("fuzz-approver") +
      "\"}\n  - {name: second, token_sha256: \"" + Sha256Hex("fuzz-second") + "\"}\n" +
      "targets:\n  db: {kind: sqlite, path: ./prod.db}\n";
  auto policy = LoadPolicyText(yaml, d + "/airlock.yaml");
  if (!policy.ok()) abort();
  auto* w = new World;
  auto g = Gateway::Open(*policy, GatewayOptions::WithGroupCommit());
  if (!g.ok()) abort();
  w->gateway = std::move(*g);
  w->hub = std::make_unique<EventHub>(*w->gateway, EventHub::Options{});
  ApiOptions o;
  o.max_wait_ms = 20;  // a fuzzed wait must not stall the run
  o.stream_poll_ms = 1;
  w->api = std::make_unique<Api>(*w->gateway, *w->hub, w->metrics, nullptr, o);
  return w;
}

void CheckResponse(const HttpResponse& r, bool mcp) {
  static const std::set<int> kKnown = {200, 202, 204, 400, 401, 403, 404, 405, 406,
                                       408, 409, 411, 413, 415, 431, 500, 503};
  if (!kKnown.count(r.status)) __builtin_trap();
  if (r.status < 400) return;
  auto j = ParseJson(r.body);
  if (!j.ok() || !j->is_object() || !j->contains("error")) __builtin_trap();
  const Json& e = (*j)["error"];
  // /mcp/NAME answers a refused message with a JSON-RPC error (an integer code).
  if (mcp && (*j).contains("jsonrpc")) {
    if (!e.is_object() || !e.contains("code") || !e["code"].is_number_integer() ||
        !e.contains("message") || !e["message"].is_string()) {
      __builtin_trap();
    }
    return;
  }
  if (!e.is_object() || !e.contains("code") || !e["code"].is_string() || !e.contains("message")) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = Setup();
  HttpLimits limits;
  limits.max_body = 64 << 10;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Reply reply = HandleRawRequest(bytes, limits, *world->api);
  if (reply.stream) {
    OneMessageSink sink;
    reply.stream(sink);
    return 0;
  }
  if (reply.deferred) reply.response = reply.deferred(NeverStopping());
  CheckResponse(reply.response, bytes.find(" /mcp/") != std::string_view::npos);
  (void)Api::RouteLabel(bytes.substr(0, bytes.find(' ')));
  return 0;
}
