#include "core/audit_event.h"

#include "core/hash.h"
#include "core/json.h"

namespace airlock {

std::string ComputeEventHash(const std::string& prev_hash, const AuditEvent& e) {
  return ComputeEventHash(prev_hash, e, CanonicalJson(e.payload));
}

std::string ComputeEventHash(const std::string& prev_hash, const AuditEvent& e,
                             const std::string& canonical_payload) {
  // Exactly CanonicalJson({seq, at_ms, action_id, principal, event, payload}) with its keys
  // in sorted order, written out directly: building a JSON object per event costs more than
  // the hash itself. core_test checks it against the generic form.
  std::string body;
  body.reserve(prev_hash.size() + canonical_payload.size() + 160);
  // Strings as CanonicalJson writes them, without a JSON value each (JsonTextWriter).
  auto string = [&body](std::string_view s) { JsonTextWriter(&body).String(s); };
  body += prev_hash;
  body += "\n{\"action_id\":";
  string(e.action_id);
  body += ",\"at_ms\":";
  body += std::to_string(e.at_ms);
  body += ",\"event\":";
  string(e.event);
  body += ",\"payload\":";
  body += canonical_payload;
  body += ",\"principal\":";
  string(e.principal);
  body += ",\"seq\":";
  body += std::to_string(e.seq);
  body += "}";
  return Sha256Hex(body);
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
