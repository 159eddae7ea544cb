#include "core/audit_event.h"

#include "core/hash.h"
#include "core/json.h"

namespace airlock {

std::string ComputeEventHash(const std::string& prev_hash, const AuditEvent& e) {
  Json body = {{"seq", e.seq},          {"at_ms", e.at_ms}, {"action_id", e.action_id},
               {"principal", e.principal}, {"event", e.event}, {"payload", e.payload}};
  return Sha256Hex(prev_hash + "\n" + CanonicalJson(body));
}

Json AuditEventToJson(const AuditEvent& e) {
  return {{"seq", e.seq},
          {"at_ms", e.at_ms},
          {"action_id", e.action_id},
          {"principal", e.principal},
          {"event", e.event},
          {"payload", e.payload},
          {"prev_hash", e.prev_hash},
          {"hash", e.hash}};
}

}  // namespace airlock
