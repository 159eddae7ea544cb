// MCP client configurations: where the usual clients keep them, and reading one into the
// servers it starts.
//
// Formats (all JSON; VS Code's allows comments and trailing commas, so every file may):
//   Claude Desktop  claude_desktop_config.json   {"mcpServers": {NAME: SERVER}}
//   Claude Code     .mcp.json (a project)        {"mcpServers": {NAME: SERVER}}
//                   ~/.claude.json               {"mcpServers": {..}, "projects": {PATH:
//                   {"mcpServers": {..}}}}
//   Cursor          .cursor/mcp.json             {"mcpServers": {NAME: SERVER}}
//   VS Code         .vscode/mcp.json             {"servers": {NAME: SERVER}, "inputs": [..]}
//                   settings.json                {"mcp": {"servers": {..}}}
// SERVER: stdio {"command", "args", "env", "cwd", "envFile"} or remote {"type": "http"|"sse",
// "url", "headers"}.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/types.h"

namespace airlock::doctor {

// A configuration file larger than this is refused (real ones are a few KiB; ~/.claude.json
// with a long history can reach a few MiB).
inline constexpr size_t kMaxConfigBytes = 8u << 20;

struct ServerEntry {
  std::string name;     // the key in its file, as written
  std::string project;  // ~/.claude.json: the project path the server belongs to; "" otherwise
  std::string pointer;  // JSON pointer (RFC 6901) of the entry in its file: /mcpServers/NAME
  std::string type;     // "type" as written ("stdio", "http", "sse"), or ""
  // stdio
  std::string command;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  std::string cwd;
  std::string env_file;  // VS Code "envFile"
  // remote
  std::string url;
  std::map<std::string, std::string> headers;

  bool stdio() const { return !command.empty(); }
};

struct ClientConfig {
  std::string path;    // as given or found
  std::string client;  // "Claude Desktop", "Claude Code", "Cursor", "VS Code", "MCP client"
  Json doc;            // the whole file, for --fix
  std::vector<ServerEntry> servers;
};

// Parses one configuration. `path` names the file in errors and picks the client's name.
// `require_servers`: a file with none of the server maps above is an error (a file the user
// named); otherwise it has no servers (a ~/.claude.json that never had one).
// Errors are InvalidArgument: "PATH: ...".
Result<ClientConfig> ParseClientConfig(std::string_view text, const std::string& path,
                                       bool require_servers);

// Reads (at most kMaxConfigBytes) and parses. Errors: NotFound (no such file), IoError (cannot
// read), InvalidArgument (too large, not UTF-8, not JSON, not a client configuration).
Result<ClientConfig> LoadClientConfig(const std::string& path, bool require_servers);

// The usual places, in this order, whether they exist or not: Claude Desktop (Linux, then
// macOS), ./.mcp.json, ~/.claude.json, ./.cursor/mcp.json, ~/.cursor/mcp.json,
// ./.vscode/mcp.json, VS Code's user mcp.json (Linux, macOS). `home` or `config_home`
// ($XDG_CONFIG_HOME) may be empty; `cwd` "" means relative paths.
std::vector<std::string> DefaultConfigPaths(const std::string& home, const std::string& cwd,
                                            const std::string& config_home);

// JSON with comments (// and /* */) and trailing commas turned into plain JSON of the same
// length: comments become spaces (line breaks kept), trailing commas a space.
std::string StripJsonComments(std::string_view text);

// The offset of the first byte that is not valid UTF-8, or npos.
size_t FirstInvalidUtf8(std::string_view text);

}  // namespace airlock::doctor
