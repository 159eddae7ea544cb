// airlock store gc's parts: SweepBlobs over a real blob store, and CollectShellGarbage's
// marking and its refusals (a commit waiting for recovery, a manifest it cannot read).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "connectors/shell/layer.h"
#include "connectors/shell/layer_test_util.h"
#include "connectors/shell/shell_connector.h"
#include "core/hash.h"
#include "core/json.h"

namespace airlock::shell {
namespace {

using testing::TempDir;

std::string BlobPath(const BlobStore& b, const std::string& key) {
  return b.dir() + "/" + key.substr(0, 2) + "/" + key;
}

// Sets a file's mtime `age_s` seconds into the past.
void Age(const std::string& path, int64_t age_s) {
  struct timespec t[2];
  t[0].tv_sec = t[1].tv_sec = std::time(nullptr) - age_s;
  t[0].tv_nsec = t[1].tv_nsec = 0;
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), t, AT_SYMLINK_NOFOLLOW), 0) << path;
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

const int64_t kDay = 24 * 3600;
// gc's default: a day.
int64_t Cutoff() {
  return std::time(nullptr) - kDay;
}

TEST(BlobSweep, RemovesOnlyOldBlobsNoOneNames) {
  TempDir d;
  BlobStore blobs(d / "blobs");
  auto named = blobs.PutBytes("named by a record");
  auto old = blobs.PutBytes("named by nobody, old");
  auto fresh = blobs.PutBytes("named by nobody, fresh");
  ASSERT_TRUE(named.ok() && old.ok() && fresh.ok());
  Age(BlobPath(blobs, *named), 2 * kDay);
  Age(BlobPath(blobs, *old), 2 * kDay);
  // Files that are not blobs of this store: never touched, however old.
  std::ofstream(d / "blobs/README") << "not a blob";
  Age(d / "blobs/README", 2 * kDay);
  std::filesystem::create_directories(d / "blobs/zz");
  std::ofstream(d / "blobs/zz/whatever") << "x";
  Age(d / "blobs/zz/whatever", 2 * kDay);
  // An interrupted write's temporary: removed once old; a young one may be in progress.
  std::ofstream(d / "blobs/.tmp-000000000000") << "half";
  Age(d / "blobs/.tmp-000000000000", 2 * kDay);
  std::ofstream(d / "blobs/.tmp-111111111111") << "in progress";

  auto dry = SweepBlobs(blobs.dir(), {*named}, Cutoff(), /*dry_run=*/true);
  ASSERT_TRUE(dry.ok()) << dry.status().ToString();
  EXPECT_EQ(dry->removed, 1);
  EXPECT_EQ(dry->bytes_removed, static_cast<int64_t>(std::string("named by nobody, old").size()));
  EXPECT_EQ(dry->kept, 2);
  EXPECT_EQ(dry->temporaries_removed, 1);
  EXPECT_TRUE(Exists(BlobPath(blobs, *old))) << "a dry run removes nothing";
  EXPECT_TRUE(Exists(d / "blobs/.tmp-000000000000"));

  auto swept = SweepBlobs(blobs.dir(), {*named}, Cutoff(), /*dry_run=*/false);
  ASSERT_TRUE(swept.ok()) << swept.status().ToString();
  EXPECT_EQ(swept->removed, 1);
  EXPECT_EQ(swept->kept, 2);
  EXPECT_FALSE(Exists(BlobPath(blobs, *old)));
  EXPECT_TRUE(Exists(BlobPath(blobs, *named)));
  EXPECT_TRUE(Exists(BlobPath(blobs, *fresh)));
  EXPECT_FALSE(Exists(d / "blobs/.tmp-000000000000"));
  EXPECT_TRUE(Exists(d / "blobs/.tmp-111111111111"));
  EXPECT_TRUE(Exists(d / "blobs/README"));
  EXPECT_TRUE(Exists(d / "blobs/zz/whatever"));
  auto again = blobs.ReadAll(*named, 1 << 20);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, "named by a record");
}

TEST(BlobSweep, AReusedBlobIsYoungAgain) {
  TempDir d;
  BlobStore blobs(d / "blobs");
  auto a = blobs.PutBytes("content a");
  auto b = blobs.PutBytes("content b");
  ASSERT_TRUE(a.ok() && b.ok());
  Age(BlobPath(blobs, *a), 2 * kDay);
  Age(BlobPath(blobs, *b), 2 * kDay);
  // A new record is about to name them: one found by Reuse, one written again.
  EXPECT_TRUE(blobs.Reuse(*a));
  ASSERT_TRUE(blobs.PutBytes("content b").ok());
  EXPECT_FALSE(blobs.Reuse(std::string(64, 'f'))) << "Reuse of a missing blob says so";
  EXPECT_FALSE(blobs.Reuse("../../etc/passwd")) << "not a key";
  auto swept = SweepBlobs(blobs.dir(), {}, Cutoff(), false);
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(swept->removed, 0);
  EXPECT_TRUE(Exists(BlobPath(blobs, *a)));
  EXPECT_TRUE(Exists(BlobPath(blobs, *b)));
}

