#include "doctor/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/json.h"
#include "doctor/redact.h"

namespace airlock::doctor {
namespace {

namespace fs = std::filesystem;

class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string PointerToken(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string ClientFromPath(const std::string& path) {
  const fs::path p(path);
  const std::string base = p.filename().string();
  const std::string parent = p.parent_path().filename().string();
  if (base == "claude_desktop_config.json") return "Claude Desktop";
  if (base == ".mcp.json" || base == ".claude.json") return "Claude Code";
  if (parent == ".cursor") return "Cursor";
  if (parent == ".vscode" || path.find("/Code/User/") != std::string::npos) return "VS Code";
  return "";
}

std::string JsonTypeName(const Json& j) {
  if (j.is_object()) return "an object";
  if (j.is_array()) return "an array";
  if (j.is_string()) return "a string";
  if (j.is_boolean()) return "a boolean";
  if (j.is_null()) return "null";
  return "a number";
}

// A scalar as the client would pass it on: strings as they are, numbers and booleans as
// written. Objects and arrays are not scalars.
bool ScalarText(const Json& j, std::string* out) {
  if (j.is_string()) {
    *out = j.get<std::string>();
  } else if (j.is_null()) {
    out->clear();
  } else if (j.is_number() || j.is_boolean()) {
    *out = j.dump();
  } else {
    return false;
  }
  return true;
}

class EntryReader {
 public:
  EntryReader(const std::string& path, std::string pointer, const Json& entry)
      : path_(path), pointer_(std::move(pointer)), entry_(entry) {}

  Status String(const char* key, std::string* out) const {
    if (!entry_.contains(key)) return Status::Ok();
    const Json& v = entry_[key];
    if (!v.is_string()) return Bad(key, "a string", v);
    *out = v.get<std::string>();
    return Status::Ok();
  }

  Status StringList(const char* key, std::vector<std::string>* out) const {
    if (!entry_.contains(key)) return Status::Ok();
    const Json& v = entry_[key];
    if (!v.is_array()) return Bad(key, "an array of strings", v);
    for (const Json& item : v) {
      std::string s;
      if (!ScalarText(item, &s)) return Bad(key, "an array of strings", v);
      out->push_back(std::move(s));
    }
    return Status::Ok();
  }

  Status StringMap(const char* key, std::map<std::string, std::string>* out) const {
    if (!entry_.contains(key)) return Status::Ok();
    const Json& v = entry_[key];
    if (!v.is_object()) return Bad(key, "an object of strings", v);
    for (const auto& [k, item] : v.items()) {
      std::string s;
      if (!ScalarText(item, &s)) return Bad(key, "an object of strings", v);
      (*out)[k] = std::move(s);
    }
    return Status::Ok();
  }

 private:
  Status Bad(const char* key, const char* want, const Json& got) const {
    return Status::InvalidArgument(path_ + ": " + DisplaySafe(pointer_) + "/" + key +
                                   ": expected " + want + ", found " + JsonTypeName(got));
  }

  const std::string& path_;
  std::string pointer_;
  const Json& entry_;
};

Status ReadEntry(const std::string& path, const std::string& pointer, const Json& entry,
                 ServerEntry* s) {
  if (!entry.is_object()) {
    return Status::InvalidArgument(path + ": " + DisplaySafe(pointer) +
                                   ": expected a server object, found " + JsonTypeName(entry));
  }
  EntryReader r(path, pointer, entry);
  RETURN_IF_ERROR(r.String("type", &s->type));
  RETURN_IF_ERROR(r.String("command", &s->command));
  RETURN_IF_ERROR(r.StringList("args", &s->args));
  RETURN_IF_ERROR(r.StringMap("env", &s->env));
  RETURN_IF_ERROR(r.String("cwd", &s->cwd));
  RETURN_IF_ERROR(r.String("envFile", &s->env_file));
  RETURN_IF_ERROR(r.String("url", &s->url));
  if (s->url.empty()) RETURN_IF_ERROR(r.String("serverUrl", &s->url));  // Windsurf's name
  RETURN_IF_ERROR(r.StringMap("headers", &s->headers));
  if (s->command.empty() && s->url.empty()) {
    return Status::InvalidArgument(path + ": " + DisplaySafe(pointer) +
                                   ": a server needs \"command\" (stdio) or \"url\" (http)");
  }
  return Status::Ok();
}

Status ReadServerMap(const std::string& path, const std::string& pointer, const Json& map,
                     const std::string& project, std::vector<ServerEntry>* out) {
  if (!map.is_object()) {
    return Status::InvalidArgument(path + ": " + DisplaySafe(pointer) +
                                   ": expected an object of servers, found " + JsonTypeName(map));
  }
  for (const auto& [name, entry] : map.items()) {
    ServerEntry s;
    s.name = name;
    s.project = project;
    s.pointer = pointer + "/" + PointerToken(name);
    RETURN_IF_ERROR(ReadEntry(path, s.pointer, entry, &s));
    out->push_back(std::move(s));
  }
  return Status::Ok();
}

Result<std::string> ReadCapped(const std::string& path) {
  ScopedFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) {
    const int e = errno;
    if (e == ENOENT) return Status::NotFound(path + ": no such file");
    return Status::IoError(path + ": cannot open: " + std::strerror(e));
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) {
    return Status::IoError(path + ": cannot stat: " + std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) return Status::InvalidArgument(path + ": is a directory, not a file");
  auto too_large = [&](uint64_t n) {
    return Status::InvalidArgument(path + ": too large (" + std::to_string(n) +
                                   " bytes; the limit is 8 MiB)");
  };
  if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) > kMaxConfigBytes) {
    return too_large(static_cast<uint64_t>(st.st_size));
  }
  std::string text;
  char buf[65536];
  while (true) {
    const ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IoError(path + ": cannot read: " + std::strerror(errno));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    // A pipe or a file that grows while read: stop at the limit rather than at its end.
    if (text.size() > kMaxConfigBytes) return too_large(text.size());
  }
  return text;
}

}  // namespace

