// A mail action's arguments, validated, and the one RFC 5322 message built from them.
//
// The message is built once, at the dry-run, with its Message-ID and Date, and kept in the
// effect: what an approver previews is the exact byte string that Apply later sends, and the
// effect_hash covers all of it. Everything here is untrusted input from an agent, so every
// value that becomes a header is checked: a CR or LF in a subject, an address or a file name
// would let the agent write headers of its own (`Subject: hi\r\nBcc: everyone@...`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/types.h"

namespace airlock::mail {

struct Attachment {
  std::string name;     // a file name, no path, no control characters
  std::string content;  // the raw bytes
};

// The arguments of a mail action: {"to", "cc"?, "bcc"?, "subject", "body",
// "attachments"?: [{"name", "content_base64"}]}. "to"/"cc"/"bcc" are a list of addresses or
// one string of comma-separated addresses.
struct MailRequest {
  std::vector<std::string> to, cc, bcc;
  std::string subject;
  std::string body;
  std::vector<Attachment> attachments;

  size_t RecipientCount() const { return to.size() + cc.size() + bcc.size(); }
};

// Hard bounds on what one action may carry (a message bigger than these is refused as bad
// input before anything is built).
inline constexpr size_t kMaxRecipientsPerMessage = 10'000;
inline constexpr size_t kMaxSubjectBytes = 998;
inline constexpr size_t kMaxMessageBytes = 25 * 1024 * 1024;

// InvalidArgument, naming the field and what is wrong, for anything malformed or hostile.
Result<MailRequest> ParseMailArgs(const Json& args);

// A bare address: local@domain, ASCII, no display name, no quotes, no comments, no CR/LF.
// Deliberately narrower than RFC 5322: what an agent's mail needs, and nothing that a mail
// server might read differently from airlock.
Status ValidateAddress(const std::string& address);

// "Sat, 28 Nov 2026 17:56:35 +0000".
std::string Rfc5322Date(int64_t unix_ms);

struct BuiltMessage {
  std::string message_id;  // "<hex@domain>"
  std::string bytes;       // the whole message, CRLF line ends, ending in CRLF
};

// Builds the message. `from` must be a valid address; `message_id_hex` and `boundary_hex`
// are random hex strings (passed in so that tests are deterministic). Bcc recipients are
// never written into the message: they are only in the envelope.
Result<BuiltMessage> BuildMessage(const MailRequest& req, const std::string& from, int64_t unix_ms,
                                  const std::string& message_id_hex,
                                  const std::string& boundary_hex);

std::string Base64Encode(std::string_view bytes);
// Strict: the standard alphabet with padding; whitespace is not allowed.
Result<std::string> Base64Decode(std::string_view text);

}  // namespace airlock::mail
