// Fuzz target for the policy loader: any bytes must yield a Policy or an InvalidArgument
// whose message starts with the file name, never a crash, a hang or an escaped exception.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "policy/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto result = airlock::LoadPolicyText(text, "/fuzz/airlock.yaml");
  if (result.ok()) {
    // A loaded policy must be usable: classify something against every target.
    airlock::Classifier classifier(*result);
    airlock::Effect effect;
    effect.kind = "sql";
    effect.tables.push_back({"users", 1, 2, 3, -1, false, false, true});
    for (const auto& [name, target] : (*result)->targets) {
      (void)classifier.Classify("agent", name, effect);
    }
  } else if (result.status().code() != airlock::StatusCode::kInvalidArgument ||
             result.status().message().rfind("/fuzz/airlock.yaml:", 0) != 0) {
    std::abort();  // every load error must be InvalidArgument naming FILE:LINE:COLUMN
  }
  return 0;
}
