#include "connectors/smtp/message.h"

#include <ctime>
#include <set>

namespace airlock::mail {
namespace {

constexpr size_t kMaxAddressBytes = 254;  // RFC 5321 path limit
constexpr size_t kMaxLocalPartBytes = 64;
constexpr size_t kMaxAttachmentNameBytes = 255;
constexpr size_t kMaxBodyLineBytes = 998;  // RFC 5322 2.1.1; longer lines go base64

const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

bool IsAtext(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-/=?^_`{|}~").find(static_cast<char>(c)) !=
         std::string_view::npos;
}

// Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF.
bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      unsigned char d = s[i + k];
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

bool IsAscii(std::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x80) return false;
  }
  return true;
}

// The header-injection check: a header value may hold no CR, LF or other control character
// (a tab is folding whitespace and harmless).
Status CheckHeaderText(std::string_view value, const std::string& field) {
  for (unsigned char c : value) {
    if (c == '\r' || c == '\n') {
      return Status::InvalidArgument(field +
                                     " contains a line break (CR or LF): refused, as it could "
                                     "add mail headers; nothing was sent");
    }
    if ((c < 0x20 && c != '\t') || c == 0x7F) {
      return Status::InvalidArgument(field + " contains a control character; nothing was sent");
    }
  }
  return Status::Ok();
}

Result<std::vector<std::string>> ParseAddressList(const Json& v, const std::string& field) {
  std::vector<std::string> raw;
  if (v.is_null()) return raw;
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    size_t start = 0;
    while (start <= s.size()) {
      size_t comma = s.find(',', start);
      if (comma == std::string::npos) comma = s.size();
      raw.push_back(s.substr(start, comma - start));
      start = comma + 1;
    }
  } else if (v.is_array()) {
    for (const Json& a : v) {
      if (!a.is_string()) return Status::InvalidArgument("\"" + field + "\" must list strings");
      raw.push_back(a.get<std::string>());
    }
  } else {
    return Status::InvalidArgument("\"" + field +
                                   "\" must be an address, a comma-separated list or an array");
  }
  std::vector<std::string> out;
  for (std::string& a : raw) {
    // Spaces around commas are list formatting; a line break is not, and is checked below.
    size_t b = a.find_first_not_of(" \t"), e = a.find_last_not_of(" \t");
    std::string trimmed = b == std::string::npos ? "" : a.substr(b, e - b + 1);
    if (trimmed.empty() && v.is_string() && raw.size() == 1 && a.empty()) continue;
    Status st = ValidateAddress(trimmed);
    if (!st.ok()) return Status::InvalidArgument("\"" + field + "\": " + st.message());
    out.push_back(std::move(trimmed));
    if (out.size() > kMaxRecipientsPerMessage) {
      return Status::InvalidArgument("\"" + field + "\": too many addresses");
    }
  }
  return out;
}

std::string LowerAscii(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

// "To: a@x, b@y" folded so that no line exceeds 78 characters where it can be helped.
std::string AddressHeader(const std::string& name, const std::vector<std::string>& list) {
  std::string out = name + ": ";
  size_t line = out.size();
  for (size_t i = 0; i < list.size(); ++i) {
    std::string item = list[i] + (i + 1 < list.size() ? "," : "");
    if (i > 0 && line + 1 + item.size() > 78) {
      out += "\r\n ";
      line = 1;
    } else if (i > 0) {
      out += " ";
      ++line;
    }
    out += item;
    line += item.size();
  }
  return out + "\r\n";
}

// RFC 2047 encoded words, each under 76 characters, split between UTF-8 characters.
std::string EncodedWords(std::string_view text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    size_t end = std::min(text.size(), i + 45);
    while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
    if (!out.empty()) out += "\r\n ";
    out += "=?UTF-8?B?" + Base64Encode(text.substr(i, end - i)) + "?=";
    i = end;
  }
  return out;
}

std::string SubjectHeader(const std::string& subject) {
  // Plain ASCII that fits one line stays readable; anything else is encoded, which also
  // keeps non-ASCII and long subjects within the line limit.
  if (IsAscii(subject) && subject.size() <= 900) return "Subject: " + subject + "\r\n";
  return "Subject: " + EncodedWords(subject) + "\r\n";
}

std::string Base64Lines(std::string_view bytes) {
  std::string b = Base64Encode(bytes), out;
  out.reserve(b.size() + b.size() / 76 * 2 + 2);
  for (size_t i = 0; i < b.size(); i += 76) out += b.substr(i, 76) + "\r\n";
  return out;
}

// The body in canonical form: every line ending CRLF (a bare CR or LF would be read
// differently by different servers), ending with CRLF.
std::string CrlfText(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 40 + 2);
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\r') {
      out += "\r\n";
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else if (c == '\n') {
      out += "\r\n";
    } else {
      out += c;
    }
  }
  if (out.size() < 2 || out.compare(out.size() - 2, 2, "\r\n") != 0) out += "\r\n";
  return out;
}

bool Fits7bit(std::string_view crlf_text) {
  size_t line = 0;
  for (unsigned char c : crlf_text) {
    if (c >= 0x80 || c == 0) return false;
    if (c == '\n') {
      line = 0;
    } else if (++line > kMaxBodyLineBytes) {
      return false;
    }
  }
  return true;
}

// The text part's headers and content.
std::string TextPart(const std::string& body) {
  std::string text = CrlfText(body);
  if (Fits7bit(text)) {
    return "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" +
           text;
  }
  return "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
         Base64Lines(body);
}

Status CheckAttachmentName(const std::string& name) {
  if (name.empty()) return Status::InvalidArgument("an attachment needs a \"name\"");
  if (name.size() > kMaxAttachmentNameBytes) {
    return Status::InvalidArgument("attachment name is longer than 255 bytes");
  }
  RETURN_IF_ERROR(CheckHeaderText(name, "attachment name"));
  for (unsigned char c : name) {
    if (c >= 0x80) {
      return Status::InvalidArgument(
          "attachment names outside ASCII are not supported yet; nothing was sent");
    }
    if (c == '"' || c == '\\' || c == '/' || c == '\t') {
      return Status::InvalidArgument(
          "attachment name may not contain '\"', '\\', '/' or a tab: it is a file name, not "
          "a path");
    }
  }
  return Status::Ok();
}

}  // namespace

Status ValidateAddress(const std::string& address) {
  RETURN_IF_ERROR(CheckHeaderText(address, "address"));
  if (address.empty()) return Status::InvalidArgument("empty address");
  if (address.size() > kMaxAddressBytes) {
    return Status::InvalidArgument("address longer than 254 bytes");
  }
  size_t at = address.rfind('@');
  if (at == std::string::npos || at == 0 || at + 1 == address.size() || address.find('@') != at) {
    return Status::InvalidArgument("'" + address + "' is not an address of the form local@domain");
  }
  std::string_view local(address.data(), at),
      domain(address.data() + at + 1, address.size() - at - 1);
  if (local.size() > kMaxLocalPartBytes) {
    return Status::InvalidArgument("'" + address + "': the part before '@' is over 64 bytes");
  }
  if (local.front() == '.' || local.back() == '.' || local.find("..") != std::string_view::npos) {
    return Status::InvalidArgument("'" + address + "': misplaced '.' before the '@'");
  }
  for (unsigned char c : local) {
    if (!IsAtext(c) && c != '.') {
      return Status::InvalidArgument("'" + address +
                                     "': only letters, digits, '.' and !#$%&'*+-/=?^_`{|}~ are "
                                     "allowed before the '@' (no spaces, quotes or brackets)");
    }
  }
  size_t label = 0;
  for (size_t i = 0; i <= domain.size(); ++i) {
    char c = i < domain.size() ? domain[i] : '.';
    if (c == '.') {
      if (label == 0 || domain[i - 1] == '-' || domain[i - label] == '-') {
        return Status::InvalidArgument("'" + address + "': the domain is not a host name");
      }
      label = 0;
      continue;
    }
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok || ++label > 63) {
      return Status::InvalidArgument("'" + address + "': the domain is not a host name");
    }
  }
  return Status::Ok();
}

