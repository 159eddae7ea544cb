// The MCP connector's refusals for a server run in a shell target's sandbox: without a live
// session nothing is called, and an effect that is not the previewed one applies nothing.
// (The sandboxed call itself, with a real server, is tests/blackbox/mcp_sandbox_test.sh.)
#include "connectors/mcp/mcp_connector.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/hash.h"
#include "core/json.h"

namespace airlock {
namespace {

namespace fs = std::filesystem;

class SandboxedMcpConnectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/airlock-mcpc-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ + "/ws");
    fs::create_directories(dir_ + "/state");
    Json shell = {{"workspace", dir_ + "/ws"}, {"state_dir", dir_ + "/state"}};
    config_ = ConnectorConfig{
        "fs",
        "mcp",
        {{"command", {"node", "server.js"}},
         {"sandbox", "repo"},
         {"sandbox_target", {{"name", "repo"}, {"kind", "shell"}, {"fields", shell}}}}};
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string dir_;
  ConnectorConfig config_;
};

TEST_F(SandboxedMcpConnectorTest, WithoutALiveSessionNothingIsCalled) {
  auto c = CreateMcpConnector(config_);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto dry = (*c)->DryRun({{"tool", "write_file"}, {"arguments", {{"path", "x"}}}});
  ASSERT_FALSE(dry.ok());
  EXPECT_EQ(dry.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(dry.status().message().find("live session"), std::string::npos)
      << dry.status().ToString();
  EXPECT_NE(dry.status().message().find("sandbox of 'repo'"), std::string::npos);
}

TEST_F(SandboxedMcpConnectorTest, AnEffectThatIsNotThePreviewedOneAppliesNothing) {
  auto c = CreateMcpConnector(config_);
  ASSERT_TRUE(c.ok());
  Effect e = McpCallEffect("fs", "write_file", {{"path", "x"}}, nullptr);
  e.extra["layer"] = std::string(64, 'a');
  e.extra["layer_paths"] = 1;
  e.extra["held_answer"] = std::string(64, 'b');
  e.effect_hash = std::string(64, '0');  // not the hash of what it names
  bool committed = false;
  auto out = (*c)->Apply("act_1", {{"tool", "write_file"}}, e, [&](const UndoRecord&) {
    committed = true;
    return Status::Ok();
  });
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_FALSE(out->effect_matched);
  EXPECT_FALSE(committed);
  EXPECT_TRUE(fs::is_empty(dir_ + "/ws"));
}

TEST_F(SandboxedMcpConnectorTest, ADamagedHeldAnswerIsAnErrorAndCommitsNothing) {
  auto c = CreateMcpConnector(config_);
  ASSERT_TRUE(c.ok());
  // A well-formed effect whose held answer is missing from the blob store.
  Effect e = McpCallEffect("fs", "read_file", {{"path", "x"}}, nullptr);
  e.extra["layer"] = std::string(64, 'a');
  e.extra["layer_paths"] = 0;
  e.extra["held_answer"] = std::string(64, 'c');
  e.extra["refused_count"] = 0;
  // What the connector hashes: the call, the layer, what is refused and the held answer.
  const Json& x = e.extra;
  e.effect_hash = Sha256Hex(CanonicalJson(Json{{"server", x["server"]},
                                               {"tool", x["tool"]},
                                               {"arguments", x["arguments"]},
                                               {"layer", x["layer"]},
                                               {"refused", x["refused_count"]},
                                               {"held_answer", x["held_answer"]}}));
  bool committed = false;
  auto out = (*c)->Apply("act_2", {{"tool", "read_file"}}, e, [&](const UndoRecord&) {
    committed = true;
    return Status::Ok();
  });
  EXPECT_FALSE(out.ok());
  EXPECT_FALSE(committed);
}

// An effect hash is bound by approvals and kept in the audit log: the same call must give
// the same hash in every airlock version. It is SHA-256 over CanonicalJson of {arguments,
// server, tool}; McpCallEffect writes that text without building the object, so the two are
// compared here on awkward values, and one hash is pinned.
TEST(McpCallEffectTest, McpCallEffectHashIsStable) {
  auto reference = [](const std::string& server, const std::string& tool, const Json& arguments) {
    return Sha256Hex(
        CanonicalJson(Json{{"server", server},
                           {"tool", tool},
                           {"arguments", arguments.is_null() ? Json::object() : arguments}}));
  };
  EXPECT_EQ(McpCallEffect("fs", "read_file", {{"path", "x"}}, nullptr).effect_hash,
            "7e2b4aad6c9781107c3950ed38f9686dd1341b792bf6ac56baa5d3aaf9800301");
  const std::vector<std::string> names = {"",
                                          "fs",
                                          "a\"b",
                                          "back\\slash",
                                          "line\nbreak\t\x01\x1f",
                                          "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                                          "bad\xff\xfeutf8",
                                          "trunc\xe2\x82",
                                          "\x7f",
                                          "}{\":,[]",
                                          std::string("nul\0byte", 8)};
  const std::vector<Json> arguments = {
      nullptr,
      Json::object(),
      {{"path", "x"}},
      {{"z", 1}, {"a", -2}, {"m", 1.5}, {"big", 18446744073709551615ull}, {"neg", INT64_MIN}},
      {{"nested", {{"deep", {{"deeper", Json::array({1, "two", nullptr, true, 3.25e-7})}}}}}},
      {{"text", "bad\xff utf8 \xc0\xaf and \"quotes\" and \u2028"}},
      {{"", ""}, {"\x01", Json::array()}, {"\xff", Json::object()}},
  };
  for (const auto& server : names) {
    for (const auto& tool : names) {
      for (const auto& args : arguments) {
        const Effect e = McpCallEffect(server, tool, args, {{"readOnlyHint", true}});
        EXPECT_EQ(e.effect_hash, reference(server, tool, args))
            << "server " << testing::PrintToString(server) << " tool "
            << testing::PrintToString(tool) << " arguments " << CanonicalJson(args);
        EXPECT_EQ(e.extra["arguments"], args.is_null() ? Json::object() : args);
        EXPECT_EQ(e.extra["annotations"], (Json{{"readOnlyHint", true}}));
      }
    }
  }
}

}  // namespace
}  // namespace airlock
