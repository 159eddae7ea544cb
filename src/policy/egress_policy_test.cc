// A shell target's `network: proxy` and its `egress:` allow list: loaded into the fields the
// connector reads, refused with FILE:LINE:COLUMN when an entry names an address, is not a
// host, or comes without the proxy; and an egress request is classified like an http
// target's request, rules on method, path and body included.
#include <algorithm>

#include <gtest/gtest.h>

#include "policy/policy.h"

namespace airlock {
namespace {

const std::string kFile = "/etc/airlock/airlock.yaml";

std::string WithShell(const std::string& entry, const std::string& extra = "") {
  return "version: 1\n"
         "targets:\n"
         "  web: " +
         entry + "\n" +
         "agents:\n"
         "  - {name: bot, token_sha256: \"" +
         std::string(64, 'a') + "\", scopes: [web]}\n" + extra;
}

std::string ErrorAt(const std::string& text, const std::string& needle) {
  auto r = LoadPolicyText(text, kFile);
  EXPECT_FALSE(r.ok());
  if (r.ok()) return "";
  const std::string& m = r.status().message();
  size_t pos = text.find(needle);
  int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + pos, '\n'));
  EXPECT_EQ(m.rfind(kFile + ":" + std::to_string(line) + ":", 0), 0u) << m;
  return m;
}

TEST(EgressPolicy, LoadsProxyAndAllowList) {
  auto p =
      LoadPolicyText(WithShell("{kind: shell, workspace: /srv/repo, network: proxy, "
                               "egress: [api.example.com, \"*.pypi.org:443\", \"localhost:*\"]}"),
                     kFile);
  ASSERT_TRUE(p.ok()) << p.status().message();
  const TargetSpec* t = (*p)->FindTarget("web");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->fields["network"], "proxy");
  EXPECT_EQ(t->fields["egress"],
            Json::parse(R"(["api.example.com", "*.pypi.org:443", "localhost:*"])"));
}

TEST(EgressPolicy, NoListMeansNothingIsAllowed) {
  auto p = LoadPolicyText(WithShell("{kind: shell, workspace: /srv/repo, network: proxy}"), kFile);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ((*p)->FindTarget("web")->fields["egress"], Json::array());
}

TEST(EgressPolicy, BadEntriesNameTheirPlace) {
  std::string m = ErrorAt(
      WithShell("{kind: shell, workspace: /srv/repo, network: proxy, egress: [\"10.0.0.1:80\"]}"),
      "web:");
  EXPECT_NE(m.find("an IP address cannot be allowed"), std::string::npos) << m;
  m = ErrorAt(WithShell("{kind: shell, workspace: /srv/repo, network: proxy, egress: "
                        "[\"2130706433\"]}"),
              "web:");
  EXPECT_NE(m.find("IP address"), std::string::npos) << m;
  m = ErrorAt(WithShell("{kind: shell, workspace: /srv/repo, network: proxy, egress: "
                        "[\"http://a.test\"]}"),
              "web:");
  EXPECT_NE(m.find("bad entry"), std::string::npos) << m;
  m = ErrorAt(WithShell("{kind: shell, workspace: /srv/repo, network: off, egress: [a.test]}"),
              "web:");
  EXPECT_NE(m.find("egress needs network: proxy"), std::string::npos) << m;
  m = ErrorAt(WithShell("{kind: shell, workspace: /srv/repo, network: socks}"), "web:");
  EXPECT_NE(m.find("proxy"), std::string::npos) << m;  // the modes are listed
}

TEST(EgressPolicy, RequestsAreClassifiedLikeHttpRequests) {
  auto p = LoadPolicyText(
      WithShell("{kind: shell, workspace: /srv/repo, network: proxy, egress: [a.test]}",
                "rules:\n"
                "  - {match: {target: web, method: POST, body: {\"/amount\": {gt: 1000}}}, risk: "
                "high, reason: big}\n"),
      kFile);
  ASSERT_TRUE(p.ok()) << p.status().message();
  Classifier c(*p);
  auto request = [](const std::string& method, const Json& body) {
    Effect e;
    e.kind = "http";
    e.extra = {
        {"method", method}, {"url", "http://a.test:80/pay"}, {"path", "/pay"}, {"body", body}};
    return e;
  };
  EXPECT_EQ(c.Classify("bot", "web", request("GET", nullptr)).risk, Risk::kRead);
  EXPECT_EQ(c.Classify("bot", "web", request("POST", Json{{"amount", 5}})).risk, Risk::kLow);
  EXPECT_EQ(c.Classify("bot", "web", request("POST", Json{{"amount", 5000}})).risk, Risk::kHigh);
  EXPECT_EQ(c.Classify("bot", "web", request("CONNECT", nullptr)).risk, Risk::kLow);
}

}  // namespace
}  // namespace airlock
