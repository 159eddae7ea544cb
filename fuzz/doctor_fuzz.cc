// Untrusted MCP client configurations, as `airlock doctor` reads them from disk: the bytes go
// through ParseClientConfig (as a file the user named, and as one found in its usual place),
// every server through the detectors, the result through both printed forms and the --fix
// plan. Oracles, beyond "no crash, no exception":
// - redaction holds: no finding's title or evidence, and no redacted text, contains anything
//   FindSecrets would report;
// - every planned policy name is [a-z0-9_-]+, and the printed policy YAML always parses, with
//   one mcp_servers entry per planned server;
// - every wrapped entry in a copy runs `airlock mcp stdio --server NAME`.
// Seeds: fuzz/corpus/doctor/, named by scenario.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <yaml-cpp/yaml.h>

#include "doctor/config.h"
#include "doctor/detect.h"
#include "doctor/doctor.h"
#include "doctor/fix.h"
#include "doctor/redact.h"

namespace {

using namespace airlock;
using namespace airlock::doctor;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

bool HoldsSecret(std::string_view text) {
  for (const SecretSpan& s : FindSecrets(text)) {
    if (s.finding) return true;
  }
  return false;
}

bool ValidPolicyName(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  }
  return true;
}

void CheckFix(const ClientConfig& c) {
  FixOptions o;
  const FixPlan plan = PlanFix({c}, o);
  for (const PolicyEntry& e : plan.entries) Check(ValidPolicyName(e.name));
  for (const FixedCopy& copy : plan.copies) {
    for (const auto& [in_file, policy] : copy.wrapped) Check(ValidPolicyName(policy));
    (void)copy.doc.dump(2, ' ', false, Json::error_handler_t::replace);
  }
  const std::string yaml = PolicyYaml(plan, o);
  try {
    YAML::Node root = YAML::Load(yaml);
    YAML::Node servers = root["mcp_servers"];
    Check(servers.IsMap());
    Check(servers.size() == plan.entries.size());
    for (const PolicyEntry& e : plan.entries) {
      YAML::Node entry = servers[e.name];
      Check(entry.IsMap());
      Check(entry["command"].IsSequence() && entry["command"].size() == e.command.size());
    }
  } catch (const YAML::Exception&) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Check(!HoldsSecret(RedactText(text.substr(0, 4096))));
  (void)StripJsonComments(text);
  for (bool named : {true, false}) {
    auto c = ParseClientConfig(text, "fuzz/.vscode/mcp.json", named);
    if (!c.ok()) continue;
    Report r;
    r.files.push_back({c->path, c->client, named, c->servers.size(), Status::Ok()});
    for (const ServerEntry& s : c->servers) {
      for (Finding& f : CheckServer(s, CheckContext{c->path, c->client, "/home/fuzz"})) {
        Check(!HoldsSecret(f.title) && !HoldsSecret(f.evidence));
        r.findings.push_back(std::move(f));
      }
    }
    r.servers = c->servers.size();
    (void)ReportToJson(r).dump(-1, ' ', false, Json::error_handler_t::replace);
    (void)FormatReport(r);
    CheckFix(*c);
  }
  return 0;
}
