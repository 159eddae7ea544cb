// CaptureLayer against simulated upper layers (whiteouts made with mknod, opaque
// directories with trusted.* xattrs: these tests run as root) and against a real overlayfs.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "connectors/shell/layer.h"
#include "connectors/shell/layer_test_util.h"
#include "core/hash.h"

namespace airlock::shell {
namespace {

using testing::Exists;
using testing::MakeDirs;
using testing::TempDir;
using testing::WriteFile;
using Type = PathState::Type;

class CaptureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tmp_.path().empty());
    MakeDirs(lower_);
    MakeDirs(upper_);
  }

  CapturedLayer Capture(const CaptureOptions& options = {}) {
    auto c = CaptureLayer(upper_, lower_, blobs_, options);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : CapturedLayer{};
  }

  static const FileChange* Find(const CapturedLayer& c, const std::string& path) {
    for (const FileChange& f : c.changes) {
      if (f.path == path) return &f;
    }
    return nullptr;
  }
  static std::vector<std::string> Paths(const CapturedLayer& c) {
    std::vector<std::string> out;
    for (const FileChange& f : c.changes) out.push_back(f.path + " " + f.op);
    return out;
  }

  TempDir tmp_;
  std::string lower_ = tmp_ / "lower";
  std::string upper_ = tmp_ / "upper";
  BlobStore blobs_{tmp_ / "blobs"};
};

TEST_F(CaptureTest, AddedChangedAndDeletedFiles) {
  WriteFile(lower_ + "/keep.txt", "same\n");
  WriteFile(lower_ + "/edit.txt", "one\ntwo\nthree\n");
  WriteFile(lower_ + "/gone.txt", "bye\n");
  WriteFile(upper_ + "/edit.txt", "one\nTWO\nthree\n");
  WriteFile(upper_ + "/new.txt", "hello\n", 0600);
  ASSERT_TRUE(testing::Whiteout(upper_ + "/gone.txt"));

  CapturedLayer c = Capture();
  EXPECT_EQ(Paths(c),
            (std::vector<std::string>{"edit.txt changed", "gone.txt deleted", "new.txt added"}));
  EXPECT_EQ(c.added, 1);
  EXPECT_EQ(c.changed, 1);
  EXPECT_EQ(c.deleted, 1);
  EXPECT_TRUE(c.refused.empty());

  const FileChange* edit = Find(c, "edit.txt");
  ASSERT_NE(edit, nullptr);
  EXPECT_EQ(edit->type, "file");
  EXPECT_EQ(edit->size_before, 14);
  EXPECT_EQ(edit->size_after, 14);
  EXPECT_EQ(edit->mode_before, 0644);
  EXPECT_FALSE(edit->binary);
  EXPECT_EQ(edit->diff,
            "--- a/edit.txt\n+++ b/edit.txt\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n");
  const FileChange* added = Find(c, "new.txt");
  ASSERT_NE(added, nullptr);
  EXPECT_EQ(added->mode_before, -1);
  EXPECT_EQ(added->mode_after, 0600);
  EXPECT_EQ(added->diff, "--- a/new.txt\n+++ b/new.txt\n@@ -0,0 +1 @@\n+hello\n");
  const FileChange* gone = Find(c, "gone.txt");
  ASSERT_NE(gone, nullptr);
  EXPECT_EQ(gone->size_after, -1);
  EXPECT_EQ(gone->diff, "--- a/gone.txt\n+++ b/gone.txt\n@@ -1 +0,0 @@\n-bye\n");

  // The layer: sorted, before = the workspace (fingerprinted), after = stored content.
  ASSERT_EQ(c.layer.before.size(), 3u);
  const PathState& b = c.layer.before[0];
  EXPECT_EQ(b.path, "edit.txt");
  EXPECT_EQ(b.sha256, Sha256Hex("one\ntwo\nthree\n"));
  EXPECT_NE(b.ino, 0u);
  EXPECT_NE(b.mtime_ns, 0);
  const PathState& a = c.layer.after[0];
  EXPECT_EQ(a.sha256, Sha256Hex("one\nTWO\nthree\n"));
  EXPECT_EQ(a.ino, 0u);
  EXPECT_EQ(a.mtime_ns, 0);
  EXPECT_EQ(*blobs_.ReadAll(a.sha256, 100), "one\nTWO\nthree\n");
  EXPECT_EQ(c.layer.after[1].type, Type::kAbsent);
  EXPECT_EQ(c.layer.before[2].type, Type::kAbsent);
  // Capture stores only after-content; pre-images are SnapshotState's job at commit time.
  EXPECT_FALSE(blobs_.Has(b.sha256));
  // What capture produces, LayerFromJson accepts back unchanged.
  auto back = LayerFromJson(LayerToJson(c.layer));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(LayerHash(*back), LayerHash(c.layer));
}

