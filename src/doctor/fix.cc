#include "doctor/fix.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "core/json.h"
#include "doctor/detect.h"
#include "doctor/redact.h"

namespace airlock::doctor {
namespace {

namespace fs = std::filesystem;

std::string CopyPath(const std::string& from, const std::string& out_dir,
                     std::set<std::string>* used) {
  const fs::path p(from);
  std::string stem = p.filename().string();
  if (stem.size() > 5 && stem.substr(stem.size() - 5) == ".json") stem.resize(stem.size() - 5);
  fs::path dir = out_dir.empty() ? p.parent_path() : fs::path(out_dir);
  if (dir.empty()) dir = ".";
  std::string candidate = (dir / (stem + ".airlock.json")).string();
  for (int k = 2; used->count(candidate); ++k) {
    candidate = (dir / (stem + "-" + std::to_string(k) + ".airlock.json")).string();
  }
  used->insert(candidate);
  return candidate;
}

// What makes two entries the same server: how it is started.
std::string Signature(const ServerEntry& s) {
  return CanonicalJson(Json{{"command", s.command}, {"args", s.args}, {"env", s.env}});
}

Json WrappedEntry(const Json& original, const std::string& name, const FixOptions& o) {
  Json e = original.is_object() ? original : Json::object();
  for (const char* k : {"command", "args", "env", "cwd", "envFile"}) e.erase(k);
  e["command"] = "airlock";
  e["args"] = Json::array({"mcp", "stdio", "--server", name});
  e["env"] = Json{{"AIRLOCK_TOKEN", "<agent token>"}};
  if (!o.policy_path.empty()) e["env"]["AIRLOCK_CONFIG"] = o.policy_path;
  if (e.contains("type")) e["type"] = "stdio";
  return e;
}

bool IsPlainChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '/' || c == '-' || c == '@' || c == '+' || c == '=';
}

// One comment line's worth of untrusted text: no line breaks, no terminal tricks.
std::string CommentSafe(std::string_view s) {
  return DisplaySafe(s);
}

}  // namespace

std::string SanitizeServerName(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) c = '-';
    if (c == '-' && !out.empty() && out.back() == '-') continue;
    out.push_back(c);
  }
  while (!out.empty() && out.front() == '-') out.erase(out.begin());
  if (out.size() > 64) out.resize(64);
  while (!out.empty() && out.back() == '-') out.pop_back();
  if (out.empty()) out = "server";
  if (out == "airlock") out = "airlock-upstream";
  return out;
}

FixPlan PlanFix(const std::vector<ClientConfig>& configs, const FixOptions& o) {
  FixPlan plan;
  std::map<std::string, std::string> taken;  // policy name -> signature
  std::set<std::string> used_paths;
  for (const ClientConfig& c : configs) {
    FixedCopy copy;
    copy.from = c.path;
    copy.doc = c.doc;
    for (const ServerEntry& s : c.servers) {
      if (IsBehindAirlock(s)) continue;
      if (!s.stdio()) {
        plan.remote.push_back({s.name, c.path, RedactText(s.url)});
        continue;
      }
      const std::string base = SanitizeServerName(s.name);
      const std::string sig = Signature(s);
      std::string name = base;
      for (int k = 2; taken.count(name) && taken[name] != sig; ++k) {
        std::string suffix = "-" + std::to_string(k);
        name = base.substr(0, 64 - suffix.size()) + suffix;
      }
      if (!taken.count(name)) {
        taken[name] = sig;
        PolicyEntry e;
        e.name = name;
        e.from_file = c.path;
        e.from_name = s.name;
        e.cwd = s.cwd;
        e.env_file = s.env_file;
        const std::vector<std::string> argv = [&] {
          std::vector<std::string> v{s.command};
          v.insert(v.end(), s.args.begin(), s.args.end());
          return v;
        }();
        for (size_t i = 0; i < argv.size(); ++i) {
          e.command.push_back(RedactArg(argv, i));
          e.redacted |= e.command.back() != argv[i];
          e.client_placeholder |= argv[i].find("${") != std::string::npos;
        }
        for (const auto& [k, v] : s.env) {
          e.env.emplace_back(k, RedactNamedValue(k, v));
          e.redacted |= e.env.back().second != v;
          e.client_placeholder |= v.find("${") != std::string::npos;
        }
        plan.entries.push_back(std::move(e));
      }
      copy.doc[Json::json_pointer(s.pointer)] =
          WrappedEntry(copy.doc[Json::json_pointer(s.pointer)], name, o);
      copy.wrapped.emplace_back(s.name, name);
    }
    if (copy.wrapped.empty()) continue;
    copy.to = CopyPath(c.path, o.out_dir, &used_paths);
    plan.copies.push_back(std::move(copy));
  }
  return plan;
}

