// ReadJournal: its lines (round trip, hostile input), its lock, its emptying and removal,
// and the recovery of dead sessions' journals.
#include "gateway/read_journal.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/hash.h"
#include "core/json.h"
#include "gateway/journal_test_util.h"

namespace airlock {
namespace {

namespace fs = std::filesystem;
using test::CommandRead;

Action ReadAction(const std::string& id, const std::string& message) {
  Action a;
  a.id = id;
  a.created_ms = a.updated_ms = 1700000000123;
  a.agent = "bot \"quoted\" \n";
  a.target = "srv";
  a.kind = "mcp";
  a.args = {{"tool", "echo"}, {"arguments", {{"message", message}}}};
  a.status = ActionStatus::kApplied;
  a.risk = Risk::kRead;
  a.reasons = {"tool rule: echo", "ünïcode \\ and \t"};
  a.effect.effect_hash = Sha256Hex(id);
  a.quorum = 0;
  a.reversible = false;
  return a;
}

class ReadJournalTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = fs::temp_directory_path() / ("airlock-journal-" + RandomHex(6)); }
  void TearDown() override { fs::remove_all(dir_); }
  std::vector<fs::path> Files(const std::string& ext = ".jnl") {
    std::vector<fs::path> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_, ec)) {
      if (e.path().extension() == ext) out.push_back(e.path());
    }
    return out;
  }
  fs::path dir_;
};

TEST_F(ReadJournalTest, ALineHoldsTheRecordAndReadsBackTheSame) {
  Action a = ReadAction("act_0123456789abcdef", "hi \"there\"\n\u0001 ✓");
  const std::string line = JournalLine(a, "agent:bot", 1700000000456);
  EXPECT_EQ(line.find('\n'), std::string::npos) << "one line";
  EXPECT_TRUE(ParseJson(line).ok()) << line;
  auto r = ParseJournalLine(line);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->principal, "agent:bot");
  EXPECT_EQ(r->at_ms, 1700000000456);
  EXPECT_EQ(r->action.id, a.id);
  EXPECT_EQ(r->action.created_ms, a.created_ms);
  EXPECT_EQ(r->action.agent, a.agent);
  EXPECT_EQ(r->action.target, a.target);
  EXPECT_EQ(r->action.kind, a.kind);
  EXPECT_EQ(r->action.args, a.args);
  EXPECT_EQ(r->action.status, ActionStatus::kApplied);
  EXPECT_EQ(r->action.risk, Risk::kRead);
  EXPECT_EQ(r->action.reasons, a.reasons);
  EXPECT_EQ(r->action.quorum, 0);
  EXPECT_EQ(r->action.effect.effect_hash, a.effect.effect_hash);
  EXPECT_TRUE(r->action.result.is_null());
  EXPECT_FALSE(r->action.reversible);
}

TEST_F(ReadJournalTest, MalformedAndHostileLinesAreRefused) {
  const std::string good = JournalLine(ReadAction("act_1", "x"), "agent:bot", 5);
  ASSERT_TRUE(ParseJournalLine(good).ok());
  Json j = Json::parse(good);
  auto with = [&](const char* key, Json v) {
    Json k = j;
    k[key] = std::move(v);
    return k.dump();
  };
  auto without = [&](const char* key) {
    Json k = j;
    k.erase(key);
    return k.dump();
  };
  const std::vector<std::string> bad = {
      "",
      "{",
      good.substr(0, good.size() / 2),  // torn
      "[]",
      "null",
      "\"a string\"",
      "{\"v\":1}",
      with("v", 2),
      with("v", "1"),
      with("id", 7),
      with("id", ""),
      with("created_ms", -1),
      with("created_ms", "5"),
      with("created_ms", 1.5),
      with("at_ms", -9),
      with("quorum", 1000000),
      with("quorum", -1),
      with("reasons", "not a list"),
      with("reasons", Json::array({1, 2})),
      with("args", Json::array()),
      with("args", "{}"),
      with("status", "exploded"),
      with("risk", "catastrophic"),
      with("principal", nullptr),
      with("effect_hash", Json::object()),
      without("id"),
      without("args"),
      without("at_ms"),
      without("risk"),
      std::string(200, '[') + std::string(200, ']'),  // deeper than the parser's limit
      good + "x",
      std::string("\xff\xfe", 2),
  };
  for (const std::string& line : bad) {
    auto r = ParseJournalLine(line);
    EXPECT_FALSE(r.ok()) << "accepted: " << line.substr(0, 200);
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << line;
    }
  }
}

