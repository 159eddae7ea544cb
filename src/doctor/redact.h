// Recognising secrets in MCP client configurations, and showing them without their value.
//
// Everything `airlock doctor` prints goes through these functions first: its whole point is
// to find credentials lying in plain text, so it must never be the thing that copies them
// into a terminal, a CI log or a ticket. Recognition is deliberately eager when masking (a
// masked non-secret costs nothing) and stricter when reporting a finding (a false alarm
// costs the user's trust). No I/O; hand-written scanners only (std::regex can exhaust the
// stack on long hostile input).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace airlock::doctor {

// A secret inside a piece of text, as the byte range [begin, end) of its value.
struct SecretSpan {
  size_t begin = 0;
  size_t end = 0;
  std::string kind;     // what it is: "password in a connection string", "GitHub token", ...
  std::string shown;    // what to print instead: "****", "sk-****", "ghp_****"
  bool finding = true;  // false: masked to be safe, but too uncertain to report
  std::string host;     // connection strings: the host the credential is for
};

// Secrets inside free text (one argument, an env value, a URL, a header value):
//   - a password in a URL's user part (postgres://app:PASS@host) or a token as the user part;
//   - known key formats (sk-, sk-ant-, ghp_, github_pat_, glpat-, xox[abprs]-, AKIA, AIza,
//     npm_, hf_, sk_live_, JWTs);
//   - KEY=VALUE and "Key: value" pairs whose key names a secret (password=, --api-key=,
//     ?access_token=, "X-API-Key: ...");
//   - "Bearer X" / "Basic X";
//   - long random-looking runs (masked only: finding = false).
// Sorted by position, never overlapping. Placeholders (${input:x}, $VAR, <token>, op://...)
// are not secrets.
std::vector<SecretSpan> FindSecrets(std::string_view text);

// `text` with every span of FindSecrets replaced by its `shown` form. Idempotent in effect:
// FindSecrets(RedactText(x)) reports no finding.
std::string RedactText(std::string_view text);

enum class SecretName {
  kNo,
  kWeak,    // KEY, TOKEN, AUTH: a secret if the value looks like one (long, random, a known format)
  kStrong,  // PASSWORD, PASS, PWD, SECRET, CREDENTIAL, AUTHORIZATION, COOKIE: any literal value
};
// Classifies an env var, flag, query parameter or header name: "OPENAI_API_KEY" -> weak,
// "DB_PASSWORD" -> strong, "--auth-token" -> weak, "X-API-Key" -> weak, "BYPASS_CACHE" -> no.
SecretName ClassifySecretName(std::string_view name);

// A reference to a secret rather than the secret: ${input:id}, ${env:X}, ${X}, $X, %X%,
// <your key>, {{x}}, op://vault/item, or filler such as "****" or "xxxx". Empty is one too.
bool IsPlaceholder(std::string_view value);

// A file-system path rather than a value: /x, ~, ./x, ../x, C:\x.
bool IsPathLike(std::string_view value);

// At least `min_len` characters, no spaces, two character classes (with a digit, or
// upper and lower case), and at least 3 bits of entropy per character.
bool LooksRandom(std::string_view value, size_t min_len = 16);

// Whether a named value (env var, header) holds a secret worth a finding, and which kind.
std::optional<std::string> NamedSecretKind(std::string_view name, std::string_view value);

// The value of an env var or header, masked whole when its name names a secret (keeping a
// known prefix and an auth scheme: "sk-****", "Bearer ****"), otherwise RedactText.
std::string RedactNamedValue(std::string_view name, std::string_view value);

// args[i], masked whole when the argument before it is a flag that names a secret
// ("--password" VALUE, "--api-key" VALUE), otherwise RedactText.
std::string RedactArg(const std::vector<std::string>& args, size_t i);
// The flag before args[i] names a secret and args[i] is a literal worth a finding.
bool SecretFlagValue(const std::vector<std::string>& args, size_t i);

// scheme://[user[:password]@]host[:port][/path][?query][#fragment]; nullopt when `text` is
// not of that form. No decoding.
struct UrlParts {
  std::string scheme;  // lower case
  std::string user;
  std::optional<std::string> password;
  std::string host;  // lower case, without brackets
  std::string port;
  std::string path;  // from the first '/', without query and fragment
  std::string query;
};
std::optional<UrlParts> ParseUrl(std::string_view text);

// The URLs (scheme://...) inside free text, each up to the next space, quote or angle bracket.
std::vector<std::string_view> FindUrls(std::string_view text);

// Terminal-safe text: control characters, and Unicode bidirectional overrides (which can
// make a printed line read differently from its bytes), become '?'.
std::string DisplaySafe(std::string_view text);

}  // namespace airlock::doctor
