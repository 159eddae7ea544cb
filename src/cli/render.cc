#include "cli/render.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>

#include "approval/approval.h"
#include "core/clock.h"
#include "core/json.h"
#include "policy/policy.h"

namespace airlock::cli {
namespace {

const char* RiskColor(Risk r) {
  switch (r) {
    case Risk::kRead: return "\x1b[32m";          // green
    case Risk::kLow: return "\x1b[36m";           // cyan
    case Risk::kHigh: return "\x1b[33;1m";        // bold yellow
    case Risk::kCritical: return "\x1b[31;1m";    // bold red
  }
  return "";
}

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// Counts UTF-8 code points and skips colour escapes, so that aligned columns stay aligned
// with non-ASCII text and coloured cells.
size_t DisplayWidth(const std::string& s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\x1b') {
      while (i < s.size() && s[i] != 'm') ++i;
      continue;
    }
    n += (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 ? 1 : 0;
  }
  return n;
}

std::string Truncate(const std::string& s, size_t max_width) {
  if (DisplayWidth(s) <= max_width || s.find('\x1b') != std::string::npos) return s;
  std::string out;
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if ((c & 0xC0) != 0x80) {
      if (n + 1 >= max_width) break;
      ++n;
    }
    out.push_back(s[i]);
  }
  return out + "…";
}

std::string OneLine(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return s;
}

// A word as a POSIX shell would need it written: plain, or in single quotes.
std::string ShellQuote(const std::string& w) {
  if (!w.empty() && w.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789@%+=:,./_-") == std::string::npos) {
    return w;
  }
  std::string q = "'";
  for (char c : w) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string ActionText(const Action& a) {
  if (a.kind == "mcp" && a.args.contains("tool") && a.args["tool"].is_string()) {
    return a.args["tool"].get<std::string>() +
           (a.args.contains("arguments") ? " " + CanonicalJson(a.args["arguments"]) : "");
  }
  if (a.kind == "mail") {
    // One line: who and what, never the attachments' bytes.
    std::string s;
    for (const char* field : {"to", "cc", "bcc"}) {
      if (!a.args.contains(field)) continue;
      const Json& v = a.args[field];
      std::string list = v.is_string() ? v.get<std::string>() : "";
      if (v.is_array()) {
        for (const auto& x : v) list += (list.empty() ? "" : ",") + ValueText(x);
      }
      if (!list.empty()) s += (s.empty() ? "" : " ") + std::string(field) + " " + list;
    }
    if (a.args.contains("subject")) s += ": " + ValueText(a.args["subject"]);
    return s;
  }
  if (a.kind == "http" && a.args.contains("method") && a.args.contains("path")) {
    return ValueText(a.args["method"]) + " " + ValueText(a.args["path"]) +
           (a.args.contains("json") ? " " + CanonicalJson(a.args["json"]) : "");
  }
  if (a.args.contains("sql") && a.args["sql"].is_string()) return a.args["sql"].get<std::string>();
  if (a.args.contains("argv") && a.args["argv"].is_array()) {
    std::string s;
    for (const auto& w : a.args["argv"]) {
      s += (s.empty() ? "" : " ") + ShellQuote(w.is_string() ? w.get<std::string>() : w.dump());
    }
    return s;
  }
  return a.args.dump();
}

std::string Plural(int64_t n, const char* one, const char* many) {
  return FormatCount(n) + " " + (n == 1 ? one : many);
}

void Field(std::ostringstream& out, const std::string& name, const std::string& value) {
  out << "  " << name << std::string(name.size() < 10 ? 10 - name.size() : 1, ' ') << value
      << "\n";
}

}  // namespace

std::string ValueText(const Json& v) {
  if (v.is_null()) return "NULL";
  if (v.is_string()) return OneLine(v.get<std::string>());
  if (v.is_object() && v.contains("blob_hex") && v["blob_hex"].is_string()) {
    return "x'" + v["blob_hex"].get<std::string>() + "'";
  }
  return v.dump();
}

std::string RiskLabel(Risk r, const Style& s) {
  std::string label = Upper(RiskName(r));
  if (!s.color) return label;
  return std::string(RiskColor(r)) + label + "\x1b[0m";
}