size_t FirstInvalidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t min;
    if ((c & 0xe0) == 0xc0) {
      len = 2, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4, min = 0x10000;
    } else {
      return i;
    }
    if (i + len > text.size()) return i;
    uint32_t cp = c & (0x7f >> len);
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += len;
  }
  return std::string_view::npos;
}

std::string StripJsonComments(std::string_view text) {
  std::string out(text);
  const size_t n = out.size();
  // Pass 1: comments become spaces; line breaks stay so that positions keep their line.
  for (size_t i = 0; i < n;) {
    const char c = out[i];
    if (c == '"') {
      ++i;
      while (i < n && out[i] != '"') i += out[i] == '\\' ? 2 : 1;
      ++i;
    } else if (c == '/' && i + 1 < n && out[i + 1] == '/') {
      while (i < n && out[i] != '\n') out[i++] = ' ';
    } else if (c == '/' && i + 1 < n && out[i + 1] == '*') {
      out[i++] = ' ';
      out[i++] = ' ';
      while (i < n && !(out[i] == '*' && i + 1 < n && out[i + 1] == '/')) {
        if (out[i] != '\n') out[i] = ' ';
        ++i;
      }
      for (int k = 0; k < 2 && i < n; ++k) out[i++] = ' ';
    } else {
      ++i;
    }
  }
  // Pass 2: a comma followed (after white space) by '}' or ']' goes.
  for (size_t i = 0; i < n;) {
    const char c = out[i];
    if (c == '"') {
      ++i;
      while (i < n && out[i] != '"') i += out[i] == '\\' ? 2 : 1;
      ++i;
    } else if (c == ',') {
      size_t j = i + 1;
      while (j < n && (out[j] == ' ' || out[j] == '\t' || out[j] == '\n' || out[j] == '\r')) ++j;
      if (j < n && (out[j] == '}' || out[j] == ']')) out[i] = ' ';
      i = j;
    } else {
      ++i;
    }
  }
  return out;
}

