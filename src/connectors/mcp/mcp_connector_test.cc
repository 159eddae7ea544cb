// The MCP connector's refusals for a server run in a shell target's sandbox: without a live
// session nothing is called, and an effect that is not the previewed one applies nothing.
// (The sandboxed call itself, with a real server, is tests/blackbox/mcp_sandbox_test.sh.)
#include "connectors/mcp/mcp_connector.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

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

}  // namespace
}  // namespace airlock