Result<MailRequest> ParseMailArgs(const Json& args) {
  if (!args.is_object()) return Status::InvalidArgument("a mail action's arguments are an object");
  static const std::set<std::string> kKeys = {"to", "cc", "bcc", "subject", "body", "attachments"};
  for (const auto& [k, v] : args.items()) {
    (void)v;
    if (kKeys.count(k) == 0) {
      return Status::InvalidArgument("unknown mail argument \"" + k +
                                     "\" (known: to, cc, bcc, subject, body, attachments)");
    }
  }
  MailRequest r;
  auto field = [&](const char* k) { return args.contains(k) ? args[k] : Json(nullptr); };
  ASSIGN_OR_RETURN(r.to, ParseAddressList(field("to"), "to"));
  ASSIGN_OR_RETURN(r.cc, ParseAddressList(field("cc"), "cc"));
  ASSIGN_OR_RETURN(r.bcc, ParseAddressList(field("bcc"), "bcc"));
  if (r.RecipientCount() == 0) {
    return Status::InvalidArgument("a message needs at least one recipient (to, cc or bcc)");
  }
  if (r.RecipientCount() > kMaxRecipientsPerMessage) {
    return Status::InvalidArgument("too many recipients in one message");
  }
  std::set<std::string> seen;
  for (const auto* list : {&r.to, &r.cc, &r.bcc}) {
    for (const std::string& a : *list) {
      if (!seen.insert(LowerAscii(a)).second) {
        return Status::InvalidArgument("recipient '" + a + "' is listed twice");
      }
    }
  }
  if (!args.contains("subject") || !args["subject"].is_string()) {
    return Status::InvalidArgument("a message needs \"subject\": a string");
  }
  r.subject = args["subject"].get<std::string>();
  RETURN_IF_ERROR(CheckHeaderText(r.subject, "subject"));
  if (!ValidUtf8(r.subject)) return Status::InvalidArgument("subject is not valid UTF-8");
  if (r.subject.size() > kMaxSubjectBytes) {
    return Status::InvalidArgument("subject is longer than 998 bytes");
  }
  if (!args.contains("body") || !args["body"].is_string()) {
    return Status::InvalidArgument("a message needs \"body\": a string");
  }
  r.body = args["body"].get<std::string>();
  if (!ValidUtf8(r.body)) return Status::InvalidArgument("body is not valid UTF-8");
  size_t total = r.body.size();
  if (args.contains("attachments") && !args["attachments"].is_null()) {
    if (!args["attachments"].is_array()) {
      return Status::InvalidArgument("\"attachments\" must be an array");
    }
    for (const Json& a : args["attachments"]) {
      if (!a.is_object() || !a.contains("name") || !a["name"].is_string() ||
          !a.contains("content_base64") || !a["content_base64"].is_string() || a.size() != 2) {
        return Status::InvalidArgument(
            "each attachment is {\"name\": STRING, \"content_base64\": STRING}");
      }
      Attachment att;
      att.name = a["name"].get<std::string>();
      RETURN_IF_ERROR(CheckAttachmentName(att.name));
      auto content = Base64Decode(a["content_base64"].get_ref<const std::string&>());
      if (!content.ok()) {
        return Status::InvalidArgument("attachment '" + att.name +
                                       "': " + content.status().message());
      }
      att.content = std::move(*content);
      total += att.content.size();
      if (total > kMaxMessageBytes) {
        return Status::InvalidArgument("the message is over 25 MiB");
      }
      r.attachments.push_back(std::move(att));
    }
  }
  if (total > kMaxMessageBytes) return Status::InvalidArgument("the message is over 25 MiB");
  return r;
}

