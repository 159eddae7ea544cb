// Layer JSON (round trip, hash, hostile manifests), BlobStore, and the unified diff.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "connectors/shell/diff.h"
#include "connectors/shell/layer.h"
#include "connectors/shell/layer_test_util.h"
#include "core/hash.h"
#include "core/json.h"

namespace airlock::shell {
namespace {

using testing::TempDir;
using Type = PathState::Type;

PathState State(const std::string& path, Type type, uint32_t mode = 0, int64_t size = 0,
                const std::string& sha = "", const std::string& target = "") {
  PathState s;
  s.path = path;
  s.type = type;
  s.mode = mode;
  s.size = size;
  s.sha256 = sha;
  s.link_target = target;
  return s;
}

Layer SampleLayer() {
  std::string sha = Sha256Hex("hello\n");
  Layer l;
  PathState a = State("a.txt", Type::kFile, 0644, 5, Sha256Hex("hell\n"));
  a.mtime_ns = 1'700'000'000'123'456'789;
  a.ino = 18'446'744'073'709'551'000ull;  // beyond int64: must survive JSON as unsigned
  l.before = {a, State("dir", Type::kDir, 0755), State("dir/link", Type::kAbsent),
              State("new", Type::kAbsent)};
  l.after = {State("a.txt", Type::kFile, 0600, 6, sha), State("dir", Type::kDir, 0700),
             State("dir/link", Type::kSymlink, 0777, 11, "", "/etc/passwd"),
             State("new", Type::kAbsent)};
  return l;
}

bool SameStates(const std::vector<PathState>& x, const std::vector<PathState>& y) {
  if (x.size() != y.size()) return false;
  for (size_t i = 0; i < x.size(); ++i) {
    const PathState &a = x[i], &b = y[i];
    if (a.path != b.path || a.type != b.type || a.mode != b.mode || a.size != b.size ||
        a.sha256 != b.sha256 || a.link_target != b.link_target || a.mtime_ns != b.mtime_ns ||
        a.ino != b.ino) {
      return false;
    }
  }
  return true;
}

TEST(LayerJson, RoundTripKeepsEveryFieldAndHash) {
  Layer l = SampleLayer();
  Json j = LayerToJson(l);
  auto back = LayerFromJson(*ParseJson(CanonicalJson(j)));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(SameStates(back->before, l.before));
  EXPECT_TRUE(SameStates(back->after, l.after));
  EXPECT_EQ(LayerHash(*back), LayerHash(l));
  EXPECT_EQ(LayerHash(l).size(), 64u);
}

TEST(LayerJson, HashChangesWithAnyField) {
  Layer l = SampleLayer();
  std::string h = LayerHash(l);
  Layer m = l;
  m.after[0].mode = 0640;
  EXPECT_NE(LayerHash(m), h);
  m = l;
  m.after[2].link_target = "/etc/shadow";
  EXPECT_NE(LayerHash(m), h);
  m = l;
  m.before[0].mtime_ns += 1;
  EXPECT_NE(LayerHash(m), h);
}

TEST(LayerJson, TypeNames) {
  EXPECT_STREQ(PathTypeName(Type::kAbsent), "absent");
  EXPECT_STREQ(PathTypeName(Type::kFile), "file");
  EXPECT_STREQ(PathTypeName(Type::kDir), "dir");
  EXPECT_STREQ(PathTypeName(Type::kSymlink), "symlink");
  EXPECT_STREQ(PathTypeName(Type::kOther), "other");
}

// A manifest with one path: added file `path`.
Json OnePath(const Json& path) {
  std::string sha = Sha256Hex("x");
  return Json{
      {"before", Json::array({{{"path", path}, {"type", "absent"}}})},
      {"after",
       Json::array(
           {{{"path", path}, {"type", "file"}, {"mode", 420}, {"size", 1}, {"sha256", sha}}})}};
}

TEST(LayerJson, RefusesHostilePaths) {
  for (std::string p : std::vector<std::string>{"../x", "a/../../x", "..", ".", "/abs",
                                                "/etc/passwd", "a//b", "a/./b", "a/", "", "a/..",
                                                std::string("a\0b", 3), std::string(4097, 'a')}) {
    auto l = LayerFromJson(OnePath(p));
    EXPECT_FALSE(l.ok()) << "accepted path '" << p << "'";
    if (!l.ok()) {
      EXPECT_EQ(l.status().code(), StatusCode::kInvalidArgument);
    }
    EXPECT_FALSE(ValidateLayerPath(p).ok()) << p;
  }
  EXPECT_TRUE(LayerFromJson(OnePath("dir/naïve file ü.txt")).ok());
  EXPECT_TRUE(LayerFromJson(OnePath(std::string(4096, 'a'))).ok());
  EXPECT_TRUE(ValidateLayerPath("a/b c/.hidden/..x/x..").ok());
  EXPECT_FALSE(ValidateLayerPath("bad\xff"
                                 "name")
                   .ok());
}

TEST(LayerJson, RefusesWrongShapes) {
  auto bad = [](Json j, const char* why) {
    auto l = LayerFromJson(j);
    EXPECT_FALSE(l.ok()) << why;
  };
  Json good = OnePath("f");
  ASSERT_TRUE(LayerFromJson(good).ok());
  Json j = good;
  j["after"][0]["mode"] = "0644";
  bad(j, "mode as string");
  j = good;
  j["after"][0]["mode"] = 0100644;
  bad(j, "mode beyond 07777");
  j = good;
  j["after"][0]["size"] = 1.5;
  bad(j, "float size");
  j = good;
  j["after"][0]["size"] = -1;
  bad(j, "negative size");
  j = good;
  j["after"][0]["size"] = 18446744073709551615ull;
  bad(j, "huge size");
  j = good;
  j["after"][0]["sha256"] = "../../../etc/shadow";
  bad(j, "sha256 that is a path");
  j = good;
  j["after"][0].erase("sha256");
  bad(j, "file without content hash");
  j = good;
  j["after"][0]["type"] = "fifo";
  bad(j, "unknown type");
  j = good;
  j["after"][0]["type"] = "other";
  bad(j, "other in after");
  j = good;
  j["after"][0]["owner"] = "root";
  bad(j, "unknown key");
  j = good;
  j["before"][0]["ino"] = -3;
  bad(j, "negative inode");
  j = good;
  j["before"][0]["mode"] = 0644;
  bad(j, "absent with a mode");
  j = good;
  j["after"].push_back(j["after"][0]);
  bad(j, "lengths differ");
  j = good;
  j["before"][0]["path"] = "g";
  bad(j, "paths differ");
  bad(Json::array(), "array");
  bad(Json{{"before", Json::array()}}, "no after");
  bad(Json{{"before", 1}, {"after", 1}}, "numbers");
  bad(Json{{"before", Json::array({1})}, {"after", Json::array({1})}}, "number entries");
}

TEST(LayerJson, RefusesUnsortedDuplicateAndPathsBelowSymlinks) {
  auto absent = [](const std::string& p) { return Json{{"path", p}, {"type", "absent"}}; };
  Json dup = {{"before", {absent("a"), absent("a")}}, {"after", {absent("a"), absent("a")}}};
  EXPECT_FALSE(LayerFromJson(dup).ok());
  Json unsorted = {{"before", {absent("b"), absent("a")}}, {"after", {absent("b"), absent("a")}}};
  EXPECT_FALSE(LayerFromJson(unsorted).ok());
  // The hostile manifest a real overlay can never produce: d -> /etc and d/passwd.
  Json below_link = {
      {"before", {absent("d"), absent("d/passwd")}},
      {"after",
       {{{"path", "d"}, {"type", "symlink"}, {"mode", 511}, {"size", 4}, {"link_target", "/etc"}},
        {{"path", "d/passwd"},
         {"type", "file"},
         {"mode", 420},
         {"size", 1},
         {"sha256", Sha256Hex("x")}}}}};
  auto l = LayerFromJson(below_link);
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.status().message().find("d/passwd"), std::string::npos) << l.status().message();
}

TEST(LayerJson, ToJsonAndHashNeverThrowOnInvalidUtf8) {
  Layer l;
  l.before = {State("bad\xff\xfe", Type::kAbsent)};
  l.after = {State("bad\xff\xfe", Type::kDir, 0755)};
  std::string h;
  EXPECT_NO_THROW(h = LayerHash(l));
  EXPECT_EQ(h.size(), 64u);
  // The JSON form replaces the bad bytes (U+FFFD): lossy, which is why CaptureLayer refuses
  // such names instead of putting them in a layer (see Capture.RefusesWhatACommitNeverCreates).
  auto back = LayerFromJson(*ParseJson(CanonicalJson(LayerToJson(l))));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->after[0].path, "bad\xEF\xBF\xBD\xEF\xBF\xBD");
}

