// Sends one prebuilt message over SMTP with libcurl (net/curl.h: loaded on first use).
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace airlock::mail {

struct SmtpServer {
  std::string url;       // smtp://host[:port] or smtps://host[:port]
  std::string username;  // "" = no AUTH
  std::string password;  // never logged, never part of an error
  int64_t timeout_ms = 60'000;
};

// Whether `url` names a loopback host (127.0.0.0/8, ::1, localhost): there a plain-text
// connection without STARTTLS is acceptable; elsewhere a password never travels in clear.
bool IsLoopbackUrl(const std::string& url);

// MAIL FROM `from`, RCPT TO each of `recipients`, DATA `message` (libcurl dot-stuffs it).
// OK only when the server accepted every recipient and the data. The error names the
// server by scheme://host:port and says what it answered; it never holds the password.
Status SendMessage(const SmtpServer& server, const std::string& from,
                   const std::vector<std::string>& recipients, const std::string& message);

}  // namespace airlock::mail
