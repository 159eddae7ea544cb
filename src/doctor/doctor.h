// `airlock doctor`: finds the warning signs of an unsandboxed agent set-up in real MCP client
// configurations (Claude Desktop, Claude Code, Cursor, VS Code), and with --fix writes copies
// that put every stdio server behind `airlock mcp stdio`.
//
// The public face of src/doctor/ for the CLI: run it, then print the Report as a table or as
// JSON. It reads only the files it is given (or the usual places) and writes only the --fix
// copies; nothing it prints holds a secret's value (doctor/redact.h).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/types.h"
#include "doctor/detect.h"
#include "doctor/fix.h"

namespace airlock::doctor {

struct Options {
  std::vector<std::string> files;  // named by the user; empty: the usual places
  std::string home;                // $HOME ("" = unknown: home paths are skipped)
  std::string cwd;                 // where ./.mcp.json etc. are looked for ("" = relative)
  std::string config_home;         // $XDG_CONFIG_HOME ("" = ~/.config)
  bool fix = false;                // write the copies and plan the policy entries
  FixOptions fix_options;
};

struct FileResult {
  std::string path;
  std::string client;  // "" when it could not be read
  bool named = false;  // given on the command line (an error there is the user's: exit 2)
  size_t servers = 0;
  Status status;  // ok, or why the file was not checked
};

struct CopyResult {
  std::string from, to;
  std::vector<std::pair<std::string, std::string>> wrapped;  // (name in file, policy name)
  Status status;
};

struct FixReport {
  std::vector<CopyResult> copies;
  std::vector<RemoteServer> remote;
  std::string policy_yaml;
};

struct Report {
  std::vector<std::string> searched;  // the usual places looked at (no files named)
  std::vector<FileResult> files;      // files checked or found but unreadable, in order
  size_t servers = 0;
  std::vector<Finding> findings;  // most severe first, then file and server order
  std::optional<FixReport> fix;
  std::string home;  // to print ~ for it

  // A file named on the command line could not be read or is not a client configuration.
  bool NamedFileFailed() const;
  bool AnyCopyFailed() const;
  size_t Count(Severity s) const;
};

Report RunDoctor(const Options& o);

// {"files": [{path, client, found: "argument"|"default", servers, error, error_code}],
//  "searched": [...] (only when no file was named),
//  "findings": [{severity, kind, server, project?, file, pointer, title, evidence, fix}],
//  "summary": {files, errors, servers, findings, critical, high, medium, low},
//  "fix": {copies: [{from, to, servers: [{name, policy_name}], error}], remote: [...],
//          policy_yaml} (only with --fix)}
Json ReportToJson(const Report& r);

// The readable form: a summary line, an aligned table (#, severity, server, file, finding
// with its evidence below), the fixes grouped by finding, and what --fix wrote. Errors about
// files are not in it (the CLI prints them to stderr).
std::string FormatReport(const Report& r);

}  // namespace airlock::doctor
