#include "connectors/shell/seccomp.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "connectors/shell/seccomp_rules.h"

namespace airlock::shell {
namespace {

// The program built into airlock is the one libseccomp makes of the rules now: the build
// step ran, on these rules, with this libseccomp. (What the filter denies is tested by the
// sandbox's own tests, which run commands under it.)
TEST(SeccompTest, TheBuiltInProgramIsWhatLibseccompMakesOfTheRules) {
  std::vector<sock_filter> compiled;
  std::string error;
  ASSERT_TRUE(CompileSeccompRules(&compiled, &error)) << error;
  const std::vector<sock_filter> built_in = BuiltInSeccompProgram();
  ASSERT_EQ(built_in.size(), compiled.size());
  EXPECT_EQ(std::memcmp(built_in.data(), compiled.data(), compiled.size() * sizeof(sock_filter)),
            0);
  // Not empty, and it ends in actions (SECCOMP_RET_*), not in a jump out of the program.
  ASSERT_GT(built_in.size(), 40u) << "the rules deny ~45 calls and clone's namespace flags";
  EXPECT_EQ(built_in.back().code, BPF_RET | BPF_K);
}

}  // namespace
}  // namespace airlock::shell
