#include "doctor/redact.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <map>

namespace airlock::doctor {
namespace {

bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}
bool IsUpper(char c) {
  return c >= 'A' && c <= 'Z';
}
bool IsLower(char c) {
  return c >= 'a' && c <= 'z';
}
bool IsAlnum(char c) {
  return IsDigit(c) || IsUpper(c) || IsLower(c);
}
bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
char Upper(char c) {
  return IsLower(c) ? static_cast<char>(c - 'a' + 'A') : c;
}
char Lower(char c) {
  return IsUpper(c) ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string ToUpper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Upper(c);
  return out;
}
std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

bool StartsWith(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}
bool EndsWith(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

bool IsTokenChar(char c) {
  return IsAlnum(c) || c == '_' || c == '-';
}
bool IsAlnumOrUnderscore(char c) {
  return IsAlnum(c) || c == '_';
}
bool IsAlnumOrDash(char c) {
  return IsAlnum(c) || c == '-';
}
bool IsUpperOrDigit(char c) {
  return IsUpper(c) || IsDigit(c);
}
bool IsJwtChar(char c) {
  return IsTokenChar(c) || c == '.';
}

// Known key formats. Longer prefixes first: "sk-ant-" must win over "sk-".
struct KeyFormat {
  std::string_view prefix;
  size_t min_run;  // characters after the prefix
  bool (*charset)(char);
  const char* kind;
};
constexpr std::array<KeyFormat, 27> kKeyFormats = {{
    {"sk-ant-", 20, IsTokenChar, "Anthropic API key"},
    {"sk-proj-", 20, IsTokenChar, "OpenAI API key"},
    {"sk_live_", 16, IsAlnum, "Stripe secret key"},
    {"sk_test_", 16, IsAlnum, "Stripe test key"},
    {"rk_live_", 16, IsAlnum, "Stripe restricted key"},
    {"github_pat_", 20, IsAlnumOrUnderscore, "GitHub token"},
    {"glpat-", 20, IsTokenChar, "GitLab token"},
    {"ghp_", 30, IsAlnum, "GitHub token"},
    {"gho_", 30, IsAlnum, "GitHub token"},
    {"ghu_", 30, IsAlnum, "GitHub token"},
    {"ghs_", 30, IsAlnum, "GitHub token"},
    {"ghr_", 30, IsAlnum, "GitHub token"},
    {"xoxb-", 10, IsAlnumOrDash, "Slack token"},
    {"xoxp-", 10, IsAlnumOrDash, "Slack token"},
    {"xoxa-", 10, IsAlnumOrDash, "Slack token"},
    {"xoxr-", 10, IsAlnumOrDash, "Slack token"},
    {"xoxs-", 10, IsAlnumOrDash, "Slack token"},
    {"xapp-", 10, IsAlnumOrDash, "Slack token"},
    {"AKIA", 16, IsUpperOrDigit, "AWS access key"},
    {"ASIA", 16, IsUpperOrDigit, "AWS access key"},
    {"AIza", 30, IsTokenChar, "Google API key"},
    {"npm_", 30, IsAlnum, "npm token"},
    {"hf_", 30, IsAlnum, "Hugging Face token"},
    {"pplx-", 30, IsAlnum, "Perplexity API key"},
    {"gsk_", 30, IsAlnum, "Groq API key"},
    {"sk-", 20, IsTokenChar, "API key (sk-)"},
    {"eyJ", 27, IsJwtChar, "JSON web token"},
}};

// A known key format starting exactly at `pos`: its length and format.
std::optional<std::pair<size_t, const KeyFormat*>> KnownKeyAt(std::string_view text, size_t pos) {
  if (pos > 0 && IsAlnum(text[pos - 1])) return std::nullopt;  // "task-..." is not "sk-..."
  std::string_view rest = text.substr(pos);
  for (const KeyFormat& f : kKeyFormats) {
    if (!StartsWith(rest, f.prefix)) continue;
    size_t n = f.prefix.size();
    while (n < rest.size() && f.charset(rest[n])) ++n;
    if (n - f.prefix.size() < f.min_run) continue;
    if (f.prefix == "eyJ" && std::count(rest.begin(), rest.begin() + n, '.') < 2) continue;
    return std::make_pair(n, &f);
  }
  return std::nullopt;
}

std::string MaskWhole(std::string_view value) {
  if (auto k = KnownKeyAt(value, 0)) return std::string(k->second->prefix) + "****";
  return "****";
}

double EntropyBitsPerChar(std::string_view s) {
  if (s.empty()) return 0;
  std::array<int, 256> counts{};
  for (unsigned char c : s) ++counts[c];
  double h = 0;
  for (int n : counts) {
    if (n == 0) continue;
    const double p = static_cast<double>(n) / static_cast<double>(s.size());
    h -= p * std::log2(p);
  }
  return h;
}

// "true", "0", "off": switches, not secrets.
bool IsSwitchValue(std::string_view v) {
  static constexpr std::string_view kSwitches[] = {"true", "false", "yes", "no",   "on",
                                                   "off",  "0",     "1",   "null", "none"};
  const std::string l = ToLower(v);
  return std::find(std::begin(kSwitches), std::end(kSwitches), l) != std::end(kSwitches);
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

// An HTTP auth scheme word followed by a space: "Bearer ", "Basic ". Returns its length with
// the spaces, or 0. `strict`: only the two schemes that cannot be ordinary words in an
// argument ("token" and "bot" can).
size_t AuthSchemeLength(std::string_view v, bool strict = false) {
  static constexpr std::string_view kSchemes[] = {"bearer", "basic", "token", "bot", "digest"};
  for (std::string_view s : kSchemes) {
    if (strict && s != "bearer" && s != "basic") continue;
    if (v.size() > s.size() && EqualsIgnoreCase(v.substr(0, s.size()), s) && v[s.size()] == ' ') {
      size_t n = s.size();
      while (n < v.size() && v[n] == ' ') ++n;
      return n;
    }
  }
  return 0;
}

// `in_query`: the value of a URL query parameter, which '&' ends; elsewhere (a libpq string,
// a flag) '&' can be part of a password.
bool IsValueEnd(char c, bool in_query) {
  return IsSpace(c) || (in_query && c == '&') || c == ';' || c == ',' || c == '"' || c == '\'' ||
         c == '`' || c == '<' || c == '>' || c == ')' || c == ']' || c == '}';
}

// Whether a value under a name of class `cls` is worth a finding.
bool ValueWorthFinding(SecretName cls, std::string_view value) {
  if (IsPlaceholder(value) || IsPathLike(value) || IsSwitchValue(value)) return false;
  if (KnownKeyAt(value, 0)) return true;
  if (cls == SecretName::kStrong) return true;
  return cls == SecretName::kWeak && LooksRandom(value, 16);
}

std::string KindForNamedValue(SecretName cls, std::string_view value) {
  if (auto k = KnownKeyAt(value, 0)) return k->second->kind;
  return cls == SecretName::kStrong ? "password or secret" : "API key or token";
}

void FindUrlSecrets(std::string_view text, std::vector<SecretSpan>* out) {
  for (std::string_view url : FindUrls(text)) {
    const size_t base = static_cast<size_t>(url.data() - text.data());
    const size_t auth_begin = url.find("://") + 3;
    size_t auth_end = auth_begin;
    while (auth_end < url.size() && url[auth_end] != '/' && url[auth_end] != '?' &&
           url[auth_end] != '#') {
      ++auth_end;
    }
    std::string_view authority = url.substr(auth_begin, auth_end - auth_begin);
    const size_t at = authority.rfind('@');
    if (at == std::string_view::npos || at == 0) continue;
    std::string_view userinfo = authority.substr(0, at);
    std::string_view hostport = authority.substr(at + 1);
    std::string host(hostport.substr(0, hostport.find_first_of(":,")));
    if (!host.empty() && host.front() == '[')
      host = std::string(hostport.substr(1, hostport.find(']') - 1));
    const size_t colon = userinfo.find(':');
    SecretSpan s;
    s.host = ToLower(host);
    s.shown = "****";
    if (colon != std::string_view::npos) {
      std::string_view password = userinfo.substr(colon + 1);
      if (password.empty() || IsPlaceholder(password)) continue;
      s.begin = base + auth_begin + colon + 1;
      s.end = base + auth_begin + at;
      const bool web = StartsWith(url, "http") || StartsWith(url, "HTTP");
      s.kind = web ? "password in a URL" : "password in a connection string";
    } else {
      if (IsPlaceholder(userinfo) || !(LooksRandom(userinfo, 16) || KnownKeyAt(userinfo, 0))) {
        continue;
      }
      s.begin = base + auth_begin;
      s.end = base + auth_begin + at;
      s.kind = "token in a URL";
      s.shown = MaskWhole(userinfo);
    }
    out->push_back(std::move(s));
  }
}

void FindKnownKeys(std::string_view text, std::vector<SecretSpan>* out) {
  for (size_t i = 0; i < text.size(); ++i) {
    auto k = KnownKeyAt(text, i);
    if (!k) continue;
    out->push_back(
        {i, i + k->first, k->second->kind, std::string(k->second->prefix) + "****", true, ""});
    i += k->first - 1;
  }
}

bool IsKeyChar(char c) {
  return IsAlnum(c) || c == '_' || c == '-' || c == '.';
}

// The name ending just before `pos`, or "" when the character before the name could not
// start a name (so "https://x" does not yield a name "https").
std::string_view NameBefore(std::string_view text, size_t pos) {
  size_t b = pos;
  while (b > 0 && IsKeyChar(text[b - 1])) --b;
  return text.substr(b, pos - b);
}

// value starting at `pos`, quoted or up to a separator.
std::pair<size_t, size_t> ValueAt(std::string_view text, size_t pos, bool in_query = false) {
  if (pos < text.size() && (text[pos] == '"' || text[pos] == '\'')) {
    const size_t close = text.find(text[pos], pos + 1);
    if (close != std::string_view::npos) return {pos + 1, close};
  }
  size_t e = pos;
  while (e < text.size() && !IsValueEnd(text[e], in_query)) ++e;
  return {pos, e};
}

// NAME=VALUE and "Name: value" where NAME names a secret.
void FindNamedValues(std::string_view text, std::vector<SecretSpan>* out) {
  for (size_t i = 0; i < text.size(); ++i) {
    const bool eq = text[i] == '=';
    const bool header = text[i] == ':' && i + 1 < text.size() && text[i + 1] == ' ';
    if (!eq && !header) continue;
    std::string_view name = NameBefore(text, i);
    if (name.empty()) continue;
    const SecretName cls = ClassifySecretName(name);
    if (cls == SecretName::kNo) continue;
    size_t v = i + 1;
    while (header && v < text.size() && text[v] == ' ') ++v;
    v += AuthSchemeLength(text.substr(v));
    const size_t name_begin = i - name.size();
    const bool in_query =
        eq && name_begin > 0 && (text[name_begin - 1] == '?' || text[name_begin - 1] == '&');
    auto [vb, ve] = ValueAt(text, v, in_query);
    std::string_view value = text.substr(vb, ve - vb);
    if (value.empty() || IsPlaceholder(value) || IsPathLike(value)) continue;
    SecretSpan s{vb, ve, "", MaskWhole(value), ValueWorthFinding(cls, value), ""};
    s.kind = KindForNamedValue(cls, value) + " in " + std::string(name) + (eq ? "=" : ":");
    out->push_back(std::move(s));
  }
}

// "Bearer X" anywhere, whatever precedes it.
void FindBearer(std::string_view text, std::vector<SecretSpan>* out) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (i > 0 && IsAlnum(text[i - 1])) continue;
    if (Lower(text[i]) != 'b') continue;  // cheap filter: "bearer", "basic"
    const size_t n = AuthSchemeLength(text.substr(i), /*strict=*/true);
    if (n == 0) continue;
    auto [vb, ve] = ValueAt(text, i + n);
    std::string_view value = text.substr(vb, ve - vb);
    if (value.size() < 8 || IsPlaceholder(value)) continue;
    out->push_back({vb, ve, "credential after " + std::string(text.substr(i, n - 1)),
                    MaskWhole(value), true, ""});
  }
}

// Long random-looking runs: masked, never reported (they may be hashes or ids).
void FindRandomRuns(std::string_view text, std::vector<SecretSpan>* out) {
  size_t i = 0;
  while (i < text.size()) {
    if (!IsTokenChar(text[i]) && text[i] != '+') {
      ++i;
      continue;
    }
    size_t e = i;
    while (e < text.size() && (IsTokenChar(text[e]) || text[e] == '+')) ++e;
    std::string_view run = text.substr(i, e - i);
    if (LooksRandom(run, 24) && EntropyBitsPerChar(run) >= 3.5) {
      out->push_back({i, e, "random-looking value", "****", false, ""});
    }
    i = e;
  }
}

// Findings first (earliest, then longest), then masks where nothing was kept. Overlaps are
// checked in an ordered map: hostile input can hold a million spans.
std::vector<SecretSpan> Resolve(std::vector<SecretSpan> spans) {
  std::stable_sort(spans.begin(), spans.end(), [](const SecretSpan& a, const SecretSpan& b) {
    if (a.finding != b.finding) return a.finding;
    if (a.begin != b.begin) return a.begin < b.begin;
    return a.end > b.end;
  });
  std::map<size_t, size_t> taken;  // begin -> end of kept spans
  std::vector<SecretSpan> kept;
  for (auto& s : spans) {
    if (s.begin >= s.end) continue;
    auto next = taken.lower_bound(s.begin);
    if (next != taken.end() && next->first < s.end) continue;
    if (next != taken.begin() && std::prev(next)->second > s.begin) continue;
    taken.emplace(s.begin, s.end);
    kept.push_back(std::move(s));
  }
  std::sort(kept.begin(), kept.end(),
            [](const SecretSpan& a, const SecretSpan& b) { return a.begin < b.begin; });
  return kept;
}

std::string ApplySpans(std::string_view text, const std::vector<SecretSpan>& spans) {
  std::string out;
  size_t pos = 0;
  for (const SecretSpan& s : spans) {
    out.append(text.substr(pos, s.begin - pos));
    out.append(s.shown);
    pos = s.end;
  }
  out.append(text.substr(pos));
  return out;
}

// A secret-naming flag ("--api-key", "-password") without an inline value.
SecretName FlagClass(std::string_view flag) {
  if (flag.size() < 2 || flag[0] != '-' || flag.find('=') != std::string_view::npos) {
    return SecretName::kNo;
  }
  return ClassifySecretName(flag);
}

}  // namespace

