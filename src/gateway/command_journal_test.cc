// CommandJournal: lines written over the file's zeros and synced, taken by batches, zeros
// written back; torn and hostile content; concurrent writers; a file or directory others
// could reach.
#include "gateway/command_journal.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "core/hash.h"
#include "gateway/journal_test_util.h"

namespace airlock {
namespace {

namespace fs = std::filesystem;
using test::CommandRead;

std::string Line(const std::string& id) {
  return JournalLine(CommandRead(id), "agent:bot", 42, /*full=*/true);
}

class CommandJournalFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("airlock-cmdjournal-" + RandomHex(6));
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path File() const { return dir_ / CommandJournal::kFileName; }
  std::string Bytes() const {
    std::ifstream in(File(), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  // Takes the lines in; returns their ids (empty if none were handed over).
  std::vector<std::string> Take(size_t min_lines = 0, int* torn = nullptr,
                                Status result = Status::Ok()) {
    std::vector<std::string> ids;
    Status st = CommandJournal::Take(
        dir_.string(),
        [&](std::vector<JournaledRead>& reads) {
          for (const auto& r : reads) {
            EXPECT_TRUE(r.full);
            ids.push_back(r.action.id);
          }
          return result;
        },
        min_lines, torn);
    EXPECT_EQ(st.ok(), result.ok()) << st.ToString();
    return ids;
  }
  fs::path dir_;
};

TEST_F(CommandJournalFileTest, LinesGoOverTheZerosAndAreTakenOnceEnoughWait) {
  auto j = CommandJournal::Open(dir_.string());
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_EQ(fs::file_size(File()), CommandJournal::kBytes) << "made as zeros";
  EXPECT_EQ(fs::status(dir_).permissions() & fs::perms::all, fs::perms::owner_all);
  EXPECT_EQ(fs::status(File()).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  ASSERT_TRUE((*j)->Append(Line("act_1")).ok());
  ASSERT_TRUE((*j)->Append(Line("act_2")).ok());
  EXPECT_EQ(fs::file_size(File()), CommandJournal::kBytes) << "written over the zeros";
  EXPECT_EQ(Bytes().substr(0, Line("act_1").size() + 1), Line("act_1") + "\n");
  EXPECT_TRUE(Take(3).empty()) << "two lines wait for a third";
  EXPECT_EQ(Take(2), (std::vector<std::string>{"act_1", "act_2"}));
  EXPECT_EQ(Bytes(), std::string(CommandJournal::kBytes, '\0')) << "zeros over what was taken";
  EXPECT_TRUE(Take().empty()) << "taken once";
  // The next line starts at the beginning again; a line longer than the zeros grows it.
  ASSERT_TRUE((*j)->Append(Line("act_3")).ok());
  EXPECT_EQ(Bytes().substr(0, 6), Line("act_3").substr(0, 6));
  Action big = CommandRead("act_big");
  big.args["argv"].push_back(std::string(CommandJournal::kBytes, 'x'));
  ASSERT_TRUE((*j)->Append(JournalLine(big, "agent:bot", 1, true)).ok());
  EXPECT_GT(fs::file_size(File()), CommandJournal::kBytes);
  EXPECT_EQ(Take(), (std::vector<std::string>{"act_3", "act_big"}));
  // A second Open finds the file as it is.
  auto again = CommandJournal::Open(dir_.string());
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE((*again)->Append(Line("act_4")).ok());
  EXPECT_EQ(Take(), std::vector<std::string>{"act_4"});
}

TEST_F(CommandJournalFileTest, AFailedTakeLeavesTheLinesForTheNextOne) {
  auto j = CommandJournal::Open(dir_.string());
  ASSERT_TRUE(j.ok());
  ASSERT_TRUE((*j)->Append(Line("act_1")).ok());
  EXPECT_EQ(Take(0, nullptr, Status::IoError("store locked")), std::vector<std::string>{"act_1"});
  EXPECT_EQ(Take(), std::vector<std::string>{"act_1"}) << "still there";
}

TEST_F(CommandJournalFileTest, TornAndGarbledLinesAreSkippedAndCounted) {
  auto j = CommandJournal::Open(dir_.string());
  ASSERT_TRUE(j.ok());
  ASSERT_TRUE((*j)->Append(Line("act_1")).ok());
  // A power cut left half a line after it, and garbage before the next whole line.
  const std::string good = Line("act_1") + "\n";
  {
    std::fstream f(File(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(good.size()));
    f << "{\"v\":1,\"id\":\"act_torn";
  }
  int torn = -1;
  EXPECT_EQ(Take(0, &torn), std::vector<std::string>{"act_1"});
  EXPECT_EQ(torn, 1) << "the line cut short";
  // A line written after one cut short goes over it.
  ASSERT_TRUE((*j)->Append(Line("act_2")).ok());
  {
    std::fstream f(File(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0);
    f << "garbage that is not json\n"
      << Line("act_3") << "\n"
      << "{\"v\":1,\"id\":\"act_cut";
  }
  ASSERT_TRUE((*j)->Append(Line("act_4")).ok());
  EXPECT_EQ(Take(0, &torn), (std::vector<std::string>{"act_3", "act_4"}));
  EXPECT_EQ(torn, 1) << "the garbage line (the cut one was overwritten)";
  // Lines that are not one line are refused, and nothing is written.
  EXPECT_FALSE((*j)->Append("a\nb").ok());
  EXPECT_FALSE((*j)->Append(std::string("a\0b", 3)).ok());
  EXPECT_TRUE(Take().empty());
}

TEST_F(CommandJournalFileTest, ConcurrentWritersNeverInterleave) {
  constexpr int kThreads = 4, kEach = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto j = CommandJournal::Open(dir_.string());  // one open file each: flock between them
      ASSERT_TRUE(j.ok()) << j.status().ToString();
      for (int i = 0; i < kEach; ++i) {
        ASSERT_TRUE((*j)->Append(Line("act_" + std::to_string(t) + "_" + std::to_string(i))).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  int torn = -1;
  std::vector<std::string> ids = Take(0, &torn);
  EXPECT_EQ(ids.size(), static_cast<size_t>(kThreads * kEach));
  EXPECT_EQ(torn, 0);
}

TEST_F(CommandJournalFileTest, AFileOrDirectoryOthersCouldReachIsRefused) {
  // No journal yet: nothing to take.
  EXPECT_TRUE(Take().empty());
  ASSERT_TRUE(CommandJournal::Open(dir_.string()).ok());
  fs::permissions(File(), fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read);
  EXPECT_EQ(CommandJournal::Open(dir_.string()).status().code(), StatusCode::kPermissionDenied);
  EXPECT_FALSE(CommandJournal::Take(dir_.string(), [](auto&) { return Status::Ok(); }).ok());
  fs::remove(File());
  // A symlink in its place (to a file an attacker would have airlock write) is not followed.
  const fs::path target = dir_ / "elsewhere";
  std::ofstream(target) << "keep";
  fs::create_symlink(target, File());
  EXPECT_FALSE(CommandJournal::Open(dir_.string()).ok());
  EXPECT_FALSE(CommandJournal::Take(dir_.string(), [](auto&) { return Status::Ok(); }).ok());
  std::ifstream in(target);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "keep");
  fs::remove(File());
  fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
  EXPECT_EQ(CommandJournal::Open(dir_.string()).status().code(), StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace airlock