Result<ClientConfig> ParseClientConfig(std::string_view text, const std::string& path,
                                       bool require_servers) {
  const size_t bad = FirstInvalidUtf8(text);
  if (bad != std::string_view::npos) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(text[bad]));
    return Status::InvalidArgument(path + ": not UTF-8 text (byte " + hex + " at offset " +
                                   std::to_string(bad) + ")");
  }
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return Status::InvalidArgument(path + ": empty file, not a JSON configuration");
  }
  auto parsed = ParseJson(StripJsonComments(text));
  if (!parsed.ok()) {
    return Status::InvalidArgument(path + ": not valid JSON (" + parsed.status().message() + ")");
  }
  ClientConfig c;
  c.path = path;
  c.doc = std::move(*parsed);
  if (!c.doc.is_object()) {
    return Status::InvalidArgument(path + ": expected a JSON object at the top, found " +
                                   JsonTypeName(c.doc));
  }
  bool found = false;
  if (c.doc.contains("mcpServers")) {
    found = true;
    RETURN_IF_ERROR(ReadServerMap(path, "/mcpServers", c.doc["mcpServers"], "", &c.servers));
  }
  if (c.doc.contains("servers")) {
    found = true;
    RETURN_IF_ERROR(ReadServerMap(path, "/servers", c.doc["servers"], "", &c.servers));
  }
  if (c.doc.contains("mcp") && c.doc["mcp"].is_object() && c.doc["mcp"].contains("servers")) {
    found = true;
    RETURN_IF_ERROR(ReadServerMap(path, "/mcp/servers", c.doc["mcp"]["servers"], "", &c.servers));
  }
  // ~/.claude.json keeps much else per project (history, trust); only mcpServers is ours.
  if (c.doc.contains("projects") && c.doc["projects"].is_object()) {
    for (const auto& [project, entry] : c.doc["projects"].items()) {
      if (!entry.is_object() || !entry.contains("mcpServers")) continue;
      found = true;
      RETURN_IF_ERROR(ReadServerMap(path, "/projects/" + PointerToken(project) + "/mcpServers",
                                    entry["mcpServers"], project, &c.servers));
    }
  }
  if (!found && require_servers) {
    return Status::InvalidArgument(path +
                                   ": not an MCP client configuration: no \"mcpServers\" "
                                   "(Claude, Cursor) or \"servers\" (VS Code) object");
  }
  c.client = ClientFromPath(path);
  if (c.client.empty()) c.client = c.doc.contains("servers") ? "VS Code" : "MCP client";
  return c;
}

Result<ClientConfig> LoadClientConfig(const std::string& path, bool require_servers) {
  ASSIGN_OR_RETURN(std::string text, ReadCapped(path));
  return ParseClientConfig(text, path, require_servers);
}

std::vector<std::string> DefaultConfigPaths(const std::string& home, const std::string& cwd,
                                            const std::string& config_home) {
  auto here = [&](const std::string& rel) { return cwd.empty() ? rel : cwd + "/" + rel; };
  std::vector<std::string> paths;
  std::string xdg = config_home;
  if (xdg.empty() && !home.empty()) xdg = home + "/.config";
  if (!xdg.empty()) paths.push_back(xdg + "/Claude/claude_desktop_config.json");
  if (!home.empty()) {
    paths.push_back(home + "/Library/Application Support/Claude/claude_desktop_config.json");
  }
  paths.push_back(here(".mcp.json"));
  if (!home.empty()) paths.push_back(home + "/.claude.json");
  paths.push_back(here(".cursor/mcp.json"));
  if (!home.empty()) paths.push_back(home + "/.cursor/mcp.json");
  paths.push_back(here(".vscode/mcp.json"));
  if (!xdg.empty()) paths.push_back(xdg + "/Code/User/mcp.json");
  if (!home.empty()) {
    paths.push_back(home + "/Library/Application Support/Code/User/mcp.json");
  }
  return paths;
}

}  // namespace airlock::doctor