TEST_F(CaptureTest, IdenticalCopyUpIsNotAChange) {
  WriteFile(lower_ + "/touched", "data\n", 0640);
  WriteFile(upper_ + "/touched", "data\n", 0640);  // `touch touched`: new mtime, same rest
  MakeDirs(lower_ + "/d", 0755);
  MakeDirs(upper_ + "/d", 0755);  // a directory copied up on the way to a child
  WriteFile(lower_ + "/d/chmod-back", "x", 0600);
  WriteFile(upper_ + "/d/chmod-back", "x", 0600);  // chmod 0644 then chmod 0600
  symlink("target", (lower_ + "/l").c_str());
  symlink("target", (upper_ + "/l").c_str());
  CapturedLayer c = Capture();
  EXPECT_TRUE(c.changes.empty()) << ::testing::PrintToString(Paths(c));
  EXPECT_TRUE(c.layer.before.empty());
}

TEST_F(CaptureTest, ModeChangesOfFilesAndDirectories) {
  WriteFile(lower_ + "/run.sh", "#!/bin/sh\n", 0644);
  WriteFile(upper_ + "/run.sh", "#!/bin/sh\n", 0755);
  MakeDirs(lower_ + "/private", 0755);
  MakeDirs(upper_ + "/private", 0700);
  CapturedLayer c = Capture();
  EXPECT_EQ(Paths(c), (std::vector<std::string>{"private changed", "run.sh changed"}));
  const FileChange* f = Find(c, "run.sh");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->mode_before, 0644);
  EXPECT_EQ(f->mode_after, 0755);
  EXPECT_EQ(f->diff, "");  // same content: nothing to show but the mode
  const FileChange* d = Find(c, "private");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->type, "dir");
  EXPECT_EQ(d->mode_after, 0700);
}

TEST_F(CaptureTest, WhiteoutOfADirectoryListsEveryPathBelow) {
  WriteFile(lower_ + "/build/a.o", "A");
  WriteFile(lower_ + "/build/sub/b.o", "B");
  symlink("../a.o", (lower_ + "/build/sub/link").c_str());
  WriteFile(lower_ + "/buildx", "not below build");
  ASSERT_TRUE(testing::Whiteout(upper_ + "/build"));
  CapturedLayer c = Capture();
  EXPECT_EQ(Paths(c),
            (std::vector<std::string>{"build deleted", "build/a.o deleted", "build/sub deleted",
                                      "build/sub/b.o deleted", "build/sub/link deleted"}));
  EXPECT_EQ(c.deleted, 5);
  EXPECT_EQ(Find(c, "build/sub/link")->link_target, "../a.o");
  for (const PathState& s : c.layer.after) EXPECT_EQ(s.type, Type::kAbsent) << s.path;
  EXPECT_EQ(c.layer.before[0].type, Type::kDir);
}

TEST_F(CaptureTest, OpaqueDirectoryDeletesWhatTheUpperLacks) {
  // rm -rf cfg && mkdir cfg && echo new > cfg/a && mkdir cfg/sub
  WriteFile(lower_ + "/cfg/a", "old a\n");
  WriteFile(lower_ + "/cfg/b", "old b\n");
  WriteFile(lower_ + "/cfg/sub/c", "old c\n");
  WriteFile(lower_ + "/cfg/sub/d", "old d\n");
  WriteFile(upper_ + "/cfg/a", "new a\n");
  MakeDirs(upper_ + "/cfg/sub");
  ASSERT_TRUE(testing::SetOpaque(upper_ + "/cfg"));
  CapturedLayer c = Capture();
  // sub is inside an opaque directory: its lower children are hidden too.
  EXPECT_EQ(Paths(c), (std::vector<std::string>{"cfg/a changed", "cfg/b deleted",
                                                "cfg/sub/c deleted", "cfg/sub/d deleted"}));
}