std::string Table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows, size_t max_width) {
  std::vector<size_t> width(header.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], DisplayWidth(Truncate(row[i], max_width)));
    }
  };
  measure(header);
  for (const auto& r : rows) measure(r);
  std::ostringstream out;
  auto line = [&](const std::vector<std::string>& row) {
    std::string line_text = "  ";
    for (size_t i = 0; i < width.size(); ++i) {
      std::string cell = i < row.size() ? Truncate(row[i], max_width) : "";
      line_text += cell;
      if (i + 1 < width.size()) line_text += std::string(width[i] - DisplayWidth(cell) + 2, ' ');
    }
    while (!line_text.empty() && line_text.back() == ' ') line_text.pop_back();
    out << line_text << "\n";
  };
  line(header);
  std::vector<std::string> rule;
  for (size_t w : width) rule.push_back(std::string(w, '-'));
  line(rule);
  for (const auto& r : rows) line(r);
  return out.str();
}

std::string ResultTable(const Json& result) {
  if (!result.is_object() || !result.contains("columns")) return "";
  std::vector<std::string> header;
  for (const auto& c : result["columns"]) header.push_back(c.is_string() ? c.get<std::string>() : c.dump());
  std::vector<std::vector<std::string>> rows;
  if (result.contains("rows")) {
    for (const auto& r : result["rows"]) {
      std::vector<std::string> cells;
      for (const auto& v : r) cells.push_back(ValueText(v));
      rows.push_back(std::move(cells));
    }
  }
  std::string out = Table(header, rows);
  out += "  (" + Plural(static_cast<int64_t>(rows.size()), "row", "rows");
  if (result.value("truncated", false)) out += ", more not shown";
  out += ")\n";
  return out;
}

std::string StatusLine(const Action& a, const Style& s) {
  std::ostringstream out;
  out << a.id << "  " << ActionStatusName(a.status) << "  " << RiskLabel(a.risk, s);
  if (a.status == ActionStatus::kPending) out << "  (has " << approval::Progress(a) << ")";
  if (a.dry_run) out << "  (dry-run mode; would be " << a.would_status << ")";
  out << "\n";
  for (const auto& r : a.reasons) out << "  - " << r << "\n";
  if (!a.error.empty() &&
      std::find(a.reasons.begin(), a.reasons.end(), a.error) == a.reasons.end()) {
    out << "  " << a.error << "\n";
  }
  return out.str();
}

namespace {

std::string SizeText(int64_t bytes) {
  if (bytes < 0) return "";
  if (bytes < 10 * 1024) return Plural(bytes, "byte", "bytes");
  if (bytes < 10LL * 1024 * 1024) return FormatCount(bytes / 1024) + " KiB";
  return FormatCount(bytes / (1024 * 1024)) + " MiB";
}

std::string ModeText(int mode) {
  if (mode < 0) return "";
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode & 07777);
  return buf;
}

// One line per file change: "- deleted  src/a.c  (file, 120 bytes)".
std::string FileLine(const FileChange& f) {
  const char* mark = f.op == "added" ? "+" : f.op == "deleted" ? "-" : "~";
  std::string what = f.type;
  if (!f.type_before.empty() && f.type_before != f.type) what = f.type_before + " → " + f.type;
  std::vector<std::string> parts = {what};
  if (f.type == "symlink" && !f.link_target.empty() && f.op != "deleted") {
    parts.push_back("→ " + f.link_target);
  }
  if (f.op == "changed" && f.size_before >= 0 && f.size_after >= 0 && f.size_before != f.size_after) {
    parts.push_back(SizeText(f.size_before) + " → " + SizeText(f.size_after));
  } else if (f.type == "file") {
    parts.push_back(SizeText(f.op == "deleted" ? f.size_before : f.size_after));
  }
  if (f.op == "changed" && f.mode_before >= 0 && f.mode_after >= 0 && f.mode_before != f.mode_after) {
    parts.push_back("mode " + ModeText(f.mode_before) + " → " + ModeText(f.mode_after));
  }
  std::string line = std::string("  ") + mark + " " + f.op +
                     std::string(f.op.size() < 9 ? 9 - f.op.size() : 1, ' ') + f.path + "  (";
  for (size_t i = 0; i < parts.size(); ++i) line += (i ? ", " : "") + parts[i];
  return line + ")\n";
}

std::string IndentBlock(const std::string& text, const std::string& indent) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    std::string line = text.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    out += indent + line + "\n";
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return out;
}