std::vector<std::string_view> FindUrls(std::string_view text) {
  std::vector<std::string_view> urls;
  size_t from = 0;
  while (true) {
    const size_t p = text.find("://", from);
    if (p == std::string_view::npos) break;
    from = p + 3;
    size_t b = p;
    while (b > 0 && (IsAlnum(text[b - 1]) || text[b - 1] == '+' || text[b - 1] == '.' ||
                     text[b - 1] == '-')) {
      --b;
    }
    while (b < p && !IsUpper(text[b]) && !IsLower(text[b])) ++b;  // a scheme starts with a letter
    if (b == p) continue;
    size_t e = p + 3;
    while (e < text.size() && !IsSpace(text[e]) && text[e] != '"' && text[e] != '\'' &&
           text[e] != '<' && text[e] != '>' && text[e] != '`') {
      ++e;
    }
    if (e == p + 3) continue;
    urls.push_back(text.substr(b, e - b));
    from = e;
  }
  return urls;
}

std::vector<SecretSpan> FindSecrets(std::string_view text) {
  std::vector<SecretSpan> spans;
  FindUrlSecrets(text, &spans);
  FindKnownKeys(text, &spans);
  FindNamedValues(text, &spans);
  FindBearer(text, &spans);
  FindRandomRuns(text, &spans);
  return Resolve(std::move(spans));
}

