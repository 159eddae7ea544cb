// Layer and PathState values: their JSON form, their hash, and the rules a manifest read
// back from JSON must pass before anything acts on it.
#include <exception>
#include <limits>
#include <map>
#include <set>

#include "connectors/shell/layer.h"
#include "connectors/shell/layer_fs.h"
#include "core/hash.h"
#include "core/json.h"

namespace airlock::shell {

using layer_detail::IsHexSha256;
using layer_detail::IsValidUtf8;
using layer_detail::kMaxLinkTargetBytes;
using layer_detail::kMaxPathBytes;

const char* PathTypeName(PathState::Type t) {
  switch (t) {
    case PathState::Type::kAbsent:
      return "absent";
    case PathState::Type::kFile:
      return "file";
    case PathState::Type::kDir:
      return "dir";
    case PathState::Type::kSymlink:
      return "symlink";
    case PathState::Type::kOther:
      return "other";
  }
  return "other";
}

namespace {

bool ParseType(const std::string& s, PathState::Type* t) {
  for (auto c : {PathState::Type::kAbsent, PathState::Type::kFile, PathState::Type::kDir,
                 PathState::Type::kSymlink, PathState::Type::kOther}) {
    if (s == PathTypeName(c)) {
      *t = c;
      return true;
    }
  }
  return false;
}

// Largest file size a manifest may claim; far above any real file, far below overflow
// of the size arithmetic done on it.
constexpr int64_t kMaxFileSize = int64_t{1} << 60;

Status GetInt64(const Json& j, const char* key, int64_t lo, int64_t hi, int64_t* out) {
  auto it = j.find(key);
  if (it == j.end()) return Status::Ok();
  if (it->is_number_unsigned()) {
    uint64_t v = it->get<uint64_t>();
    if (v > static_cast<uint64_t>(hi)) {
      return Status::InvalidArgument(std::string("'") + key + "' out of range");
    }
    *out = static_cast<int64_t>(v);
    return Status::Ok();
  }
  if (!it->is_number_integer()) {
    return Status::InvalidArgument(std::string("'") + key + "' is not an integer");
  }
  int64_t v = it->get<int64_t>();
  if (v < lo || v > hi) return Status::InvalidArgument(std::string("'") + key + "' out of range");
  *out = v;
  return Status::Ok();
}

Status GetString(const Json& j, const char* key, std::string* out) {
  auto it = j.find(key);
  if (it == j.end()) return Status::Ok();
  if (!it->is_string()) {
    return Status::InvalidArgument(std::string("'") + key + "' is not a string");
  }
  *out = it->get<std::string>();
  return Status::Ok();
}

}  // namespace

Status ValidateLayerPath(std::string_view path) {
  if (path.empty()) return Status::InvalidArgument("empty path");
  if (path.size() > kMaxPathBytes) return Status::InvalidArgument("path longer than 4096 bytes");
  if (path.find('\0') != std::string_view::npos) {
    return Status::InvalidArgument("path contains a NUL byte");
  }
  if (!IsValidUtf8(path)) return Status::InvalidArgument("path is not valid UTF-8");
  if (path.front() == '/') {
    return Status::InvalidArgument("absolute path '" + std::string(path) + "'");
  }
  size_t start = 0;
  for (;;) {
    size_t slash = path.find('/', start);
    std::string_view comp = path.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (comp.empty()) {
      return Status::InvalidArgument("empty component in path '" + std::string(path) + "'");
    }
    if (comp == "." || comp == "..") {
      return Status::InvalidArgument("'" + std::string(comp) + "' component in path '" +
                                     std::string(path) + "'");
    }
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return Status::Ok();
}

namespace layer_detail {

Status ValidateState(const PathState& s, bool target) {
  RETURN_IF_ERROR(ValidateLayerPath(s.path));
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("'" + s.path + "' (" + PathTypeName(s.type) + "): " + why);
  };
  if (s.mode > 07777) return bad("mode beyond 07777");
  if (s.size < 0 || s.size > kMaxFileSize) return bad("size out of range");
  if (!s.sha256.empty() && (!IsHexSha256(s.sha256) || s.type != PathState::Type::kFile)) {
    return bad("sha256 must be 64 lowercase hex digits, on files only");
  }
  if (!s.link_target.empty() && s.type != PathState::Type::kSymlink) {
    return bad("link_target on a non-symlink");
  }
  switch (s.type) {
    case PathState::Type::kAbsent:
      if (s.mode != 0 || s.size != 0 || s.mtime_ns != 0 || s.ino != 0) {
        return bad("an absent path has no mode, size, mtime or inode");
      }
      break;
    case PathState::Type::kFile:
      if (target && s.sha256.empty()) return bad("no content hash to restore it from");
      break;
    case PathState::Type::kDir:
      if (s.size != 0) return bad("a directory has no size");
      break;
    case PathState::Type::kSymlink:
      if (s.link_target.empty() || s.link_target.size() > kMaxLinkTargetBytes ||
          s.link_target.find('\0') != std::string::npos || !IsValidUtf8(s.link_target)) {
        return bad("symlink target empty, longer than 4095 bytes, with NUL or not UTF-8");
      }
      if (static_cast<size_t>(s.size) != s.link_target.size()) {
        return bad("size differs from the target length");
      }
      break;
    case PathState::Type::kOther:
      // A device, fifo or socket is never created: capture refuses them.
      if (target) return bad("device nodes, fifos and sockets are never created");
      break;
  }
  return Status::Ok();
}

Status ValidateStates(const std::vector<PathState>& states, bool target) {
  std::map<std::string_view, PathState::Type> types;
  for (const PathState& s : states) {
    RETURN_IF_ERROR(ValidateState(s, target));
    if (!types.emplace(s.path, s.type).second) {
      return Status::InvalidArgument("path '" + s.path + "' listed twice");
    }
  }
  // A path can only exist below a directory. A list that puts anything below a symlink
  // (d -> /etc, then d/passwd) or a file is hostile or corrupt; refuse it whole.
  for (const PathState& s : states) {
    if (s.type == PathState::Type::kAbsent) continue;
    std::string parent = ParentPath(s.path);
    auto it = types.find(parent);
    if (it != types.end() && it->second != PathState::Type::kDir) {
      return Status::InvalidArgument("'" + s.path + "' lies below '" + parent + "', which is " +
                                     PathTypeName(it->second) + ", not a directory");
    }
  }
  return Status::Ok();
}

Json PathStateToJson(const PathState& s) {
  // Zero and empty fields are left out: a deleted tree lists every path, and the common
  // fields of an absent path are all zero.
  Json j = {{"path", s.path}, {"type", PathTypeName(s.type)}};
  if (s.mode != 0) j["mode"] = s.mode;
  if (s.size != 0) j["size"] = s.size;
  if (!s.sha256.empty()) j["sha256"] = s.sha256;
  if (!s.link_target.empty()) j["link_target"] = s.link_target;
  if (s.mtime_ns != 0) j["mtime_ns"] = s.mtime_ns;
  if (s.ino != 0) j["ino"] = s.ino;
  return j;
}

Result<PathState> PathStateFromJson(const Json& j) {
  if (!j.is_object()) return Status::InvalidArgument("path state is not a JSON object");
  static const std::set<std::string> kKeys = {"path",   "type",        "mode",     "size",
                                              "sha256", "link_target", "mtime_ns", "ino"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (kKeys.count(it.key()) == 0) {
      return Status::InvalidArgument("unknown key '" + it.key() + "' in a path state");
    }
  }
  PathState s;
  auto p = j.find("path");
  if (p == j.end() || !p->is_string()) return Status::InvalidArgument("path state without path");
  s.path = p->get<std::string>();
  auto t = j.find("type");
  if (t == j.end() || !t->is_string() || !ParseType(t->get<std::string>(), &s.type)) {
    return Status::InvalidArgument("path state '" + s.path + "' without a known type");
  }
  int64_t mode = 0;
  RETURN_IF_ERROR(GetInt64(j, "mode", 0, 07777, &mode));
  RETURN_IF_ERROR(GetInt64(j, "size", 0, kMaxFileSize, &s.size));
  RETURN_IF_ERROR(GetString(j, "sha256", &s.sha256));
  RETURN_IF_ERROR(GetString(j, "link_target", &s.link_target));
  RETURN_IF_ERROR(GetInt64(j, "mtime_ns", std::numeric_limits<int64_t>::min(),
                           std::numeric_limits<int64_t>::max(), &s.mtime_ns));
  if (auto it = j.find("ino"); it != j.end()) {
    if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<int64_t>() >= 0)) {
      return Status::InvalidArgument("'ino' is not a non-negative integer");
    }
    s.ino = it->get<uint64_t>();
  }
  s.mode = static_cast<uint32_t>(mode);
  return s;
}

