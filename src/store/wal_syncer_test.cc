#include "store/wal_syncer.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace airlock {
namespace {

using namespace std::chrono_literals;

// A spacing longer than any machine's uptime: the steady clock counts from the boot, so this
// also checks that the first sync is not held back until "spacing after the boot".
constexpr auto kForever = std::chrono::hours(24 * 365 * 100);

class WalSyncerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "airlock-syncer-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    wal_ = (dir_ / "x.db-wal").string();
    std::ofstream(wal_) << "frames";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Waits (up to 10 s, so that a syncer that never syncs fails rather than hangs) until
  // `s` has run `n` syncs; returns how many it ran.
  static uint64_t AwaitSyncs(WalSyncer& s, uint64_t n) {
    for (int i = 0; i < 1000 && s.syncs() < n; ++i) std::this_thread::sleep_for(10ms);
    return s.syncs();
  }

  std::filesystem::path dir_;
  std::string wal_;
};

TEST_F(WalSyncerTest, RequestsWithinTheSpacingShareOneSync) {
  WalSyncer s(wal_, kForever);
  s.Committed();
  s.Start();
  // The first request after a quiet spell (here: ever) is not held back.
  ASSERT_EQ(AwaitSyncs(s, 1), 1u);
  for (int i = 0; i < 5; ++i) {
    s.Committed();
    s.Start();
  }
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(s.syncs(), 1u) << "the requests within the spacing must wait for its end";
  // A waiter does not wait for the spacing; the five commits share one sync.
  EXPECT_TRUE(s.WaitSynced().ok());
  EXPECT_EQ(s.syncs(), 2u);
  EXPECT_TRUE(s.WaitSynced().ok());
  EXPECT_EQ(s.syncs(), 2u) << "nothing new was committed";
  s.Stop();
}

TEST_F(WalSyncerTest, StopSyncsWhatTheSpacingHeldBack) {
  WalSyncer s(wal_, kForever);
  s.Committed();
  s.Start();
  ASSERT_EQ(AwaitSyncs(s, 1), 1u);
  s.Committed();
  s.Start();
  s.Committed();  // not even asked for
  s.Stop();
  EXPECT_EQ(s.syncs(), 2u);
  EXPECT_TRUE(s.error().ok());
}

TEST_F(WalSyncerTest, RequestsAfterTheSpacingAreSyncedWithoutAWaiter) {
  WalSyncer s(wal_, 20ms);
  for (uint64_t n = 1; n <= 3; ++n) {
    s.Committed();
    s.Start();
    EXPECT_EQ(AwaitSyncs(s, n), n);
  }
  s.Stop();
  EXPECT_EQ(s.syncs(), 3u);
}

TEST_F(WalSyncerTest, AWalThatCannotBeSyncedIsAStickyError) {
  WalSyncer s((dir_ / "missing.db-wal").string(), kForever);
  s.Committed();
  EXPECT_FALSE(s.WaitSynced().ok());
  EXPECT_FALSE(s.error().ok());
  std::ofstream((dir_ / "missing.db-wal").string()) << "now here";
  s.Committed();
  EXPECT_FALSE(s.WaitSynced().ok()) << "a failed sync stays failed";
}

}  // namespace
}  // namespace airlock
