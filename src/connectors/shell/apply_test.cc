// ApplyState, CheckState and SnapshotState on real trees: idempotence, type changes,
// symlinks planted in the workspace or swapped in after the preview, rollback byte for byte.
#include <gtest/gtest.h>

#include "connectors/shell/layer.h"
#include "connectors/shell/layer_fs.h"
#include "connectors/shell/layer_test_util.h"
#include "core/hash.h"

namespace airlock::shell {
namespace {

using testing::DirFd;
using testing::Exists;
using testing::MakeDirs;
using testing::ReadFile;
using testing::TempDir;
using testing::TreePicture;
using testing::WriteFile;
using Type = PathState::Type;

class ApplyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MakeDirs(ws_);
    MakeDirs(upper_);
    MakeDirs(outside_);
    WriteFile(outside_ + "/passwd", "root:x:0:0\n", 0644);
  }

  PathState File(const std::string& path, const std::string& content, uint32_t mode = 0644) {
    PathState s;
    s.path = path;
    s.type = Type::kFile;
    s.mode = mode;
    s.size = static_cast<int64_t>(content.size());
    s.sha256 = *blobs_.PutBytes(content);
    return s;
  }
  static PathState Dir(const std::string& path, uint32_t mode = 0755) {
    PathState s;
    s.path = path;
    s.type = Type::kDir;
    s.mode = mode;
    return s;
  }
  static PathState Link(const std::string& path, const std::string& target) {
    PathState s;
    s.path = path;
    s.type = Type::kSymlink;
    s.mode = 0777;
    s.link_target = target;
    s.size = static_cast<int64_t>(target.size());
    return s;
  }
  static PathState Absent(const std::string& path) {
    PathState s;
    s.path = path;
    return s;
  }
  Status Apply(const std::vector<PathState>& to) {
    DirFd ws(ws_);
    return ApplyState(ws.get(), to, blobs_);
  }
  CapturedLayer Capture() {
    auto c = CaptureLayer(upper_, ws_, blobs_, {});
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : CapturedLayer{};
  }

  TempDir tmp_;
  std::string ws_ = tmp_ / "ws";
  std::string upper_ = tmp_ / "upper";
  std::string outside_ = tmp_ / "outside";
  BlobStore blobs_{tmp_ / "blobs"};
};

TEST_F(ApplyTest, CreatesChangesDeletesAndIsIdempotent) {
  WriteFile(ws_ + "/old.txt", "old\n");
  WriteFile(ws_ + "/edit.txt", "v1\n", 0644);
  WriteFile(ws_ + "/gone/a", "a");
  std::vector<PathState> to = {Absent("gone"),
                               Absent("gone/a"),
                               File("edit.txt", "v2\n", 0600),
                               Dir("new", 0750),
                               File("new/file", "fresh\n", 0755),
                               Link("new/link", "../edit.txt"),
                               Absent("old.txt"),
                               Absent("never-existed")};
  ASSERT_TRUE(Apply(to).ok());
  auto once = TreePicture(ws_);
  EXPECT_EQ(once,
            (std::map<std::string, std::string>{{"edit.txt", "file 0600 " + Sha256Hex("v2\n")},
                                                {"new", "dir 0750"},
                                                {"new/file", "file 0755 " + Sha256Hex("fresh\n")},
                                                {"new/link", "symlink -> ../edit.txt"}}));
  Status again = Apply(to);
  ASSERT_TRUE(again.ok()) << again.ToString();
  EXPECT_EQ(TreePicture(ws_), once);
}