Json PathStatesToJson(const std::vector<PathState>& states) {
  Json out = Json::array();
  for (const PathState& s : states) out.push_back(PathStateToJson(s));
  return out;
}

Result<std::vector<PathState>> PathStatesFromJson(const Json& j, const char* what) {
  if (!j.is_array()) return Status::InvalidArgument(std::string(what) + " is not an array");
  std::vector<PathState> out;
  out.reserve(j.size());
  for (const Json& e : j) {
    auto s = PathStateFromJson(e);
    if (!s.ok()) return s.status().Annotate(what);
    out.push_back(std::move(s).value());
  }
  return out;
}

}  // namespace layer_detail

Json LayerToJson(const Layer& layer) {
  try {
    return Json{{"before", layer_detail::PathStatesToJson(layer.before)},
                {"after", layer_detail::PathStatesToJson(layer.after)}};
  } catch (const std::exception&) {
    return Json::object();  // only bad_alloc can get here
  }
}

Result<Layer> LayerFromJson(const Json& j) {
  try {
    if (!j.is_object()) return Status::InvalidArgument("layer is not a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() != "before" && it.key() != "after") {
        return Status::InvalidArgument("unknown key '" + it.key() + "' in a layer");
      }
    }
    auto b = j.find("before");
    auto a = j.find("after");
    if (b == j.end() || a == j.end()) {
      return Status::InvalidArgument("layer needs 'before' and 'after'");
    }
    Layer layer;
    ASSIGN_OR_RETURN(layer.before, layer_detail::PathStatesFromJson(*b, "layer.before"));
    ASSIGN_OR_RETURN(layer.after, layer_detail::PathStatesFromJson(*a, "layer.after"));
    if (layer.before.size() != layer.after.size()) {
      return Status::InvalidArgument("layer.before and layer.after differ in length");
    }
    for (size_t i = 0; i < layer.before.size(); ++i) {
      if (layer.before[i].path != layer.after[i].path) {
        return Status::InvalidArgument("layer.before and layer.after list different paths at " +
                                       std::to_string(i));
      }
      if (i > 0 && !(layer.before[i - 1].path < layer.before[i].path)) {
        return Status::InvalidArgument("layer paths are not sorted and unique at '" +
                                       layer.before[i].path + "'");
      }
    }
    RETURN_IF_ERROR(
        layer_detail::ValidateStates(layer.before, /*target=*/false).Annotate("layer.before"));
    RETURN_IF_ERROR(
        layer_detail::ValidateStates(layer.after, /*target=*/true).Annotate("layer.after"));
    return layer;
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("malformed layer: ") + e.what());
  }
}

std::string LayerHash(const Layer& layer) {
  return Sha256Hex(CanonicalJson(LayerToJson(layer)));
}

}  // namespace airlock::shell
