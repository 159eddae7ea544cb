// The audit chain seen from outside the store: verifying it and printing it.
//
// The store appends (Store / StoreTxn::AppendAudit); this part checks that what is on disk is
// still the chain that was written: no event modified, removed, inserted or reordered.
#pragma once

#include <cstdint>
#include <string>

#include "core/audit_event.h"
#include "core/status.h"
#include "store/store.h"

namespace airlock::audit {

struct VerifyReport {
  bool ok = true;
  int64_t events = 0;         // events read from the chain
  int64_t first_bad_seq = 0;  // the first sequence number where the chain breaks; 0 if ok
  std::string problem;        // for people; empty if ok
  // When ok: the last verified event's seq and hash (0 and the genesis hash for an empty
  // chain), what a checkpoint of this chain signs.
  int64_t last_seq = 0;
  std::string last_hash;
};

// Walks the whole chain and checks, event by event: seq is the previous one + 1 (from 1),
// prev_hash is the previous event's hash, hash matches the event's contents; and that the
// chain ends at the head recorded beside it. A tampered chain is a report (ok = false),
// not an error; an error means the store could not be read at all.
Result<VerifyReport> Verify(Store& store);

// One aligned line for people: seq, time, principal, event, action id, payload summary.
std::string FormatEventLine(const AuditEvent& e);

// The event as compact JSON (AuditEventToJson) on one line, without the newline.
std::string ToJsonLine(const AuditEvent& e);

}  // namespace airlock::audit
