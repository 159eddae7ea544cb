// Feeds arbitrary bytes to the SQLite connector's changeset decoder and undo-record decoder:
// both read data that comes back from the store, so neither may crash, hang or read out of
// bounds on any input. Seeds: fuzz/corpus/changeset/ (real changesets by scenario).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "connectors/sqlite/changeset.h"
#include "connectors/sqlite/undo.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto cs = airlock::sqlite::DecodeChangeset(bytes);
  if (cs.ok()) {
    // Everything a decoded changeset feeds into must hold up too.
    for (const auto& row : cs->rows) {
      (void)airlock::sqlite::CanonicalRow(*cs, row);
      for (const auto& v : row.new_values) (void)airlock::sqlite::ValueToJson(v);
    }
  }
  (void)airlock::sqlite::DecodeUndo(bytes);
  return 0;
}
