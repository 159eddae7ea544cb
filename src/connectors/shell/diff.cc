#include "connectors/shell/diff.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "connectors/shell/layer_fs.h"

namespace airlock::shell {
namespace {

enum class Op : char { kEqual, kDelete, kInsert };

struct Edit {
  Op op;
  size_t a;  // line index in `before` (kEqual, kDelete)
  size_t b;  // line index in `after` (kEqual, kInsert)
};

// Lines keep their '\n'; the last one may lack it, which makes it differ from the same text
// with a newline, as in diff -u.
std::vector<std::string_view> SplitLines(std::string_view s) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < s.size()) {
    size_t nl = s.find('\n', start);
    size_t end = nl == std::string_view::npos ? s.size() : nl + 1;
    lines.push_back(s.substr(start, end - start));
    start = end;
  }
  return lines;
}

// Myers' greedy O((N+M)D) shortest edit script over line ids, keeping every V row for the
// backtrack. Gives up (returns false) past `max_d` edits so that memory (D^2) and time stay
// bounded on hostile input.
bool Myers(const int* a, size_t n, const int* b, size_t m, size_t max_d, size_t a0, size_t b0,
           std::vector<Edit>* out) {
  const long N = static_cast<long>(n), M = static_cast<long>(m);
  const long max = N + M;
  const long off = max + 1;
  std::vector<long> v(static_cast<size_t>(2 * max + 3), 0);
  std::vector<std::vector<long>> trace;  // trace[d] = v[-d-1 .. d+1] before round d
  long found_d = -1;
  for (long d = 0; d <= max && d <= static_cast<long>(max_d); ++d) {
    trace.emplace_back(v.begin() + (off - d - 1), v.begin() + (off + d + 2));
    for (long k = -d; k <= d; k += 2) {
      long x = (k == -d || (k != d && v[off + k - 1] < v[off + k + 1])) ? v[off + k + 1]
                                                                        : v[off + k - 1] + 1;
      long y = x - k;
      while (x < N && y < M && a[x] == b[y]) ++x, ++y;
      v[off + k] = x;
      if (x >= N && y >= M) {
        found_d = d;
        break;
      }
    }
    if (found_d >= 0) break;
  }
  if (found_d < 0) return false;
  std::vector<Edit> rev;
  long x = N, y = M;
  for (long d = found_d; d >= 0; --d) {
    const std::vector<long>& row = trace[static_cast<size_t>(d)];
    auto V = [&](long k) { return row[static_cast<size_t>(k + d + 1)]; };
    long k = x - y;
    long prev_k = (k == -d || (k != d && V(k - 1) < V(k + 1))) ? k + 1 : k - 1;
    long prev_x = V(prev_k);
    long prev_y = prev_x - prev_k;
    while (x > prev_x && y > prev_y) {
      --x, --y;
      rev.push_back({Op::kEqual, a0 + static_cast<size_t>(x), b0 + static_cast<size_t>(y)});
    }
    if (d > 0) {
      if (x == prev_x) {
        rev.push_back({Op::kInsert, 0, b0 + static_cast<size_t>(y - 1)});
      } else {
        rev.push_back({Op::kDelete, a0 + static_cast<size_t>(x - 1), 0});
      }
    }
    x = prev_x;
    y = prev_y;
  }
  out->insert(out->end(), rev.rbegin(), rev.rend());
  return true;
}

std::vector<Edit> EditScript(const std::vector<std::string_view>& a,
                             const std::vector<std::string_view>& b) {
  std::unordered_map<std::string_view, int> ids;
  auto intern = [&](const std::vector<std::string_view>& lines) {
    std::vector<int> out;
    out.reserve(lines.size());
    for (auto l : lines) out.push_back(ids.emplace(l, static_cast<int>(ids.size())).first->second);
    return out;
  };
  std::vector<int> ia = intern(a), ib = intern(b);
  size_t pre = 0;
  while (pre < ia.size() && pre < ib.size() && ia[pre] == ib[pre]) ++pre;
  size_t suf = 0;
  while (suf < ia.size() - pre && suf < ib.size() - pre &&
         ia[ia.size() - 1 - suf] == ib[ib.size() - 1 - suf]) {
    ++suf;
  }
  std::vector<Edit> edits;
  for (size_t i = 0; i < pre; ++i) edits.push_back({Op::kEqual, i, i});
  size_t n = ia.size() - pre - suf, m = ib.size() - pre - suf;
  // Bounded effort: about 5e7 snake steps and a trace of at most ~1000^2 entries.
  size_t total = n + m;
  size_t max_d = std::min<size_t>(1000, std::max<size_t>(100, 50'000'000 / (total + 1)));
  if (!Myers(ia.data() + pre, n, ib.data() + pre, m, max_d, pre, pre, &edits)) {
    for (size_t i = 0; i < n; ++i) edits.push_back({Op::kDelete, pre + i, 0});
    for (size_t j = 0; j < m; ++j) edits.push_back({Op::kInsert, 0, pre + j});
  }
  for (size_t i = 0; i < suf; ++i) {
    edits.push_back({Op::kEqual, ia.size() - suf + i, ib.size() - suf + i});
  }
  return edits;
}

