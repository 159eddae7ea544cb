// `airlock doctor --fix`: a copy of each configuration with every stdio server started
// through `airlock mcp stdio`, and the policy entries (YAML, for `mcp_servers:`) that tell
// airlock how to start the real server.
//
// The original file is never written. The copy keeps everything else in the file (it is
// re-serialised: comments are dropped and keys come out sorted). A wrapped entry's env holds
// only AIRLOCK_TOKEN (a placeholder for the agent's token) and, when the policy's path is
// known, AIRLOCK_CONFIG: the client starts airlock in a directory of its own choosing. The
// server's own env, with its secrets, moves to the policy, where the agent cannot read it;
// the printed YAML shows those secrets redacted, for the user to copy over by hand.
// Remote (http/sse) servers are left as they are: the policy has no place for their headers.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/types.h"
#include "doctor/config.h"

namespace airlock::doctor {

struct FixOptions {
  std::string out_dir;           // "" = each copy next to its original
  std::string sandbox = "repo";  // the shell target each wrapped server runs in
  std::string policy_path;       // absolute; "" = no AIRLOCK_CONFIG in the wrapped env
};

struct FixedCopy {
  std::string from;  // the original
  std::string to;    // the copy: NAME.airlock.json beside it, or in out_dir
  // (name in the file, name in the policy), per wrapped server
  std::vector<std::pair<std::string, std::string>> wrapped;
  Json doc;
};

struct PolicyEntry {
  std::string name;                                      // sanitised: [a-z0-9_-]+
  std::vector<std::string> command;                      // redacted
  std::vector<std::pair<std::string, std::string>> env;  // redacted
  bool redacted = false;            // a value above lost its secret: the user must copy it
  bool client_placeholder = false;  // a ${...} the client expanded; the policy needs the value
  std::string from_file, from_name;
  std::string cwd, env_file;  // as written, for a reminder
};

struct RemoteServer {
  std::string name, file, url;  // url redacted
};

struct FixPlan {
  std::vector<FixedCopy> copies;  // only files with something to wrap
  std::vector<PolicyEntry> entries;
  std::vector<RemoteServer> remote;
};

// A server name as the policy accepts it: lower case, [a-z0-9_-], at most 64 characters,
// never empty ("server") and never "airlock" (the built-in server's name).
std::string SanitizeServerName(std::string_view name);

// Plans the copies and entries. Servers with the same name and the same command, args and env
// in several files share one entry; a different server under a taken name gets "-2", "-3"...
FixPlan PlanFix(const std::vector<ClientConfig>& configs, const FixOptions& o);

// The entries as YAML for `mcp_servers:`, with comments saying where each came from and
// which values the user must fill in.
std::string PolicyYaml(const FixPlan& plan, const FixOptions& o);

// Writes the copy (mode 0600: the rest of the file may still hold secrets) through a
// temporary file and rename. Refuses a destination that is one of `originals`.
Status WriteFixedCopy(const FixedCopy& copy, const std::vector<std::string>& originals);

// A YAML scalar: plain when that is unambiguous (a-z, digits, _ . / - @ + =, not a YAML
// keyword or number), otherwise double-quoted with JSON escapes.
std::string YamlScalar(std::string_view s);

}  // namespace airlock::doctor