// ---- BlobStore ---------------------------------------------------------------------------

TEST(BlobStore, PutReadHasAndDeduplicate) {
  TempDir tmp;
  BlobStore blobs(tmp / "blobs");
  std::string content = "content\n" + std::string(200'000, 'z');
  auto sha = blobs.PutBytes(content);
  ASSERT_TRUE(sha.ok()) << sha.status().ToString();
  EXPECT_EQ(*sha, Sha256Hex(content));
  EXPECT_TRUE(testing::Exists(tmp / ("blobs/" + sha->substr(0, 2) + "/" + *sha)));
  EXPECT_TRUE(blobs.Has(*sha));
  auto back = blobs.ReadAll(*sha, 1 << 20);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, content);
  EXPECT_FALSE(blobs.ReadAll(*sha, 100).ok());  // larger than allowed
  auto again = blobs.PutBytes(content);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *sha);
  auto empty = blobs.PutBytes("");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*blobs.ReadAll(*empty, 0), "");
  // No temporary file is left behind: two blob subdirectories, and the lock that a reuse
  // takes against a concurrent sweep (SweepBlobs).
  int entries = 0;
  for (auto& e : std::filesystem::directory_iterator(tmp / "blobs")) {
    EXPECT_NE(e.path().filename().string().rfind(".tmp", 0), 0u) << e.path();
    if (e.path().filename() != ".lock") ++entries;
  }
  EXPECT_EQ(entries, 2);
}