std::string RedactText(std::string_view text) {
  std::string current(text);
  // Masking can change what surrounds a later secret (a masked character before "ghp_" makes
  // it a word start), so repeat until nothing is left; if that does not settle, show nothing.
  for (int round = 0; round < 4; ++round) {
    auto spans = FindSecrets(current);
    if (spans.empty()) return current;
    std::string next = ApplySpans(current, spans);
    if (next == current) return current;
    current = std::move(next);
  }
  return FindSecrets(current).empty() ? current : "****";
}

SecretName ClassifySecretName(std::string_view name) {
  while (!name.empty() && (name.front() == '-' || name.front() == '$')) name.remove_prefix(1);
  const std::string up = ToUpper(name);
  std::vector<std::string> parts;
  std::string cur;
  for (char c : up) {
    if (c == '_' || c == '-' || c == '.' || c == ' ') {
      if (!cur.empty()) parts.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) parts.push_back(std::move(cur));
  auto contains = [](const std::string& s, std::string_view w) {
    return s.find(w) != std::string::npos;
  };
  bool weak = false;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (p == "PASS" || p == "PWD" || p == "PASSWD" || contains(p, "PASSWORD") ||
        contains(p, "SECRET") || contains(p, "CREDENTIAL") || contains(p, "PASSPHRASE") ||
        p == "AUTHORIZATION" || p == "COOKIE" || contains(p, "PRIVATEKEY") ||
        (p == "PRIVATE" && i + 1 < parts.size() && parts[i + 1] == "KEY")) {
      return SecretName::kStrong;
    }
    if (contains(p, "TOKEN") || EndsWith(p, "KEY") || contains(p, "APIKEY") || p == "AUTH" ||
        p == "SIG" || p == "SIGNATURE" || p == "BEARER") {
      weak = true;
    }
  }
  return weak ? SecretName::kWeak : SecretName::kNo;
}

