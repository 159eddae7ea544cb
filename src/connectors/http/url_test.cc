// The checks every request path and base URL pass before anything is sent, and the header
// references that carry credentials: hostile input is refused with a reason, canonical
// forms are what rules and the allow list see, and no error ever holds a credential.
#include "connectors/http/url.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "connectors/http/credentials.h"

namespace airlock::http_target {
namespace {

std::string Normalized(const std::string& path) {
  auto r = NormalizePath(path);
  EXPECT_TRUE(r.ok()) << path << ": " << r.status().message();
  return r.ok() ? *r : "";
}

void ExpectRefused(const std::string& path, const std::string& why) {
  auto r = NormalizePath(path);
  ASSERT_FALSE(r.ok()) << "accepted: " << path << " as " << *r;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(why), std::string::npos)
      << path << ": " << r.status().message();
}

TEST(HttpPath, CanonicalForms) {
  EXPECT_EQ(Normalized("/"), "/");
  EXPECT_EQ(Normalized("/v1/items"), "/v1/items");
  EXPECT_EQ(Normalized("/v1/items/"), "/v1/items/");
  EXPECT_EQ(Normalized("/v1/items?limit=5&q=a/b?c"), "/v1/items?limit=5&q=a/b?c");
  // Encoded unreserved characters are decoded, so a rule on /v1/admin sees /v1/%61dmin.
  EXPECT_EQ(Normalized("/v1/%61dmin"), "/v1/admin");
  EXPECT_EQ(Normalized("/v1/a%2db%7e"), "/v1/a-b~");
  // Other escapes stay encoded, in upper case.
  EXPECT_EQ(Normalized("/v1/a%20b%3f"), "/v1/a%20b%3F");
  EXPECT_EQ(Normalized("/users/a@b.com:x"), "/users/a@b.com:x");
}

TEST(HttpPath, RefusesWhatLeavesTheBaseOrConfusesParsers) {
  ExpectRefused("", "must start with '/'");
  ExpectRefused("v1/items", "must start with '/'");
  ExpectRefused("http://evil.example/v1", "absolute URL");
  ExpectRefused("https://user:pw@evil.example/", "absolute URL");
  ExpectRefused("//evil.example/v1", "another host");
  ExpectRefused("/\\evil.example", "another host");
  ExpectRefused("/v1/../admin", "'..'");
  ExpectRefused("/v1/./items", "'.'");
  ExpectRefused("/v1/..", "'..'");
  ExpectRefused("/v1/%2e%2e/admin", "'..'");
  ExpectRefused("/v1/%2E./admin", "'..'");
  ExpectRefused("/v1/.%2e", "'..'");
  ExpectRefused("/v1/%2fadmin", "encoded '/'");
  ExpectRefused("/v1/%5Cadmin", "encoded '/'");
  ExpectRefused("/v1/a\r\nX-Evil: 1", "control character");
  ExpectRefused("/v1/a%0d%0aX-Evil:1", "control character");
  ExpectRefused("/v1/a%00", "NUL");
  ExpectRefused(std::string("/v1/a\0b", 7), "control character");
  ExpectRefused("/v1/a b", "space");
  ExpectRefused("/v1/a#frag", "fragment");
  ExpectRefused("/v1/\xc3\xa9", "non-ASCII");
  ExpectRefused("/v1/a%", "'%'");
  ExpectRefused("/v1/a%4", "'%'");
  ExpectRefused("/v1/a%zz", "'%'");
  ExpectRefused("/v1//items", "empty segment");
  ExpectRefused("/v1/a\\b", "backslash");
  ExpectRefused("/v1/<script>", "'<'");
  ExpectRefused("/v1?a=1\r\n", "control character");
  ExpectRefused("/" + std::string(kMaxPathBytes, 'a'), "longer than");
}

TEST(HttpBaseUrl, ParsesAndJoins) {
  auto b = ParseBaseUrl("HTTPS://API.Example.com:8443/api/v2/");
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(b->Origin(), "https://api.example.com:8443");
  EXPECT_EQ(b->prefix, "/api/v2");
  EXPECT_EQ(JoinUrl(*b, "/items?x=1"), "https://api.example.com:8443/api/v2/items?x=1");
  auto v6 = ParseBaseUrl("http://[::1]:7070");
  ASSERT_TRUE(v6.ok()) << v6.status().message();
  EXPECT_EQ(JoinUrl(*v6, "/"), "http://[::1]:7070/");
}

TEST(HttpBaseUrl, Refused) {
  for (const char* bad : {"ftp://x", "x", "http://", "http://user:pw@x", "http://x:0",
                          "http://x:99999", "http://x:", "http://x/?q=1", "http://x/#f",
                          "http://x y", "http://[::1", "http://x/../y", "http://a\"b"}) {
    auto r = ParseBaseUrl(bad);
    EXPECT_FALSE(r.ok()) << "accepted " << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().message().find("pw"), std::string::npos);
    }
  }
}

