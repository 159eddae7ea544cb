#include "connectors/shell/seccomp.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>

#include <cerrno>
#include <cstring>
#include <iterator>
#include <string>

namespace airlock::shell {
namespace {

// The rules of seccomp_rules.cc, compiled by libseccomp when airlock was built
// (tools/seccomp_gen): compiling them here took every CLI command 0.2-0.8 ms on the way
// to its sandbox (2026-12-02), and the program is the same every time. SeccompTest checks
// that it still is what libseccomp makes of the rules.
const sock_filter kProgram[] = {
#include "seccomp_filter.inc"
};

}  // namespace

Status InstallSeccompFilter() {
  sock_fprog prog{static_cast<unsigned short>(sizeof kProgram / sizeof kProgram[0]),
                  const_cast<sock_filter*>(kProgram)};
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) {
    return Status::IoError(std::string("seccomp: install filter: ") + std::strerror(errno));
  }
  return Status::Ok();
}

std::vector<sock_filter> BuiltInSeccompProgram() {
  return std::vector<sock_filter>(std::begin(kProgram), std::end(kProgram));
}

}  // namespace airlock::shell