void RenderShellEffect(std::ostringstream& out, const Effect& e) {
  const Json& x = e.extra;
  auto num = [&](const char* k) { return x.contains(k) && x[k].is_number() ? x[k].get<int64_t>() : 0; };
  auto str = [&](const char* k) { return x.contains(k) && x[k].is_string() ? x[k].get<std::string>() : ""; };
  Field(out, "exit", std::to_string(num("exit_code")) +
                         (num("signal") ? " (signal " + std::to_string(num("signal")) + ")" : ""));
  if (!str("killed_by").empty()) Field(out, "limit", "killed by the " + str("killed_by") + " limit");
  if (!str("upper_full").empty()) {
    Field(out, "limit", "the sandbox's " + std::string(str("upper_full") == "files" ? "file-count" : "size") +
                            " cap was reached");
  }
  if (x.value("network_attempt", false) == true) {
    Field(out, "network", "tried and blocked: " + str("network_detail"));
  }
  if (e.files_changed == 0) {
    out << "  no file change\n";
  } else {
    Field(out, "files", Plural(e.files_changed, "path", "paths") + ": " + FormatCount(num("added")) +
                            " added, " + FormatCount(num("changed")) + " changed, " +
                            FormatCount(num("deleted")) + " deleted");
  }
  for (const char* key : {"protected", "outside_symlinks", "refused"}) {
    if (num((std::string(key) + "_count").c_str()) == 0 || !x[key].is_array()) continue;
    const char* label = key[0] == 'p' ? "protected" : key[0] == 'o' ? "symlink" : "refused";
    for (const auto& p : x[key]) Field(out, label, p.is_string() ? p.get<std::string>() : p.dump());
  }
  if (!e.files.empty()) {
    out << "changes (" << (e.preview_omitted > 0
                               ? "first " + FormatCount(static_cast<int64_t>(e.files.size())) +
                                     " of " + FormatCount(e.files_changed)
                               : Plural(e.files_changed, "path", "paths"))
        << ")\n";
    for (const auto& f : e.files) out << FileLine(f);
    if (e.preview_omitted > 0) {
      out << "  … " << FormatCount(e.preview_omitted) << " more not shown (airlock show --json lists "
          << "the first " << FormatCount(static_cast<int64_t>(e.files.size())) << ")\n";
    }
  }
  // Diffs of added and changed files; a deleted file's content is its pre-image, and the
  // listing above already says it goes. Long diffs stop after kMaxDiffLines (--json has all).
  constexpr int kMaxDiffLines = 200;
  int lines = 0;
  int64_t skipped = 0;
  for (const auto& f : e.files) {
    if (f.diff.empty() || f.op == "deleted") continue;
    if (lines >= kMaxDiffLines) {
      ++skipped;
      continue;
    }
    if (lines == 0) out << "diff\n";
    std::string block = IndentBlock(f.diff, "  ");
    lines += static_cast<int>(std::count(block.begin(), block.end(), '\n'));
    out << block;
  }
  if (skipped > 0) {
    out << "  … diffs of " << Plural(skipped, "more file", "more files")
        << " not shown (airlock show --json has them)\n";
  }
  for (const char* key : {"stdout_head", "stderr_head"}) {
    std::string text = str(key);
    if (text.empty()) continue;
    out << (key[3] == 'o' ? "stdout" : "stderr") << " (in the sandbox"
        << (static_cast<int64_t>(text.size()) >= num("output_head_bytes") ? ", first " +
                SizeText(num("output_head_bytes")) : std::string())
        << ")\n"
        << IndentBlock(text, "  ");
  }
}

// A message: the envelope (every recipient, Bcc included), then the message as it will be
// sent: its headers exactly, the body preview, the attachments by name, size and hash.
void RenderMailEffect(std::ostringstream& out, const Effect& e) {
  const Json& x = e.extra;
  auto str = [&](const char* k) {
    return x.contains(k) && x[k].is_string() ? x[k].get<std::string>() : "";
  };
  const int64_t n = x.contains("recipient_count") && x["recipient_count"].is_number_integer()
                        ? x["recipient_count"].get<int64_t>()
                        : 0;
  out << "  sends one message from " << str("from") << " to " << Plural(n, "recipient", "recipients")
      << " (" << SizeText(x.value("size", int64_t{0})) << "; sent mail cannot be undone)\n";
  if (x.contains("recipients") && x["recipients"].is_array()) {
    for (const auto& r : x["recipients"]) {
      if (!r.is_object()) continue;
      out << "    " << r.value("field", std::string("?")) << ": " << r.value("address", std::string("?"))
          << "\n";
    }
  }
  const std::string message = str("message");
  const size_t header_end = message.find("\r\n\r\n");
  if (header_end != std::string::npos) {
    std::string headers = message.substr(0, header_end);
    std::string plain;
    for (char c : headers) {
      if (c != '\r') plain += c;
    }
    out << "  headers:\n" << IndentBlock(plain, "    ") << "\n";
  }
  out << "  body" << (x.value("body_truncated", false) ? " (first part)" : "") << ":\n"
      << IndentBlock(str("body"), "    ") << "\n";
  if (x.contains("attachments") && x["attachments"].is_array()) {
    for (const auto& a : x["attachments"]) {
      if (!a.is_object()) continue;
      out << "  attachment " << a.value("name", std::string("?")) << " ("
          << SizeText(a.value("size", int64_t{0})) << ", sha256 "
          << a.value("sha256", std::string("?")).substr(0, 16) << ")\n";
    }
  }
}

