// Durations, sizes, rates, integers and the thousands separator.
#include "policy/units.h"

#include <array>
#include <charconv>
#include <limits>
#include <utility>

#include "policy/policy.h"

namespace airlock {
namespace {

bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}

struct Unit {
  std::string_view name;
  int64_t factor;
};

// Splits "15m" into 15 and "m". The number must be non-negative decimal digits; the
// split itself cannot fail except on overflow or a missing number.
Result<std::pair<int64_t, std::string_view>> SplitNumberUnit(std::string_view s,
                                                             std::string_view what) {
  size_t i = 0;
  while (i < s.size() && IsDigit(s[i])) ++i;
  if (i == 0) {
    if (!s.empty() && s[0] == '-') {
      return Status::InvalidArgument(std::string(what) + " must not be negative: \"" +
                                     std::string(s) + "\"");
    }
    return Status::InvalidArgument("bad " + std::string(what) + " \"" + std::string(s) +
                                   "\": expected a number followed by a unit");
  }
  int64_t n = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + i, n);
  if (ec != std::errc() || ptr != s.data() + i) {
    return Status::InvalidArgument(std::string(what) + " \"" + std::string(s) + "\" is too large");
  }
  return std::make_pair(n, s.substr(i));
}

Result<int64_t> Scale(int64_t n, int64_t factor, std::string_view s, std::string_view what) {
  if (n > std::numeric_limits<int64_t>::max() / factor) {
    return Status::InvalidArgument(std::string(what) + " \"" + std::string(s) + "\" is too large");
  }
  return n * factor;
}

}  // namespace

Result<int64_t> ParseDurationMs(const std::string& s) {
  static constexpr std::array<Unit, 5> kUnits = {{
      {"ms", 1},
      {"s", 1000},
      {"m", 60 * 1000},
      {"h", 60 * 60 * 1000},
      {"d", 24 * 60 * 60 * 1000},
  }};
  ASSIGN_OR_RETURN(auto split, SplitNumberUnit(s, "duration"));
  auto [n, unit] = split;
  if (unit.empty()) {
    return Status::InvalidArgument("duration \"" + s +
                                   "\" needs a unit (ms, s, m, h, d), e.g. \"90s\"");
  }
  for (const Unit& u : kUnits) {
    if (unit == u.name) return Scale(n, u.factor, s, "duration");
  }
  return Status::InvalidArgument("bad duration \"" + s + "\": unknown unit \"" + std::string(unit) +
                                 "\" (supported: ms, s, m, h, d)");
}

Result<int64_t> ParseSizeBytes(const std::string& s) {
  constexpr int64_t kKi = 1024;
  static constexpr std::array<Unit, 14> kUnits = {{
      {"B", 1},
      {"k", kKi},
      {"K", kKi},
      {"M", kKi * kKi},
      {"G", kKi * kKi * kKi},
      {"KiB", kKi},
      {"MiB", kKi * kKi},
      {"GiB", kKi * kKi * kKi},
      {"TiB", kKi * kKi * kKi * kKi},
      {"kB", 1000},
      {"KB", 1000},
      {"MB", 1000 * 1000},
      {"GB", 1000 * 1000 * 1000},
      {"TB", int64_t{1000} * 1000 * 1000 * 1000},
  }};
  ASSIGN_OR_RETURN(auto split, SplitNumberUnit(s, "size"));
  auto [n, unit] = split;
  if (unit.empty()) return n;
  for (const Unit& u : kUnits) {
    if (unit == u.name) return Scale(n, u.factor, s, "size");
  }
  return Status::InvalidArgument("bad size \"" + s + "\": unknown unit \"" + std::string(unit) +
                                 "\" (supported: B, KiB, MiB, GiB, TiB, k, M, G, KB, MB, GB, TB)");
}

std::string FormatCount(int64_t n) {
  // Work on the magnitude as unsigned so that INT64_MIN does not overflow.
  uint64_t mag = n < 0 ? uint64_t{0} - static_cast<uint64_t>(n) : static_cast<uint64_t>(n);
  std::string digits = std::to_string(mag);
  std::string out;
  out.reserve(digits.size() + digits.size() / 3 + 1);
  if (n < 0) out.push_back('-');
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

namespace policy_internal {

Result<int64_t> ParseInt64(std::string_view s) {
  std::string_view digits = s;
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) digits.remove_prefix(1);
  if (digits.empty())
    return Status::InvalidArgument("expected an integer, got \"" + std::string(s) + "\"");
  for (char c : digits) {
    if (!IsDigit(c)) {
      return Status::InvalidArgument("expected an integer, got \"" + std::string(s) + "\"");
    }
  }
  // from_chars does not accept a leading '+'.
  std::string_view parse = (s[0] == '+') ? s.substr(1) : s;
  int64_t n = 0;
  auto [ptr, ec] = std::from_chars(parse.data(), parse.data() + parse.size(), n);
  if (ec == std::errc::result_out_of_range) {
    return Status::InvalidArgument("integer \"" + std::string(s) +
                                   "\" is out of range (at most 9223372036854775807)");
  }
  if (ec != std::errc() || ptr != parse.data() + parse.size()) {
    return Status::InvalidArgument("expected an integer, got \"" + std::string(s) + "\"");
  }
  return n;
}

Result<Rate> ParseRate(std::string_view s) {
  static constexpr std::array<Unit, 8> kWindows = {{
      {"s", 1000},
      {"sec", 1000},
      {"second", 1000},
      {"min", 60 * 1000},
      {"minute", 60 * 1000},
      {"h", 60 * 60 * 1000},
      {"hour", 60 * 60 * 1000},
      {"day", 24 * 60 * 60 * 1000},
  }};
  const std::string bad = "bad rate \"" + std::string(s) +
                          "\": expected N/s, N/sec, N/min, N/h, N/hour or N/day, e.g. \"20/min\"";
  size_t slash = s.find('/');
  if (slash == std::string_view::npos || slash == 0) return Status::InvalidArgument(bad);
  std::string_view count = s.substr(0, slash);
  std::string_view window = s.substr(slash + 1);
  for (char c : count) {
    if (!IsDigit(c)) return Status::InvalidArgument(bad);
  }
  Rate rate;
  auto [ptr, ec] = std::from_chars(count.data(), count.data() + count.size(), rate.count);
  if (ec != std::errc() || ptr != count.data() + count.size()) {
    return Status::InvalidArgument("rate \"" + std::string(s) + "\" is too large");
  }
  if (rate.count <= 0) {
    return Status::InvalidArgument("rate \"" + std::string(s) +
                                   "\" must allow at least 1 action per window");
  }
  for (const Unit& u : kWindows) {
    if (window == u.name) {
      rate.window_ms = u.factor;
      return rate;
    }
  }
  return Status::InvalidArgument(bad);
}

}  // namespace policy_internal
}  // namespace airlock