bool IsPlaceholder(std::string_view value) {
  while (!value.empty() && IsSpace(value.front())) value.remove_prefix(1);
  while (!value.empty() && IsSpace(value.back())) value.remove_suffix(1);
  if (value.empty()) return true;
  if (value.find("${") != std::string_view::npos) return true;
  if (value.size() >= 2 && value[0] == '$' && (IsAlnum(value[1]) || value[1] == '_') &&
      std::all_of(value.begin() + 1, value.end(), IsAlnumOrUnderscore)) {
    return true;
  }
  if (value.size() > 2 && value.front() == '%' && value.back() == '%') return true;
  if (value.front() == '<' && value.back() == '>') return true;
  if (StartsWith(value, "{{") && EndsWith(value, "}}")) return true;
  if (StartsWith(value, "op://")) return true;  // a 1Password reference
  if (EndsWith(value, "****")) return true;     // already redacted (by us)
  if (std::all_of(value.begin(), value.end(), [](char c) {
        return c == '*' || c == 'x' || c == 'X' || c == '.' || c == '#' || c == '-' || c == '_';
      })) {
    return true;
  }
  const std::string l = ToLower(value);
  return StartsWith(l, "your") || l.find("placeholder") != std::string::npos ||
         l.find("replace_me") != std::string::npos || l.find("replace-me") != std::string::npos;
}

