#include "mcp/upstream.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "connectors/mcp/mcp_connector.h"

namespace airlock::mcp {
namespace {

TEST(UpstreamProcess, CarriesLinesBothWays) {
  auto up = UpstreamProcess::Start({{"cat"}, {}, 1 << 20});
  ASSERT_TRUE(up.ok()) << up.status().message();
  Json msg = MakeRequest(7, "ping", nullptr);
  ASSERT_TRUE((*up)->Send(msg));
  std::string line;
  ASSERT_EQ((*up)->Receive(&line), LineReader::Event::kLine);
  ParseResult p = Parse(line, 1 << 20);
  ASSERT_TRUE(p.message.has_value());
  EXPECT_EQ(p.message->method, "ping");
  EXPECT_EQ(p.message->id, 7);
  EXPECT_EQ((*up)->Stop(), "exited 0");
  EXPECT_EQ((*up)->Stop(), "exited 0");  // idempotent
  EXPECT_FALSE((*up)->Send(msg));        // stopped: nothing more goes in
}

TEST(UpstreamProcess, GetsOnlyThePolicyEnvironmentAndPath) {
  setenv("AIRLOCK_TOKEN", "must-not-leak", 1);
  auto up = UpstreamProcess::Start(
      {{"sh", "-c", "env; cat >/dev/null"}, {{"MAIL_LOG", "/tmp/x"}}, 1 << 20});
  ASSERT_TRUE(up.ok()) << up.status().message();
  std::set<std::string> names;
  std::string line;
  (*up)->Stop(std::chrono::milliseconds(2000));
  while ((*up)->Receive(&line) == LineReader::Event::kLine) {
    names.insert(line.substr(0, line.find('=')));
  }
  unsetenv("AIRLOCK_TOKEN");
  EXPECT_TRUE(names.count("MAIL_LOG"));
  EXPECT_TRUE(names.count("PATH"));
  EXPECT_FALSE(names.count("AIRLOCK_TOKEN"));
  EXPECT_FALSE(names.count("HOME"));
}

// An upstream started by a thread that then ends (a gateway call restarting a crashed
// server) must outlive that thread: the parent-death signal follows the forking thread.
TEST(UpstreamProcess, OutlivesTheThreadThatStartedIt) {
  std::unique_ptr<UpstreamProcess> up;
  std::thread([&] {
    auto started = UpstreamProcess::Start({{"cat"}, {}, 1 << 20});
    ASSERT_TRUE(started.ok());
    up = std::move(*started);
  }).join();
  ASSERT_NE(up, nullptr);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(up->Send(MakeRequest(1, "ping", nullptr)));
  std::string line;
  ASSERT_EQ(up->Receive(&line), LineReader::Event::kLine);
  EXPECT_EQ(up->Stop(), "exited 0");
}

TEST(UpstreamProcess, UnknownCommandIsAClearError) {
  auto up = UpstreamProcess::Start({{"no-such-mcp-server-xyz"}, {}, 1 << 20});
  ASSERT_FALSE(up.ok());
  EXPECT_EQ(up.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(up.status().message().find("no-such-mcp-server-xyz"), std::string::npos);
  EXPECT_FALSE(UpstreamProcess::Start({{}, {}, 1 << 20}).ok());
}

TEST(UpstreamProcess, StopKillsAServerThatIgnoresItsInput) {
  auto up = UpstreamProcess::Start({{"sh", "-c", "trap '' TERM; sleep 30"}, {}, 1 << 20});
  ASSERT_TRUE(up.ok());
  EXPECT_EQ((*up)->Stop(std::chrono::milliseconds(100)), "killed by signal 9");
}

TEST(CallToolOnce, ReportsAServerThatDiesAsAnError) {
  auto r = CallToolOnce({{"sh", "-c", "read line; exit 3"}, {}, 1 << 20},
                        {{"name", "x"}, {"arguments", Json::object()}}, std::chrono::seconds(10));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
}

TEST(CallToolOnce, TimesOut) {
  auto r =
      CallToolOnce({{"sh", "-c", "sleep 30"}, {}, 1 << 20},
                   {{"name", "x"}, {"arguments", Json::object()}}, std::chrono::milliseconds(200));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
}

TEST(McpCallEffect, HashesServerToolAndArgumentsOnly) {
  Effect a = McpCallEffect("mail", "send_email", {{"to", {"a@x"}}}, nullptr);
  Effect b = McpCallEffect("mail", "send_email", {{"to", {"a@x"}}}, {{"readOnlyHint", true}});
  Effect c = McpCallEffect("mail", "send_email", {{"to", {"a@x", "b@x"}}}, nullptr);
  Effect d = McpCallEffect("other", "send_email", {{"to", {"a@x"}}}, nullptr);
  EXPECT_EQ(a.kind, "mcp");
  EXPECT_EQ(a.effect_hash, b.effect_hash);
  EXPECT_NE(a.effect_hash, c.effect_hash);
  EXPECT_NE(a.effect_hash, d.effect_hash);
  EXPECT_EQ(a.extra["tool"], "send_email");
}

TEST(McpResultSummary, KeepsTheShapeNotTheContent) {
  Json r = {{"content", {{{"type", "text"}, {"text", "secret rows"}}, {{"type", "image"}}}},
            {"isError", false}};
  Json s = McpResultSummary(r);
  EXPECT_EQ(s["content_items"], 2);
  EXPECT_EQ(s["content_types"], Json({"image", "text"}));
  EXPECT_EQ(s["is_error"], false);
  EXPECT_EQ(s.dump().find("secret"), std::string::npos);
  EXPECT_TRUE(McpResultSummary(Json("odd")).contains("size_bytes"));
}

}  // namespace
}  // namespace airlock::mcp
