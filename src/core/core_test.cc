#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>
#include <string>

#include "core/audit_event.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/types.h"

namespace airlock {
namespace {

TEST(Hash, Sha256KnownVector) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  // FIPS 180-2's two-block message.
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Hash, Sha256StreamMatchesOneShot) {
  // A million 'a's (FIPS 180-2), fed in uneven pieces.
  const std::string million(1000000, 'a');
  Sha256Stream s;
  size_t at = 0;
  for (size_t piece = 1; at < million.size(); piece = piece * 3 + 1) {
    const size_t n = std::min(piece, million.size() - at);
    s.Update(million.data() + at, n);
    at += n;
  }
  s.Update(nullptr, 0);  // an empty piece changes nothing
  const std::string want = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  EXPECT_EQ(s.Final(), want);
  EXPECT_EQ(Sha256Hex(million), want);
  Sha256Stream empty;
  EXPECT_EQ(empty.Final(), Sha256Hex(""));
}

TEST(Hash, RandomHex) {
  const std::string a = RandomHex(16), b = RandomHex(16);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, b);  // 2^-128
  EXPECT_EQ(RandomHex(0), "");
  EXPECT_EQ(RandomHex(1000).size(), 2000u);  // more than one getrandom call may be needed
}

TEST(Hash, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
}

TEST(Hash, TokensAreFreshAndLong) {
  std::string a = NewToken(), b = NewToken();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.size(), 4u + 64u);
}

TEST(Json, MalformedIsAnErrorNotAThrow) {
  for (const char* bad : {"", "{", "{\"a\":}", "[1,2", "nul", "{\"a\":1,}", "\"\\ud800\""}) {
    EXPECT_FALSE(ParseJson(bad).ok()) << bad;
  }
}

TEST(Json, HostileNestingIsRefused) {
  std::string deep(100000, '[');
  auto r = ParseJson(deep);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nested deeper"), std::string::npos);
  EXPECT_TRUE(ParseJson("[[[[1]]]]").ok());
}

TEST(Json, CanonicalFormSortsKeys) {
  auto j = ParseJson(R"({"b":1,"a":{"d":2,"c":3}})");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(CanonicalJson(*j), R"({"a":{"c":3,"d":2},"b":1})");
}

TEST(Types, ActionRoundTripsThroughJson) {
  Action a;
  a.id = "act_0123456789abcdef";
  a.agent = "bot";
  a.target = "db";
  a.kind = "sql";
  a.args = {{"sql", "DROP TABLE users"}};
  a.status = ActionStatus::kEffectChanged;
  a.risk = Risk::kCritical;
  a.reasons = {"DROP TABLE users (1,204 rows, 2 indexes) is critical"};
  a.effect.kind = "sql";
  a.effect.ddl.push_back({"drop_table", "users", "users", 1204, {"i1", "i2"}, {"t1"}, ""});
  a.effect.tables.push_back({"users", 0, 0, 1204, 0, false, true, true});
  a.effect.preview.push_back({"users", "delete", {{"id", 1}}, nullptr});
  a.effect.effect_hash = std::string(64, 'a');
  a.quorum = 2;
  auto back = ActionFromJson(ActionToJson(a));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(CanonicalJson(ActionToJson(*back)), CanonicalJson(ActionToJson(a)));
}

TEST(Types, CorruptRecordsAreErrors) {
  auto j = ParseJson(R"({"status":"exploded","risk":"low"})");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(ActionFromJson(*j).status().code(), StatusCode::kCorruption);
  j = ParseJson(R"({"status":"applied","risk":"low","reasons":"x"})");
  EXPECT_EQ(ActionFromJson(*j).status().code(), StatusCode::kCorruption);
  // Numbers that do not fit the field are errors, not casts (json_fuzz found 1e204).
  for (const char* bad : {R"({"status":"applied","risk":"low","quorum":1e204})",
                          R"({"status":"applied","risk":"low","quorum":1.5})",
                          R"({"status":"applied","risk":"low","quorum":99999999999})",
                          R"({"status":"applied","risk":"low","created_ms":18446744073709551615})"}) {
    j = ParseJson(bad);
    ASSERT_TRUE(j.ok()) << bad;
    EXPECT_EQ(ActionFromJson(*j).status().code(), StatusCode::kCorruption) << bad;
  }
}

TEST(Types, ExitCodesFollowTheContract) {
  EXPECT_EQ(ExitCodeFor(ActionStatus::kApplied), 0);
  EXPECT_EQ(ExitCodeFor(ActionStatus::kPending), 10);
  for (auto s : {ActionStatus::kDenied, ActionStatus::kRejected, ActionStatus::kExpired,
                 ActionStatus::kEffectChanged}) {
    EXPECT_EQ(ExitCodeFor(s), 11);
  }
  EXPECT_EQ(ExitCodeFor(ActionStatus::kFailed), 1);
}