TEST_F(CaptureTest, UserNamespaceOpaqueXattrCountsToo) {
  WriteFile(lower_ + "/d/old", "x");
  MakeDirs(upper_ + "/d");
  ASSERT_EQ(setxattr((upper_ + "/d").c_str(), "user.overlay.opaque", "y", 1, 0), 0);
  CapturedLayer c = Capture();
  EXPECT_EQ(Paths(c), (std::vector<std::string>{"d/old deleted"}));
}

TEST_F(CaptureTest, SymlinksAreRecordedNeverFollowed) {
  symlink("old-target", (lower_ + "/retarget").c_str());
  symlink("new-target", (upper_ + "/retarget").c_str());
  symlink("/etc/passwd", (upper_ + "/escape").c_str());
  symlink("/etc", (upper_ + "/etc-link").c_str());
  CapturedLayer c = Capture();
  EXPECT_EQ(Paths(c),
            (std::vector<std::string>{"escape added", "etc-link added", "retarget changed"}));
  EXPECT_EQ(Find(c, "escape")->type, "symlink");
  EXPECT_EQ(Find(c, "escape")->link_target, "/etc/passwd");
  EXPECT_EQ(Find(c, "escape")->diff, "");
  EXPECT_EQ(Find(c, "retarget")->link_target, "new-target");
  EXPECT_EQ(c.layer.before[2].link_target, "old-target");
}

TEST_F(CaptureTest, TypeChanges) {
  WriteFile(lower_ + "/dir2file/x", "x");
  WriteFile(lower_ + "/dir2file/y/z", "z");
  WriteFile(upper_ + "/dir2file", "now a file\n");
  WriteFile(lower_ + "/file2dir", "was a file\n");
  WriteFile(upper_ + "/file2dir/inner", "inner\n");
  WriteFile(lower_ + "/file2link", "f");
  symlink("elsewhere", (upper_ + "/file2link").c_str());
  CapturedLayer c = Capture();
  EXPECT_EQ(Paths(c), (std::vector<std::string>{"dir2file changed", "dir2file/x deleted",
                                                "dir2file/y deleted", "dir2file/y/z deleted",
                                                "file2dir changed", "file2dir/inner added",
                                                "file2link changed"}));
  EXPECT_EQ(Find(c, "dir2file")->type, "file");
  EXPECT_EQ(Find(c, "dir2file")->type_before, "dir");
  EXPECT_EQ(Find(c, "file2dir")->type, "dir");
  EXPECT_EQ(Find(c, "file2dir")->type_before, "file");
  EXPECT_EQ(Find(c, "file2link")->type_before, "file");
  EXPECT_TRUE(LayerFromJson(LayerToJson(c.layer)).ok());
}