std::string Rfc5322Date(int64_t unix_ms) {
  time_t t = static_cast<time_t>(unix_ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  static const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buf[64];
  snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday], tm.tm_mday,
           kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

Result<BuiltMessage> BuildMessage(const MailRequest& req, const std::string& from, int64_t unix_ms,
                                  const std::string& message_id_hex,
                                  const std::string& boundary_hex) {
  RETURN_IF_ERROR(ValidateAddress(from));
  BuiltMessage m;
  m.message_id = "<" + message_id_hex + "@" + from.substr(from.rfind('@') + 1) + ">";
  std::string& out = m.bytes;
  out += "Message-ID: " + m.message_id + "\r\n";
  out += "Date: " + Rfc5322Date(unix_ms) + "\r\n";
  out += "From: " + from + "\r\n";
  // Bcc recipients get the message through the envelope only: a Bcc header would show
  // them to every other recipient.
  if (!req.to.empty()) {
    out += AddressHeader("To", req.to);
  } else {
    out += "To: undisclosed-recipients:;\r\n";
  }
  if (!req.cc.empty()) out += AddressHeader("Cc", req.cc);
  out += SubjectHeader(req.subject);
  out += "MIME-Version: 1.0\r\n";
  if (req.attachments.empty()) {
    out += TextPart(req.body);
  } else {
    // The boundary is random: the agent cannot know it, so cannot end a part early from
    // inside the body. "=_" never occurs in base64 text.
    const std::string boundary = "=_airlock_" + boundary_hex;
    out += "Content-Type: multipart/mixed; boundary=\"" + boundary + "\"\r\n\r\n";
    out += "--" + boundary + "\r\n" + TextPart(req.body);
    for (const Attachment& a : req.attachments) {
      out += "--" + boundary + "\r\n";
      out += "Content-Type: application/octet-stream; name=\"" + a.name + "\"\r\n";
      out += "Content-Disposition: attachment; filename=\"" + a.name + "\"\r\n";
      out += "Content-Transfer-Encoding: base64\r\n\r\n";
      out += Base64Lines(a.content);
    }
    out += "--" + boundary + "--\r\n";
  }
  if (out.size() > kMaxMessageBytes + kMaxMessageBytes / 3 + 64 * 1024) {
    return Status::InvalidArgument("the message is over 25 MiB");
  }
  return m;
}

std::string Base64Encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

Result<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return Status::InvalidArgument("not base64 (length)");
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int pad = 0;
    if (last && text[i + 3] == '=') pad = text[i + 2] == '=' ? 2 : 1;
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      int d = k >= 4 - pad ? 0 : val(text[i + k]);
      if (d < 0) return Status::InvalidArgument("not base64 (bad character)");
      v = (v << 6) | static_cast<uint32_t>(d);
    }
    out += static_cast<char>(v >> 16);
    if (pad < 2) out += static_cast<char>((v >> 8) & 0xFF);
    if (pad < 1) out += static_cast<char>(v & 0xFF);
    // Non-canonical padding bits would let two texts decode to the same bytes.
    if ((pad == 1 && (v & 0xFF) != 0) || (pad == 2 && (v & 0xFFFF) != 0)) {
      return Status::InvalidArgument("not base64 (padding)");
    }
  }
  return out;
}

}  // namespace airlock::mail
