#include "core/glob.h"

#include <string>

namespace airlock {
namespace {

// Matches one bracket expression at p (p[0] == '['); sets *consumed to its length.
// Returns false when malformed (treated as no match).
bool MatchClass(std::string_view p, char c, size_t* consumed, bool* ok) {
  size_t i = 1;
  bool negate = false;
  if (i < p.size() && (p[i] == '!' || p[i] == '^')) {
    negate = true;
    ++i;
  }
  bool matched = false;
  bool first = true;
  for (; i < p.size() && (first || p[i] != ']'); ++i, first = false) {
    char lo = p[i];
    char hi = lo;
    if (i + 2 < p.size() && p[i + 1] == '-' && p[i + 2] != ']') {
      hi = p[i + 2];
      i += 2;
    }
    if (lo <= c && c <= hi) matched = true;
  }
  if (i >= p.size()) {
    *ok = false;
    return false;
  }
  *ok = true;
  *consumed = i + 1;
  return matched != negate;
}

// Iterative matcher over one segment sequence; `**` components handled by recursion at
// component boundaries (bounded by the number of `**` in the pattern times path length).
bool Match(std::string_view p, std::string_view s) {
  // `**` as a whole component.
  if (p.substr(0, 2) == "**" && (p.size() == 2 || p[2] == '/')) {
    std::string_view rest = p.size() == 2 ? std::string_view() : p.substr(3);
    if (p.size() == 2) return true;  // trailing "**": everything below (and the dir itself)
    // Zero components, or skip one component at a time.
    size_t pos = 0;
    while (true) {
      if (Match(rest, s.substr(pos))) return true;
      size_t slash = s.find('/', pos);
      if (slash == std::string_view::npos) return false;
      pos = slash + 1;
    }
  }
  size_t pi = 0, si = 0;
  size_t star_p = std::string_view::npos, star_s = 0;
  while (si < s.size()) {
    if (pi < p.size() && p[pi] == '/' && s[si] == '/' && p.substr(pi + 1, 2) == "**" &&
        (pi + 3 == p.size() || p[pi + 3] == '/')) {
      return Match(p.substr(pi + 1), s.substr(si + 1));
    }
    if (pi < p.size() && p[pi] == '*') {
      star_p = pi++;
      star_s = si;
      continue;
    }
    if (pi < p.size() && p[pi] == '[') {
      size_t used = 0;
      bool ok = false;
      if (s[si] != '/' && MatchClass(p.substr(pi), s[si], &used, &ok) && ok) {
        pi += used;
        ++si;
        continue;
      }
    } else if (pi < p.size() && (p[pi] == s[si] || (p[pi] == '?' && s[si] != '/'))) {
      ++pi;
      ++si;
      continue;
    }
    // Backtrack to the last '*', which may not swallow a '/'.
    if (star_p != std::string_view::npos && s[star_s] != '/') {
      pi = star_p + 1;
      si = ++star_s;
      continue;
    }
    return false;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  // "dir/**" also matches "dir" itself.
  if (p.substr(pi) == "/**") return true;
  return pi == p.size();
}

}  // namespace

bool GlobMatch(std::string_view pattern, std::string_view path) {
  if (pattern.empty()) return false;
  return Match(pattern, path);
}

bool GlobValid(std::string_view pattern, std::string* why) {
  auto fail = [&](const char* w) {
    if (why) *why = w;
    return false;
  };
  if (pattern.empty()) return fail("an empty pattern matches nothing");
  if (pattern.find('\0') != std::string_view::npos) return fail("contains a NUL byte");
  if (pattern.size() > 4096) return fail("longer than 4096 bytes");
  if (pattern[0] == '/') return fail("must be relative to the workspace (no leading '/')");
  // Each `**` multiplies the matching work by the path's depth: four keep it polynomial
  // and small for any path a command can create.
  int double_stars = 0;
  for (size_t i = pattern.find("**"); i != std::string_view::npos; i = pattern.find("**", i + 2)) {
    ++double_stars;
  }
  if (double_stars > 4) return fail("more than four '**'");
  size_t start = 0;
  while (start <= pattern.size()) {
    size_t slash = pattern.find('/', start);
    std::string_view comp = pattern.substr(start, slash == std::string_view::npos
                                                      ? std::string_view::npos
                                                      : slash - start);
    if (comp == "..") return fail("must not contain '..'");
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '[') continue;
    size_t used = 0;
    bool ok = false;
    MatchClass(pattern.substr(i), 'a', &used, &ok);
    if (!ok) return fail("unclosed '['");
    i += used - 1;
  }
  return true;
}

}  // namespace airlock
