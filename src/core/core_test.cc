#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>

#include "core/audit_event.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/types.h"
#include "core/types_test_util.h"

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

// ParseJson parses text its scan finds within the limit without the depth callback; every
// text must get the answer and message of the parse that checks every step (the one it used
// for every text before the scan).
TEST(Json, TheNestingScanChangesNoAnswer) {
  // Texts from the characters that matter to nesting (brackets, quotes, escapes), values and
  // bytes the lexer refuses or stops at (NUL, a BOM, control, non-ASCII, comments), near a
  // small limit, well-formed or not; and well-formed values of every depth.
  std::mt19937 rng(20261201);
  const std::string alphabet =
      std::string("[]{}[]{}\"\"\\:, 1ax\t-e.+/*") + '\0' + "\xEF\xBB\xBF\x01\xC3";
  int agreed_ok = 0, agreed_deep = 0, scanned_within = 0;
  for (int i = 0; i < 60000; ++i) {
    std::string text;
    if (i % 2 == 0) {
      const int n = static_cast<int>(rng() % 24);
      for (int k = 0; k < n; ++k) text += alphabet[rng() % alphabet.size()];
    } else {
      // A well-formed value: containers nested 0..6 deep, some empty, keys and strings
      // holding brackets and escaped quotes.
      const int depth = static_cast<int>(rng() % 7);
      std::string close;
      for (int d = 0; d < depth; ++d) {
        if (rng() % 2) {
          text += "{\"k[\\\"\":";
          close = "}" + close;
        } else {
          text += "[";
          close = "]" + close;
        }
      }
      const int leaf = static_cast<int>(rng() % 4);
      if (leaf == 0) text += "\"x]}\"";
      if (leaf == 1) text += "12";
      if (leaf == 2) text += depth > 0 && close[0] == '}' ? "[]" : "{}";
      if (leaf == 3 && (depth == 0 || close[0] == '}')) text += "null";
      text += close;
    }
    const int max_depth = static_cast<int>(rng() % 5);
    if (json_internal::NestsWithin(text, max_depth)) ++scanned_within;
    const Result<Json> want = json_internal::ParseJsonChecked(text, max_depth);
    const Result<Json> got = ParseJson(text, max_depth);
    ASSERT_EQ(got.ok(), want.ok()) << text << " max " << max_depth;
    if (want.ok()) {
      ASSERT_EQ(*got, *want) << text;
      ++agreed_ok;
    } else {
      ASSERT_EQ(got.status().message(), want.status().message()) << text << " max " << max_depth;
      if (want.status().message().find("nested deeper") != std::string::npos) ++agreed_deep;
    }
  }
  // The cases that matter were there: parsed texts, texts refused for their depth, and texts
  // that took the parse without the callback.
  EXPECT_GT(agreed_ok, 5000);
  EXPECT_GT(scanned_within, 20000);
  EXPECT_GT(agreed_deep, 5000);
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

// What an event's hash is over, made the generic way: the previous hash, a newline, and the
// canonical JSON of the event's tree.
std::string EventHashByTree(const std::string& prev_hash, const AuditEvent& e) {
  Json body = {{"seq", e.seq},
               {"at_ms", e.at_ms},
               {"action_id", e.action_id},
               {"principal", e.principal},
               {"event", e.event},
               {"payload", e.payload}};
  return Sha256Hex(prev_hash + "\n" + CanonicalJson(body));
}

TEST(AuditEvent, HashIsOverTheCanonicalJsonOfTheEvent) {
  AuditEvent e;
  e.seq = 42;
  e.at_ms = 1700000000123;
  e.action_id = "act_\"quoted\"\n";
  e.principal = "approver:ünïcode";
  e.event = "applied";
  e.payload = {{"z", 1}, {"a", {{"y", "x"}}}};
  EXPECT_EQ(ComputeEventHash(kGenesisHash, e), EventHashByTree(kGenesisHash, e));
}

// The same over random strings (escapes, invalid UTF-8, NUL, long ones) and numbers: the hash
// is over the text the event's JSON tree would be written as.
TEST(AuditEvent, HashOfRandomEventsIsOverTheirCanonicalJson) {
  std::mt19937 rng(20261203);
  for (int i = 0; i < 2000; ++i) {
    AuditEvent e;
    e.seq = RandomInt(rng);
    e.at_ms = RandomInt(rng);
    e.action_id = RandomText(rng);
    e.principal = RandomText(rng);
    e.event = RandomText(rng);
    e.payload = RandomValue(rng);
    ASSERT_EQ(ComputeEventHash(kGenesisHash, e), EventHashByTree(kGenesisHash, e)) << "event " << i;
  }
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
      ASSERT_EQ(ActionJsonText(a, filters[f]), CanonicalJsonOfKept(tree, filters[f]))
          << "action " << i << ", filter " << f << ": "
          << tree.dump(-1, ' ', true, Json::error_handler_t::replace);
    }
    const Json rows = RandomValue(rng);
    Json with_rows = tree;
    with_rows["result"] = rows;
    ASSERT_EQ(ActionJsonText(a, filters[0], &rows), CanonicalJson(with_rows)) << "action " << i;
  }
  // The stored body: the action without its votes and their count.
  const Action a = RandomAction(rng);
  Json body = ActionToJson(a);
  body.erase("votes");
  body.erase("approvals");
  EXPECT_EQ(StoredActionBody(a), CanonicalJson(body));
}

