// The warning signs of an unsandboxed agent set-up, found in one MCP server's entry.
//
//   kind                 severity                      what
//   credential           high (critical: a password    a password, API key or token written
//                        for a production-looking host) into args, env, url or headers
//   filesystem_root      critical (/, every home),     a server given the whole file system
//                        high (one home directory)     or a home directory
//   not_behind_airlock   medium                        the client starts or reaches the server
//                                                      itself, not through `airlock mcp`
//   production_host      high                          a URL, connection string or host
//                                                      argument naming a production-looking host
//
// Every evidence string is redacted (doctor/redact.h) before it is stored in a Finding.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "doctor/config.h"

namespace airlock::doctor {

enum class Severity { kLow = 0, kMedium = 1, kHigh = 2, kCritical = 3 };
const char* SeverityName(Severity s);  // "low", "medium", "high", "critical"

struct Finding {
  Severity severity = Severity::kLow;
  std::string kind;      // credential | filesystem_root | not_behind_airlock | production_host
  std::string server;    // the server's name in its file
  std::string project;   // ~/.claude.json project servers: the project path
  std::string file;      // the configuration file, as given or found
  std::string pointer;   // JSON pointer of the server entry in the file
  std::string title;     // short: "plain-text GitHub token"
  std::string evidence;  // where, redacted: "env GITHUB_TOKEN=ghp_****"
  std::string fix;       // what to do about it
};

struct CheckContext {
  std::string file;    // the file the server came from
  std::string client;  // ClientConfig::client, for client-specific advice
  std::string home;    // $HOME, to recognise it spelled out ("" if unknown)
};

// All findings for one server, in the order credential, filesystem_root, production_host,
// not_behind_airlock.
std::vector<Finding> CheckServer(const ServerEntry& s, const CheckContext& ctx);

// `airlock mcp stdio ...` (any path to an `airlock` binary, global flags before `mcp` allowed),
// or an http(s) URL whose path is airlock serve's /mcp/NAME.
bool IsBehindAirlock(const ServerEntry& s);
bool IsAirlockUrl(std::string_view url);

// Why a host name looks like production ("name contains \"prod\"", "an Amazon RDS host"), or
// nullopt. Loopback names and addresses never do.
std::optional<std::string> ProductionHostReason(std::string_view host);

enum class RootKind { kNone, kHome, kAllHomes, kWholeFileSystem };
// Whether a path argument is "/" (or "C:\"), "/home" or "/Users", or a home directory:
// "~", "$HOME", "${HOME}", "/root", "/home/NAME", "/Users/NAME", `home` itself. Trailing
// slashes and "." / ".." are resolved lexically.
RootKind ClassifyRoot(std::string_view path, std::string_view home);

// The server's command line with every argument redacted, for evidence and --fix comments.
std::string RedactedCommandLine(const ServerEntry& s);

}  // namespace airlock::doctor