std::string Range(size_t start_pos, size_t count) {
  // diff -u: "l" for one line, "l,c" otherwise; an empty range names the line before it.
  size_t first = count == 0 ? start_pos : start_pos + 1;
  if (count == 1) return std::to_string(first);
  return std::to_string(first) + "," + std::to_string(count);
}

void AppendLine(std::string* out, char tag, std::string_view line) {
  out->push_back(tag);
  out->append(line);
  if (line.empty() || line.back() != '\n') out->append("\n\\ No newline at end of file\n");
}

}  // namespace

std::string UnifiedDiff(std::string_view before, std::string_view after, const std::string& path,
                        int context) {
  if (before == after) return "";
  std::vector<std::string_view> a = SplitLines(before), b = SplitLines(after);
  std::vector<Edit> edits = EditScript(a, b);
  const size_t ctx = static_cast<size_t>(std::max(context, 0));

  // Line positions in a and b before each edit.
  std::vector<size_t> pos_a(edits.size() + 1), pos_b(edits.size() + 1);
  for (size_t i = 0; i < edits.size(); ++i) {
    pos_a[i + 1] = pos_a[i] + (edits[i].op != Op::kInsert);
    pos_b[i + 1] = pos_b[i] + (edits[i].op != Op::kDelete);
  }
  std::string out = "--- a/" + path + "\n+++ b/" + path + "\n";
  size_t i = 0;
  while (i < edits.size()) {
    while (i < edits.size() && edits[i].op == Op::kEqual) ++i;
    if (i == edits.size()) break;
    // A hunk: changes whose gaps of equal lines are at most 2*ctx, plus ctx on each side.
    size_t first = i, last = i;
    size_t j = i + 1;
    while (j < edits.size()) {
      if (edits[j].op != Op::kEqual) {
        last = j++;
        continue;
      }
      size_t run = j;
      while (run < edits.size() && edits[run].op == Op::kEqual) ++run;
      if (run == edits.size() || run - j > 2 * ctx) break;
      j = run;
    }
    size_t begin = first >= ctx ? first - ctx : 0;
    size_t end = std::min(edits.size(), last + 1 + ctx);
    out += "@@ -" + Range(pos_a[begin], pos_a[end] - pos_a[begin]) + " +" +
           Range(pos_b[begin], pos_b[end] - pos_b[begin]) + " @@\n";
    for (size_t e = begin; e < end; ++e) {
      switch (edits[e].op) {
        case Op::kEqual:
          AppendLine(&out, ' ', a[edits[e].a]);
          break;
        case Op::kDelete:
          AppendLine(&out, '-', a[edits[e].a]);
          break;
        case Op::kInsert:
          AppendLine(&out, '+', b[edits[e].b]);
          break;
      }
    }
    i = end;
  }
  return layer_detail::IsValidUtf8(out) ? out : SanitizeUtf8(out);
}

bool LooksBinary(std::string_view content) {
  std::string_view head = content.substr(0, 8192);
  return std::memchr(head.data(), '\0', head.size()) != nullptr;
}

std::string SanitizeUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    // The sequence length the lead byte announces, kept only when the whole of it is valid.
    auto c = static_cast<unsigned char>(s[i]);
    size_t want = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    size_t len = (i + want <= s.size() && layer_detail::IsValidUtf8(s.substr(i, want))) ? want : 0;
    if (len == 0) {
      out.append("\xEF\xBF\xBD");
      ++i;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

}  // namespace airlock::shell
