// Feeds arbitrary bytes, read as the JSON arguments of a mail action (what an agent sends to
// `airlock send`, POST /v1/actions or the send_mail tool), to the mail argument parser, and
// builds the message from whatever it accepts. Neither may crash, hang or read out of
// bounds; and an accepted message must hold no header the agent wrote itself: every header
// line of the built message starts with a known name or is a folded continuation.
// Seeds: fuzz/corpus/mail/ (by scenario: header injection, bad addresses, attachments, ...).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "connectors/smtp/message.h"
#include "core/types.h"

namespace {

bool KnownHeaderLine(std::string_view line) {
  for (std::string_view name :
       {"Message-ID: ", "Date: ", "From: ", "To: ", "Cc: ", "Subject: ", "MIME-Version: ",
        "Content-Type: ", "Content-Transfer-Encoding: "}) {
    if (line.substr(0, name.size()) == name) return true;
  }
  return !line.empty() && line[0] == ' ';
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  airlock::Json args = airlock::Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (args.is_discarded()) return 0;
  auto req = airlock::mail::ParseMailArgs(args);
  if (!req.ok()) return 0;
  auto built = airlock::mail::BuildMessage(*req, "fuzz@example.com", 0, "00", "11");
  if (!built.ok()) return 0;
  const std::string& m = built->bytes;
  size_t start = 0;
  while (true) {
    size_t end = m.find("\r\n", start);
    if (end == std::string::npos) abort();  // the headers always end with an empty line
    if (end == start) break;
    if (!KnownHeaderLine(std::string_view(m).substr(start, end - start))) abort();
    start = end + 2;
  }
  return 0;
}