TEST_F(CaptureTest, RefusesWhatACommitNeverCreates) {
  ASSERT_EQ(mkfifo((upper_ + "/fifo").c_str(), 0644), 0);
  ASSERT_EQ(mknod((upper_ + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  int sock = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string sock_path = upper_ + "/sock";
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock_path.c_str());
  ASSERT_EQ(bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  close(sock);
  WriteFile(upper_ + "/suid", "#!/bin/sh\n", 04755);
  WriteFile(upper_ + std::string("/bad\xff"
                                 "name"),
            "x");
  symlink(
      "bad\xfe"
      "target",
      (upper_ + "/badlink").c_str());
  // A deleted directory that holds a name the layer cannot carry: refused whole.
  WriteFile(lower_ + std::string("/olddir/ok"), "ok");
  WriteFile(lower_ + std::string("/olddir/\xff"), "x");
  ASSERT_TRUE(testing::Whiteout(upper_ + "/olddir"));
  // Deleting a fifo of the workspace: a rollback could not bring it back.
  ASSERT_EQ(mkfifo((lower_ + "/lowerfifo").c_str(), 0644), 0);
  ASSERT_TRUE(testing::Whiteout(upper_ + "/lowerfifo"));

  CapturedLayer c = Capture();
  EXPECT_EQ(Paths(c), (std::vector<std::string>{"suid added"}));
  const FileChange* suid = Find(c, "suid");
  ASSERT_NE(suid, nullptr);
  EXPECT_EQ(suid->mode_after, 0755);  // committed without the setuid bit
  EXPECT_EQ(c.layer.after[0].mode, 0755u);
  std::string all;
  for (const std::string& r : c.refused) all += r + "\n";
  EXPECT_EQ(c.refused.size(), 8u) << all;
  for (const char* want :
       {"fifo: fifo is never committed", "null: device node is never committed",
        "sock: socket is never committed", "suid: setuid/setgid bits dropped",
        "bad\xEF\xBF\xBDname: non-UTF-8 file name", "badlink: symlink target is not valid UTF-8",
        "olddir: cannot delete this directory", "lowerfifo: replaces or deletes a device"}) {
    EXPECT_NE(all.find(want), std::string::npos) << want << "\n" << all;
  }
  EXPECT_NO_THROW((void)Json(c.refused).dump());  // refusals are valid UTF-8 for JSON
}

TEST_F(CaptureTest, OverlayRedirectAndMetacopyAreErrorsNotGuesses) {
  MakeDirs(upper_ + "/moved");
  ASSERT_EQ(setxattr((upper_ + "/moved").c_str(), "trusted.overlay.redirect", "/orig", 5, 0), 0);
  auto c = CaptureLayer(upper_, lower_, blobs_, {});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("redirect"), std::string::npos);
  rmdir((upper_ + "/moved").c_str());
  WriteFile(upper_ + "/meta", "");
  ASSERT_EQ(setxattr((upper_ + "/meta").c_str(), "trusted.overlay.metacopy", "", 0, 0), 0);
  c = CaptureLayer(upper_, lower_, blobs_, {});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("metacopy"), std::string::npos);
}

TEST_F(CaptureTest, BinaryLargeFilesAndTheDiffBudget) {
  WriteFile(lower_ + "/bin", std::string("\x7f"
                                         "ELF\0\0\1",
                                         7));
  WriteFile(upper_ + "/bin", std::string("\x7f"
                                         "ELF\0\0\2",
                                         7));
  std::string big(70 << 10, 'a');
  WriteFile(lower_ + "/big.txt", big + "\n");
  WriteFile(upper_ + "/big.txt", big + "b\n");
  WriteFile(upper_ + "/small1.txt", "1\n");
  WriteFile(upper_ + "/small2.txt", "2\n");
  WriteFile(upper_ + "/small3.txt", "3\n");
  CaptureOptions options;
  options.hash_lower_max_bytes = 1024;
  options.diff_max_total_bytes = 110;  // room for two of the small diffs (51 bytes each)
  CapturedLayer c = Capture(options);
  EXPECT_TRUE(Find(c, "bin")->binary);
  EXPECT_EQ(Find(c, "bin")->diff, "");
  EXPECT_FALSE(Find(c, "big.txt")->binary);
  EXPECT_EQ(Find(c, "big.txt")->diff, "");  // over diff_max_file_bytes
  EXPECT_NE(Find(c, "small1.txt")->diff, "");
  EXPECT_NE(Find(c, "small2.txt")->diff, "");
  EXPECT_EQ(Find(c, "small3.txt")->diff, "");  // the budget ran out
  // Large lower files are fingerprinted (size, mtime, inode), not hashed.
  EXPECT_EQ(c.layer.before[0].path, "big.txt");
  EXPECT_EQ(c.layer.before[0].sha256, "");
  EXPECT_NE(c.layer.before[0].ino, 0u);
  EXPECT_NE(c.layer.before[1].sha256, "");  // bin: small, hashed
}

// ---- A real overlayfs ----------------------------------------------------------------------

class OverlayMount {
 public:
  OverlayMount(const std::string& lower, const std::string& upper, const std::string& work,
               const std::string& merged)
      : merged_(merged) {
    std::string opts = "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work +
                       ",redirect_dir=off,metacopy=off";
    mounted_ = mount("overlay", merged.c_str(), "overlay", 0, opts.c_str()) == 0;
    if (!mounted_) error_ = std::strerror(errno);
  }
  ~OverlayMount() { Unmount(); }
  void Unmount() {
    if (mounted_ && umount2(merged_.c_str(), MNT_DETACH) == 0) mounted_ = false;
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }

 private:
  std::string merged_;
  bool mounted_ = false;
  std::string error_;
};

TEST_F(CaptureTest, RealOverlayfsCaptureThenApplyReproducesTheMergedTree) {
  WriteFile(lower_ + "/src/main.c", "int main() {\n  return 0;\n}\n");
  WriteFile(lower_ + "/src/util.c", "void util() {}\n");
  WriteFile(lower_ + "/cache/a/1", "1");
  WriteFile(lower_ + "/cache/a/2", "2");
  WriteFile(lower_ + "/cache/b", "b");
  WriteFile(lower_ + "/script.sh", "echo hi\n", 0644);
  WriteFile(lower_ + "/untouched", "u");
  WriteFile(lower_ + "/touched", "t");
  WriteFile(lower_ + "/replaced/inner", "i");
  WriteFile(lower_ + "/cfg/old", "o");
  std::string work = tmp_ / "work", merged = tmp_ / "merged";
  MakeDirs(work);
  MakeDirs(merged);
  OverlayMount mnt(lower_, upper_, work, merged);
  if (!mnt.mounted()) GTEST_SKIP() << "cannot mount overlayfs here: " << mnt.error();
  std::string script = "set -e; cd '" + merged + "'\n" +
                       "rm -rf cache\n"
                       "sed -i 's/return 0/return 1/' src/main.c\n"
                       "chmod 755 script.sh\n"
                       "ln -s ../src/main.c link\n"
                       "mkdir -p new/deep && printf 'fresh\\n' > new/deep/file\n"
                       "touch touched\n"
                       "rm -rf replaced && printf 'now a file\\n' > replaced\n"
                       "rm -rf cfg && mkdir cfg && printf 'n' > cfg/new\n"
                       "mkfifo pipe\n";
  int rc = std::system(script.c_str());
  std::map<std::string, std::string> merged_tree = testing::TreePicture(merged);
  mnt.Unmount();
  ASSERT_FALSE(mnt.mounted());
  ASSERT_EQ(rc, 0);

  CapturedLayer c = Capture();
  EXPECT_EQ(Paths(c),
            (std::vector<std::string>{
                "cache deleted", "cache/a deleted", "cache/a/1 deleted", "cache/a/2 deleted",
                "cache/b deleted", "cfg/new added", "cfg/old deleted", "link added", "new added",
                "new/deep added", "new/deep/file added", "replaced changed",
                "replaced/inner deleted", "script.sh changed", "src/main.c changed"}));
  EXPECT_EQ(Find(c, "src/main.c")->diff,
            "--- a/src/main.c\n+++ b/src/main.c\n@@ -1,3 +1,3 @@\n int main() {\n-  return 0;\n"
            "+  return 1;\n }\n");
  EXPECT_EQ(c.refused, (std::vector<std::string>{"pipe: fifo is never committed"}));

  // Committing the layer onto the workspace gives what the command saw (minus the fifo).
  merged_tree.erase("pipe");
  testing::DirFd ws(lower_);
  Status st = ApplyState(ws.get(), c.layer.after, blobs_);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(testing::TreePicture(lower_), merged_tree);
}

// ---- Cost: proportional to the upper layer -------------------------------------------------

double CaptureMillis(const std::string& lower, const std::string& upper, BlobStore& blobs) {
  auto t0 = std::chrono::steady_clock::now();
  auto c = CaptureLayer(upper, lower, blobs, {});
  auto t1 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.ok());
  EXPECT_EQ(c->changes.size(), 2u);
  return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

// `touch x d7/x` in a 10-file and a 100,000-file workspace. Run with
// --gtest_also_run_disabled_tests --gtest_filter='*CaptureCost*'.
TEST(CaptureBench, DISABLED_CaptureCostDoesNotGrowWithTheWorkspace) {
  for (int files : {10, 100'000}) {
    TempDir tmp;
    std::string lower = tmp / "lower", upper = tmp / "upper";
    MakeDirs(lower);
    MakeDirs(upper);
    for (int i = 0; i < files; ++i) {
      std::string dir = lower + "/d" + std::to_string(i % 100);
      if (i < 100) MakeDirs(dir);
      WriteFile(dir + "/f" + std::to_string(i), "content " + std::to_string(i) + "\n");
    }
    WriteFile(upper + "/x", "");
    MakeDirs(upper + "/d7");  // and `touch d7/x`: a directory of 1,000 lower files
    WriteFile(upper + "/d7/x", "");
    BlobStore blobs(tmp / "blobs");
    sync();  // let the writeback of the fixture finish before timing
    // The first capture stores the blob (and fsyncs it); later ones find it stored.
    double first = CaptureMillis(lower, upper, blobs);
    std::vector<double> ms;
    for (int r = 0; r < 51; ++r) ms.push_back(CaptureMillis(lower, upper, blobs));
    std::sort(ms.begin(), ms.end());
    double best = ms.front(), median = ms[ms.size() / 2];
    std::printf(
        "capture of `touch x d7/x` with %d lower files: first %.3f ms (stores the blob), "
        "then best %.3f ms, median %.3f ms\n",
        files, first, best, median);
  }
}

}  // namespace
}  // namespace airlock::shell
