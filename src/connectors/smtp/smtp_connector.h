// The mail target (`kind: smtp`): one action is one message.
//
// A message cannot be dry-run without sending it, so the dry-run builds it: the exact
// RFC 5322 bytes (Message-ID, Date, headers, MIME parts) go into the effect with the
// envelope, and effect_hash covers them all. Apply sends those bytes and nothing else, so
// the message that leaves after an approval is byte-for-byte the one the approver saw.
//
// effect (kind "mail") extra: from, recipients [{address, field: to|cc|bcc}],
// recipient_count, subject, body (a preview, at most kBodyPreviewBytes), body_truncated,
// attachments [{name, size, sha256}], size (bytes of the message), message_id, message (the
// bytes), irreversible: true.
//
// Sent mail cannot be recalled: the undo record says so, and after a crash between the
// send and the store's commit IsApplied answers false, which the gateway records as an
// unknown outcome (never a resend).
#pragma once

#include <memory>

#include "connectors/connector.h"

namespace airlock {

inline constexpr size_t kBodyPreviewBytes = 4000;

// fields: {url, from, username?, password_env? | password_file?, max_recipients?,
// timeout_ms?} (validated by the policy loader).
Result<std::unique_ptr<Connector>> CreateSmtpConnector(const ConnectorConfig& config);

}  // namespace airlock
