#include "doctor/doctor.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "doctor/config.h"

namespace airlock::doctor {
namespace {

namespace fs = std::filesystem;

// One key per file, so that ./.cursor/mcp.json and ~/.cursor/mcp.json are read once when the
// current directory is the home directory.
std::string FileKey(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(path, ec);
  return ec ? path : p.string();
}

FixReport WriteFixes(const std::vector<ClientConfig>& configs, const Options& o,
                     const std::vector<std::string>& originals) {
  const FixPlan plan = PlanFix(configs, o.fix_options);
  FixReport fr;
  for (const FixedCopy& copy : plan.copies) {
    fr.copies.push_back({copy.from, copy.to, copy.wrapped, WriteFixedCopy(copy, originals)});
  }
  fr.remote = plan.remote;
  fr.policy_yaml = PolicyYaml(plan, o.fix_options);
  return fr;
}

}  // namespace

bool Report::NamedFileFailed() const {
  return std::any_of(files.begin(), files.end(),
                     [](const FileResult& f) { return f.named && !f.status.ok(); });
}

bool Report::AnyCopyFailed() const {
  return fix && std::any_of(fix->copies.begin(), fix->copies.end(),
                            [](const CopyResult& c) { return !c.status.ok(); });
}

size_t Report::Count(Severity s) const {
  return static_cast<size_t>(std::count_if(findings.begin(), findings.end(),
                                           [&](const Finding& f) { return f.severity == s; }));
}

Report RunDoctor(const Options& o) {
  Report r;
  r.home = o.home;
  std::vector<std::pair<std::string, bool>> paths;  // (path, named)
  if (o.files.empty()) {
    r.searched = DefaultConfigPaths(o.home, o.cwd, o.config_home);
    for (const auto& p : r.searched) paths.emplace_back(p, false);
  } else {
    for (const auto& p : o.files) paths.emplace_back(p, true);
  }
  std::set<std::string> seen;
  std::vector<ClientConfig> configs;
  std::vector<std::string> originals;
  for (const auto& [path, named] : paths) {
    if (!seen.insert(FileKey(path)).second) continue;
    // A file the user named must be a client configuration; ~/.claude.json found in its usual
    // place may hold no server at all.
    auto c = LoadClientConfig(path, /*require_servers=*/named);
    if (!c.ok()) {
      if (!named && c.status().code() == StatusCode::kNotFound) continue;
      r.files.push_back({path, "", named, 0, c.status()});
      continue;
    }
    originals.push_back(path);
    for (const ServerEntry& s : c->servers) {
      auto found = CheckServer(s, CheckContext{path, c->client, o.home});
      r.findings.insert(r.findings.end(), found.begin(), found.end());
    }
    r.servers += c->servers.size();
    r.files.push_back({path, c->client, named, c->servers.size(), Status::Ok()});
    configs.push_back(std::move(*c));
  }
  std::stable_sort(r.findings.begin(), r.findings.end(),
                   [](const Finding& a, const Finding& b) { return a.severity > b.severity; });
  if (o.fix) r.fix = WriteFixes(configs, o, originals);
  return r;
}

}  // namespace airlock::doctor