TEST(HttpAllow, MethodAndGlob) {
  auto r = ParseAllowRule("GET /v1/**");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(AllowMatches(*r, "GET", "/v1"));
  EXPECT_TRUE(AllowMatches(*r, "GET", "/v1/items/3?x=1"));
  EXPECT_FALSE(AllowMatches(*r, "POST", "/v1/items"));
  EXPECT_FALSE(AllowMatches(*r, "GET", "/v2/items"));
  EXPECT_FALSE(AllowMatches(*r, "GET", "/v1x"));
  auto exact = ParseAllowRule("post /v1/messages");
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ(exact->method, "POST");
  EXPECT_TRUE(AllowMatches(*exact, "POST", "/v1/messages"));
  EXPECT_FALSE(AllowMatches(*exact, "POST", "/v1/messages/1"));
  auto any = ParseAllowRule("* /health");
  ASSERT_TRUE(any.ok());
  EXPECT_TRUE(AllowMatches(*any, "DELETE", "/health"));
  auto root = ParseAllowRule("GET /");
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE(AllowMatches(*root, "GET", "/"));
  EXPECT_FALSE(AllowMatches(*root, "GET", "/x"));
  for (const char* bad :
       {"GET", "GET v1/**", "CONNECT /x", "TRACE /x", "GET /v1/[", "GET /../x", ""}) {
    EXPECT_FALSE(ParseAllowRule(bad).ok()) << bad;
  }
}

TEST(HttpMethod, Normalized) {
  EXPECT_EQ(*NormalizeMethod("get"), "GET");
  EXPECT_EQ(*NormalizeMethod("Patch"), "PATCH");
  for (const char* bad : {"", "CONNECT", "TRACE", "GET ", "G\r\nET", "FETCH"}) {
    EXPECT_FALSE(NormalizeMethod(bad).ok()) << bad;
  }
}

// ---- header references ----------------------------------------------------------------------

TEST(HttpHeaders, ParsesReferences) {
  auto env = ParseHeaderSpec("Authorization", "env:API_TOKEN");
  ASSERT_TRUE(env.ok());
  EXPECT_EQ(env->source, HeaderSpec::Source::kEnv);
  EXPECT_EQ(env->ref, "API_TOKEN");
  auto file = ParseHeaderSpec("X-Key", "file:/etc/airlock/key");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->source, HeaderSpec::Source::kFile);
  EXPECT_EQ(DescribeSource(*file), "file:/etc/airlock/key");
  auto literal = ParseHeaderSpec("Accept", "application/json");
  ASSERT_TRUE(literal.ok());
  EXPECT_EQ(literal->source, HeaderSpec::Source::kLiteral);
  EXPECT_EQ(DescribeSource(*literal), "(literal)");
}

TEST(HttpHeaders, RefusesBadNamesAndInjection) {
  EXPECT_FALSE(ParseHeaderSpec("", "x").ok());
  EXPECT_FALSE(ParseHeaderSpec("Bad Name", "x").ok());
  EXPECT_FALSE(ParseHeaderSpec("X:Y", "x").ok());
  EXPECT_FALSE(ParseHeaderSpec("X\r\nY", "x").ok());
  for (const char* own : {"Host", "content-length", "Transfer-Encoding", "Connection", "TE"}) {
    EXPECT_FALSE(ParseHeaderSpec(own, "x").ok()) << own;
  }
  EXPECT_FALSE(ParseHeaderSpec("Authorization", "env:").ok());
  EXPECT_FALSE(ParseHeaderSpec("Authorization", "env:1X").ok());
  EXPECT_FALSE(ParseHeaderSpec("Authorization", "env:A-B").ok());
  EXPECT_FALSE(ParseHeaderSpec("Authorization", "file:").ok());
  auto injected = ParseHeaderSpec("X-Key", "Bearer sk_secret\r\nX-Evil: 1");
  ASSERT_FALSE(injected.ok());
  EXPECT_EQ(injected.status().message().find("sk_secret"), std::string::npos);
}

TEST(HttpHeaders, ResolvesAtSendTimeAndNeverQuotesValues) {
  ASSERT_EQ(setenv("AIRLOCK_URL_TEST_TOKEN", "Bearer sk_live_123", 1), 0);
  auto env = ParseHeaderSpec("Authorization", "env:AIRLOCK_URL_TEST_TOKEN");
  ASSERT_TRUE(env.ok());
  EXPECT_EQ(*ResolveHeaderValue(*env), "Bearer sk_live_123");
  ASSERT_EQ(setenv("AIRLOCK_URL_TEST_TOKEN", "sk_live_123\r\nX-Evil: 1", 1), 0);
  auto injected = ResolveHeaderValue(*env);
  ASSERT_FALSE(injected.ok());
  EXPECT_EQ(injected.status().message().find("sk_live"), std::string::npos);
  EXPECT_NE(injected.status().message().find("env:AIRLOCK_URL_TEST_TOKEN"), std::string::npos);
  unsetenv("AIRLOCK_URL_TEST_TOKEN");
  auto unset = ResolveHeaderValue(*env);
  ASSERT_FALSE(unset.ok());
  EXPECT_EQ(unset.status().code(), StatusCode::kFailedPrecondition);

  const auto dir =
      std::filesystem::temp_directory_path() / ("airlock-url-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string key = (dir / "key").string();
  std::ofstream(key) << "k3y-value\n";
  auto file = ParseHeaderSpec("X-Key", "file:" + key);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(*ResolveHeaderValue(*file), "k3y-value");  // the trailing newline is dropped
  std::ofstream(key) << "k3y-value\nX-Evil: 1\n";
  auto two_lines = ResolveHeaderValue(*file);
  ASSERT_FALSE(two_lines.ok());
  EXPECT_EQ(two_lines.status().message().find("k3y"), std::string::npos);
  std::filesystem::remove_all(dir);
  auto missing = ResolveHeaderValue(*file);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("X-Key"), std::string::npos);
}

}  // namespace
}  // namespace airlock::http_target