TEST(BlobStore, PutFileCopiesFromTheCurrentOffset) {
  TempDir tmp;
  testing::WriteFile(tmp / "f", "0123456789");
  int fd = open((tmp / "f").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(lseek(fd, 4, SEEK_SET), 4);
  BlobStore blobs(tmp / "blobs");
  auto sha = blobs.PutFile(fd);
  close(fd);
  ASSERT_TRUE(sha.ok());
  EXPECT_EQ(*blobs.ReadAll(*sha, 100), "456789");
}

TEST(BlobStore, KeysThatAreNotHashesAreRefused) {
  TempDir tmp;
  BlobStore blobs(tmp / "blobs");
  testing::WriteFile(tmp / "secret", "s");
  for (std::string key :
       std::vector<std::string>{"../secret", "", "ab", std::string(64, 'g'), std::string(64, 'A'),
                                "../../../../../../etc/passwd"}) {
    EXPECT_FALSE(blobs.Has(key)) << key;
    EXPECT_FALSE(blobs.Open(key).ok()) << key;
  }
  auto missing = blobs.Open(std::string(64, 'a'));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

// ---- Unified diff ------------------------------------------------------------------------

TEST(Diff, MatchesGnuDiffOutput) {
  // Expected texts produced by GNU diffutils: diff -u --label a/p --label b/p.
  EXPECT_EQ(UnifiedDiff("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\nm\nn\n",
                        "a\nb\nc\nD\ne\nf\ng\nh\ni\nj\nk\nL\nm\nn\nnew\n", "p"),
            "--- a/p\n+++ b/p\n@@ -1,7 +1,7 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n"
            "@@ -9,6 +9,7 @@\n i\n j\n k\n-l\n+L\n m\n n\n+new\n");
  EXPECT_EQ(UnifiedDiff("x\ny", "x\ny\n", "p"),
            "--- a/p\n+++ b/p\n@@ -1,2 +1,2 @@\n x\n-y\n\\ No newline at end of file\n+y\n");
  EXPECT_EQ(UnifiedDiff("", "one\ntwo\n", "p"), "--- a/p\n+++ b/p\n@@ -0,0 +1,2 @@\n+one\n+two\n");
  EXPECT_EQ(UnifiedDiff("one\ntwo\n", "", "p"), "--- a/p\n+++ b/p\n@@ -1,2 +0,0 @@\n-one\n-two\n");
  EXPECT_EQ(
      UnifiedDiff("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n", "p"),
      "--- a/p\n+++ b/p\n@@ -8,3 +8,4 @@\n 8\n 9\n 10\n+11\n");
  EXPECT_EQ(UnifiedDiff("1\n2\n3\n4\n5\n6\n7\n8\n", "1\n2\n3\n4\n6\n7\n8\n", "p"),
            "--- a/p\n+++ b/p\n@@ -2,7 +2,6 @@\n 2\n 3\n 4\n-5\n 6\n 7\n 8\n");
  // A gap of exactly 6 (2 x context) joins two changes into one hunk; 7 splits them.
  std::string twelve = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n";
  EXPECT_EQ(UnifiedDiff(twelve, "1\nX\n3\n4\n5\n6\n7\n8\nY\n10\n11\n12\n", "p"),
            "--- a/p\n+++ b/p\n@@ -1,12 +1,12 @@\n 1\n-2\n+X\n 3\n 4\n 5\n 6\n 7\n 8\n-9\n+Y\n"
            " 10\n 11\n 12\n");
  EXPECT_EQ(UnifiedDiff(twelve, "1\nX\n3\n4\n5\n6\n7\n8\n9\nY\n11\n12\n", "p"),
            "--- a/p\n+++ b/p\n@@ -1,5 +1,5 @@\n 1\n-2\n+X\n 3\n 4\n 5\n@@ -7,6 +7,6 @@\n 7\n 8\n"
            " 9\n-10\n+Y\n 11\n 12\n");
  EXPECT_EQ(UnifiedDiff("same\n", "same\n", "p"), "");
}

// "@@ -A[,B] +C[,D] @@": a missing length is 1.
bool ParseHunkHeader(const std::string& h, long* a, long* alen, long* b, long* blen) {
  if (h.rfind("@@ -", 0) != 0) return false;
  const char* p = h.c_str() + 4;
  auto range = [&p](long* start, long* len) {
    char* end;
    *start = std::strtol(p, &end, 10);
    p = end;
    *len = 1;
    if (*p == ',') {
      *len = std::strtol(p + 1, &end, 10);
      p = end;
    }
  };
  range(a, alen);
  if (std::strncmp(p, " +", 2) != 0) return false;
  p += 2;
  range(b, blen);
  return std::strcmp(p, " @@") == 0;
}

// Applies a unified diff to `before` the way patch(1) would, checking every context and
// removed line; "" plus *ok=false when the diff does not fit.
std::string ApplyPatch(const std::string& before, const std::string& diff, bool* ok) {
  *ok = false;
  std::vector<std::string> lines;  // lines of before, each with its '\n' if any
  for (size_t s = 0; s < before.size();) {
    size_t nl = before.find('\n', s);
    size_t e = nl == std::string::npos ? before.size() : nl + 1;
    lines.push_back(before.substr(s, e - s));
    s = e;
  }
  std::vector<std::string> dl;  // diff lines without '\n'
  for (size_t s = 0; s < diff.size();) {
    size_t nl = diff.find('\n', s);
    if (nl == std::string::npos) return "";
    dl.push_back(diff.substr(s, nl - s));
    s = nl + 1;
  }
  if (dl.size() < 2 || dl[0].rfind("--- a/", 0) != 0 || dl[1].rfind("+++ b/", 0) != 0) return "";
  std::string out;
  size_t pos = 0;  // next line of `before` to copy
  for (size_t i = 2; i < dl.size();) {
    long a_start, a_len, b_start, b_len;
    if (!ParseHunkHeader(dl[i], &a_start, &a_len, &b_start, &b_len)) return "";
    size_t first = static_cast<size_t>(a_len == 0 ? a_start : a_start - 1);
    if (first < pos || first > lines.size()) return "";
    for (; pos < first; ++pos) out += lines[pos];
    ++i;
    long seen_a = 0, seen_b = 0;
    while (i < dl.size() && dl[i].rfind("@@", 0) != 0) {
      const std::string& l = dl[i];
      bool no_nl = i + 1 < dl.size() && dl[i + 1] == "\\ No newline at end of file";
      std::string text = l.substr(1) + (no_nl ? "" : "\n");
      if (l[0] == ' ' || l[0] == '-') {
        if (pos >= lines.size() || lines[pos] != text) return "";
        ++pos;
        ++seen_a;
      }
      if (l[0] == ' ' || l[0] == '+') {
        out += text;
        ++seen_b;
      }
      i += no_nl ? 2 : 1;
    }
    if (seen_a != a_len || seen_b != b_len) return "";
  }
  for (; pos < lines.size(); ++pos) out += lines[pos];
  *ok = true;
  return out;
}

TEST(Diff, RandomEditsPatchBackExactly) {
  std::mt19937 rng(42);
  for (int round = 0; round < 400; ++round) {
    std::vector<std::string> a;
    int n = static_cast<int>(rng() % 60);
    for (int i = 0; i < n; ++i) a.push_back("l" + std::to_string(rng() % 12) + "\n");
    std::vector<std::string> b = a;
    int edits = static_cast<int>(rng() % 8);
    for (int e = 0; e < edits; ++e) {
      size_t at = b.empty() ? 0 : rng() % (b.size() + 1);
      switch (rng() % 3) {
        case 0:
          b.insert(b.begin() + static_cast<long>(at), "new" + std::to_string(rng() % 5) + "\n");
          break;
        case 1:
          if (at < b.size()) b.erase(b.begin() + static_cast<long>(at));
          break;
        default:
          if (at < b.size()) b[at] = "chg\n";
      }
    }
    std::string before, after;
    for (auto& l : a) before += l;
    for (auto& l : b) after += l;
    if (rng() % 4 == 0 && !after.empty()) after.pop_back();  // no newline at end
    if (rng() % 5 == 0 && !before.empty()) before.pop_back();
    std::string d = UnifiedDiff(before, after, "f.txt");
    if (before == after) {
      EXPECT_EQ(d, "");
      continue;
    }
    bool ok = false;
    std::string patched = ApplyPatch(before, d, &ok);
    ASSERT_TRUE(ok) << "round " << round << "\n" << d;
    ASSERT_EQ(patched, after) << "round " << round << "\n" << d;
  }
}

TEST(Diff, MinimalForSmallEdits) {
  std::string before, after;
  for (int i = 0; i < 1000; ++i) before += "line " + std::to_string(i) + "\n";
  after = before;
  after.replace(after.find("line 500\n"), 9, "line five hundred\n");
  std::string d = UnifiedDiff(before, after, "big");
  EXPECT_EQ(d,
            "--- a/big\n+++ b/big\n@@ -498,7 +498,7 @@\n line 497\n line 498\n line 499\n"
            "-line 500\n+line five hundred\n line 501\n line 502\n line 503\n");
}

TEST(Diff, HugeDistanceFallsBackToACorrectPatch) {
  std::string before, after;
  for (int i = 0; i < 6000; ++i) {
    before += "a" + std::to_string(i) + "\n";
    after += "b" + std::to_string(i) + "\n";
  }
  before = "head\n" + before + "tail\n";
  after = "head\n" + after + "tail\n";
  std::string d = UnifiedDiff(before, after, "x");
  bool ok = false;
  EXPECT_EQ(ApplyPatch(before, d, &ok), after);
  EXPECT_TRUE(ok);
}

TEST(Diff, NonUtf8TextIsShownAsValidUtf8) {
  std::string d = UnifiedDiff("caf\xe9\n", "cafe\n", "latin1.txt");
  EXPECT_NE(d.find("-caf\xEF\xBF\xBD\n"), std::string::npos) << d;
  EXPECT_NO_THROW((void)Json(d).dump());
  EXPECT_EQ(SanitizeUtf8("ok \xc3\xa9 \xff\xc3"), "ok \xc3\xa9 \xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(SanitizeUtf8("\xed\xa0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
}

TEST(Diff, BinaryProbe) {
  EXPECT_FALSE(LooksBinary("text\n"));
  EXPECT_TRUE(LooksBinary(std::string("ab\0c", 4)));
  EXPECT_FALSE(LooksBinary(std::string(9000, 'a') + std::string(1, '\0')));  // past 8 KiB
}

}  // namespace
}  // namespace airlock::shell
