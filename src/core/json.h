// Canonical JSON: the byte form that hashes are computed over.
//
// nlohmann::json keeps object keys sorted (std::map), so a compact dump is canonical as long
// as numbers are integers or strings. Floats are dumped with the shortest round-trip form.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/types.h"

namespace airlock {

// Compact, sorted keys, UTF-8 as is; invalid UTF-8 is replaced (never throws).
std::string CanonicalJson(const Json& j);

// Appends JSON text to a string value by value, exactly as CanonicalJson writes the same
// values: for writers of a known shape that need no tree (building one costs an allocation per
// key, and freeing it as much again). The caller writes an object's keys in sorted order, as
// CanonicalJson would; the writer puts the commas and colons.
class JsonTextWriter {
 public:
  explicit JsonTextWriter(std::string* out);
  ~JsonTextWriter();
  JsonTextWriter(const JsonTextWriter&) = delete;
  JsonTextWriter& operator=(const JsonTextWriter&) = delete;

  void BeginObject();
  void EndObject();
  void BeginArray();
  void EndArray();
  // An object's next key; its value follows.
  void Key(std::string_view key);
  void String(std::string_view s);
  void Int(int64_t v);
  void Bool(bool b);
  void Value(const Json& j);
  void Strings(const std::vector<std::string>& list);  // an array of strings
  // A key and its value at once (named apart: a string literal would convert to bool).
  void KeyString(std::string_view key, std::string_view s) {
    Key(key);
    String(s);
  }
  void KeyInt(std::string_view key, int64_t v) {
    Key(key);
    Int(v);
  }
  void KeyBool(std::string_view key, bool b) {
    Key(key);
    Bool(b);
  }
  void KeyValue(std::string_view key, const Json& j) {
    Key(key);
    Value(j);
  }

 private:
  void Separate();  // a comma before any element but a container's first, none after a key
  void Open(char bracket);
  // Throws std::logic_error on an end with nothing open or right after a key.
  void Close(char bracket);

  std::string* out_;
  uint64_t has_element_ = 0;  // bit d: the open container at depth d has an element
  int depth_ = 0;             // open containers; deeper ones are refused
  bool after_key_ = false;
};

// Parses untrusted text. Never throws; depth is limited to `max_depth` to stop stack
// exhaustion from hostile nesting.
Result<Json> ParseJson(std::string_view text, int max_depth = 64);

namespace json_internal {
// ParseJson's two parts, for its tests and fuzz target. NestsWithin: whether no value or key
// of `text` lies inside more than max_depth containers (one scan of brackets and strings);
// when it does, ParseJson parses without a depth check. ParseJsonChecked: the parse that
// checks the depth at every step, which ParseJson takes for every other text.
bool NestsWithin(std::string_view text, int max_depth);
Result<Json> ParseJsonChecked(std::string_view text, int max_depth);
}  // namespace json_internal

}  // namespace airlock
