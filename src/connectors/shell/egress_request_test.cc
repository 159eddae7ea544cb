// The egress proxy's parser of what a sandboxed command sends it: every request it accepts
// names one host, one port and one framing; everything ambiguous, obsolete or hostile is
// refused with a reason; and an address in any spelling is never taken for a name.
#include "connectors/shell/egress_request.h"

#include <gtest/gtest.h>

#include <string>

namespace airlock::shell {
namespace {

EgressTarget Parsed(const std::string& head) {
  auto r = ParseEgressRequest(head);
  EXPECT_TRUE(r.ok()) << head << ": " << r.status().message();
  return r.ok() ? *r : EgressTarget{};
}

void ExpectRefused(const std::string& head, const std::string& why) {
  auto r = ParseEgressRequest(head);
  ASSERT_FALSE(r.ok()) << "accepted: " << head;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(why), std::string::npos)
      << "message: " << r.status().message() << " (wanted: " << why << ")";
}

TEST(EgressRequest, AbsoluteFormGet) {
  EgressTarget t = Parsed(
      "GET http://API.Example.com:8080/v1/items?limit=5 HTTP/1.1\r\nHost: api.example.com\r\n"
      "User-Agent: curl\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n");
  EXPECT_EQ(t.method, "GET");
  EXPECT_FALSE(t.tunnel);
  EXPECT_EQ(t.host, "api.example.com");
  EXPECT_EQ(t.port, 8080);
  EXPECT_EQ(t.path, "/v1/items?limit=5");
  EXPECT_EQ(t.Url(), "http://api.example.com:8080/v1/items?limit=5");
  // Host and the proxy's hop-by-hop headers are not forwarded; the others are, in order.
  ASSERT_EQ(t.headers.size(), 2u);
  EXPECT_EQ(t.headers[0].first, "User-Agent");
  EXPECT_EQ(t.headers[1].second, "*/*");
}

TEST(EgressRequest, DefaultPortAndEmptyPath) {
  EgressTarget t = Parsed("HEAD http://example.com HTTP/1.0\r\n\r\n");
  EXPECT_EQ(t.port, 80);
  EXPECT_EQ(t.path, "/");
}

TEST(EgressRequest, PostWithContentLength) {
  EgressTarget t = Parsed(
      "POST http://x.test/v1/m HTTP/1.1\r\nContent-Type: application/json\r\n"
      "Content-Length: 12\r\n\r\n");
  EXPECT_EQ(t.content_length, 12);
  EXPECT_EQ(t.content_type, "application/json");
}

TEST(EgressRequest, Connect) {
  EgressTarget t = Parsed("CONNECT localhost:8443 HTTP/1.1\r\nHost: localhost:8443\r\n\r\n");
  EXPECT_TRUE(t.tunnel);
  EXPECT_EQ(t.host, "localhost");
  EXPECT_EQ(t.port, 8443);
  EXPECT_EQ(t.Url(), "localhost:8443");
}

TEST(EgressRequest, MalformedRequestLines) {
  ExpectRefused("", "empty request line");
  ExpectRefused("GET\r\n\r\n", "malformed request line");
  ExpectRefused("GET  http://a.test/ HTTP/1.1\r\n\r\n", "malformed request line");
  ExpectRefused("GET  HTTP/1.1\r\n\r\n", "empty request target");
  ExpectRefused("GET http://a.test/ HTTP/1.1 extra\r\n\r\n", "malformed request line");
  ExpectRefused("GET http://a.test/ HTTP/2.0\r\n\r\n", "unsupported HTTP version");
  ExpectRefused("get http://a.test/ HTTP/1.1\r\n\r\n", "malformed method");
  ExpectRefused("TRACE http://a.test/ HTTP/1.1\r\n\r\n", "not supported");
  ExpectRefused("GET /relative HTTP/1.1\r\n\r\n", "absolute http:// URL");
  ExpectRefused("GET https://a.test/ HTTP/1.1\r\n\r\n", "absolute http:// URL");
  ExpectRefused("GET ftp://a.test/ HTTP/1.1\r\n\r\n", "absolute http:// URL");
  ExpectRefused("CONNECT a.test HTTP/1.1\r\n\r\n", "CONNECT needs host:port");
  ExpectRefused("CONNECT a.test:0 HTTP/1.1\r\n\r\n", "bad port");
  ExpectRefused("CONNECT a.test:65536 HTTP/1.1\r\n\r\n", "bad port");
  ExpectRefused("CONNECT a.test:+443 HTTP/1.1\r\n\r\n", "bad port");
  ExpectRefused("CONNECT a.test: HTTP/1.1\r\n\r\n", "bad port");
  ExpectRefused("GET http://a.test/\x01 HTTP/1.1\r\n\r\n", "control");
  ExpectRefused("GET http://a.test/\xc3\xa9 HTTP/1.1\r\n\r\n", "non-ASCII");
  ExpectRefused("GET http://a.test/#frag HTTP/1.1\r\n\r\n", "fragment");
  ExpectRefused("GET http://a.test/../etc HTTP/1.1\r\n\r\n", "'..'");
  ExpectRefused("GET http://a.test/%2e%2e/x HTTP/1.1\r\n\r\n", "'..'");
}

TEST(EgressRequest, UserinfoIsRefused) {
  ExpectRefused("GET http://user:pw@a.test/ HTTP/1.1\r\n\r\n", "userinfo");
  ExpectRefused("GET http://allowed.test@evil.test/ HTTP/1.1\r\n\r\n", "userinfo");
  ExpectRefused("CONNECT allowed.test@evil.test:443 HTTP/1.1\r\n\r\n", "userinfo");
}

TEST(EgressRequest, LineEndsAndFolding) {
  ExpectRefused("GET http://a.test/ HTTP/1.1\nHost: a\r\n\r\n", "bare CR or LF");
  ExpectRefused("GET http://a.test/ HTTP/1.1\r\nX: a\rb\r\n\r\n", "bare CR or LF");
  ExpectRefused("GET http://a.test/ HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", "folding");
  ExpectRefused("GET http://a.test/ HTTP/1.1\r\nX: a\r\n\tfolded\r\n\r\n", "folding");
  static const char kNul[] = "GET http://a.test/ HTTP/1.1\r\nX: a\0b\r\n\r\n";
  ExpectRefused(std::string(kNul, sizeof kNul - 1), "NUL");
  ExpectRefused("GET http://a.test/ HTTP/1.1\r\nNo colon here\r\n\r\n", "malformed header line");
  ExpectRefused("GET http://a.test/ HTTP/1.1\r\nBad Name: x\r\n\r\n", "malformed header name");
  ExpectRefused("GET http://a.test/ HTTP/1.1\r\n: x\r\n\r\n", "malformed header line");
  ExpectRefused("GET http://a.test/ HTTP/1.1\r\nX: \x7f\r\n\r\n", "control byte");
}

TEST(EgressRequest, SmugglingIsRefused) {
  ExpectRefused("POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                "Transfer-Encoding");
  ExpectRefused(
      "POST http://a.test/ HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      "Transfer-Encoding");
  ExpectRefused("POST http://a.test/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                "more than one Content-Length");
  ExpectRefused("POST http://a.test/ HTTP/1.1\r\ncontent-length: 5\r\nContent-Length: 6\r\n\r\n",
                "more than one Content-Length");
  ExpectRefused("POST http://a.test/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                "malformed Content-Length");
  ExpectRefused("POST http://a.test/ HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
                "malformed Content-Length");
  ExpectRefused("POST http://a.test/ HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
                "malformed Content-Length");
  ExpectRefused("POST http://a.test/ HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                "malformed Content-Length");
  ExpectRefused("POST http://a.test/ HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n", "over 1 MiB");
  ExpectRefused("GET http://a.test/ HTTP/1.1\r\nContent-Length: 3\r\n\r\n", "GET carries no body");
  ExpectRefused("CONNECT a.test:443 HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
                "CONNECT carries no body");
}

TEST(EgressRequest, Bounds) {
  std::string big =
      "GET http://a.test/ HTTP/1.1\r\nX: " + std::string(kMaxEgressHeadBytes, 'a') + "\r\n\r\n";
  ExpectRefused(big, "over 16 KiB");
  std::string many = "GET http://a.test/ HTTP/1.1\r\n";
  for (int i = 0; i < 101; ++i) many += "X: y\r\n";
  ExpectRefused(many + "\r\n", "more than 100 header lines");
  ExpectRefused("GET http://a.test/ HTTP/1.1\r\n\r\nX: y\r\n\r\n", "empty line inside");
}

TEST(EgressHost, AddressesInEverySpellingAreIpLiterals) {
  for (const char* ip : {"127.0.0.1", "127.1", "2130706433", "0x7f.1", "0x7F000001", "0177.0.0.1",
                         "017700000001", "10.0.0.1.", "[::1]", "::1", "[::ffff:127.0.0.1]",
                         "1.2.3.0x4", "foo.0x10", "example.123", "0x"}) {
    EXPECT_TRUE(IsIpLiteral(ip)) << ip;
    EXPECT_EQ(CheckEgressHost(ip).code(), StatusCode::kPermissionDenied) << ip;
  }
  for (const char* name :
       {"localhost", "api.example.com", "a1.b2", "x-0x1.test", "0xg.test", "123.example"}) {
    EXPECT_FALSE(IsIpLiteral(name)) << name;
    EXPECT_TRUE(CheckEgressHost(name).ok()) << name;
  }
  EXPECT_TRUE(IsIpLiteral("0xg") == false);  // not hex: a (bad) name, not a number
}

TEST(EgressHost, NonNamesAreRefused) {
  for (const char* bad : {"", "a..b", ".a", "-a.test", "a-.test", "a_b.test", "A.test", "a%2e.test",
                          "\xc3\xa9.test", "a b"}) {
    EXPECT_EQ(CheckEgressHost(bad).code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(CheckEgressHost(std::string(254, 'a')).ok());
  EXPECT_FALSE(CheckEgressHost(std::string(64, 'a') + ".test").ok());
}

TEST(EgressAllowList, Forms) {
  auto exact = ParseEgressAllow("api.example.com");
  ASSERT_TRUE(exact.ok());
  auto port = ParseEgressAllow("localhost:8443");
  ASSERT_TRUE(port.ok());
  auto any = ParseEgressAllow("*.example.org:*");
  ASSERT_TRUE(any.ok());
  std::vector<EgressAllow> allow = {*exact, *port, *any};
  EXPECT_TRUE(EgressAllowed(allow, "api.example.com", 443));
  EXPECT_TRUE(EgressAllowed(allow, "api.example.com", 80));
  EXPECT_TRUE(EgressAllowed(allow, "api.example.com.", 443));
  EXPECT_FALSE(EgressAllowed(allow, "api.example.com", 8080));
  EXPECT_FALSE(EgressAllowed(allow, "x.api.example.com", 443));
  EXPECT_TRUE(EgressAllowed(allow, "localhost", 8443));
  EXPECT_FALSE(EgressAllowed(allow, "localhost", 443));
  EXPECT_TRUE(EgressAllowed(allow, "a.b.example.org", 9));
  EXPECT_FALSE(EgressAllowed(allow, "example.org", 443));
  EXPECT_FALSE(EgressAllowed(allow, "evilexample.org", 443));
  EXPECT_FALSE(EgressAllowed({}, "api.example.com", 443));
}

TEST(EgressAllowList, BadEntries) {
  for (const char* bad : {"127.0.0.1", "[::1]:443", "10.1:*", "api.example.com:0", "host:abc",
                          "API.example.com", "", "*", "a..b", "http://a.test"}) {
    EXPECT_FALSE(ParseEgressAllow(bad).ok()) << bad;
  }
  auto ip = ParseEgressAllow("127.0.0.1:80");
  ASSERT_FALSE(ip.ok());
  EXPECT_NE(ip.status().message().find("IP address"), std::string::npos);
}

}  // namespace
}  // namespace airlock::shell
