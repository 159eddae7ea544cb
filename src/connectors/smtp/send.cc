#include "connectors/smtp/send.h"

#include <cstring>

#include "net/curl.h"

namespace airlock::mail {
namespace {

struct Reader {
  const std::string* data;
  size_t offset = 0;
};

size_t ReadChunk(char* buffer, size_t size, size_t nitems, void* userdata) {
  auto* r = static_cast<Reader*>(userdata);
  size_t n = std::min(size * nitems, r->data->size() - r->offset);
  std::memcpy(buffer, r->data->data() + r->offset, n);
  r->offset += n;
  return n;
}

std::string HostOf(const std::string& url) {
  std::string origin = net::UrlOrigin(url);
  size_t sep = origin.find("://");
  std::string host = sep == std::string::npos ? origin : origin.substr(sep + 3);
  if (!host.empty() && host[0] == '[') {
    size_t close = host.find(']');
    return close == std::string::npos ? host : host.substr(1, close - 1);
  }
  size_t colon = host.rfind(':');
  return colon == std::string::npos ? host : host.substr(0, colon);
}

}  // namespace

bool IsLoopbackUrl(const std::string& url) {
  std::string host = HostOf(url);
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

Status SendMessage(const SmtpServer& server, const std::string& from,
                   const std::vector<std::string>& recipients, const std::string& message) {
  const std::string origin = net::UrlOrigin(server.url);
  const bool implicit_tls = server.url.rfind("smtps://", 0) == 0;
  if (!implicit_tls && server.url.rfind("smtp://", 0) != 0) {
    return Status::InvalidArgument("mail server " + origin + ": only smtp:// and smtps://");
  }
  ASSIGN_OR_RETURN(net::CurlEasy easy, net::CurlEasy::Create());
  net::CurlList rcpt(easy.api());
  for (const std::string& r : recipients) RETURN_IF_ERROR(rcpt.Append("<" + r + ">"));
  const std::string mail_from = "<" + from + ">";
  Reader reader{&message};
  const long timeout = std::max(1L, static_cast<long>(server.timeout_ms));
  auto setup = [&]() -> Status {
    RETURN_IF_ERROR(easy.Set(CURLOPT_URL, server.url.c_str()));
    // Only SMTP: a policy URL can never make airlock speak another protocol.
    RETURN_IF_ERROR(easy.Set(CURLOPT_PROTOCOLS_STR, "smtp,smtps"));
    RETURN_IF_ERROR(easy.Set(CURLOPT_TIMEOUT_MS, timeout));
    RETURN_IF_ERROR(easy.Set(CURLOPT_CONNECTTIMEOUT_MS, timeout));
    RETURN_IF_ERROR(easy.Set(CURLOPT_MAIL_FROM, mail_from.c_str()));
    RETURN_IF_ERROR(easy.Set(CURLOPT_MAIL_RCPT, rcpt.get()));
    RETURN_IF_ERROR(easy.Set(CURLOPT_UPLOAD, 1L));
    RETURN_IF_ERROR(easy.Set(CURLOPT_READFUNCTION, &ReadChunk));
    RETURN_IF_ERROR(easy.Set(CURLOPT_READDATA, static_cast<void*>(&reader)));
    RETURN_IF_ERROR(easy.Set(CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(message.size())));
    if (!implicit_tls) {
      // STARTTLS when offered; required (never a password in clear) unless the server is on
      // this machine.
      const bool must = !server.password.empty() && !IsLoopbackUrl(server.url);
      RETURN_IF_ERROR(
          easy.Set(CURLOPT_USE_SSL, must ? long{CURLUSESSL_ALL} : long{CURLUSESSL_TRY}));
    }
    if (!server.username.empty()) {
      RETURN_IF_ERROR(easy.Set(CURLOPT_USERNAME, server.username.c_str()));
      RETURN_IF_ERROR(easy.Set(CURLOPT_PASSWORD, server.password.c_str()));
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(setup());
  Status st = easy.Perform();
  if (!st.ok()) {
    long code = easy.ResponseCode();
    return Status::IoError("sending to " + origin + ": " + st.message() +
                           (code > 0 ? " (last SMTP reply " + std::to_string(code) + ")" : ""));
  }
  return Status::Ok();
}

}  // namespace airlock::mail
