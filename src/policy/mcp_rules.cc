// MCP tool rules: which tools an agent may call, and the risk of one call from the server's
// `tools:` rules and (only when trusted) the upstream's annotations.
//
// Every input here but the policy is untrusted: the tool name and arguments come from the
// agent, the annotations from the upstream server. Nothing throws; anything that cannot be
// decided raises the risk to at least high (fail closed).
#include "policy/mcp_rules.h"

#include <regex.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/glob.h"
#include "policy/policy.h"

namespace airlock {
namespace policy_internal {
namespace {

// Repetitions expand in regcomp: `(x?){0,499}` is ~1,000 nodes and compiles in 0.05 s, while
// `x{0,10000}` runs for minutes. This bounds the expanded size.
constexpr int64_t kMaxRegexWeight = 1000;
constexpr int64_t kMaxRepeatCount = 255;  // POSIX's RE_DUP_MAX minimum
constexpr int64_t kSaturated = int64_t{1} << 40;

int64_t SatMul(int64_t a, int64_t b) {
  return a != 0 && b > kSaturated / a ? kSaturated : std::min(a * b, kSaturated);
}

int64_t SatAdd(int64_t a, int64_t b) {
  return std::min(a + b, kSaturated);
}

bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}

// One nesting level of the pattern: finished alternatives, the current one, and its last
// piece (which a following quantifier applies to).
struct Level {
  int64_t alternatives = 0;
  int64_t current = 0;
  int64_t last = 0;
  int64_t Close() const { return SatAdd(alternatives, SatAdd(current, last)); }
};

// Length of the bracket expression at p[i] == '[', or 0 if it is not closed (regcomp then
// reports it).
size_t BracketLength(std::string_view p, size_t i) {
  size_t j = i + 1;
  if (j < p.size() && p[j] == '^') ++j;
  if (j < p.size() && p[j] == ']') ++j;  // a leading ']' is a member
  while (j < p.size() && p[j] != ']') {
    if (p[j] == '[' && j + 1 < p.size() &&
        (p[j + 1] == ':' || p[j + 1] == '=' || p[j + 1] == '.')) {
      const char close[] = {p[j + 1], ']', '\0'};
      size_t end = p.find(close, j + 2);
      if (end == std::string_view::npos) return 0;
      j = end + 2;
    } else {
      ++j;
    }
  }
  return j < p.size() ? j - i + 1 : 0;
}

// Parses "{m}", "{m,}" or "{m,n}" at p[i] == '{'; sets *length and *count (the copies it
// expands to). False when it is not a repetition (regcomp decides what it is then).
bool ParseRepeat(std::string_view p, size_t i, size_t* length, int64_t* count) {
  size_t j = i + 1;
  int64_t lo = 0, hi = -1;
  bool has_lo = false;
  while (j < p.size() && IsDigit(p[j])) {
    lo = std::min<int64_t>(lo * 10 + (p[j++] - '0'), kSaturated);
    has_lo = true;
  }
  bool comma = j < p.size() && p[j] == ',';
  // glibc's regcomp reads "{,n}" as "{0,n}" (found by fuzz/policy_fuzz.cc: "((x?){0,30}){,718}"
  // went unweighed and took gigabytes); "{" followed by neither is a literal.
  if (!has_lo && !comma) return false;
  if (comma) {
    ++j;
    if (j < p.size() && IsDigit(p[j])) {
      hi = 0;
      while (j < p.size() && IsDigit(p[j]))
        hi = std::min<int64_t>(hi * 10 + (p[j++] - '0'), kSaturated);
    }
  }
  if (j >= p.size() || p[j] != '}') return false;
  *length = j - i + 1;
  *count = !comma ? lo : hi < 0 ? lo + 1 : std::max(lo, hi);
  return true;
}

// The size regcomp's expansion of `pattern` will roughly have, or a problem.
std::string WeightProblem(std::string_view p) {
  std::vector<Level> stack(1);
  for (size_t i = 0; i < p.size(); ++i) {
    Level& top = stack.back();
    const char c = p[i];
    if (c == '\\') {
      if (i + 1 < p.size() && IsDigit(p[i + 1])) {
        return "back-references (\\1 ...) are not supported: they make matching exponential";
      }
      ++i;  // the escaped character is one atom
    } else if (c == '[') {
      size_t n = BracketLength(p, i);
      if (n == 0) break;  // regcomp reports the unclosed bracket
      i += n - 1;
    } else if (c == '(') {
      top.current = SatAdd(top.current, top.last);
      top.last = 0;
      stack.emplace_back();
      continue;
    } else if (c == ')' && stack.size() > 1) {
      int64_t group = SatAdd(top.Close(), 1);
      stack.pop_back();
      stack.back().last = group;
      continue;
    } else if (c == '|') {
      top.alternatives = SatAdd(top.alternatives, SatAdd(top.current, top.last));
      top.current = top.last = 0;
      continue;
    } else if (c == '*' || c == '?') {
      top.last = SatAdd(top.last, 1);
      continue;
    } else if (c == '+') {
      // regcomp builds `x+` as `xx*`: a copy of the piece. Stacked (`x+++…`, found by
      // fuzz/policy_fuzz.cc) that doubles at each `+` and exhausted memory.
      top.last = SatAdd(SatMul(std::max<int64_t>(top.last, 1), 2), 1);
      continue;
    } else if (c == '{') {
      size_t length = 0;
      int64_t count = 0;
      if (ParseRepeat(p, i, &length, &count)) {
        if (count > kMaxRepeatCount) {
          return "a repetition count over " + std::to_string(kMaxRepeatCount);
        }
        // At least one copy: regcomp builds the piece before it reads the count, so `{0}`
        // after `x+++…` (found by fuzz/policy_fuzz.cc) still built the doubled piece.
        top.last = SatAdd(SatMul(std::max<int64_t>(top.last, 1), std::max<int64_t>(count, 1)), 1);
        i += length - 1;
        continue;
      }
    }
    top.current = SatAdd(top.current, top.last);
    top.last = 1;
  }
  int64_t total = 0;
  while (!stack.empty()) {
    total = SatAdd(total, stack.back().Close());
    stack.pop_back();
  }
  if (total > kMaxRegexWeight) {
    return "its repetitions expand too far (keep nested and counted repetitions small)";
  }
  return "";
}

// A compiled pattern that frees itself.
class CompiledRegex {
 public:
  explicit CompiledRegex(const std::string& pattern) {
    code_ = regcomp(&re_, pattern.c_str(), REG_EXTENDED | REG_NOSUB);
  }
  ~CompiledRegex() {
    if (code_ == 0) regfree(&re_);
  }
  CompiledRegex(const CompiledRegex&) = delete;
  CompiledRegex& operator=(const CompiledRegex&) = delete;

