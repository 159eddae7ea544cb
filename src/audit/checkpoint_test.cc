// Signed checkpoints: keys, signing, the line's parser (hostile input), and the check of a
// chain against checkpoints (rewritten, truncated, forged).
#include "audit/checkpoint.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/hash.h"

namespace airlock::audit {
namespace {

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/airlock_ckpt_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    key_ = dir_ + "/audit.key";
    auto id = WriteKeyPair(key_);
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    key_id_ = *id;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  // A chain of n events with made-up hashes.
  static std::vector<AuditEvent> Chain(int n) {
    std::vector<AuditEvent> events;
    for (int i = 1; i <= n; ++i) {
      AuditEvent e;
      e.seq = i;
      e.hash = Sha256Hex("event " + std::to_string(i));
      events.push_back(e);
    }
    return events;
  }
  static auto Scan(const std::vector<AuditEvent>& events) {
    return [&events](const std::function<bool(const AuditEvent&)>& fn) -> Status {
      for (const AuditEvent& e : events) {
        if (!fn(e)) break;
      }
      return Status::Ok();
    };
  }
  std::string Line(int64_t seq, const std::string& hash) {
    auto c = SignCheckpoint(key_, seq, hash, 1'700'000'000'000);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return CheckpointLine(*c);
  }

  std::string dir_, key_, key_id_;
};

TEST_F(CheckpointTest, KeygenWritesAPrivateAndAPublicKeyAndNeverOverwrites) {
  struct stat st;
  ASSERT_EQ(stat(key_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((key_ + ".pub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  EXPECT_EQ(key_id_.size(), 16u);
  EXPECT_EQ(*KeyIdOf(key_ + ".pub"), key_id_);
  EXPECT_EQ(*KeyIdOf(key_), key_id_) << "a private key file gives its public half";
  auto again = WriteKeyPair(key_);
  EXPECT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("does not overwrite"), std::string::npos);
  EXPECT_FALSE(KeyIdOf(dir_ + "/none").ok());
  std::ofstream(dir_ + "/junk.pem") << "-----BEGIN PUBLIC KEY-----\nnot base64\n";
  EXPECT_FALSE(KeyIdOf(dir_ + "/junk.pem").ok());
}

TEST_F(CheckpointTest, ASignedLineParsesAndVerifies) {
  const std::string hash = Sha256Hex("head");
  const std::string line = Line(42, hash);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto c = ParseCheckpointLine(line);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->seq, 42);
  EXPECT_EQ(c->hash, hash);
  EXPECT_EQ(c->key_id, key_id_);
  EXPECT_TRUE(VerifyCheckpointSignature(*c, key_ + ".pub").ok());
  EXPECT_EQ(CheckpointLine(*c), line) << "the line round-trips";
  // Any field changed breaks the signature.
  for (auto change : std::vector<std::function<void(Checkpoint&)>>{
           [](Checkpoint& x) { x.seq += 1; }, [](Checkpoint& x) { x.hash = Sha256Hex("other"); },
           [](Checkpoint& x) { x.at_ms += 1; },
           [](Checkpoint& x) { x.signature[5] = x.signature[5] == 'a' ? 'b' : 'a'; }}) {
    Checkpoint forged = *c;
    change(forged);
    Status st = VerifyCheckpointSignature(forged, key_ + ".pub");
    EXPECT_EQ(st.code(), StatusCode::kPermissionDenied) << st.ToString();
  }
  // Another key: named by its id, and refused.
  ASSERT_TRUE(WriteKeyPair(dir_ + "/other.key").ok());
  Status other = VerifyCheckpointSignature(*c, dir_ + "/other.key.pub");
  EXPECT_EQ(other.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(other.message().find(key_id_), std::string::npos) << other.message();
}

TEST_F(CheckpointTest, APrivateKeyOthersMayReadIsNotUsed) {
  ASSERT_EQ(chmod(key_.c_str(), 0640), 0);
  auto c = SignCheckpoint(key_, 1, Sha256Hex("x"), 1);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(c.status().message().find("chmod 600"), std::string::npos);
  // The public key is no private key.
  ASSERT_EQ(chmod((key_ + ".pub").c_str(), 0600), 0);
  EXPECT_FALSE(SignCheckpoint(key_ + ".pub", 1, Sha256Hex("x"), 1).ok());
}

TEST_F(CheckpointTest, HostileLinesAreRefusedWithoutBeingQuoted) {
  const std::string good = Line(3, Sha256Hex("h"));
  const std::string sig = good.substr(good.find("\"signature\":\"") + 13, 128);
  const std::string h = Sha256Hex("h");
  auto make = [&](const std::string& body) { return "{" + body + "}"; };
  const std::string rest = ",\"hash\":\"" + h + "\",\"at_ms\":1,\"key_id\":\"" + key_id_ +
                           "\",\"signature\":\"" + sig + "\"";
  for (const std::string& bad : {
           std::string(""),
           std::string("[]"),
           std::string("null"),
           std::string("{"),
           std::string("{}"),
           good + "x",
           std::string(5000, '{'),
           make("\"airlock_checkpoint\":2,\"seq\":3" + rest),
           make("\"airlock_checkpoint\":1,\"seq\":-3" + rest),
           make("\"airlock_checkpoint\":1,\"seq\":3.5" + rest),
           make("\"airlock_checkpoint\":1,\"seq\":\"3\"" + rest),
           make("\"airlock_checkpoint\":1" + rest),
           make("\"airlock_checkpoint\":1,\"seq\":3,\"extra\":1" + rest),
           make("\"airlock_checkpoint\":1,\"seq\":3,\"hash\":\"" + std::string(64, 'A') +
                "\",\"at_ms\":1,\"key_id\":\"" + key_id_ + "\",\"signature\":\"" + sig + "\""),
           make("\"airlock_checkpoint\":1,\"seq\":3,\"hash\":\"" + h +
                "\",\"at_ms\":1,\"key_id\":\"zz\",\"signature\":\"" + sig + "\""),
           make("\"airlock_checkpoint\":1,\"seq\":3,\"hash\":\"" + h +
                "\",\"at_ms\":1,\"key_id\":\"" + key_id_ + "\",\"signature\":\"" + sig + "00\""),
           make("\"airlock_checkpoint\":1,\"seq\":99999999999999999999" + rest),
       }) {
    auto c = ParseCheckpointLine(bad);
    EXPECT_FALSE(c.ok()) << bad.substr(0, 200);
    if (!c.ok()) {
      EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
      EXPECT_EQ(c.status().message().find(sig), std::string::npos);
    }
  }
}

TEST_F(CheckpointTest, TheChainMustHoldEveryCheckpointsHashAtItsPlace) {
  std::vector<AuditEvent> chain = Chain(10);
  const std::string text = Line(0, kGenesisHash) + "\n\n" + Line(4, chain[3].hash) + "\r\n" +
                           Line(10, chain[9].hash) + "\n";
  auto ok = CheckCheckpoints(text, key_ + ".pub", Scan(chain));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->checked, 3);
  EXPECT_TRUE(ok->problems.empty()) << ok->problems.front();

  // Rewritten from event 3 on (consistent hashes, as a whole new chain would be).
  std::vector<AuditEvent> rewritten = chain;
  for (int i = 2; i < 10; ++i) rewritten[i].hash = Sha256Hex("rewritten " + std::to_string(i));
  auto bad = CheckCheckpoints(text, key_ + ".pub", Scan(rewritten));
  ASSERT_TRUE(bad.ok());
  ASSERT_EQ(bad->problems.size(), 2u);
  EXPECT_NE(bad->problems[0].find("history was rewritten"), std::string::npos) << bad->problems[0];

  // Cut back to 6 events: the checkpoint of 10 names events that are gone.
  std::vector<AuditEvent> cut(chain.begin(), chain.begin() + 6);
  auto gone = CheckCheckpoints(text, key_ + ".pub", Scan(cut));
  ASSERT_TRUE(gone.ok());
  ASSERT_EQ(gone->problems.size(), 1u);
  EXPECT_NE(gone->problems[0].find("events were removed"), std::string::npos);
  EXPECT_NE(gone->problems[0].find("line 4"), std::string::npos) << gone->problems[0];

  // A forged line (hash edited) and a line that is no checkpoint: problems, not errors.
  std::string forged = Line(4, chain[3].hash);
  forged.replace(forged.find(chain[3].hash), 64, rewritten[3].hash);
  auto f = CheckCheckpoints(forged + "\nnot json\n", key_ + ".pub", Scan(rewritten));
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(f->problems.size(), 2u);
  EXPECT_NE(f->problems[0].find("signature does not match"), std::string::npos) << f->problems[0];
  EXPECT_NE(f->problems[1].find("not a checkpoint"), std::string::npos);

  // A key that cannot be read is an error.
  EXPECT_FALSE(CheckCheckpoints(text, dir_ + "/none.pub", Scan(chain)).ok());

  // The newest valid checkpoint is reported, so that a file no one appends to shows.
  EXPECT_EQ(ok->valid, 3);
  EXPECT_EQ(ok->newest_seq, 10);
  EXPECT_EQ(ok->newest_at_ms, 1'700'000'000'000);
}

// A file with nothing in it vouches for nothing: a signing job that never wrote a line, or
// a file someone emptied, must not pass.
TEST_F(CheckpointTest, AnEmptyFileIsAProblem) {
  std::vector<AuditEvent> chain = Chain(3);
  for (const std::string& text : {std::string(""), std::string("\n\n  \n"), std::string("\r\n")}) {
    auto r = CheckCheckpoints(text, key_ + ".pub", Scan(chain));
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->problems.size(), 1u);
    EXPECT_NE(r->problems[0].find("holds no checkpoint"), std::string::npos);
    EXPECT_EQ(r->valid, 0);
  }
}

TEST_F(CheckpointTest, AKeyGivenTwiceIsRefused) {
  const std::string good = Line(3, Sha256Hex("h"));
  ASSERT_TRUE(ParseCheckpointLine(good).ok());
  // The same six keys, seq twice (the last would win in most readers) and one left out.
  std::string twice = good;
  twice.replace(twice.find(",\"at_ms\""), 0, ",\"seq\":5");
  twice.erase(twice.find(",\"at_ms\":"), twice.find(",\"key_id\"") - twice.find(",\"at_ms\":"));
  auto c = ParseCheckpointLine(twice);
  EXPECT_FALSE(c.ok()) << twice;
  // Every key present and one repeated.
  std::string extra = good;
  extra.insert(extra.size() - 1, ",\"seq\":3");
  EXPECT_FALSE(ParseCheckpointLine(extra).ok()) << extra;
}

}  // namespace
}  // namespace airlock::audit
