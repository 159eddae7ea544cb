#include "audit/audit.h"

#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/json.h"

namespace airlock::audit {
namespace {

std::string Seq(int64_t seq) {
  return std::to_string(seq);
}

// Checks one event against the one before it (prev_seq 0 / kGenesisHash for the first).
// Returns the problem, or nullopt if the event continues the chain.
std::optional<std::string> CheckLink(const AuditEvent& e, int64_t prev_seq,
                                     const std::string& prev_hash) {
  const int64_t expected = prev_seq + 1;
  if (e.seq > expected) {
    if (e.seq == expected + 1) return "event " + Seq(expected) + " is missing (deleted)";
    return "events " + Seq(expected) + " to " + Seq(e.seq - 1) + " are missing (deleted)";
  }
  if (e.seq < expected) {
    return "event " + Seq(e.seq) + " appears after event " + Seq(prev_seq) +
           " (reordered or inserted)";
  }
  if (e.prev_hash != prev_hash) {
    if (prev_seq == 0) return "event 1 does not start the chain (inserted or reordered)";
    return "event " + Seq(e.seq) + " does not follow event " + Seq(prev_seq) +
           " (inserted or reordered)";
  }
  if (e.hash != ComputeEventHash(e.prev_hash, e)) {
    return "event " + Seq(e.seq) + " was modified: its hash does not match its contents";
  }
  return std::nullopt;
}

VerifyReport Bad(int64_t events, int64_t seq, std::string problem) {
  VerifyReport bad;
  bad.ok = false;
  bad.events = events;
  bad.first_bad_seq = seq;
  bad.problem = std::move(problem);
  return bad;
}

}  // namespace

Result<VerifyReport> Verify(Store& store) {
  // The head is read first: it only grows, so every event up to it must be in the scan
  // that follows; events past it may be appends made meanwhile (checked again below).
  ASSIGN_OR_RETURN(AuditHead head, store.RecordedHead());

  int64_t events = 0;
  int64_t prev_seq = 0;
  std::string prev_hash = kGenesisHash;
  std::optional<VerifyReport> bad;
  std::optional<std::string> hash_at_head;
  // From the lowest possible seq, so that forged rows numbered 0 or below are seen too.
  Status scan = store.ScanAudit(std::numeric_limits<int64_t>::min(), "", [&](const AuditEvent& e) {
    ++events;
    if (auto problem = CheckLink(e, prev_seq, prev_hash)) {
      bad = Bad(events, prev_seq + 1, std::move(*problem));
      return false;
    }
    if (e.seq == head.seq) hash_at_head = e.hash;
    prev_seq = e.seq;
    prev_hash = e.hash;
    return true;
  });
  if (!scan.ok()) {
    // An event the store cannot decode (its payload is not JSON) breaks the chain right
    // after the last good one: either that event is unreadable or it is missing.
    if (scan.code() != StatusCode::kCorruption) return scan;
    return Bad(events + 1, prev_seq + 1,
               "event after " + Seq(prev_seq) + " cannot be read: " + scan.message());
  }
  if (bad) return *bad;

  if (prev_seq < head.seq) {
    return Bad(events, prev_seq + 1,
               "the chain ends at " + Seq(prev_seq) + " but " + Seq(head.seq) +
                   " events were recorded (events removed from the end)");
  }
  if (head.seq > 0 && hash_at_head != head.hash) {
    return Bad(events, head.seq,
               "event " + Seq(head.seq) + " does not match the recorded head (modified)");
  }
  if (prev_seq > head.seq) {
    // Appends may have landed while we scanned; the head recorded now must cover them all.
    ASSIGN_OR_RETURN(AuditHead now, store.RecordedHead());
    if (now.seq < prev_seq) {
      return Bad(events, now.seq + 1,
                 "the chain ends at " + Seq(prev_seq) + " but only " + Seq(now.seq) +
                     " events were recorded (events added outside airlock)");
    }
  }
  VerifyReport ok;
  ok.events = events;
  ok.last_seq = prev_seq;
  ok.last_hash = prev_hash;
  return ok;
}

namespace {

// A scalar payload value, shortened for a one-line summary.
std::string ShortValue(const Json& v, size_t max = 40) {
  std::string s;
  if (v.is_object()) {
    s = "{" + std::to_string(v.size()) + "}";
  } else if (v.is_array()) {
    s = "[" + std::to_string(v.size()) + "]";
  } else {
    s = CanonicalJson(v);
  }
  if (s.size() > max) s = s.substr(0, max - 3) + "...";
  return s;
}

// What a reader scans for first: the decision, the vote, the why, then the action's own
// arguments in full (sql="DROP TABLE users"), then whatever else the event carries.
std::string Summary(const Json& payload) {
  constexpr size_t kMax = 160;
  if (!payload.is_object()) return payload.is_null() ? "" : ShortValue(payload, kMax);
  static const char* kFirst[] = {"status", "risk", "vote", "progress", "reason", "why", "error"};
  static const char* kSkip[] = {"args", "effect", "reasons", "agent", "target", "kind"};
  std::vector<std::string> parts;
  auto is_in = [](const std::string& key, const auto& list) {
    for (const char* k : list) {
      if (key == k) return true;
    }
    return false;
  };
  for (const char* key : kFirst) {
    if (payload.contains(key)) parts.push_back(std::string(key) + "=" + ShortValue(payload[key]));
  }
  if (auto it = payload.find("args"); it != payload.end() && it->is_object()) {
    for (const auto& [key, value] : it->items()) {
      parts.push_back(key + "=" + ShortValue(value, 80));
    }
  }
  for (const auto& [key, value] : payload.items()) {
    if (!is_in(key, kFirst) && !is_in(key, kSkip)) parts.push_back(key + "=" + ShortValue(value));
  }
  std::string out;
  for (const auto& p : parts) {
    if (out.size() > kMax) break;
    out += (out.empty() ? "" : " ") + p;
  }
  // Newlines in strings are escaped by the JSON dump; only the length needs a bound.
  if (out.size() > kMax) out = out.substr(0, kMax - 3) + "...";
  return out;
}

std::string Pad(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

}  // namespace

std::string FormatEventLine(const AuditEvent& e) {
  std::string seq = std::to_string(e.seq);
  if (seq.size() < 7) seq.insert(0, 7 - seq.size(), ' ');
  std::string line = seq + "  " + FormatTimeMs(e.at_ms) + "  " + Pad(e.principal, 24) + "  " +
                     Pad(e.event, 16) + "  " + Pad(e.action_id.empty() ? "-" : e.action_id, 20);
  std::string summary = Summary(e.payload);
  if (!summary.empty()) line += "  " + summary;
  // Field values come from agents: keep the line one line whatever they hold.
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

std::string ToJsonLine(const AuditEvent& e) {
  return CanonicalJson(AuditEventToJson(e));
}

}  // namespace airlock::audit