TEST(AuditEvent, HashCoversEveryField) {
  AuditEvent e;
  e.seq = 1;
  e.at_ms = 5;
  e.action_id = "act_1";
  e.principal = "agent:bot";
  e.event = "submitted";
  e.payload = {{"sql", "DROP TABLE users"}};
  const std::string h = ComputeEventHash(kGenesisHash, e);
  AuditEvent f = e;
  f.payload["sql"] = "SELECT 1";
  EXPECT_NE(ComputeEventHash(kGenesisHash, f), h);
  f = e;
  f.seq = 2;
  EXPECT_NE(ComputeEventHash(kGenesisHash, f), h);
  EXPECT_NE(ComputeEventHash(std::string(64, '1'), e), h);
}

TEST(AuditEvent, HashIsOverTheCanonicalJsonOfTheEvent) {
  AuditEvent e;
  e.seq = 42;
  e.at_ms = 1700000000123;
  e.action_id = "act_\"quoted\"\n";
  e.principal = "approver:ünïcode";
  e.event = "applied";
  e.payload = {{"z", 1}, {"a", {{"y", "x"}}}};
  Json body = {{"seq", e.seq},          {"at_ms", e.at_ms}, {"action_id", e.action_id},
               {"principal", e.principal}, {"event", e.event}, {"payload", e.payload}};
  EXPECT_EQ(ComputeEventHash(kGenesisHash, e),
            Sha256Hex(std::string(kGenesisHash) + "\n" + CanonicalJson(body)));
}

// The canonical form of some of an object's keys is the canonical form of the object that
// has only those keys: the same bytes, whatever the keys and values hold.
TEST(Json, CanonicalJsonOfKeysIsTheSmallerObjectsCanonicalJson) {
  Json object = {{"b", 1},
                 {"a\"q\u00e9", {{"z", Json::array({1, "x"})}, {"y", nullptr}}},
                 {"c", std::string("bad \xff utf-8")},
                 {"d", 2.5},
                 {"votes", Json::array()}};
  auto keep = [](std::string_view key) { return key != "votes" && key != "b"; };
  Json smaller = object;
  smaller.erase("votes");
  smaller.erase("b");
  EXPECT_EQ(CanonicalJsonOfKeys(object, keep), CanonicalJson(smaller));
  EXPECT_EQ(CanonicalJsonOfKeys(object, [](std::string_view) { return false; }), "{}");
  EXPECT_EQ(CanonicalJsonOfKeys(object, [](std::string_view) { return true; }),
            CanonicalJson(object));
}

// Strings of every kind the writer must treat as CanonicalJson does: plain ASCII, what needs
// escaping, UTF-8, invalid UTF-8, NUL and DEL.
std::string RandomText(std::mt19937& rng) {
  static const std::vector<std::string> kPieces = {"",         "a",
                                                   "users",    "SELECT 1",
                                                   "\"",       "\\",
                                                   "\n",       "\t",
                                                   "\r",       "\b",
                                                   "\f",       std::string(1, '\0'),
                                                   "\x01",     "\x1f",
                                                   "\x7f",     "caf\u00e9",
                                                   "\u2028",   "\U0001F600",
                                                   "\xff",     "\xc3",
                                                   "\xe2\x82", "<script>alert(1)</script>",
                                                   "/",        " ",
                                                   "{}",       "[]"};
  std::string out;
  const int n = std::uniform_int_distribution<int>(0, 4)(rng);
  for (int i = 0; i < n; ++i) out += kPieces[rng() % kPieces.size()];
  return out;
}

int64_t RandomInt(std::mt19937& rng) {
  static const std::vector<int64_t> kValues = {0,
                                               1,
                                               -1,
                                               42,
                                               -1204,
                                               1796099571611,
                                               std::numeric_limits<int64_t>::max(),
                                               std::numeric_limits<int64_t>::min()};
  return kValues[rng() % kValues.size()];
}

// Any JSON value, floats and nesting included, as args, results and previews hold.
Json RandomValue(std::mt19937& rng, int depth = 0) {
  switch (rng() % (depth < 3 ? 8 : 5)) {
    case 0:
      return nullptr;
    case 1:
      return rng() % 2 == 0;
    case 2:
      return RandomInt(rng);
    case 3:
      return std::vector<double>{2.5, -0.1, 1e300, 3.0}[rng() % 4];
    case 4:
      return RandomText(rng);
    case 5: {
      Json a = Json::array();
      for (int i = rng() % 3; i > 0; --i) a.push_back(RandomValue(rng, depth + 1));
      return a;
    }
    default: {
      Json o = Json::object();
      for (int i = rng() % 4; i > 0; --i) o[RandomText(rng)] = RandomValue(rng, depth + 1);
      return o;
    }
  }
}

