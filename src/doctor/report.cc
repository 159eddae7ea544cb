// The two printed forms of a doctor Report: JSON for tools, an aligned table for people.
#include <algorithm>
#include <map>

#include "doctor/doctor.h"
#include "doctor/redact.h"

namespace airlock::doctor {
namespace {

constexpr size_t kServerWidth = 32;
constexpr size_t kFileWidth = 48;
constexpr size_t kLineWidth = 100;

// Characters as a terminal counts them (UTF-8 continuation bytes do not count).
size_t Width(std::string_view s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xc0) != 0x80; }));
}

// The byte offset where the `n`-th character starts.
size_t ByteOfChar(std::string_view s, size_t n) {
  size_t chars = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xc0) == 0x80) continue;
    if (chars++ == n) return i;
  }
  return s.size();
}

std::string ElideEnd(const std::string& s, size_t width) {
  if (Width(s) <= width) return s;
  return s.substr(0, ByteOfChar(s, width - 3)) + "...";
}

// Paths keep their end (the file name) when cut.
std::string ElideStart(const std::string& s, size_t width) {
  const size_t w = Width(s);
  if (w <= width) return s;
  return "..." + s.substr(ByteOfChar(s, w - (width - 3)));
}

std::string Pad(const std::string& s, size_t width) {
  const size_t w = Width(s);
  return w >= width ? s : s + std::string(width - w, ' ');
}

std::string Tilde(const std::string& path, const std::string& home) {
  if (!home.empty() && home != "/" && path.rfind(home + "/", 0) == 0) {
    return "~" + path.substr(home.size());
  }
  return path;
}

// Word-wraps `text` to kLineWidth, for a cursor at column `indent`; continuation lines start
// with `indent` spaces too.
std::string Wrap(const std::string& text, size_t indent) {
  std::string out;
  size_t col = indent;
  bool line_start = true;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find(' ', pos);
    if (end == std::string::npos) end = text.size();
    const std::string word = text.substr(pos, end - pos);
    pos = end + 1;
    if (word.empty()) continue;
    if (!line_start && col + 1 + Width(word) > kLineWidth) {
      out += "\n" + std::string(indent, ' ');
      col = indent;
      line_start = true;
    }
    if (!line_start) {
      out += " ";
      ++col;
    }
    out += word;
    col += Width(word);
    line_start = false;
  }
  return out;
}

std::string ServerLabel(const Finding& f, const std::string& home) {
  std::string s = DisplaySafe(f.server);
  if (!f.project.empty()) s += " (" + DisplaySafe(Tilde(f.project, home)) + ")";
  return ElideEnd(s, kServerWidth);
}

std::string Plural(size_t n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

void FormatTable(const Report& r, std::string* out) {
  struct Row {
    std::string num, sev, server, file;
    const Finding* f;
  };
  std::vector<Row> rows;
  size_t w[4] = {1, 8, 6, 4};  // "#", "SEVERITY", "SERVER", "FILE"
  for (size_t i = 0; i < r.findings.size(); ++i) {
    const Finding& f = r.findings[i];
    Row row{std::to_string(i + 1), SeverityName(f.severity), ServerLabel(f, r.home),
            ElideStart(DisplaySafe(Tilde(f.file, r.home)), kFileWidth), &f};
    w[0] = std::max(w[0], Width(row.num));
    w[2] = std::max(w[2], Width(row.server));
    w[3] = std::max(w[3], Width(row.file));
    rows.push_back(std::move(row));
  }
  const size_t finding_col = w[0] + w[1] + w[2] + w[3] + 8;
  *out += Pad("#", w[0]) + "  " + Pad("SEVERITY", w[1]) + "  " + Pad("SERVER", w[2]) + "  " +
          Pad("FILE", w[3]) + "  FINDING\n";
  for (const Row& row : rows) {
    *out += Pad(row.num, w[0]) + "  " + Pad(row.sev, w[1]) + "  " + Pad(row.server, w[2]) + "  " +
            Pad(row.file, w[3]) + "  " + row.f->title + "\n";
    *out += std::string(finding_col, ' ') + row.f->evidence + "\n";
  }
}

void FormatFixes(const Report& r, std::string* out) {
  std::vector<std::pair<std::string, std::vector<size_t>>> groups;  // fix -> finding numbers
  for (size_t i = 0; i < r.findings.size(); ++i) {
    const std::string& fix = r.findings[i].fix;
    auto it =
        std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == fix; });
    if (it == groups.end()) {
      groups.push_back({fix, {i + 1}});
    } else {
      it->second.push_back(i + 1);
    }
  }
  *out += "\nHow to fix:\n";
  for (const auto& [fix, nums] : groups) {
    std::string label;
    for (size_t k = 0; k < nums.size(); ++k) {
      if (k == 6 && nums.size() > 7) {
        label += " and " + std::to_string(nums.size() - 6) + " more";
        break;
      }
      label += (k ? ", " : "") + std::to_string(nums[k]);
    }
    *out += "  " + label + ":\n      " + Wrap(fix, 6) + "\n";
  }
}

