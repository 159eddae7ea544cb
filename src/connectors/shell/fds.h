// Descriptors of a forked child (a sandbox's supervisor and init, the sandbox launcher).
#pragma once

#include <vector>

namespace airlock::shell {

// Closes every fd of this process except 0-2 and `keep` (-1 entries are ignored). A sibling
// thread's fork may have handed the child its pipes' write ends; holding them would delay
// that run's end-of-output.
void CloseAllFdsExcept(std::vector<int> keep);

}  // namespace airlock::shell