std::string YamlScalar(std::string_view s) {
  static const std::set<std::string, std::less<>> kKeywords = {"true", "false", "yes", "no", "on",
                                                               "off",  "null",  "y",   "n",  "~"};
  std::string lower(s);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const bool plain =
      !s.empty() && std::all_of(s.begin(), s.end(), IsPlainChar) && !kKeywords.count(lower) &&
      !(s[0] >= '0' && s[0] <= '9') && s[0] != '.' && s[0] != '@' && s[0] != '=' && s[0] != '+' &&
      !(s[0] == '-' && (s.size() == 1 || !std::isalpha(static_cast<unsigned char>(s[1]))));
  if (plain) return std::string(s);
  return Json(std::string(s)).dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string PolicyYaml(const FixPlan& plan, const FixOptions& o) {
  std::string y;
  y += "# Add to the airlock policy, then check it with `airlock policy check`.\n";
  y += "# **** marks a secret airlock doctor does not print: copy it from the original file\n";
  y += "# (better: rotate it and use the new one). Without tools: rules every tool call is high\n";
  y += "# and waits for approval; add rules such as  tools: [{tool: \"read_*\", risk: read}]\n";
  y += "mcp_servers:\n";
  if (plan.entries.empty()) y += "  {}\n";
  for (const PolicyEntry& e : plan.entries) {
    y += "  " + YamlScalar(e.name) + ":  # \"" + CommentSafe(e.from_name) + "\" in " +
         CommentSafe(e.from_file) + "\n";
    y += "    command: [";
    for (size_t i = 0; i < e.command.size(); ++i) {
      y += (i ? ", " : "") + YamlScalar(e.command[i]);
    }
    y += "]\n";
    if (!e.env.empty()) {
      y += "    env: {";
      for (size_t i = 0; i < e.env.size(); ++i) {
        y += (i ? ", " : "") + YamlScalar(e.env[i].first) + ": " + YamlScalar(e.env[i].second);
      }
      y += "}\n";
    }
    y += "    sandbox: " + YamlScalar(o.sandbox) +
         "  # a shell target: the server runs in its sandbox\n";
    if (e.redacted) y += "    # **** above: copy the secret from the original file\n";
    if (e.client_placeholder) {
      y += "    # ${...} above was the client's to fill in: put the value itself here\n";
    }
    if (!e.cwd.empty()) {
      y += "    # it ran in " + CommentSafe(e.cwd) + ": make that the sandbox's workspace\n";
    }
    if (!e.env_file.empty()) {
      y += "    # it read variables from " + CommentSafe(e.env_file) + ": move them into env\n";
    }
  }
  if (!plan.remote.empty()) {
    y += "# Remote servers, left as they are in the copies: to gate one, add\n";
    y += "#   NAME: {url: URL}\n";
    y += "# above (with headers: {Authorization: \"env:VAR\"} for credentials the client sent:\n";
    y += "# airlock then holds them, not the agent) and point the client at airlock serve's\n";
    y += "# /mcp/NAME with the agent's token.\n";
    for (const RemoteServer& r : plan.remote) {
      y += "#   " + CommentSafe(r.name) + " (" + CommentSafe(r.file) + "): " + CommentSafe(r.url) +
           "\n";
    }
  }
  return y;
}

Status WriteFixedCopy(const FixedCopy& copy, const std::vector<std::string>& originals) {
  std::error_code ec;
  const fs::path to = fs::absolute(copy.to, ec).lexically_normal();
  for (const std::string& o : originals) {
    const fs::path orig = fs::absolute(o, ec).lexically_normal();
    if (to == orig || (fs::exists(to, ec) && fs::equivalent(to, orig, ec))) {
      return Status::InvalidArgument(copy.to +
                                     ": is one of the files checked; not writing over it");
    }
  }
  const fs::path dir = to.parent_path();
  fs::create_directories(dir, ec);
  if (ec) return Status::IoError(dir.string() + ": cannot create: " + ec.message());
  std::string tmpl = (dir / ".airlock-doctor.XXXXXX").string();
  const int fd = mkstemp(tmpl.data());  // 0600
  if (fd < 0)
    return Status::IoError(dir.string() + ": cannot create a file: " + std::strerror(errno));
  const std::string text = copy.doc.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = errno;
      close(fd);
      unlink(tmpl.c_str());
      return Status::IoError(copy.to + ": cannot write: " + std::strerror(e));
    }
    done += static_cast<size_t>(n);
  }
  const bool synced = fsync(fd) == 0;
  const int sync_errno = errno;
  if (close(fd) != 0 || !synced) {
    const int e = synced ? errno : sync_errno;
    unlink(tmpl.c_str());
    return Status::IoError(copy.to + ": cannot write: " + std::strerror(e));
  }
  // rename() replaces a symlink at the destination, never the file it points to.
  if (rename(tmpl.c_str(), to.c_str()) != 0) {
    const int e = errno;
    unlink(tmpl.c_str());
    return Status::IoError(copy.to + ": cannot write: " + std::strerror(e));
  }
  return Status::Ok();
}

}  // namespace airlock::doctor