TEST_F(ApplyTest, TypeChangesInBothDirections) {
  WriteFile(ws_ + "/d2f/x", "x");
  WriteFile(ws_ + "/f2d", "file");
  WriteFile(ws_ + "/f2l", "file");
  symlink("somewhere", (ws_ + "/l2d").c_str());
  MakeDirs(ws_ + "/d2l");
  std::vector<PathState> to = {Dir("l2d", 0700), File("d2f", "now a file\n"), Absent("d2f/x"),
                               Dir("f2d"),       File("f2d/in", "in"),        Link("f2l", "target"),
                               Link("d2l", "t2")};
  Status st = Apply(to);
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto tree = TreePicture(ws_);
  EXPECT_EQ(tree["d2f"], "file 0644 " + Sha256Hex("now a file\n"));
  EXPECT_EQ(tree["f2d"], "dir 0755");
  EXPECT_EQ(tree["f2d/in"], "file 0644 " + Sha256Hex("in"));
  EXPECT_EQ(tree["f2l"], "symlink -> target");
  EXPECT_EQ(tree["l2d"], "dir 0700");
  EXPECT_EQ(tree["d2l"], "symlink -> t2");
  EXPECT_EQ(tree.size(), 6u);
}

TEST_F(ApplyTest, RefusesASymlinkPlantedInTheWorkspace) {
  // The workspace already holds d -> outside; a change to d/passwd must not write through it.
  ASSERT_EQ(symlink(outside_.c_str(), (ws_ + "/d").c_str()), 0);
  Status st = Apply({File("d/passwd", "pwned\n")});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(st.message().find("symlink 'd'"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(outside_), std::string::npos) << st.message();
  EXPECT_EQ(ReadFile(outside_ + "/passwd"), "root:x:0:0\n");
  // Nor delete through it.
  st = Apply({Absent("d/passwd")});
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(Exists(outside_ + "/passwd"));
  // Replacing the symlink itself is fine: it is an entry of the workspace.
  st = Apply({File("d", "a file now\n")});
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(ReadFile(outside_ + "/passwd"), "root:x:0:0\n");
  EXPECT_TRUE(S_ISREG(testing::ModeOf(ws_ + "/d")));
}

TEST_F(ApplyTest, RefusesAHostileListBeforeChangingAnything) {
  // A real overlay cannot produce this in one layer; a forged manifest can.
  Status st = Apply({Link("d", outside_), File("d/passwd", "pwned\n"), File("first", "x")});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(Exists(ws_ + "/d"));
  EXPECT_FALSE(Exists(ws_ + "/first"));
  EXPECT_EQ(ReadFile(outside_ + "/passwd"), "root:x:0:0\n");
  for (const char* bad : {"../x", "a/../../x", "/etc/passwd", "a//b"}) {
    EXPECT_FALSE(Apply({File(bad, "x")}).ok()) << bad;
  }
  EXPECT_FALSE(Exists(tmp_ / "x"));
}

TEST_F(ApplyTest, TocTouSymlinkSwappedInAfterThePreview) {
  WriteFile(ws_ + "/conf/app.ini", "debug=0\n");
  WriteFile(outside_ + "/app.ini", "outside\n");
  WriteFile(upper_ + "/conf/app.ini", "debug=1\n");
  CapturedLayer c = Capture();
  ASSERT_EQ(c.changes.size(), 1u);
  DirFd ws(ws_);
  std::vector<std::string> differing;
  ASSERT_TRUE(CheckState(ws.get(), c.layer.before, true, &differing).ok());
  EXPECT_TRUE(differing.empty());

  // Between preview and commit, someone replaces conf/ with a symlink to outside.
  std::filesystem::remove_all(ws_ + "/conf");
  ASSERT_EQ(symlink(outside_.c_str(), (ws_ + "/conf").c_str()), 0);
  ASSERT_TRUE(CheckState(ws.get(), c.layer.before, false, &differing).ok());
  ASSERT_EQ(differing.size(), 1u);
  EXPECT_NE(differing[0].find("conf/app.ini: was file"), std::string::npos) << differing[0];
  EXPECT_NE(differing[0].find("symlink 'conf'"), std::string::npos) << differing[0];
  // ApplyState refuses on its own too, whatever the caller did with the check.
  Status st = ApplyState(ws.get(), c.layer.after, blobs_);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("symlink 'conf'"), std::string::npos) << st.message();
  EXPECT_EQ(ReadFile(outside_ + "/app.ini"), "outside\n");
}