// The lock file is every user's to open (flock needs only read access): made under a
// strict umask, or left 0600 by an older build, its owner sets it back to 0644.
TEST(BlobSweep, TheLockFileStaysOpenToTheStoresOtherUsers) {
  TempDir d;
  BlobStore blobs(d / "blobs");
  const mode_t old_umask = umask(077);
  auto key = blobs.PutBytes("content");
  umask(old_umask);
  ASSERT_TRUE(key.ok());
  struct stat st;
  ASSERT_EQ(stat((d / "blobs/.lock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  ASSERT_EQ(chmod((d / "blobs/.lock").c_str(), 0600), 0);
  EXPECT_TRUE(blobs.Reuse(*key));
  ASSERT_EQ(stat((d / "blobs/.lock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST(BlobSweep, AMissingStoreHoldsNothing) {
  TempDir d;
  auto swept = SweepBlobs(d / "never-made", {}, Cutoff(), false);
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(swept->kept + swept->removed, 0);
}

class ShellGcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_ / "ws");
    std::filesystem::create_directories(dir_ / "state");
    config_.name = "repo";
    config_.kind = "shell";
    config_.fields = {{"workspace", dir_ / "ws"}, {"state_dir", dir_ / "state"}};
  }
  // A layer manifest naming one file's content, stored as a shell dry-run stores it.
  std::string StoreLayer(const std::string& content_key, const std::string& path) {
    Layer layer;
    PathState before;
    before.path = path;
    before.type = PathState::Type::kAbsent;
    PathState after;
    after.path = path;
    after.type = PathState::Type::kFile;
    after.mode = 0644;
    after.sha256 = content_key;
    layer.before.push_back(before);
    layer.after.push_back(after);
    auto key = blobs_.PutBytes(LayerToJson(layer).dump());
    EXPECT_TRUE(key.ok());
    return *key;
  }
  void AgeAll() {
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir_ / "state")) {
      if (e.is_regular_file()) Age(e.path().string(), 2 * kDay);
    }
  }

  TempDir dir_;
  ConnectorConfig config_;
  BlobStore blobs_{dir_ / "state/blobs"};
};

TEST_F(ShellGcTest, KeepsWhatLiveLayersNameAndTheLayersThemselves) {
  auto kept_content = blobs_.PutBytes("pending content");
  auto undo_content = blobs_.PutBytes("pre-image");
  auto dead_content = blobs_.PutBytes("rejected content");
  ASSERT_TRUE(kept_content.ok() && undo_content.ok() && dead_content.ok());
  const std::string live_layer = StoreLayer(*kept_content, "a.txt");
  const std::string undo_layer = StoreLayer(*undo_content, "b.txt");
  const std::string dead_layer = StoreLayer(*dead_content, "c.txt");
  std::filesystem::create_directories(dir_ / "state/held");
  const std::string held_live = Sha256Hex("held live");
  const std::string held_dead = Sha256Hex("held dead");
  std::ofstream(dir_ / ("state/held/" + held_live)) << "held live";
  std::ofstream(dir_ / ("state/held/" + held_dead)) << "held dead";
  AgeAll();

  ShellLiveRecords live;
  live.layers = {live_layer};
  live.undo_layers = {undo_layer};
  live.held_answers = {held_live};
  auto report = CollectShellGarbage(config_, live, Cutoff(), false);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ((*report)["blobs_removed"], 2) << report->dump();  // dead layer and its content
  EXPECT_EQ((*report)["blobs_kept"], 4);
  EXPECT_EQ((*report)["held_answers_removed"], 1);
  for (const std::string& k : {live_layer, undo_layer, *kept_content, *undo_content}) {
    EXPECT_TRUE(blobs_.Has(k)) << k;
  }
  EXPECT_FALSE(blobs_.Has(dead_layer));
  EXPECT_FALSE(blobs_.Has(*dead_content));
  EXPECT_TRUE(Exists(dir_ / ("state/held/" + held_live)));
  EXPECT_FALSE(Exists(dir_ / ("state/held/" + held_dead)));
}

TEST_F(ShellGcTest, ACommitWaitingForRecoveryStopsIt) {
  auto dead = blobs_.PutBytes("a journal may name this");
  ASSERT_TRUE(dead.ok());
  std::filesystem::create_directories(dir_ / "state/journal");
  std::ofstream(dir_ / "state/journal/act_0123456789abcdef.json") << "{}";
  AgeAll();
  auto report = CollectShellGarbage(config_, {}, Cutoff(), false);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(report.status().message().find("waits for recovery"), std::string::npos);
  EXPECT_TRUE(blobs_.Has(*dead)) << "nothing is removed";
}

TEST_F(ShellGcTest, ALiveLayerThatCannotBeReadStopsIt) {
  auto dead = blobs_.PutBytes("maybe named by the damaged layer");
  ASSERT_TRUE(dead.ok());
  const std::string layer = StoreLayer(*dead, "a.txt");
  AgeAll();
  {
    // Damaged in place: its bytes no longer hash to its name.
    std::ofstream f(BlobPath(blobs_, layer), std::ios::app);
    f << " ";
  }
  Age(BlobPath(blobs_, layer), 2 * kDay);
  ShellLiveRecords live;
  live.layers = {layer};
  auto report = CollectShellGarbage(config_, live, Cutoff(), false);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), StatusCode::kCorruption);
  EXPECT_TRUE(blobs_.Has(*dead)) << "nothing is removed";

  // A live layer that is simply gone names nothing to keep: its action fails on its own.
  ASSERT_EQ(unlink(BlobPath(blobs_, layer).c_str()), 0);
  report = CollectShellGarbage(config_, live, Cutoff(), false);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_FALSE(blobs_.Has(*dead));
}

}  // namespace
}  // namespace airlock::shell
