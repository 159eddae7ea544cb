#include "connectors/http/credentials.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace airlock::http_target {
namespace {

constexpr size_t kMaxHeaderValueBytes = 16 * 1024;

bool IsTokenChar(char c) {
  if (std::isalnum(static_cast<unsigned char>(c))) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

bool IsEnvName(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

std::string LowerCopy(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Tab is allowed inside a value (RFC 9110 field-vchar plus SP/HTAB); every other control
// character, CR and LF above all, would end the header and start another.
bool HasControl(std::string_view v) {
  return std::any_of(v.begin(), v.end(), [](char c) {
    const unsigned char u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7F;
  });
}

Result<std::string> ReadSmallFile(const std::string& path, const std::string& what) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    return Status::FailedPrecondition(what + ": cannot open " + path + ": " + std::strerror(errno));
  }
  std::string out;
  char buf[4096];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      close(fd);
      return Status::FailedPrecondition(what + ": cannot read " + path + ": " + std::strerror(e));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxHeaderValueBytes) {
      close(fd);
      return Status::InvalidArgument(what + ": " + path + " is larger than " +
                                     std::to_string(kMaxHeaderValueBytes) + " bytes");
    }
  }
  close(fd);
  return out;
}

}  // namespace

Result<HeaderSpec> ParseHeaderSpec(std::string_view name, std::string_view value) {
  if (name.empty() || name.size() > 256 || !std::all_of(name.begin(), name.end(), IsTokenChar)) {
    return Status::InvalidArgument("a header name is letters, digits and !#$%&'*+-.^_`|~ only");
  }
  const std::string lower = LowerCopy(name);
  for (const char* own : {"host", "content-length", "transfer-encoding", "connection", "expect",
                          "upgrade", "te", "proxy-connection"}) {
    if (lower == own) {
      return Status::InvalidArgument("header " + std::string(name) +
                                     " is set by airlock itself, not by the policy");
    }
  }
  HeaderSpec h;
  h.name = std::string(name);
  if (value.substr(0, 4) == "env:") {
    h.source = HeaderSpec::Source::kEnv;
    h.ref = std::string(value.substr(4));
    if (!IsEnvName(h.ref)) {
      return Status::InvalidArgument("header " + h.name +
                                     ": env: needs a variable name such as env:API_TOKEN");
    }
  } else if (value.substr(0, 5) == "file:") {
    h.source = HeaderSpec::Source::kFile;
    h.ref = std::string(value.substr(5));
    if (h.ref.empty() || h.ref.find('\0') != std::string::npos) {
      return Status::InvalidArgument("header " + h.name +
                                     ": file: needs a path such as file:/etc/airlock/api-key");
    }
  } else {
    h.ref = std::string(value);
    // The message does not quote the literal: it may be a key pasted into the policy.
    if (HasControl(h.ref)) {
      return Status::InvalidArgument("header " + h.name +
                                     ": the value holds a line break or control character");
    }
    if (h.ref.size() > kMaxHeaderValueBytes) {
      return Status::InvalidArgument("header " + h.name + ": the value is too long");
    }
  }
  return h;
}

Result<std::string> ResolveHeaderValue(const HeaderSpec& spec) {
  const std::string what = "header " + spec.name + " (" + DescribeSource(spec) + ")";
  std::string value;
  switch (spec.source) {
    case HeaderSpec::Source::kLiteral:
      value = spec.ref;
      break;
    case HeaderSpec::Source::kEnv: {
      const char* v = std::getenv(spec.ref.c_str());
      if (v == nullptr) {
        return Status::FailedPrecondition(what +
                                          ": the variable is not set in airlock's "
                                          "environment");
      }
      value = v;
      break;
    }
    case HeaderSpec::Source::kFile: {
      ASSIGN_OR_RETURN(value, ReadSmallFile(spec.ref, what));
      // Files written with `echo` end in a newline that is not part of the key.
      if (!value.empty() && value.back() == '\n') value.pop_back();
      if (!value.empty() && value.back() == '\r') value.pop_back();
      break;
    }
  }
  if (value.size() > kMaxHeaderValueBytes) {
    return Status::InvalidArgument(what + ": the value is too long");
  }
  if (HasControl(value)) {
    return Status::InvalidArgument(what +
                                   ": the value holds a line break or control character; "
                                   "nothing was sent");
  }
  return value;
}

std::string DescribeSource(const HeaderSpec& spec) {
  switch (spec.source) {
    case HeaderSpec::Source::kEnv:
      return "env:" + spec.ref;
    case HeaderSpec::Source::kFile:
      return "file:" + spec.ref;
    case HeaderSpec::Source::kLiteral:
      break;
  }
  return "(literal)";
}

}  // namespace airlock::http_target