TEST_F(ApplyTest, CheckStateStrictSeesTouchNonStrictSeesContent) {
  WriteFile(ws_ + "/f", "content\n");
  WriteFile(ws_ + "/big", std::string(3000, 'b'));
  WriteFile(upper_ + "/f", "changed\n");
  WriteFile(upper_ + "/big", std::string(3001, 'b'));
  CaptureOptions options;
  options.hash_lower_max_bytes = 1000;  // big is fingerprinted only
  auto c = CaptureLayer(upper_, ws_, blobs_, options);
  ASSERT_TRUE(c.ok());
  DirFd ws(ws_);
  std::vector<std::string> differing;
  // touch: same content, new mtime.
  struct timespec times[2] = {{0, UTIME_OMIT}, {12345, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, (ws_ + "/f").c_str(), times, 0), 0);
  ASSERT_TRUE(CheckState(ws.get(), c->layer.before, false, &differing).ok());
  EXPECT_TRUE(differing.empty()) << differing[0];
  ASSERT_TRUE(CheckState(ws.get(), c->layer.before, true, &differing).ok());
  ASSERT_EQ(differing.size(), 1u);
  EXPECT_NE(differing[0].find("f: modified since the preview"), std::string::npos);
  // Same size, other content: caught by the hash even when not strict.
  WriteFile(ws_ + "/f", "CONTENT\n");
  ASSERT_TRUE(CheckState(ws.get(), c->layer.before, false, &differing).ok());
  ASSERT_EQ(differing.size(), 1u);
  EXPECT_NE(differing[0].find("content changed"), std::string::npos) << differing[0];
  // The large file has no hash: its mtime and inode stand in, strict or not.
  WriteFile(ws_ + "/f", "content\n");
  ASSERT_EQ(utimensat(AT_FDCWD, (ws_ + "/big").c_str(), times, 0), 0);
  ASSERT_TRUE(CheckState(ws.get(), c->layer.before, false, &differing).ok());
  ASSERT_EQ(differing.size(), 1u);
  EXPECT_NE(differing[0].find("big: modified since the preview"), std::string::npos);
  // A path that appeared where the preview saw none.
  std::vector<PathState> absent = {Absent("later")};
  WriteFile(ws_ + "/later", "x");
  ASSERT_TRUE(CheckState(ws.get(), absent, false, &differing).ok());
  ASSERT_EQ(differing.size(), 1u);
  EXPECT_EQ(differing[0], "later: was absent, now file 0644 1 bytes");
}

TEST_F(ApplyTest, RollbackRestores500FilesByteForByteWithModes) {
  // A tree of 500 files with assorted modes and contents, a symlink and nested directories.
  for (int i = 0; i < 500; ++i) {
    std::string dir = ws_ + "/tree/d" + std::to_string(i % 7) + "/e" + std::to_string(i % 3);
    std::string content = "file " + std::to_string(i) + "\n" + std::string(i * 13, 'a' + i % 26);
    if (i % 50 == 0) content += std::string(1, '\0') + "binary";
    mode_t mode = (i % 4 == 0) ? 0600 : (i % 4 == 1) ? 0755 : (i % 4 == 2) ? 0444 : 0640;
    WriteFile(dir + "/f" + std::to_string(i), content, mode);
  }
  chmod((ws_ + "/tree/d3").c_str(), 0700);
  chmod((ws_ + "/tree/d4/e1").c_str(), 0555);  // read-only directory, restored last
  symlink("../d0/e0/f0", (ws_ + "/tree/d1/link").c_str());
  auto original = TreePicture(ws_);
  ASSERT_EQ(original.size(), 1u + 7 + 21 + 500 + 1);

  // rm -rf tree, as an upper layer.
  ASSERT_TRUE(testing::Whiteout(upper_ + "/tree"));
  CapturedLayer c = Capture();
  ASSERT_EQ(c.deleted, static_cast<int64_t>(original.size()));
  DirFd ws(ws_);
  auto pre = SnapshotState(ws.get(), c.layer.before, blobs_);  // what commit saves first
  ASSERT_TRUE(pre.ok()) << pre.status().ToString();
  ASSERT_TRUE(ApplyState(ws.get(), c.layer.after, blobs_).ok());
  EXPECT_FALSE(Exists(ws_ + "/tree"));

  Status st = ApplyState(ws.get(), *pre, blobs_);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(TreePicture(ws_), original);
  std::vector<std::string> differing;
  ASSERT_TRUE(CheckState(ws.get(), c.layer.before, false, &differing).ok());
  EXPECT_TRUE(differing.empty()) << differing[0];
}

