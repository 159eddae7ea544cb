// Parsing of the small value languages inside the policy file: integers, rates.
// (Durations and sizes are public: policy.h.) Internal to src/policy/.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace airlock::policy_internal {

// A strict decimal integer: optional sign, digits only, no wraparound. The error message
// has no location; the caller prefixes FILE:LINE:COLUMN.
Result<int64_t> ParseInt64(std::string_view s);

struct Rate {
  int64_t count = 0;
  int64_t window_ms = 0;
};
// "20/min", "5/s", "100/hour".
Result<Rate> ParseRate(std::string_view s);

}  // namespace airlock::policy_internal
