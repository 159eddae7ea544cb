#include "net/curl.h"

#include "core/dynlib.h"

#include <algorithm>
#include <cctype>
#include <mutex>
#include <utility>

namespace airlock::net {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

size_t AppendBody(char* data, size_t size, size_t count, void* user) {
  auto* response = static_cast<HttpResponse*>(user);
  const size_t n = size * count;
  const size_t room = kMaxResponseBody - response->body.size();
  response->body.append(data, std::min(n, room));
  if (n > room) response->truncated = true;
  // Everything is "taken", so a long body is read (and dropped) to its end rather than
  // turning into a transfer error; the timeout bounds how long that may take.
  return n;
}

int CheckCancel(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* cancel = static_cast<const std::atomic<bool>*>(user);
  return cancel->load(std::memory_order_relaxed) ? 1 : 0;  // non-zero aborts the transfer
}

}  // namespace

Result<CurlApi> LoadCurlApi(const char* library) {
  ASSIGN_OR_RETURN(void* lib, OpenLibrary(library, "libcurl4"));
  CurlApi api;
  Status st = ResolveSymbol(lib, library, "curl_global_init", &api.global_init);
  if (st.ok()) st = ResolveSymbol(lib, library, "curl_easy_init", &api.easy_init);
  if (st.ok()) st = ResolveSymbol(lib, library, "curl_easy_cleanup", &api.easy_cleanup);
  if (st.ok()) st = ResolveSymbol(lib, library, "curl_easy_setopt", &api.easy_setopt);
  if (st.ok()) st = ResolveSymbol(lib, library, "curl_easy_perform", &api.easy_perform);
  if (st.ok()) st = ResolveSymbol(lib, library, "curl_easy_getinfo", &api.easy_getinfo);
  if (st.ok()) st = ResolveSymbol(lib, library, "curl_easy_strerror", &api.easy_strerror);
  if (st.ok()) st = ResolveSymbol(lib, library, "curl_slist_append", &api.slist_append);
  if (st.ok()) st = ResolveSymbol(lib, library, "curl_slist_free_all", &api.slist_free_all);
  if (!st.ok()) {
    dlclose(lib);
    return Status::Internal(st.message() + " (is it libcurl 7.x or later?)");
  }
  return api;  // the library stays loaded: the pointers above point into it
}

Result<const CurlApi*> Curl() {
  static std::once_flag once;
  static CurlApi api;
  static Status status;
  std::call_once(once, [] {
    Result<CurlApi> loaded = LoadCurlApi(kCurlLibrary);
    if (!loaded.ok()) {
      status = loaded.status();
      return;
    }
    api = *loaded;
    // Once, before any handle exists: older libcurl's global init is not thread-safe.
    CURLcode code = api.global_init(CURL_GLOBAL_DEFAULT);
    if (code != CURLE_OK) {
      status = Status::Internal(std::string("curl_global_init failed: ") + api.easy_strerror(code));
    }
  });
  if (!status.ok()) return status;
  return &api;
}

// ---- CurlList -------------------------------------------------------------------------------

CurlList::~CurlList() {
  if (list_ != nullptr) api_->slist_free_all(list_);
}

CurlList::CurlList(CurlList&& other) noexcept
    : api_(other.api_), list_(std::exchange(other.list_, nullptr)) {}

CurlList& CurlList::operator=(CurlList&& other) noexcept {
  if (this != &other) {
    if (list_ != nullptr) api_->slist_free_all(list_);
    api_ = other.api_;
    list_ = std::exchange(other.list_, nullptr);
  }
  return *this;
}

Status CurlList::Append(const std::string& item) {
  // curl_slist_append copies the string; on failure the old list is still ours.
  curl_slist* next = api_->slist_append(list_, item.c_str());
  if (next == nullptr) return Status::Internal("curl_slist_append: out of memory");
  list_ = next;
  return Status::Ok();
}

// ---- CurlEasy -------------------------------------------------------------------------------

CurlEasy::CurlEasy(const CurlApi* api, CURL* handle)
    : api_(api), handle_(handle), error_(new char[CURL_ERROR_SIZE]()) {}

CurlEasy::~CurlEasy() {
  if (handle_ != nullptr) api_->easy_cleanup(handle_);
}

CurlEasy::CurlEasy(CurlEasy&& other) noexcept
    : api_(other.api_),
      handle_(std::exchange(other.handle_, nullptr)),
      error_(std::move(other.error_)) {}

CurlEasy& CurlEasy::operator=(CurlEasy&& other) noexcept {
  if (this != &other) {
    if (handle_ != nullptr) api_->easy_cleanup(handle_);
    api_ = other.api_;
    handle_ = std::exchange(other.handle_, nullptr);
    error_ = std::move(other.error_);
  }
  return *this;
}