TEST_F(ApplyTest, ADirectoryWithUnlistedEntriesIsNotRemoved) {
  WriteFile(ws_ + "/d/listed", "l");
  WriteFile(ws_ + "/d/appeared-later", "keep me");
  Status st = Apply({Absent("d"), Absent("d/listed")});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kConflict);
  EXPECT_NE(st.message().find("'d'"), std::string::npos);
  EXPECT_EQ(ReadFile(ws_ + "/d/appeared-later"), "keep me");
  // Same when a file is to replace the directory.
  WriteFile(ws_ + "/e/unlisted", "u");
  EXPECT_FALSE(Apply({File("e", "file")}).ok());
  EXPECT_EQ(ReadFile(ws_ + "/e/unlisted"), "u");
}

TEST_F(ApplyTest, MissingOrDamagedContentChangesNothing) {
  WriteFile(ws_ + "/keep", "original");
  PathState missing = File("a", "x");
  missing.sha256 = std::string(64, 'e');
  Status st = Apply({Absent("keep"), missing});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Exists(ws_ + "/keep"));  // checked before the first change
  // A blob whose bytes no longer match its name is never committed.
  PathState damaged = File("keep", "replacement");
  WriteFile(tmp_ / ("blobs/" + damaged.sha256.substr(0, 2) + "/" + damaged.sha256), "tampered!!!");
  st = Apply({damaged});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kCorruption);
  EXPECT_EQ(ReadFile(ws_ + "/keep"), "original");
  EXPECT_EQ(TreePicture(ws_).size(), 1u);  // no temporary file left
}

TEST_F(ApplyTest, PartialApplyThenFromRestoresAndCleansLeftovers) {
  WriteFile(ws_ + "/a", "A");
  WriteFile(ws_ + "/sub/b", "B", 0600);
  auto original = TreePicture(ws_);
  DirFd ws(ws_);
  std::vector<PathState> paths = {Absent("a"), Absent("new"), Absent("new/c"), Absent("sub/b")};
  auto from = SnapshotState(ws.get(), paths, blobs_);
  ASSERT_TRUE(from.ok());
  std::vector<PathState> to = {File("a", "A2"), Dir("new"), File("new/c", "C"), Absent("sub/b")};
  // A crash after half: sub/b removed, a rewritten, new/ created, and a temporary file of
  // new/c left behind in it.
  ASSERT_TRUE(ApplyState(ws.get(), {to[0], to[1], to[3]}, blobs_).ok());
  WriteFile(ws_ + "/new/" + layer_detail::TmpNameFor("c"), "half-written");
  Status st = ApplyState(ws.get(), *from, blobs_);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(TreePicture(ws_), original);
}

TEST_F(ApplyTest, SnapshotRefusesPathsBehindSymlinks) {
  ASSERT_EQ(symlink(outside_.c_str(), (ws_ + "/d").c_str()), 0);
  DirFd ws(ws_);
  auto snap = SnapshotState(ws.get(), {Absent("d/passwd")}, blobs_);
  ASSERT_FALSE(snap.ok());
  EXPECT_EQ(snap.status().code(), StatusCode::kPermissionDenied);
  auto bad = SnapshotState(ws.get(), {Absent("../outside/passwd")}, blobs_);
  EXPECT_FALSE(bad.ok());
}

}  // namespace
}  // namespace airlock::shell
