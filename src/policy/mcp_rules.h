// The small languages inside an MCP tool rule: JSON pointers (RFC 6901) and the POSIX
// extended regular expressions of `matches`. The loader validates with these; the
// classifier evaluates with them. Internal to src/policy/.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/types.h"
#include "policy/policy.h"

namespace airlock::policy_internal {

// What is wrong with a JSON pointer, or "" if nothing: it must be "" or start with '/', and
// every '~' must be "~0" or "~1".
std::string JsonPointerProblem(std::string_view pointer);

// The value `pointer` names in `doc`, or nullptr when it names nothing (a missing member, an
// array index that is out of range, "-", or not decimal without leading zeros, a step into a
// scalar, a malformed pointer). Never throws, never allocates more than one token.
const Json* ResolveJsonPointer(const Json& doc, std::string_view pointer);

// A `matches` pattern may be at most this long.
inline constexpr size_t kMaxRegexBytes = 1024;
// Strings longer than this are not searched: glibc's regexec tries every start position and
// its work grows with the square of the length (`(a|b)+(a|b)+c` takes 0.4 s on 16 KiB and
// 6.5 s on 64 KiB). A longer argument makes the rule undecidable, which fails closed.
inline constexpr size_t kMaxRegexSubjectBytes = 16 * 1024;

// What is wrong with a `matches` pattern, or "" if nothing: too long, a back-reference
// (exponential matching), repetitions that expand past what regcomp compiles in well under a
// second (`x{0,10000}` takes minutes), or regcomp's own error text.
std::string RegexProblem(const std::string& pattern);

enum class RegexResult { kMatch, kNoMatch, kUndecided };
// Searches `subject` (the whole of it: NUL bytes do not end it) for `pattern`. kUndecided when
// the subject is too long or the pattern does not compile.
RegexResult RegexSearch(const std::string& pattern, std::string_view subject);

enum class PredicateVerdict { kHolds, kFails, kUndecided };
// All of `predicates` against `doc` (an MCP call's arguments, an HTTP request's body); one
// that fails wins over one that is undecided. `why` says what could not be decided.
PredicateVerdict EvaluatePredicates(const std::vector<ArgPredicate>& predicates, const Json& doc,
                                    std::string* why);

}  // namespace airlock::policy_internal