void RenderEffect(std::ostringstream& out, const Effect& e) {
  if (e.kind == "mail") {
    RenderMailEffect(out, e);
    return;
  }
  if (e.kind == "mcp") {
    // The effect of a tool call is the call: the exact arguments, pretty-printed.
    auto str = [&](const char* k) {
      return e.extra.contains(k) && e.extra[k].is_string() ? e.extra[k].get<std::string>() : "";
    };
    out << "  calls the tool " << str("tool") << " on the MCP server " << str("server")
        << " (it cannot be previewed by running it, nor undone)\n";
    if (e.extra.contains("arguments")) {
      out << "  arguments:\n"
          << IndentBlock(e.extra["arguments"].dump(2, ' ', false, Json::error_handler_t::replace),
                         "    ")
          << "\n";
    }
    if (e.extra.contains("annotations") && e.extra["annotations"].is_object()) {
      out << "  the server's annotations (untrusted hints): "
          << CanonicalJson(e.extra["annotations"]) << "\n";
    }
    return;
  }
  if (e.kind == "shell") {
    RenderShellEffect(out, e);
    return;
  }
  if (e.kind == "http") {
    // The effect of a request is the request: what airlock will send, exactly. The values
    // of the headers airlock adds are credentials: only their names are shown.
    auto str = [&](const char* k) {
      return e.extra.contains(k) && e.extra[k].is_string() ? e.extra[k].get<std::string>() : "";
    };
    const std::string method = str("method");
    out << "  sends " << method << " " << str("url")
        << (method == "GET" || method == "HEAD"
                ? "\n"
                : " (it cannot be previewed by sending it, nor undone)\n");
    if (e.extra.contains("headers") && e.extra["headers"].is_array() &&
        !e.extra["headers"].empty()) {
      std::string names;
      for (const auto& n : e.extra["headers"]) names += (names.empty() ? "" : ", ") + ValueText(n);
      out << "  with the headers airlock adds (values hidden): " << names << "\n";
    }
    if (e.extra.contains("body") && !e.extra["body"].is_null()) {
      out << "  body (JSON):\n"
          << IndentBlock(e.extra["body"].dump(2, ' ', false, Json::error_handler_t::replace),
                         "    ")
          << "\n";
    }
    return;
  }
  if (e.IsRead()) {
    out << "  reads only: no row or schema change\n";
    return;
  }
  for (const auto& d : e.ddl) {
    out << "  " << d.op << " " << d.object;
    if (!d.table.empty() && d.table != d.object) out << " on " << d.table;
    std::vector<std::string> parts;
    if (d.rows >= 0) parts.push_back(Plural(d.rows, "row", "rows"));
    if (!d.indexes.empty()) {
      std::string s = Plural(static_cast<int64_t>(d.indexes.size()), "index", "indexes") + ": ";
      for (size_t i = 0; i < d.indexes.size(); ++i) s += (i ? ", " : "") + d.indexes[i];
      parts.push_back(s);
    }
    if (!d.triggers.empty()) {
      std::string s = Plural(static_cast<int64_t>(d.triggers.size()), "trigger", "triggers") + ": ";
      for (size_t i = 0; i < d.triggers.size(); ++i) s += (i ? ", " : "") + d.triggers[i];
      parts.push_back(s);
    }
    if (!d.detail.empty()) parts.push_back(d.detail);
    for (size_t i = 0; i < parts.size(); ++i) out << (i ? "; " : " (") << parts[i];
    out << (parts.empty() ? "" : ")") << "\n";
  }
  if (!e.tables.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& t : e.tables) {
      std::string note;
      if (t.all_rows_deleted) note = "every row deleted";
      if (t.all_rows_updated) note = "every row updated";
      if (!t.has_primary_key) note = "no PRIMARY KEY: not reversible";
      rows.push_back({t.table, FormatCount(t.inserted), FormatCount(t.updated),
                      FormatCount(t.deleted), note});
    }
    out << Table({"table", "inserted", "updated", "deleted", ""}, rows);
  }
  if (e.extra.contains("not_executed")) {
    out << "  not executed in the dry-run: " << ValueText(e.extra["not_executed"]) << "\n";
  }
}

