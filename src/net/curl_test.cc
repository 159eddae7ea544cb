// libcurl through dlopen, against a real HTTP receiver on 127.0.0.1.
#include "net/curl.h"

#include <atomic>
#include <chrono>
#include <future>
#include <string>

#include <gtest/gtest.h>

#include "net/http_test_util.h"

namespace airlock::net {
namespace {

using airlock::testing::HttpReceiver;
using airlock::testing::RefusingPort;
using airlock::testing::Reply;

TEST(Curl, LoadsOnceAndPosts) {
  auto api = Curl();
  ASSERT_TRUE(api.ok()) << api.status().message();
  auto again = Curl();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*api, *again);  // one instance per process

  HttpReceiver receiver([](int) { return Reply{201, "created", "", false}; });
  ASSERT_TRUE(receiver.ok());
  auto r = Post(receiver.Url("/in?x=1"), {"Content-Type: application/json", "X-Test: yes"},
                R"({"a":1})", 30000);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->body, "created");
  EXPECT_FALSE(r->truncated);
  auto got = receiver.requests();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].method, "POST");
  EXPECT_EQ(got[0].target, "/in?x=1");
  EXPECT_EQ(got[0].body, R"({"a":1})");
  EXPECT_EQ(got[0].headers["content-type"], "application/json");
  EXPECT_EQ(got[0].headers["x-test"], "yes");
  EXPECT_EQ(got[0].headers.count("expect"), 0u);  // no 100-continue round trip
}

TEST(Curl, LargeBodyIsSentWhole) {
  HttpReceiver receiver;
  std::string body(300 * 1024, 'x');
  auto r = Post(receiver.Url(), {}, body, 30000);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 200);
  auto got = receiver.requests();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body, body);
}

TEST(Curl, EmptyBody) {
  HttpReceiver receiver;
  auto r = Post(receiver.Url(), {}, std::string_view(), 30000);
  ASSERT_TRUE(r.ok()) << r.status().message();
  auto got = receiver.requests();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].method, "POST");
  EXPECT_EQ(got[0].headers["content-length"], "0");
  EXPECT_EQ(got[0].body, "");
}

TEST(Curl, ErrorStatusIsAResponseNotAnError) {
  HttpReceiver receiver([](int) { return Reply{503, "busy", "", false}; });
  auto r = Post(receiver.Url(), {}, "{}", 30000);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->body, "busy");
}

TEST(Curl, ResponseBodyIsCapped) {
  const std::string big(kMaxResponseBody * 3, 'y');
  HttpReceiver receiver([&](int) { return Reply{200, big, "", false}; });
  auto r = Post(receiver.Url(), {}, "{}", 30000);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.size(), kMaxResponseBody);
  EXPECT_TRUE(r->truncated);
}

TEST(Curl, RedirectsAreNotFollowed) {
  HttpReceiver receiver([](int i) {
    return i == 0 ? Reply{302, "", "Location: /elsewhere\r\n", false} : Reply{};
  });
  auto r = Post(receiver.Url("/first"), {}, "{}", 30000);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 302);
  EXPECT_EQ(receiver.requests().size(), 1u);
}

TEST(Curl, RefusedConnectionIsAnErrorWithoutThePath) {
  RefusingPort down;
  ASSERT_TRUE(down.ok());
  auto r = Post(down.Url("/services/T0/B0/s3cr3t"), {}, "{}", 30000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  const std::string& msg = r.status().message();
  EXPECT_EQ(msg.rfind("POST http://127.0.0.1:", 0), 0u) << msg;
  EXPECT_EQ(msg.find("s3cr3t"), std::string::npos) << msg;
  EXPECT_NE(msg.find("curl error 7"), std::string::npos) << msg;  // CURLE_COULDNT_CONNECT
}

TEST(Curl, OnlyHttpAndHttps) {
  for (const char* url : {"file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1/",
                          "smtp://127.0.0.1/", "127.0.0.1/hook", ""}) {
    auto r = Post(url, {}, "{}", 1000);
    ASSERT_FALSE(r.ok()) << url;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << url;
    EXPECT_NE(r.status().message().find("only http:// and https://"), std::string::npos);
  }
}

// A transfer that would wait for a receiver that never answers ends when told to, well
// before its (ten-minute) timeout.
TEST(Curl, CancelAbandonsATransfer) {
  HttpReceiver receiver([](int) { return Reply{200, "", "", /*hang=*/true}; });
  std::atomic<bool> cancel{false};
  auto fut = std::async(std::launch::async,
                        [&] { return Post(receiver.Url(), {}, "{}", 600000, &cancel); });
  ASSERT_TRUE(receiver.WaitForRequests(1));
  cancel = true;
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  auto r = fut.get();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("curl error 42"), std::string::npos)  // ABORTED_BY_CALLBACK
      << r.status().message();
}

TEST(Curl, MissingLibraryIsAClearError) {
  auto r = LoadCurlApi("libcurl-airlock-test-missing.so.4");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("libcurl-airlock-test-missing.so.4 not found: install "
                                       "libcurl4",
                                       0),
            0u)
      << r.status().message();
}

TEST(Curl, LibraryWithoutCurlIsAClearError) {
  auto r = LoadCurlApi("libm.so.6");  // loads, but is not libcurl
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("libm.so.6 has no curl_global_init"), std::string::npos)
      << r.status().message();
}

TEST(Curl, UrlOrigin) {
  EXPECT_EQ(UrlOrigin("https://hooks.slack.com/services/T0/B0/XXXX"), "https://hooks.slack.com");
  EXPECT_EQ(UrlOrigin("http://user:pw@127.0.0.1:8080/x?token=1"), "http://127.0.0.1:8080");
  EXPECT_EQ(UrlOrigin("HTTPS://Example.com?k=v"), "https://Example.com");
  EXPECT_EQ(UrlOrigin("http://[::1]:9000#frag"), "http://[::1]:9000");
  EXPECT_EQ(UrlOrigin("no-scheme/secret"), "(a URL without a scheme)");
}

}  // namespace
}  // namespace airlock::net
