// The SQLite store's schema: what an airlock store is, how one is recognised, created and
// opened. Internal to src/store.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "store/sqlite_db.h"
#include "store/store.h"

namespace airlock::sqlite {

inline constexpr int kSchemaVersion = 1;
inline constexpr int kBusyTimeoutMs = 10'000;

// The meta table's keys.
inline constexpr const char* kMetaApp = "app";  // 'airlock'
inline constexpr const char* kMetaSchemaVersion = "schema_version";
// SHA-256 of the schema SQL that last ran on the file: an open skips the schema (a write
// transaction) when it is this build's.
inline constexpr const char* kMetaSchemaSha = "schema_sha256";
inline constexpr const char* kMetaHeadSeq = "audit_head_seq";  // the recorded audit head
inline constexpr const char* kMetaHeadHash = "audit_head_hash";

// Opens the write connection to the store at `path`, creating the file, its directories and
// the schema as StoreOptions say. An existing file is checked on a read-only connection
// before anything is written to it, so a file that is not an airlock store is never
// modified: Open fails with Corruption("<path> is not an airlock store: ...").
Result<std::unique_ptr<Db>> OpenWriter(const std::string& path, const StoreOptions& options);

// A read-only connection to an opened store (for Store::Read and the audit scans).
Result<std::unique_ptr<Db>> OpenReader(const std::string& path);

}  // namespace airlock::sqlite
