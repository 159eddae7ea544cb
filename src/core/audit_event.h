// One entry of the tamper-evident audit chain.
//
// hash = SHA-256( prev_hash || "\n" || CanonicalJson({seq, at_ms, action_id, principal,
//                                                     event, payload}) )
// The first event's prev_hash is 64 zeros.
#pragma once

#include <cstdint>
#include <string>

#include "core/types.h"

namespace airlock {

struct AuditEvent {
  int64_t seq = 0;
  int64_t at_ms = 0;
  std::string action_id;   // may be empty (e.g. breaker reset, failed authentication)
  std::string principal;   // "agent:support-bot", "approver:alice", "anonymous", "airlock"
  std::string event;       // submitted, denied, pending, approved, rejected, applied, ...
  Json payload = Json::object();  // full arguments, effect, reasons
  std::string prev_hash;
  std::string hash;
  // Optional: CanonicalJson(payload), serialized by the caller. When set, the store writes and
  // hashes it instead of serializing `payload` (which may then be left null): a server's
  // request threads serialize their events in parallel instead of the one writer thread.
  std::string canonical_payload;
};

inline constexpr const char* kGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

std::string ComputeEventHash(const std::string& prev_hash, const AuditEvent& e);
// The same, with CanonicalJson(e.payload) already computed (the store writes it too).
std::string ComputeEventHash(const std::string& prev_hash, const AuditEvent& e,
                             const std::string& canonical_payload);
Json AuditEventToJson(const AuditEvent& e);

}  // namespace airlock
