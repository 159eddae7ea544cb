#include "connectors/shell/fds.h"

#include <unistd.h>

#include <algorithm>
#include <climits>

namespace airlock::shell {

void CloseAllFdsExcept(std::vector<int> keep) {
  std::sort(keep.begin(), keep.end());
  unsigned from = 3;
  for (int fd : keep) {
    if (fd < static_cast<int>(from)) continue;
    if (static_cast<unsigned>(fd) > from) ::close_range(from, static_cast<unsigned>(fd) - 1, 0);
    from = static_cast<unsigned>(fd) + 1;
  }
  ::close_range(from, UINT_MAX, 0);
}

}  // namespace airlock::shell
