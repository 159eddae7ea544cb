// Signed checkpoints of the audit chain.
//
// The chain is tamper-evident from inside: whoever edits one event breaks every hash after
// it. Someone who can rewrite the whole store, though, can rewrite the whole chain. A
// checkpoint closes that gap: a line stating "the chain had SEQ events and ended in HASH",
// signed with an Ed25519 key, and kept somewhere else (a log shipper, another machine, a
// ticket). `airlock audit verify --checkpoints FILE --public-key PUB` then checks that the
// store's chain still holds, at every checkpoint's place, the hash the checkpoint names:
// a rewritten history no longer matches, and a forged checkpoint has no valid signature.
//
// The line (JSON, one per checkpoint, keys in this order):
//   {"airlock_checkpoint":1,"seq":N,"hash":"<64 hex>","at_ms":T,"key_id":"<16 hex>",
//    "signature":"<128 hex>"}
// The signature covers "airlock audit checkpoint v1\nseq=N\nhash=H\nat_ms=T\n". key_id is the
// first 8 bytes (hex) of the SHA-256 of the raw 32-byte public key.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/audit_event.h"
#include "core/status.h"

namespace airlock::audit {

struct Checkpoint {
  int64_t seq = 0;        // events in the chain (0: empty)
  std::string hash;       // the last event's hash (the genesis hash when seq is 0)
  int64_t at_ms = 0;      // when it was signed
  std::string key_id;     // 16 hex
  std::string signature;  // 128 hex (64 bytes)
};

// Writes a new Ed25519 key pair: the private key to `private_path` (PEM, mode 0600; refused
// if the file exists) and the public key to `private_path + ".pub"` (PEM, 0644). Returns
// the key id.
Result<std::string> WriteKeyPair(const std::string& private_path);

// The key id of a PEM public or private key file (a private key's own public half).
Result<std::string> KeyIdOf(const std::string& pem_path);

// The checkpoint of a chain that has `seq` events ending in `hash`, signed with the
// private key in `private_path` (refused when others than its owner may read it).
Result<Checkpoint> SignCheckpoint(const std::string& private_path, int64_t seq,
                                  const std::string& hash, int64_t at_ms);

// The line above, without its newline.
std::string CheckpointLine(const Checkpoint& c);

// One line as CheckpointLine writes it: exactly those keys, in any order, each once, with
// the types and forms above. InvalidArgument otherwise (the message never quotes the
// line). Untrusted: it comes from a file the operator keeps elsewhere.
Result<Checkpoint> ParseCheckpointLine(std::string_view line);

// Whether `c`'s signature is valid for the public key in `public_path` (PEM; a private key
// file is accepted too), and its key_id that key's. PermissionDenied when it is not.
Status VerifyCheckpointSignature(const Checkpoint& c, const std::string& public_path);

// What CheckCheckpoints found.
struct CheckpointReport {
  int64_t checked = 0;                // lines read (blank ones not counted)
  int64_t valid = 0;                  // of those, checkpoints with a valid signature
  int64_t newest_seq = 0;             // the newest valid checkpoint's seq and time, so that
  int64_t newest_at_ms = 0;           // a file no one appends to any more shows
  std::vector<std::string> problems;  // one per failed line, for people; empty if ok. A file
                                      // with no checkpoint at all is a problem too.
};

// Checks every checkpoint line of `text` (blank lines skipped) against the chain that
// `scan` walks (every event, in order, until the callback returns false): its signature
// (public key in `public_path`), and that the chain holds the checkpoint's hash at its
// seq. A line that cannot be parsed is a problem, not an error; an error means the chain
// or the key could not be read.
Result<CheckpointReport> CheckCheckpoints(
    std::string_view text, const std::string& public_path,
    const std::function<Status(const std::function<bool(const AuditEvent&)>&)>& scan);

}  // namespace airlock::audit