TEST_F(ReadJournalTest, AppendsWholeLinesAndRemovesItselfWhenNothingIsOutstanding) {
  std::string path;
  {
    auto j = ReadJournal::Create(dir_.string());
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    path = (*j)->path();
    EXPECT_EQ(fs::path(path).extension(), ".jnl");
    EXPECT_EQ(fs::status(dir_).permissions() & fs::perms::all, fs::perms::owner_all);
    auto one = (*j)->Append(ReadAction("act_1", "one"), "agent:bot", 1);
    auto two = (*j)->Append(ReadAction("act_2", "two"), "agent:bot", 2);
    ASSERT_TRUE(one.ok() && two.ok());
    EXPECT_EQ(*one, *two) << "one file";
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(ParseJournalLine(lines[1])->action.id, "act_2");
    // Its lock is held: nobody else takes it.
    int fd = open(path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    EXPECT_NE(flock(fd, LOCK_EX | LOCK_NB), 0);
    close(fd);
    (*j)->Done(*one, true);
    (*j)->Done(*two, true);
  }
  EXPECT_FALSE(fs::exists(path)) << "every line had its record: nothing to keep";
}

TEST_F(ReadJournalTest, IsEmptiedOrReplacedPastItsSizeAndKeptWhileALineHasNoRecord) {
  auto j = ReadJournal::Create(dir_.string());
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  const std::string first = (*j)->path();
  const std::string big(ReadJournal::kRotateAt, 'm');
  // Past the threshold with nothing outstanding: emptied.
  auto a = (*j)->Append(ReadAction("act_a", big), "agent:bot", 1);
  ASSERT_TRUE(a.ok());
  (*j)->Done(*a, true);
  EXPECT_EQ(fs::file_size(first), 0u);
  // Past the threshold with a line outstanding (steady load): the next line goes to a new
  // file, and the old one goes with its last line.
  auto b = (*j)->Append(ReadAction("act_b", big), "agent:bot", 2);
  auto c = (*j)->Append(ReadAction("act_c", "c"), "agent:bot", 3);
  ASSERT_TRUE(b.ok() && c.ok());
  EXPECT_NE(*b, *c);
  const std::string second = (*j)->path();
  EXPECT_NE(second, first);
  EXPECT_EQ(Files().size(), 2u);
  (*j)->Done(*b, true);
  EXPECT_FALSE(fs::exists(first)) << "its last line done";
  EXPECT_TRUE(fs::exists(second));
  (*j)->Done(*c, true);
  // A line given up on (its store write failed) keeps its file for the next start.
  auto kept = (*j)->Append(ReadAction("act_kept", "k"), "agent:bot", 4);
  ASSERT_TRUE(kept.ok());
  (*j)->Done(*kept, false);
  j->reset();
  ASSERT_TRUE(fs::exists(second));
  std::vector<std::string> got;
  Status st = ReadJournal::RecoverDead(dir_.string(), [&](std::vector<JournaledRead>& reads) {
    for (auto& r : reads) got.push_back(r.action.id);
    return Status::Ok();
  });
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(got, (std::vector<std::string>{"act_c", "act_kept"})) << "done lines are deduped "
                                                                     "by the store, not here";
  EXPECT_FALSE(fs::exists(second));
}

TEST_F(ReadJournalTest, RecoveryTakesDeadJournalsInOrderAndLeavesLiveOnesAndFailuresInPlace) {
  fs::create_directories(dir_);
  fs::permissions(dir_, fs::perms::owner_all);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary) << text;
  };
  auto line = [](const std::string& id) {
    return JournalLine(ReadAction(id, id), "agent:bot", 7) + "\n";
  };
  write("100-a.jnl", line("act_a1") + "garbage\n" + line("act_a2") + "{\"v\":1,\"id\":\"act_a3");
  write("200-b.jnl", line("act_b1"));
  write("300-c.new", line("act_c1"));  // not yet a journal: its session is still creating it
  write("400-d.txt", line("act_d1"));
  auto live = ReadJournal::Create(dir_.string());
  ASSERT_TRUE(live.ok());
  ASSERT_TRUE((*live)->Append(ReadAction("act_live", "l"), "agent:bot", 1).ok());

  std::vector<std::vector<std::string>> batches;
  int torn = -1;
  Status st = ReadJournal::RecoverDead(
      dir_.string(),
      [&](std::vector<JournaledRead>& reads) {
        std::vector<std::string> ids;
        for (auto& r : reads) ids.push_back(r.action.id);
        batches.push_back(ids);
        return std::find(ids.begin(), ids.end(), "act_b1") != ids.end()
                   ? Status::IoError("store locked")
                   : Status::Ok();
      },
      &torn);
  EXPECT_FALSE(st.ok()) << "the failed file is reported";
  EXPECT_NE(st.message().find("200-b.jnl"), std::string::npos) << st.ToString();
  // All dead files' lines at once; that failed, so each file alone: one bad file keeps back
  // only its own lines.
  ASSERT_EQ(batches.size(), 3u) << "the live journal is not read";
  EXPECT_EQ(batches[0], (std::vector<std::string>{"act_a1", "act_a2", "act_b1"}));
  EXPECT_EQ(batches[1], (std::vector<std::string>{"act_a1", "act_a2"}));
  EXPECT_EQ(batches[2], std::vector<std::string>{"act_b1"});
  EXPECT_EQ(torn, 2) << "the garbage line and the torn last line";
  EXPECT_FALSE(fs::exists(dir_ / "100-a.jnl"));
  EXPECT_TRUE(fs::exists(dir_ / "200-b.jnl")) << "kept for the next try";
  EXPECT_TRUE(fs::exists(dir_ / "300-c.new"));
  EXPECT_TRUE(fs::exists((*live)->path()));
  EXPECT_EQ(Files().size(), 2u);
}