Action RandomAction(std::mt19937& rng) {
  auto texts = [&rng] {
    std::vector<std::string> v;
    for (int i = rng() % 3; i > 0; --i) v.push_back(RandomText(rng));
    return v;
  };
  Action a;
  a.id = RandomText(rng);
  a.created_ms = RandomInt(rng);
  a.updated_ms = RandomInt(rng);
  a.agent = RandomText(rng);
  a.target = RandomText(rng);
  a.kind = rng() % 3 == 0 ? "shell" : RandomText(rng);
  a.args = RandomValue(rng);
  a.status = static_cast<ActionStatus>(rng() % 3);
  a.risk = static_cast<Risk>(rng() % 4);
  a.reasons = texts();
  a.result = RandomValue(rng);
  a.quorum = static_cast<int>(rng() % 3);
  a.expires_ms = RandomInt(rng);
  if (rng() % 2) a.error = RandomText(rng);
  if (rng() % 2) a.error_code = RandomText(rng);
  for (int i = rng() % 3; i > 0; --i) {
    a.votes.push_back({RandomText(rng), rng() % 2 == 0, RandomText(rng), RandomInt(rng)});
  }
  a.reversible = rng() % 2 == 0;
  a.dry_run = rng() % 2 == 0;
  if (rng() % 2) a.would_status = RandomText(rng);
  Effect& e = a.effect;
  e.kind = a.kind;
  for (int i = rng() % 3; i > 0; --i) {
    // Counts a sum of which (rows_changed) cannot overflow.
    auto count = [&rng] { return static_cast<int64_t>(rng() % 100000); };
    e.tables.push_back({RandomText(rng), count(), count(), count(), RandomInt(rng), rng() % 2 == 0,
                        rng() % 2 == 0, rng() % 2 == 0});
  }
  for (int i = rng() % 3; i > 0; --i) {
    e.ddl.push_back({RandomText(rng), RandomText(rng), RandomText(rng), RandomInt(rng), texts(),
                     texts(), RandomText(rng)});
  }
  for (int i = rng() % 3; i > 0; --i) {
    e.preview.push_back({RandomText(rng), RandomText(rng), RandomValue(rng), RandomValue(rng)});
  }
  e.preview_omitted = RandomInt(rng);
  for (int i = rng() % 3; i > 0; --i) {
    FileChange f;
    f.path = RandomText(rng);
    f.op = RandomText(rng);
    f.type = RandomText(rng);
    f.type_before = RandomText(rng);
    f.size_before = RandomInt(rng);
    f.size_after = RandomInt(rng);
    f.mode_before = static_cast<int>(rng() % 0777) - 1;
    f.mode_after = static_cast<int>(rng() % 0777) - 1;
    f.link_target = RandomText(rng);
    f.diff = RandomText(rng);
    f.binary = rng() % 2 == 0;
    e.files.push_back(std::move(f));
  }
  e.files_changed = rng() % 2 ? 0 : RandomInt(rng);
  e.effect_hash = RandomText(rng);
  e.extra = rng() % 2 ? Json::object() : RandomValue(rng);
  return a;
}

// The action's text, written without a tree, is byte for byte the tree's canonical form,
// for every subset of keys tried and with another result standing in: the audit chain hashes
// these bytes, so any difference would be a second form of the same action.
TEST(Types, ActionJsonTextIsTheCanonicalFormOfActionToJson) {
  std::mt19937 rng(20261201);
  const std::vector<std::function<bool(std::string_view)>> filters = {
      [](std::string_view) { return true; },
      [](std::string_view) { return false; },
      [](std::string_view k) { return k != "votes" && k != "approvals"; },
      [](std::string_view k) { return k == "effect" || k == "args" || k == "would_status"; },
      [](std::string_view k) { return k.size() % 2 == 0; },
  };
  for (int i = 0; i < 3000; ++i) {
    const Action a = RandomAction(rng);
    const Json tree = ActionToJson(a);
    for (size_t f = 0; f < filters.size(); ++f) {
      ASSERT_EQ(ActionJsonText(a, filters[f]), CanonicalJsonOfKeys(tree, filters[f]))
          << "action " << i << ", filter " << f << ": "
          << tree.dump(-1, ' ', true, Json::error_handler_t::replace);
    }
    const Json rows = RandomValue(rng);
    Json with_rows = tree;
    with_rows["result"] = rows;
    ASSERT_EQ(ActionJsonText(a, filters[0], &rows), CanonicalJson(with_rows)) << "action " << i;
  }
  EXPECT_EQ(StoredActionBody(RandomAction(rng)).front(), '{');
}

// The writer's commas, colons and escapes, on a shape written by hand.
TEST(Json, JsonTextWriterWritesWhatCanonicalJsonWrites) {
  std::string out;
  JsonTextWriter w(&out);
  w.BeginObject();
  w.Key("a");
  w.BeginArray();
  w.EndArray();
  w.Key("b\"");
  w.BeginArray();
  w.Int(-3);
  w.String("x\ny");
  w.BeginObject();
  w.EndObject();
  w.Bool(false);
  w.Value(Json{{"k", 2.5}});
  w.String("bad \xff");
  w.EndArray();
  w.Key("c");
  w.String("");
  w.EndObject();
  Json expected = {{"a", Json::array()},
                   {"b\"", {-3, "x\ny", Json::object(), false, {{"k", 2.5}}, "bad \xff"}},
                   {"c", ""}};
  EXPECT_EQ(out, CanonicalJson(expected));
}

}  // namespace
}  // namespace airlock