void RenderPreview(std::ostringstream& out, const Effect& e) {
  if (e.preview.empty()) return;
  // One table per changed table, columns in first-seen order; an updated cell shows
  // "old → new".
  std::vector<std::string> order;
  for (const auto& r : e.preview) {
    if (std::find(order.begin(), order.end(), r.table) == order.end()) order.push_back(r.table);
  }
  const int64_t shown = static_cast<int64_t>(e.preview.size());
  out << "preview (" << Plural(shown, "row", "rows") << " shown";
  if (e.preview_omitted > 0) out << ", " << FormatCount(e.preview_omitted) << " more not shown";
  out << ")\n";
  for (const auto& table : order) {
    std::vector<std::string> cols;
    auto add_cols = [&](const Json& obj) {
      if (!obj.is_object()) return;
      for (auto it = obj.begin(); it != obj.end(); ++it) {
        if (std::find(cols.begin(), cols.end(), it.key()) == cols.end()) cols.push_back(it.key());
      }
    };
    for (const auto& r : e.preview) {
      if (r.table != table) continue;
      add_cols(r.before);
      add_cols(r.after);
    }
    std::vector<std::string> header = {"op"};
    header.insert(header.end(), cols.begin(), cols.end());
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : e.preview) {
      if (r.table != table) continue;
      std::vector<std::string> cells = {r.op};
      for (const auto& c : cols) {
        const bool had = r.before.is_object() && r.before.contains(c);
        const bool has = r.after.is_object() && r.after.contains(c);
        std::string before = had ? ValueText(r.before[c]) : "";
        std::string after = has ? ValueText(r.after[c]) : "";
        if (had && has && before != after) {
          cells.push_back(before + " → " + after);
        } else {
          cells.push_back(has ? after : before);
        }
      }
      rows.push_back(std::move(cells));
    }
    out << " " << table << "\n" << Table(header, rows, 30);
  }
}

}  // namespace

std::string ShowAction(const Action& a, const Style& s) {
  std::ostringstream out;
  out << StatusLine(a, s);
  Field(out, "agent", a.agent);
  Field(out, "target", a.target + " (" + a.kind + ")");
  Field(out,
        a.kind == "sql"     ? "sql"
        : a.kind == "shell" ? "command"
        : a.kind == "mcp"   ? "tool call"
        : a.kind == "mail"  ? "message"
        : a.kind == "http"  ? "request"
                            : "action",
        OneLine(ActionText(a)));
  Field(out, "created", FormatTimeMs(a.created_ms));
  if (a.status == ActionStatus::kPending && a.expires_ms > 0) {
    Field(out, "expires", FormatTimeMs(a.expires_ms));
  }
  if (a.quorum > 0 || !a.votes.empty()) Field(out, "votes", approval::Progress(a));
  for (const auto& v : a.votes) {
    Field(out, "", (v.approve ? "approved by " : "rejected by ") + v.approver + " at " +
                       FormatTimeMs(v.at_ms) + (v.reason.empty() ? "" : ": " + v.reason));
  }
  if (!a.reversible) Field(out, "undo", "not reversible");
  if (!a.effect.effect_hash.empty()) Field(out, "effect", a.effect.effect_hash.substr(0, 16));
  // An action that failed before its dry-run finished has no observed effect to show.
  if (!a.effect.kind.empty() || a.status != ActionStatus::kFailed) {
    out << "effect\n";
    RenderEffect(out, a.effect);
    RenderPreview(out, a.effect);
  }
  if (a.result.is_object() && a.result.contains("columns")) {
    out << "result\n" << ResultTable(a.result);
  }
  return out.str();
}

std::string PendingTable(const std::vector<Action>& actions, const Style& s) {
  if (actions.empty()) return "no pending actions\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& a : actions) {
    rows.push_back({a.id, RiskLabel(a.risk, s), a.agent, a.target, approval::Progress(a),
                    FormatTimeMs(a.created_ms), OneLine(ActionText(a))});
  }
  return Table({"id", "risk", "agent", "target", "votes", "created", "action"}, rows);
}

}  // namespace airlock::cli