  bool ok() const { return code_ == 0; }
  std::string Error() const {
    char buf[256];
    regerror(code_, &re_, buf, sizeof buf);
    return buf;
  }
  bool Search(std::string_view subject) const {
    // REG_STARTEND: the bounds come from pmatch[0], so a NUL byte in an argument cannot hide
    // what follows it from the pattern.
    regmatch_t range[1];
    range[0].rm_so = 0;
    range[0].rm_eo = static_cast<regoff_t>(subject.size());
    return regexec(&re_, subject.data(), 1, range, REG_STARTEND) == 0;
  }

 private:
  regex_t re_{};
  int code_ = 0;
};

}  // namespace

std::string JsonPointerProblem(std::string_view pointer) {
  if (pointer.empty()) return "";
  if (pointer[0] != '/') {
    return "a JSON pointer is \"\" (the whole arguments) or starts with '/', e.g. \"/to\"";
  }
  for (size_t i = 0; i < pointer.size(); ++i) {
    if (pointer[i] != '~') continue;
    if (i + 1 == pointer.size() || (pointer[i + 1] != '0' && pointer[i + 1] != '1')) {
      return "'~' must be written ~0, and '/' inside a name ~1 (RFC 6901)";
    }
  }
  return "";
}

namespace {

// RFC 6901 array index: "0", or digits without a leading zero; false for anything else
// (including "-", the element after the last, which never exists).
bool ParseArrayIndex(std::string_view token, size_t size, size_t* index) {
  if (token.empty() || token.size() > 19) return false;
  if (token.size() > 1 && token[0] == '0') return false;
  uint64_t n = 0;
  for (char c : token) {
    if (!IsDigit(c)) return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');  // 19 digits cannot overflow
  }
  if (n >= size) return false;
  *index = static_cast<size_t>(n);
  return true;
}

// "a~1b~0" -> "a/b~"; false on a '~' that is not ~0 or ~1.
bool DecodeToken(std::string_view raw, std::string* out) {
  out->clear();
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '~') {
      out->push_back(raw[i]);
      continue;
    }
    if (i + 1 == raw.size()) return false;
    char next = raw[++i];
    if (next == '0') {
      out->push_back('~');
    } else if (next == '1') {
      out->push_back('/');
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

const Json* ResolveJsonPointer(const Json& doc, std::string_view pointer) {
  const Json* cur = &doc;
  if (pointer.empty()) return cur;
  if (pointer[0] != '/') return nullptr;
  std::string token;
  size_t pos = 0;  // at a '/'
  while (pos != std::string_view::npos) {
    size_t next = pointer.find('/', pos + 1);
    std::string_view raw = pointer.substr(
        pos + 1, next == std::string_view::npos ? std::string_view::npos : next - pos - 1);
    if (!DecodeToken(raw, &token)) return nullptr;
    if (cur->is_object()) {
      auto it = cur->find(token);
      if (it == cur->end()) return nullptr;
      cur = &*it;
    } else if (cur->is_array()) {
      size_t index = 0;
      if (!ParseArrayIndex(token, cur->size(), &index)) return nullptr;
      cur = &(*cur)[index];
    } else {
      return nullptr;
    }
    pos = next;
  }
  return cur;
}

std::string RegexProblem(const std::string& pattern) {
  if (pattern.size() > kMaxRegexBytes) {
    return "longer than " + std::to_string(kMaxRegexBytes) + " bytes";
  }
  if (pattern.find('\0') != std::string::npos) return "contains a NUL byte";
  if (std::string w = WeightProblem(pattern); !w.empty()) return w;
  CompiledRegex re(pattern);
  if (!re.ok()) return re.Error();
  return "";
}

RegexResult RegexSearch(const std::string& pattern, std::string_view subject) {
  if (subject.size() > kMaxRegexSubjectBytes) return RegexResult::kUndecided;
  CompiledRegex re(pattern);
  if (!re.ok()) return RegexResult::kUndecided;
  return re.Search(subject) ? RegexResult::kMatch : RegexResult::kNoMatch;
}

}  // namespace policy_internal

namespace {

using policy_internal::RegexResult;

// How many things a value holds, for count_gt: recipients in "to", files in "paths".
int64_t CountOf(const Json* v) {
  if (v == nullptr || v->is_null()) return 0;
  if (v->is_array() || v->is_object()) return static_cast<int64_t>(v->size());
  return 1;
}

enum class Verdict { kHolds, kFails, kUndecided };

// One predicate against the call's arguments. `why` says what could not be decided.
Verdict Evaluate(const ArgPredicate& p, const Json& arguments, std::string* why) {
  const Json* v = policy_internal::ResolveJsonPointer(arguments, p.pointer);
  if (p.count_gt && !(CountOf(v) > *p.count_gt)) return Verdict::kFails;
  if (v == nullptr) {
    const bool count_only = p.count_gt && !p.equals && !p.gt && !p.matches;
    return count_only ? Verdict::kHolds : Verdict::kFails;
  }
  if (p.equals && !(*v == *p.equals)) return Verdict::kFails;
  if (p.gt && !(v->is_number() && v->get<double>() > *p.gt)) return Verdict::kFails;
  if (p.matches) {
    if (!v->is_string()) return Verdict::kFails;
    const std::string& s = v->get_ref<const std::string&>();
    switch (policy_internal::RegexSearch(*p.matches, s)) {
      case RegexResult::kMatch:
        break;
      case RegexResult::kNoMatch:
        return Verdict::kFails;
      case RegexResult::kUndecided:
        *why = s.size() > policy_internal::kMaxRegexSubjectBytes
                   ? "argument \"" + p.pointer + "\" (" +
                         FormatCount(static_cast<int64_t>(s.size())) +
                         " bytes) is too long to check against its pattern"
                   : "its pattern does not compile";
        return Verdict::kUndecided;
    }
  }
  return Verdict::kHolds;
}

Verdict EvaluateAll(const McpToolRule& r, const Json& arguments, std::string* why) {
  switch (policy_internal::EvaluatePredicates(r.args, arguments, why)) {
    case policy_internal::PredicateVerdict::kHolds:
      return Verdict::kHolds;
    case policy_internal::PredicateVerdict::kFails:
      return Verdict::kFails;
    case policy_internal::PredicateVerdict::kUndecided:
      break;
  }
  return Verdict::kUndecided;
}

std::string ToolRuleReason(const McpToolRule& r, std::string_view file, Risk risk) {
  std::string at = "rule at " + std::string(file) + ":" + std::to_string(r.loc.line);
  std::string arrow = at + " \u2192 " + RiskName(risk);
  // A rule without its own reason already reads "rule at FILE:LINE"; do not say it twice.
  if (r.reason.empty() || r.reason == at) return arrow;
  return r.reason + " (" + arrow + ")";
}

bool HintIs(const Json& annotations, const char* hint, bool value) {
  if (!annotations.is_object()) return false;
  auto it = annotations.find(hint);
  return it != annotations.end() && it->is_boolean() && it->get<bool>() == value;
}

// No rule matched: high, unless the server's annotations are trusted and say otherwise.
void ClassifyByAnnotations(const McpServerSpec& server, const std::string& tool, bool named,
                           const Json& annotations, Classification* c) {
  const std::string what = "tool '" + tool + "' on server '" + server.name + "'";
  const std::string no_rule =
      named ? "no rule for " + what + " matches these arguments" : what + " has no rule";
  if (server.trust_annotations && !HintIs(annotations, "destructiveHint", true)) {
    if (HintIs(annotations, "readOnlyHint", true)) {
      c->risk = Risk::kRead;
      c->reasons.push_back(no_rule +
                           "; the upstream says read-only (readOnlyHint), trusted by "
                           "trust_annotations");
      return;
    }
    if (HintIs(annotations, "destructiveHint", false)) {
      c->risk = Risk::kLow;
      c->reasons.push_back(no_rule +
                           "; the upstream says not destructive (destructiveHint: false), "
                           "trusted by trust_annotations (low)");
      return;
    }
  }
  c->risk = Risk::kHigh;
  std::string reason = no_rule + ": high (fail closed)";
  if (server.trust_annotations && HintIs(annotations, "destructiveHint", true)) {
    reason += "; the upstream says destructive (destructiveHint)";
  }
  c->reasons.push_back(std::move(reason));
}

bool ScopeNamesServer(const std::string& scope, const std::string& server) {
  return scope.size() > server.size() && scope[server.size()] == '/' &&
         scope.compare(0, server.size(), server) == 0;
}

}  // namespace

namespace policy_internal {

PredicateVerdict EvaluatePredicates(const std::vector<ArgPredicate>& predicates, const Json& doc,
                                    std::string* why) {
  PredicateVerdict out = PredicateVerdict::kHolds;
  for (const ArgPredicate& p : predicates) {
    Verdict v = Evaluate(p, doc, why);
    if (v == Verdict::kFails) return PredicateVerdict::kFails;
    if (v == Verdict::kUndecided) out = PredicateVerdict::kUndecided;
  }
  return out;
}

}  // namespace policy_internal

bool AgentSeesMcpServer(const AgentSpec& agent, const std::string& server) {
  if (server.empty()) return false;
  return std::any_of(agent.scopes.begin(), agent.scopes.end(), [&](const std::string& s) {
    return s == server || ScopeNamesServer(s, server);
  });
}

bool AgentMayCallTool(const AgentSpec& agent, const std::string& server, const std::string& tool) {
  if (server.empty()) return false;
  return std::any_of(agent.scopes.begin(), agent.scopes.end(), [&](const std::string& s) {
    if (s == server) return true;
    return ScopeNamesServer(s, server) &&
           GlobMatch(std::string_view(s).substr(server.size() + 1), tool);
  });
}

Classification ClassifyMcpCall(const McpServerSpec& server, const std::string& tool,
                               const Json& arguments, const Json& annotations,
                               std::string_view policy_file) {
  Classification c;
  bool named = false, matched = false;
  for (const McpToolRule& r : server.tools) {
    if (!GlobMatch(r.tool, tool)) continue;
    named = true;
    std::string why;
    Verdict v = EvaluateAll(r, arguments, &why);
    if (v == Verdict::kFails) continue;
    matched = true;
    if (v == Verdict::kHolds) {
      c.risk = MaxRisk(c.risk, r.risk);
      c.reasons.push_back(ToolRuleReason(r, policy_file, r.risk));
    } else {
      // The rule might apply; airlock cannot tell, so it applies at least at high.
      const Risk risk = MaxRisk(r.risk, Risk::kHigh);
      c.risk = MaxRisk(c.risk, risk);
      c.reasons.push_back(ToolRuleReason(r, policy_file, risk) + ": " + why +
                          ", so it applies (fail closed)");
    }
  }
  if (!matched) ClassifyByAnnotations(server, tool, named, annotations, &c);
  return c;
}

}  // namespace airlock