bool IsPathLike(std::string_view value) {
  if (value.empty()) return false;
  if (value[0] == '/' || value[0] == '~') return true;
  if (StartsWith(value, "./") || StartsWith(value, "../")) return true;
  return value.size() >= 3 && (IsUpper(value[0]) || IsLower(value[0])) && value[1] == ':' &&
         (value[2] == '\\' || value[2] == '/');
}

bool LooksRandom(std::string_view value, size_t min_len) {
  if (value.size() < min_len) return false;
  bool digit = false, upper = false, lower = false;
  for (char c : value) {
    if (IsSpace(c)) return false;
    digit |= IsDigit(c);
    upper |= IsUpper(c);
    lower |= IsLower(c);
  }
  const double h = EntropyBitsPerChar(value);
  if (h < 3.0) return false;
  return (digit && (upper || lower)) || (upper && lower && h >= 4.0);
}

std::optional<std::string> NamedSecretKind(std::string_view name, std::string_view value) {
  value.remove_prefix(AuthSchemeLength(value));
  const SecretName cls = ClassifySecretName(name);
  if (cls != SecretName::kNo) {
    if (!ValueWorthFinding(cls, value)) return std::nullopt;
    return KindForNamedValue(cls, value);
  }
  for (const SecretSpan& s : FindSecrets(value)) {
    if (s.finding) return s.kind;
  }
  return std::nullopt;
}