TEST_F(ReadJournalTest, AFullLineHoldsTheEffectAndTheResult) {
  const Action a = CommandRead("act_cmd");
  const std::string line = JournalLine(a, "agent:bot", 1700000000456, /*full=*/true);
  EXPECT_EQ(line.find('\n'), std::string::npos) << "one line";
  auto r = ParseJournalLine(line);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->full);
  EXPECT_EQ(EffectToJson(r->action.effect), EffectToJson(a.effect));
  EXPECT_EQ(r->action.result, a.result);
  EXPECT_EQ(r->action.kind, "shell");
  EXPECT_EQ(r->action.args, a.args);
  // A call's line is not full: its effect is derived again, its result comes later.
  auto call = ParseJournalLine(JournalLine(a, "agent:bot", 1));
  ASSERT_TRUE(call.ok());
  EXPECT_FALSE(call->full);
  EXPECT_TRUE(call->action.result.is_null());

  Json j = Json::parse(line);
  auto with = [&](const char* key, Json v) {
    Json k = j;
    k[key] = std::move(v);
    return k.dump();
  };
  Json other_hash = j["effect"];
  other_hash["effect_hash"] = Sha256Hex("another");
  Json bad_files = j["effect"];
  bad_files["files"] = Json::array({"not an object"});
  Json bad_count = j["effect"];
  bad_count["files_changed"] = "many";
  Json no_result = j;
  no_result.erase("result");
  Json no_effect = j;
  no_effect.erase("effect");
  for (const std::string& bad :
       {with("effect", other_hash), with("effect", bad_files), with("effect", bad_count),
        with("effect", "{}"), with("effect", Json::array()), no_result.dump(), no_effect.dump()}) {
    auto parsed = ParseJournalLine(bad);
    EXPECT_FALSE(parsed.ok()) << "accepted: " << bad.substr(0, 300);
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << bad;
    }
  }
}

// The journals hold every read's arguments and feed the chain: a directory others could read
// or write is refused, for writing and for recovery alike.
TEST_F(ReadJournalTest, ADirectoryOthersCanReachIsRefused) {
  fs::create_directories(dir_);
  fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
  auto j = ReadJournal::Create(dir_.string());
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), StatusCode::kPermissionDenied) << j.status().ToString();
  bool called = false;
  Status st = ReadJournal::RecoverDead(dir_.string(), [&](std::vector<JournaledRead>&) {
    called = true;
    return Status::Ok();
  });
  EXPECT_FALSE(st.ok());
  EXPECT_FALSE(called);
  fs::permissions(dir_, fs::perms::owner_all);
  EXPECT_TRUE(ReadJournal::Create(dir_.string()).ok());
}

TEST_F(ReadJournalTest, ANonDirectoryIsAClearError) {
  std::ofstream(dir_.string()) << "a file";
  auto j = ReadJournal::Create(dir_.string());
  EXPECT_FALSE(j.ok());
  Status st = ReadJournal::RecoverDead(dir_.string(),
                                       [](std::vector<JournaledRead>&) { return Status::Ok(); });
  EXPECT_FALSE(st.ok());
  fs::remove(dir_);
  EXPECT_TRUE(ReadJournal::RecoverDead(dir_.string(),
                                       [](std::vector<JournaledRead>&) { return Status::Ok(); })
                  .ok())
      << "no journal directory: nothing to recover";
}

}  // namespace
}  // namespace airlock