void FormatFixReport(const Report& r, std::string* out) {
  const FixReport& fr = *r.fix;
  *out += "\n--fix:\n";
  if (fr.copies.empty()) *out += "  no stdio server to wrap: nothing written\n";
  for (const CopyResult& c : fr.copies) {
    const std::string to = DisplaySafe(Tilde(c.to, r.home));
    if (!c.status.ok()) {
      *out += "  NOT written: " + DisplaySafe(c.status.message()) + "\n";
      continue;
    }
    std::string names;
    for (const auto& [in_file, policy] : c.wrapped) {
      names += (names.empty() ? "" : ", ") + DisplaySafe(in_file) +
               (in_file == policy ? "" : " as " + policy);
    }
    *out += "  wrote " + to + ": " + Plural(c.wrapped.size(), "server") +
            " now start through airlock (" + names + ")\n";
  }
  if (!fr.copies.empty()) {
    *out +=
        "  The originals are unchanged. Review each copy, put your agent's token in place of "
        "<agent token>, then use it instead of the original.\n";
  }
  *out += "\n" + fr.policy_yaml;
}

}  // namespace

Json ReportToJson(const Report& r) {
  Json files = Json::array();
  size_t errors = 0;
  for (const FileResult& f : r.files) {
    Json j{{"path", f.path},
           {"client", f.client.empty() ? Json(nullptr) : Json(f.client)},
           {"found", f.named ? "argument" : "default"},
           {"servers", f.servers},
           {"error", nullptr},
           {"error_code", nullptr}};
    if (!f.status.ok()) {
      ++errors;
      j["error"] = f.status.message();
      j["error_code"] = StatusCodeSlug(f.status.code());
    }
    files.push_back(std::move(j));
  }
  Json findings = Json::array();
  for (const Finding& f : r.findings) {
    Json j{{"severity", SeverityName(f.severity)},
           {"kind", f.kind},
           {"server", f.server},
           {"file", f.file},
           {"pointer", f.pointer},
           {"title", f.title},
           {"evidence", f.evidence},
           {"fix", f.fix}};
    if (!f.project.empty()) j["project"] = f.project;
    findings.push_back(std::move(j));
  }
  Json out{{"files", files},
           {"findings", findings},
           {"summary",
            {{"files", r.files.size() - errors},
             {"errors", errors},
             {"servers", r.servers},
             {"findings", r.findings.size()},
             {"critical", r.Count(Severity::kCritical)},
             {"high", r.Count(Severity::kHigh)},
             {"medium", r.Count(Severity::kMedium)},
             {"low", r.Count(Severity::kLow)}}}};
  if (!r.searched.empty()) out["searched"] = r.searched;
  if (r.fix) {
    Json copies = Json::array();
    for (const CopyResult& c : r.fix->copies) {
      Json servers = Json::array();
      for (const auto& [name, policy] : c.wrapped) {
        servers.push_back({{"name", name}, {"policy_name", policy}});
      }
      copies.push_back({{"from", c.from},
                        {"to", c.to},
                        {"servers", servers},
                        {"error", c.status.ok() ? Json(nullptr) : Json(c.status.message())}});
    }
    Json remote = Json::array();
    for (const RemoteServer& s : r.fix->remote) {
      remote.push_back({{"server", s.name}, {"file", s.file}, {"url", s.url}});
    }
    out["fix"] = {{"copies", copies}, {"remote", remote}, {"policy_yaml", r.fix->policy_yaml}};
  }
  return out;
}

std::string FormatReport(const Report& r) {
  std::string out;
  const size_t checked = static_cast<size_t>(std::count_if(
      r.files.begin(), r.files.end(), [](const FileResult& f) { return f.status.ok(); }));
  if (r.files.empty() && !r.searched.empty()) {
    out += "No MCP client configuration found. Looked in:\n";
    for (const std::string& p : r.searched) out += "  " + DisplaySafe(Tilde(p, r.home)) + "\n";
    return out;
  }
  const size_t failed = r.files.size() - checked;
  const std::string unread =
      failed == 0 ? "" : " " + Plural(failed, "file") + " could not be checked.";
  out += "Checked " + Plural(checked, "file") + ", " + Plural(r.servers, "server") + ": ";
  if (r.findings.empty()) {
    out += "no warning signs found." + unread + "\n";
  } else {
    out += Plural(r.findings.size(), "finding") + " (";
    bool first = true;
    for (Severity s : {Severity::kCritical, Severity::kHigh, Severity::kMedium, Severity::kLow}) {
      if (r.Count(s) == 0) continue;
      out += (first ? "" : ", ") + std::to_string(r.Count(s)) + " " + SeverityName(s);
      first = false;
    }
    out += ")." + unread + "\n\n";
    FormatTable(r, &out);
    FormatFixes(r, &out);
  }
  if (r.fix) FormatFixReport(r, &out);
  return out;
}

}  // namespace airlock::doctor
