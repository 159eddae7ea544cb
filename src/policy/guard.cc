#include "policy/guard.h"

#include <sstream>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include "policy/policy.h"

namespace airlock::policy_internal {

std::string Where(const std::string& file, int line0, int column0) {
  return file + ":" + std::to_string(line0 < 0 ? 1 : line0 + 1) + ":" +
         std::to_string(column0 < 0 ? 1 : column0 + 1) + ": ";
}

namespace {

// Length of the UTF-8 sequence starting at s[i], or 0 if it is not well formed (overlong
// forms, surrogates and code points above U+10FFFF are refused, as RFC 3629 requires).
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  return len;
}

std::string HexByte(unsigned char c) {
  static const char* kHex = "0123456789abcdef";
  return std::string("0x") + kHex[c >> 4] + kHex[c & 15];
}

// Columns count bytes, as yaml-cpp's marks do, so that all locations agree.
Status CheckUtf8(std::string_view text, const std::string& file) {
  int line = 0, column = 0;
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    size_t len = Utf8SequenceLength(text, i);
    if (len == 0) {
      return Status::InvalidArgument(Where(file, line, column) + "invalid UTF-8 (byte " +
                                     HexByte(c) + "): the policy must be UTF-8 text");
    }
    // Control characters have no place in a policy and are how UTF-16 files and binary
    // junk announce themselves (YAML forbids them too).
    if (len == 1 && c < 0x20 && c != '\n' && c != '\r' && c != '\t') {
      return Status::InvalidArgument(Where(file, line, column) + "control character " + HexByte(c) +
                                     " is not allowed in a policy");
    }
    if (c == 0x7F) {
      return Status::InvalidArgument(Where(file, line, column) +
                                     "control character 0x7f is not allowed in a policy");
    }
    if (c == '\n') {
      ++line;
      column = 0;
    } else {
      column += static_cast<int>(len == 1 ? 1 : len);
    }
    i += len;
  }
  return Status::Ok();
}

// Thrown from the handler to stop the parse at the first problem; never leaves this file.
struct StopParse {};

class GuardHandler : public YAML::EventHandler {
 public:
  explicit GuardHandler(const std::string& file) : file_(file) {}

  const std::string& problem() const { return problem_; }

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  // An alias lets a few bytes expand into gigabytes once the tree is built ("billion
  // laughs"); a policy never needs one, so every alias is refused.
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    Stop(mark, "YAML aliases (*name) are not allowed in a policy: write the value out");
  }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Enter(mark);
  }
  void OnSequenceEnd() override { --depth_; }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Enter(mark);
  }
  void OnMapEnd() override { --depth_; }

 private:
  void Enter(const YAML::Mark& mark) {
    if (++depth_ > kMaxPolicyDepth) {
      Stop(mark, "nesting deeper than " + std::to_string(kMaxPolicyDepth) +
                     " levels is not allowed in a policy");
    }
  }
  [[noreturn]] void Stop(const YAML::Mark& mark, const std::string& why) {
    problem_ = Where(file_, mark.line, mark.column) + why;
    throw StopParse{};
  }

  const std::string& file_;
  std::string problem_;
  int depth_ = 0;
};

class DocumentCounter : public GuardHandler {
 public:
  using GuardHandler::GuardHandler;
  void OnDocumentStart(const YAML::Mark& mark) override { last_start_ = mark; }
  const YAML::Mark& last_start() const { return last_start_; }

 private:
  YAML::Mark last_start_;
};

}  // namespace

Status CheckHostileInput(std::string_view text, const std::string& file) {
  if (text.size() > kMaxPolicyBytes) {
    return Status::InvalidArgument(Where(file, 0, 0) + "the policy is larger than 1 MiB (" +
                                   FormatCount(static_cast<int64_t>(kMaxPolicyBytes)) +
                                   " bytes), the most airlock reads");
  }
  RETURN_IF_ERROR(CheckUtf8(text, file));

  std::istringstream in{std::string(text)};
  DocumentCounter handler(file);
  try {
    YAML::Parser parser(in);
    if (!parser.HandleNextDocument(handler)) return Status::Ok();  // empty: the loader says so
    if (parser.HandleNextDocument(handler)) {
      const YAML::Mark& m = handler.last_start();
      return Status::InvalidArgument(Where(file, m.line, m.column) +
                                     "a policy is one YAML document; found a second one");
    }
  } catch (const StopParse&) {
    return Status::InvalidArgument(handler.problem());
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(Where(file, e.mark.line, e.mark.column) +
                                   "malformed YAML: " + e.msg);
  } catch (const std::exception& e) {
    return Status::InvalidArgument(Where(file, 0, 0) + "cannot parse the policy: " + e.what());
  }
  return Status::Ok();
}

}  // namespace airlock::policy_internal