std::string RedactNamedValue(std::string_view name, std::string_view value) {
  if (ClassifySecretName(name) == SecretName::kNo) return RedactText(value);
  const size_t scheme = AuthSchemeLength(value);
  std::string_view rest = value.substr(scheme);
  if (IsPlaceholder(rest) || IsPathLike(rest)) return RedactText(value);
  return std::string(value.substr(0, scheme)) + MaskWhole(rest);
}

std::string RedactArg(const std::vector<std::string>& args, size_t i) {
  if (i >= args.size()) return "";
  const std::string& v = args[i];
  if (i > 0 && FlagClass(args[i - 1]) != SecretName::kNo && !IsPlaceholder(v) && !IsPathLike(v)) {
    return MaskWhole(v);
  }
  return RedactText(v);
}

bool SecretFlagValue(const std::vector<std::string>& args, size_t i) {
  if (i == 0 || i >= args.size()) return false;
  const SecretName cls = FlagClass(args[i - 1]);
  return cls != SecretName::kNo && ValueWorthFinding(cls, args[i]);
}

std::optional<UrlParts> ParseUrl(std::string_view text) {
  const size_t p = text.find("://");
  if (p == std::string_view::npos || p == 0) return std::nullopt;
  std::string_view scheme = text.substr(0, p);
  if (!IsUpper(scheme[0]) && !IsLower(scheme[0])) return std::nullopt;
  for (char c : scheme) {
    if (!IsAlnum(c) && c != '+' && c != '.' && c != '-') return std::nullopt;
  }
  UrlParts u;
  u.scheme = ToLower(scheme);
  std::string_view rest = text.substr(p + 3);
  const size_t auth_end = std::min(rest.find_first_of("/?#"), rest.size());
  std::string_view authority = rest.substr(0, auth_end);
  std::string_view tail = rest.substr(auth_end);
  const size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    const size_t colon = userinfo.find(':');
    u.user = std::string(userinfo.substr(0, colon));
    if (colon != std::string_view::npos) u.password = std::string(userinfo.substr(colon + 1));
    authority = authority.substr(at + 1);
  }
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    u.host = ToLower(authority.substr(1, close - 1));
    authority = authority.substr(close + 1);
    if (!authority.empty() && authority[0] == ':') u.port = std::string(authority.substr(1));
  } else {
    const size_t colon = authority.rfind(':');
    if (colon != std::string_view::npos &&
        std::all_of(authority.begin() + colon + 1, authority.end(), IsDigit)) {
      u.port = std::string(authority.substr(colon + 1));
      authority = authority.substr(0, colon);
    }
    u.host = ToLower(authority);
  }
  const size_t hash = tail.find('#');
  if (hash != std::string_view::npos) tail = tail.substr(0, hash);
  const size_t q = tail.find('?');
  u.path = std::string(tail.substr(0, q));
  if (q != std::string_view::npos) u.query = std::string(tail.substr(q + 1));
  return u;
}

std::string DisplaySafe(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      out.push_back(c < 0x20 || c == 0x7f ? '?' : static_cast<char>(c));
      ++i;
      continue;
    }
    const size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    if (len == 1 || i + len > text.size()) {
      out.push_back('?');
      ++i;
      continue;
    }
    uint32_t cp = c & (0xff >> (len + 1));
    bool valid = true;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xc0) != 0x80) valid = false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    const bool hidden = (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e ||
                        cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
                        (cp >= 0x2066 && cp <= 0x2069);
    if (!valid || hidden) {
      out.push_back('?');
      i += valid ? len : 1;
      continue;
    }
    out.append(text.substr(i, len));
    i += len;
  }
  return out;
}

}  // namespace airlock::doctor