// Several texts at once are each the canonical form of their keys: with and without stand-in
// results (two texts sharing one stand-in, one with another, the rest with a.result), whatever
// their filters.
TEST(Types, ActionJsonTextsAreEachTheCanonicalFormOfTheirKeys) {
  std::mt19937 rng(20261202);
  const std::vector<std::function<bool(std::string_view)>> filters = {
      [](std::string_view) { return true; },
      IsStoredBodyKey,
      [](std::string_view k) { return k == "result" || k == "agent"; },
      [](std::string_view) { return false; },
      [](std::string_view k) { return k.size() % 2 == 1; },
  };
  for (int i = 0; i < 2000; ++i) {
    const Action a = RandomAction(rng);
    const Json rows = RandomValue(rng);
    const Json other = RandomValue(rng);
    const Json* results[] = {nullptr, &rows, &rows, &other, nullptr};
    std::string out[5] = {"stale", "", "x", "", "{}"};  // each is replaced, not added to
    ActionJsonTexts(a, {{filters[0], results[0], &out[0]},
                        {filters[1], results[1], &out[1]},
                        {filters[2], results[2], &out[2]},
                        {filters[3], results[3], &out[3]},
                        {filters[4], results[4], &out[4]}});
    for (int t = 0; t < 5; ++t) {
      Json tree = ActionToJson(a);
      if (results[t] != nullptr) tree["result"] = *results[t];
      ASSERT_EQ(out[t], CanonicalJsonOfKept(tree, filters[t])) << "action " << i << ", text " << t;
    }
  }
}

// A writer's caller that ends what it never began, or ends right after a key, gets an
// exception, not bad JSON.
TEST(Json, JsonTextWriterRefusesUnbalancedEnds) {
  std::string out;
  JsonTextWriter w(&out);
  EXPECT_THROW(w.EndObject(), std::logic_error);
  EXPECT_THROW(w.EndArray(), std::logic_error);
  w.BeginObject();
  w.Key("a");
  EXPECT_THROW(w.EndObject(), std::logic_error);
}

// Row counts from hostile stored JSON cannot overflow the sum (undefined behaviour).
TEST(Types, RowsChangedSaturatesInsteadOfOverflowing) {
  Effect e;
  const int64_t max = std::numeric_limits<int64_t>::max();
  const int64_t min = std::numeric_limits<int64_t>::min();
  e.tables.push_back({"a", max, 1, 0, -1, false, false, true});
  EXPECT_EQ(e.RowsChanged(), max);
  e.tables = {{"a", min, -1, 0, -1, false, false, true}};
  EXPECT_EQ(e.RowsChanged(), min);
  e.tables = {{"a", 2, 3, 4, -1, false, false, true}, {"b", 1, 0, 0, -1, false, false, true}};
  EXPECT_EQ(e.RowsChanged(), 10);
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