Result<CurlEasy> CurlEasy::Create() {
  ASSIGN_OR_RETURN(const CurlApi* api, Curl());
  CURL* handle = api->easy_init();
  if (handle == nullptr) return Status::Internal("curl_easy_init failed");
  CurlEasy easy(api, handle);
  // The buffer lives on the heap, so it stays put when the CurlEasy is moved.
  RETURN_IF_ERROR(easy.Set(CURLOPT_ERRORBUFFER, easy.error_.get()));
  RETURN_IF_ERROR(easy.Set(CURLOPT_NOSIGNAL, 1L));
  return easy;
}

Status CurlEasy::Check(CURLcode code, const char* what, bool transfer) const {
  if (code == CURLE_OK) return Status::Ok();
  std::string detail = transfer && error_ != nullptr ? std::string(error_.get()) : std::string();
  if (detail.empty()) detail = api_->easy_strerror(code);
  return Status::IoError(std::string(what) + ": " + detail + " (curl error " +
                         std::to_string(static_cast<int>(code)) + ")");
}

Status CurlEasy::Perform() {
  error_[0] = '\0';
  return Check(api_->easy_perform(handle_), "transfer failed", /*transfer=*/true);
}

long CurlEasy::ResponseCode() const {
  long code = 0;
  if (api_->easy_getinfo(handle_, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK) return 0;
  return code;
}

// ---- Post -----------------------------------------------------------------------------------

std::string UrlOrigin(std::string_view url) {
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos) return "(a URL without a scheme)";
  const size_t start = sep + 3;
  size_t end = url.find_first_of("/?#", start);
  if (end == std::string_view::npos) end = url.size();
  std::string_view authority = url.substr(start, end - start);
  // user:password@host: the credentials are not part of the origin.
  if (size_t at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  return Lower(url.substr(0, sep)) + "://" + std::string(authority);
}

Result<HttpResponse> Post(const std::string& url, const std::vector<std::string>& headers,
                          std::string_view body, int timeout_ms, const std::atomic<bool>* cancel) {
  const std::string origin = UrlOrigin(url);
  const std::string scheme = Lower(url.substr(0, url.find("://")));
  if (url.find("://") == std::string::npos || (scheme != "http" && scheme != "https")) {
    return Status::InvalidArgument("POST " + origin + ": only http:// and https:// URLs");
  }
  ASSIGN_OR_RETURN(CurlEasy easy, CurlEasy::Create());
  CurlList list(easy.api());
  for (const std::string& h : headers) RETURN_IF_ERROR(list.Append(h));
  // libcurl sends "Expect: 100-continue" for bodies over 1 KiB and then waits a second for a
  // "100 Continue" that many small receivers never send.
  RETURN_IF_ERROR(list.Append("Expect:"));

  HttpResponse response;
  const long timeout = std::max(1L, static_cast<long>(timeout_ms));
  auto setup = [&]() -> Status {
    RETURN_IF_ERROR(easy.Set(CURLOPT_URL, url.c_str()));
    RETURN_IF_ERROR(easy.Set(CURLOPT_FOLLOWLOCATION, 0L));
    RETURN_IF_ERROR(easy.Set(CURLOPT_TIMEOUT_MS, timeout));
    RETURN_IF_ERROR(easy.Set(CURLOPT_CONNECTTIMEOUT_MS, timeout));
    RETURN_IF_ERROR(easy.Set(CURLOPT_POST, 1L));
    // Never a null pointer: with POSTFIELDS null, libcurl reads the body from its read
    // callback, which defaults to fread() on stdin.
    RETURN_IF_ERROR(easy.Set(CURLOPT_POSTFIELDS, body.empty() ? "" : body.data()));
    RETURN_IF_ERROR(easy.Set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size())));
    RETURN_IF_ERROR(easy.Set(CURLOPT_HTTPHEADER, list.get()));
    RETURN_IF_ERROR(easy.Set(CURLOPT_USERAGENT, "airlock"));
    RETURN_IF_ERROR(easy.Set(CURLOPT_WRITEFUNCTION, &AppendBody));
    RETURN_IF_ERROR(easy.Set(CURLOPT_WRITEDATA, static_cast<void*>(&response)));
    if (cancel != nullptr) {
      RETURN_IF_ERROR(easy.Set(CURLOPT_XFERINFOFUNCTION, &CheckCancel));
      RETURN_IF_ERROR(
          easy.Set(CURLOPT_XFERINFODATA, const_cast<void*>(static_cast<const void*>(cancel))));
      RETURN_IF_ERROR(easy.Set(CURLOPT_NOPROGRESS, 0L));
    }
    // Defence in depth besides the scheme check above; libcurl before 7.85 lacks the
    // option, and there the check above is what holds.
    CURLcode code = easy.api().easy_setopt(easy.get(), CURLOPT_PROTOCOLS_STR, "http,https");
    if (code != CURLE_OK && code != CURLE_UNKNOWN_OPTION) {
      return Status::Internal(std::string("setting the protocols: ") +
                              easy.api().easy_strerror(code));
    }
    return Status::Ok();
  };
  Status st = setup();
  if (st.ok()) st = easy.Perform();
  // libcurl's messages name the host and port at most, never the path.
  if (!st.ok()) return st.Annotate("POST " + origin);
  response.status = easy.ResponseCode();
  return response;
}

}  // namespace airlock::net
