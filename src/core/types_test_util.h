// Test helpers: random actions and JSON values of every shape an action can hold, for tests
// that compare two ways of writing the same action. Header-only; tests only.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "core/types.h"

namespace airlock {

// The reference for text written without a tree: the tree with only the keys `keep`
// accepts, in CanonicalJson's form.
inline std::string CanonicalJsonOfKept(Json object,
                                       const std::function<bool(std::string_view)>& keep) {
  for (auto it = object.begin(); it != object.end();) {
    it = keep(it.key()) ? std::next(it) : object.erase(it);
  }
  return CanonicalJson(object);
}

// Strings of every kind the writer must treat as CanonicalJson does: plain ASCII, what needs
// escaping, UTF-8, invalid UTF-8, NUL and DEL.
inline std::string RandomText(std::mt19937& rng) {
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
  // Now and then longer than the serializer's 512-byte buffer.
  if (rng() % 16 == 0) out += std::string(600 + rng() % 200, rng() % 2 ? 'x' : '"');
  return out;
}

inline int64_t RandomInt(std::mt19937& rng) {
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
inline Json RandomValue(std::mt19937& rng, int depth = 0) {
  switch (rng() % (depth < 3 ? 8 : 5)) {
    case 0:
      return nullptr;
    case 1:
      return rng() % 2 == 0;
    case 2:
      return RandomInt(rng);
    case 3: {
      const double kDoubles[] = {2.5,
                                 -0.1,
                                 1e300,
                                 3.0,
                                 -0.0,
                                 std::numeric_limits<double>::quiet_NaN(),
                                 std::numeric_limits<double>::infinity()};
      if (rng() % 8 == 0) return std::numeric_limits<uint64_t>::max() - rng() % 3;
      return kDoubles[rng() % 7];
    }
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

inline Action RandomAction(std::mt19937& rng) {
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
  a.status = static_cast<ActionStatus>(rng() % 10);  // every status (kStatusNames)
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

}  // namespace airlock
