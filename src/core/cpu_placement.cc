#include "core/cpu_placement.h"

#include <sched.h>

namespace airlock {

int PlaceAwayFromCaller(pthread_t thread) {
  const int here = ::sched_getcpu();
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (here < 0 || here >= CPU_SETSIZE || ::sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
    return -1;
  }
  CPU_CLR(here, &allowed);
  if (CPU_COUNT(&allowed) == 0) return -1;  // nowhere else to go
  if (::pthread_setaffinity_np(thread, sizeof(allowed), &allowed) != 0) return -1;
  return here;
}

}  // namespace airlock
