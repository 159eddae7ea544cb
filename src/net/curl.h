// libcurl, loaded on first use.
//
// Linking libcurl costs every `airlock` command ~12 ms at start (it pulls in 33 shared
// libraries; measured), and most commands never send anything. So nothing links it: the
// first caller dlopen()s libcurl.so.4 (once per process, thread-safe) and the functions below
// are reached through pointers resolved with dlsym. <curl/curl.h> is included for its types
// and constants only. A missing libcurl is an error ("libcurl.so.4 not found: install
// libcurl4"), never a crash.
//
// Small and general on purpose: webhooks use Post(); the SMTP connector (later) drives a
// CurlEasy with its own options.
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/status.h"

namespace airlock::net {

inline constexpr const char* kCurlLibrary = "libcurl.so.4";

// The libcurl functions airlock calls.
struct CurlApi {
  CURLcode (*global_init)(long flags) = nullptr;
  CURL* (*easy_init)() = nullptr;
  void (*easy_cleanup)(CURL* h) = nullptr;
  CURLcode (*easy_setopt)(CURL* h, CURLoption option, ...) = nullptr;
  CURLcode (*easy_perform)(CURL* h) = nullptr;
  CURLcode (*easy_getinfo)(CURL* h, CURLINFO info, ...) = nullptr;
  const char* (*easy_strerror)(CURLcode code) = nullptr;
  curl_slist* (*slist_append)(curl_slist* list, const char* s) = nullptr;
  void (*slist_free_all)(curl_slist* list) = nullptr;
};

// libcurl.so.4, loaded and initialised (curl_global_init) by the first call; every later
// call returns the same result, success or error. Thread-safe. Never unloaded.
Result<const CurlApi*> Curl();

// Loads `library` afresh, bypassing the process-wide instance (which always loads
// kCurlLibrary): for tests of a missing or broken library. Does not call curl_global_init.
Result<CurlApi> LoadCurlApi(const char* library);

// A curl_slist (request headers, SMTP recipients), freed on destruction.
class CurlList {
 public:
  explicit CurlList(const CurlApi& api) : api_(&api) {}
  ~CurlList();
  CurlList(CurlList&& other) noexcept;
  CurlList& operator=(CurlList&& other) noexcept;
  CurlList(const CurlList&) = delete;
  CurlList& operator=(const CurlList&) = delete;

  Status Append(const std::string& item);
  curl_slist* get() const { return list_; }

 private:
  const CurlApi* api_;
  curl_slist* list_ = nullptr;
};

// One easy handle, cleaned up on destruction. Like libcurl's own handles, it is used by one
// thread at a time; different handles may be used by different threads at once.
class CurlEasy {
 public:
  // Loads libcurl if needed. The handle starts with NOSIGNAL set (libcurl's timeouts
  // otherwise use SIGALRM, which is not thread-safe) and an error buffer.
  static Result<CurlEasy> Create();
  ~CurlEasy();
  CurlEasy(CurlEasy&& other) noexcept;
  CurlEasy& operator=(CurlEasy&& other) noexcept;
  CurlEasy(const CurlEasy&) = delete;
  CurlEasy& operator=(const CurlEasy&) = delete;

  // curl_easy_setopt. The value must have the exact type libcurl reads for `option` (long,
  // curl_off_t, a pointer or a callback): an int passed where libcurl reads a long is
  // undefined behaviour through the C varargs, so other types do not compile.
  template <typename T>
  Status Set(CURLoption option, T value) {
    static_assert(std::is_same_v<T, long> || std::is_same_v<T, curl_off_t> ||
                      std::is_pointer_v<T> || std::is_null_pointer_v<T>,
                  "curl_easy_setopt takes a long, a curl_off_t or a pointer");
    return Check(api_->easy_setopt(handle_, option, value), "setting an option",
                 /*transfer=*/false);
  }
  // curl_easy_perform; the error says what libcurl said (its error buffer).
  Status Perform();
  // CURLINFO_RESPONSE_CODE of the last transfer (0 if none).
  long ResponseCode() const;

  const CurlApi& api() const { return *api_; }
  CURL* get() const { return handle_; }

 private:
  CurlEasy(const CurlApi* api, CURL* handle);
  // The message is libcurl's error buffer after a transfer (it names host and errno),
  // curl_easy_strerror otherwise (the buffer may hold an earlier transfer's text).
  Status Check(CURLcode code, const char* what, bool transfer) const;

  const CurlApi* api_;
  CURL* handle_;
  std::unique_ptr<char[]> error_;  // CURL_ERROR_SIZE bytes; libcurl writes it during calls
};

struct HttpResponse {
  long status = 0;         // the HTTP status code
  std::string body;        // at most kMaxResponseBody bytes of it
  bool truncated = false;  // the body was longer
};
inline constexpr size_t kMaxResponseBody = 64 * 1024;

// POSTs `body` to an http:// or https:// `url` with `headers` ("Name: value"), and returns
// the response whatever its status (the caller decides what a 500 means). Redirects are not
// followed: a webhook that answers 3xx did not receive the message, and following one could
// send it somewhere the policy never named. Transport failures (refused, DNS, TLS, timeout
// after `timeout_ms` in all) are errors whose message names the URL by UrlOrigin() only.
// When `cancel` becomes true the transfer is abandoned (within about a second).
Result<HttpResponse> Post(const std::string& url, const std::vector<std::string>& headers,
                          std::string_view body, int timeout_ms,
                          const std::atomic<bool>* cancel = nullptr);

// "scheme://host[:port]" of a URL: what logs and errors may show of it. Webhook URLs carry
// their secret in the path or query (Slack: /services/T../B../TOKEN) or in user:password@.
std::string UrlOrigin(std::string_view url);

}  // namespace airlock::net
