#include "core/glob.h"

#include <gtest/gtest.h>

namespace airlock {
namespace {

TEST(Glob, StarStaysInOneComponent) {
  EXPECT_TRUE(GlobMatch("*.pem", "key.pem"));
  EXPECT_FALSE(GlobMatch("*.pem", "certs/key.pem"));
  EXPECT_TRUE(GlobMatch("src/*.c", "src/a.c"));
  EXPECT_FALSE(GlobMatch("src/*.c", "src/x/a.c"));
  EXPECT_TRUE(GlobMatch(".env*", ".env"));
  EXPECT_TRUE(GlobMatch(".env*", ".env.production"));
  EXPECT_FALSE(GlobMatch(".env*", "config/.env"));
}

TEST(Glob, DoubleStarSpansComponents) {
  EXPECT_TRUE(GlobMatch("**/*.pem", "key.pem"));
  EXPECT_TRUE(GlobMatch("**/*.pem", "a/b/c/key.pem"));
  EXPECT_FALSE(GlobMatch("**/*.pem", "a/b/c/key.pem.bak"));
  EXPECT_TRUE(GlobMatch("**/id_*", "id_rsa"));
  EXPECT_TRUE(GlobMatch("**/id_*", "home/.ssh/id_ed25519"));
  EXPECT_FALSE(GlobMatch("**/id_*", "home/.ssh/known_hosts"));
  EXPECT_TRUE(GlobMatch(".git/**", ".git"));
  EXPECT_TRUE(GlobMatch(".git/**", ".git/config"));
  EXPECT_TRUE(GlobMatch(".git/**", ".git/objects/ab/cdef"));
  EXPECT_FALSE(GlobMatch(".git/**", ".github/workflows/ci.yml"));
  EXPECT_FALSE(GlobMatch(".git/**", "src/.git"));
  EXPECT_TRUE(GlobMatch("src/**/test_*.py", "src/test_a.py"));
  EXPECT_TRUE(GlobMatch("src/**/test_*.py", "src/x/y/test_a.py"));
  EXPECT_FALSE(GlobMatch("src/**/test_*.py", "lib/test_a.py"));
}

TEST(Glob, QuestionMarkAndClasses) {
  EXPECT_TRUE(GlobMatch("file?.txt", "file1.txt"));
  EXPECT_FALSE(GlobMatch("file?.txt", "file/.txt"));
  EXPECT_TRUE(GlobMatch("[abc].c", "b.c"));
  EXPECT_FALSE(GlobMatch("[abc].c", "d.c"));
  EXPECT_TRUE(GlobMatch("[a-z]*.c", "main.c"));
  EXPECT_FALSE(GlobMatch("[!a-z]*.c", "main.c"));
  EXPECT_TRUE(GlobMatch("[!a-z]*.c", "Main.c"));
}

TEST(Glob, HostilePatternsAreRejectedOrHarmless) {
  std::string why;
  EXPECT_FALSE(GlobValid("", &why));
  EXPECT_FALSE(GlobValid("/etc/**", &why));
  EXPECT_FALSE(GlobValid("../x", &why));
  EXPECT_FALSE(GlobValid("a/../b", &why));
  EXPECT_FALSE(GlobValid("[abc", &why));
  EXPECT_EQ(why, "unclosed '['");
  EXPECT_TRUE(GlobValid("**/*.pem", &why));
  // Many stars against a long path must finish (no exponential backtracking).
  std::string pat;
  for (int i = 0; i < 40; ++i) pat += "**/*a";
  std::string path;
  for (int i = 0; i < 60; ++i) path += "aaaa/";
  path += "b";
  EXPECT_FALSE(GlobMatch(pat.substr(0, 30), path));
  EXPECT_FALSE(GlobMatch("[abc", "a"));
  EXPECT_FALSE(GlobValid("**/a/**/b/**/c/**/d/**/e", &why));
  EXPECT_TRUE(GlobValid("**/a/**/b/**/c/**/d", &why));
  EXPECT_FALSE(GlobMatch("**/a/**/b/**/c/**/d", path));
}

}  // namespace
}  // namespace airlock
