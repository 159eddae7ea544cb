#include "connectors/smtp/message.h"

#include <gtest/gtest.h>

namespace airlock::mail {
namespace {

constexpr int64_t kWhen = 1795888595000;  // Sat, 28 Nov 2026 17:56:35 +0000

MailRequest One() {
  MailRequest r;
  r.to = {"ann@example.com"};
  r.subject = "Your ticket";
  r.body = "Hello Ann,\nit is fixed.\n";
  return r;
}

TEST(MailMessage, BuildsTheExactMessage) {
  auto m = BuildMessage(One(), "support@example.com", kWhen, "abc123", "b0");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->message_id, "<abc123@example.com>");
  EXPECT_EQ(m->bytes,
            "Message-ID: <abc123@example.com>\r\n"
            "Date: Sat, 28 Nov 2026 17:56:35 +0000\r\n"
            "From: support@example.com\r\n"
            "To: ann@example.com\r\n"
            "Subject: Your ticket\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 7bit\r\n"
            "\r\n"
            "Hello Ann,\r\nit is fixed.\r\n");
}

TEST(MailMessage, BccIsNeverAHeader) {
  MailRequest r = One();
  r.cc = {"bob@example.com"};
  r.bcc = {"hidden@example.org"};
  auto m = BuildMessage(r, "support@example.com", kWhen, "1", "b");
  ASSERT_TRUE(m.ok());
  EXPECT_NE(m->bytes.find("Cc: bob@example.com\r\n"), std::string::npos);
  EXPECT_EQ(m->bytes.find("hidden@example.org"), std::string::npos);
  EXPECT_EQ(m->bytes.find("Bcc"), std::string::npos);
  EXPECT_EQ(r.RecipientCount(), 3u);
}

TEST(MailMessage, AttachmentsAreBase64PartsWithARandomBoundary) {
  MailRequest r = One();
  r.attachments.push_back({"report.csv", std::string("a,b\n1,2\n\0\xff", 10)});
  auto m = BuildMessage(r, "support@example.com", kWhen, "1", "f00d");
  ASSERT_TRUE(m.ok());
  const std::string& b = m->bytes;
  EXPECT_NE(b.find("Content-Type: multipart/mixed; boundary=\"=_airlock_f00d\"\r\n"),
            std::string::npos);
  EXPECT_NE(b.find("Content-Disposition: attachment; filename=\"report.csv\"\r\n"),
            std::string::npos);
  EXPECT_NE(b.find(Base64Encode(r.attachments[0].content) + "\r\n"), std::string::npos);
  EXPECT_EQ(b.substr(b.size() - 20), "--=_airlock_f00d--\r\n");
}

TEST(MailMessage, NonAsciiSubjectAndLongLinesAreEncoded) {
  MailRequest r = One();
  r.subject = "Caf\xc3\xa9 \xe2\x98\x95";
  r.body = std::string(1200, 'x');
  auto m = BuildMessage(r, "support@example.com", kWhen, "1", "b");
  ASSERT_TRUE(m.ok());
  EXPECT_NE(m->bytes.find("Subject: =?UTF-8?B?" + Base64Encode(r.subject) + "?=\r\n"),
            std::string::npos);
  EXPECT_NE(m->bytes.find("Content-Transfer-Encoding: base64"), std::string::npos);
  // No line over 998 characters anywhere.
  size_t start = 0;
  while (start < m->bytes.size()) {
    size_t end = m->bytes.find("\r\n", start);
    ASSERT_NE(end, std::string::npos);
    EXPECT_LE(end - start, 998u);
    start = end + 2;
  }
}

TEST(MailMessage, ABareDotLineStaysInTheMessage) {
  // libcurl dot-stuffs on the wire; the message itself keeps the line as written.
  MailRequest r = One();
  r.body = "one\n.\ntwo";
  auto m = BuildMessage(r, "support@example.com", kWhen, "1", "b");
  ASSERT_TRUE(m.ok());
  EXPECT_NE(m->bytes.find("\r\none\r\n.\r\ntwo\r\n"), std::string::npos);
}

TEST(MailArgs, ParsesListsAndStrings) {
  auto r = ParseMailArgs(
      {{"to", "a@x.org, b@y.org"},
       {"cc", Json::array({"c@z.org"})},
       {"bcc", "d@z.org"},
       {"subject", "s"},
       {"body", "b"},
       {"attachments", Json::array({{{"name", "a.txt"}, {"content_base64", "aGk="}}})}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->to, (std::vector<std::string>{"a@x.org", "b@y.org"}));
  EXPECT_EQ(r->cc, (std::vector<std::string>{"c@z.org"}));
  EXPECT_EQ(r->bcc, (std::vector<std::string>{"d@z.org"}));
  ASSERT_EQ(r->attachments.size(), 1u);
  EXPECT_EQ(r->attachments[0].content, "hi");
  EXPECT_EQ(r->RecipientCount(), 4u);
}

std::string ErrorOf(const Json& args) {
  auto r = ParseMailArgs(args);
  EXPECT_FALSE(r.ok()) << args.dump();
  return r.ok() ? "" : r.status().message();
}

TEST(MailArgs, RefusesHeaderInjection) {
  Json base = {{"to", "a@x.org"}, {"subject", "hi"}, {"body", "b"}};
  Json j = base;
  j["subject"] = "hi\r\nBcc: victim@x.org";
  EXPECT_NE(ErrorOf(j).find("subject contains a line break"), std::string::npos);
  j = base;
  j["subject"] = "hi\nBcc: victim@x.org";
  EXPECT_NE(ErrorOf(j).find("line break"), std::string::npos);
  j = base;
  j["to"] = "a@x.org\r\nBcc: victim@x.org";
  EXPECT_NE(ErrorOf(j).find("line break"), std::string::npos);
  j = base;
  j["cc"] = Json::array({"c@x.org\rX: y"});
  EXPECT_NE(ErrorOf(j).find("line break"), std::string::npos);
  j = base;
  j["attachments"] =
      Json::array({{{"name", "a\r\nContent-Type: text/html"}, {"content_base64", ""}}});
  EXPECT_NE(ErrorOf(j).find("line break"), std::string::npos);
  j = base;
  j["subject"] = std::string("a\0b", 3);
  EXPECT_NE(ErrorOf(j).find("control character"), std::string::npos);
}

TEST(MailArgs, RefusesBadAddressesAndShapes) {
  for (const char* bad : {"", "plain", "@x.org", "a@", "a@@x.org", "a b@x.org", "\"a\"@x.org",
                          "Ann <a@x.org>", "a@x..org", "a@-x.org", "a@x-.org", ".a@x.org",
                          "a..b@x.org", "a@x.org,", "a@[127.0.0.1]", "a@x_y.org"}) {
    Json j = {{"to", bad}, {"subject", "s"}, {"body", "b"}};
    auto r = ParseMailArgs(j);
    EXPECT_FALSE(r.ok()) << bad;
  }
  EXPECT_FALSE(ParseMailArgs({{"to", "a@x.org"}, {"body", "b"}}).ok());     // no subject
  EXPECT_FALSE(ParseMailArgs({{"to", "a@x.org"}, {"subject", "s"}}).ok());  // no body
  EXPECT_FALSE(ParseMailArgs({{"subject", "s"}, {"body", "b"}}).ok());      // nobody
  EXPECT_FALSE(ParseMailArgs({{"to", 5}, {"subject", "s"}, {"body", "b"}}).ok());
  EXPECT_FALSE(ParseMailArgs({{"to", "a@x.org"}, {"subject", "s"}, {"body", "b"}, {"x", 1}}).ok());
  EXPECT_NE(ErrorOf({{"to", "a@x.org"}, {"bcc", "A@x.org"}, {"subject", "s"}, {"body", "b"}})
                .find("listed twice"),
            std::string::npos);
  EXPECT_FALSE(ParseMailArgs({{"to", "a@x.org"}, {"subject", "\xff"}, {"body", "b"}}).ok());
  EXPECT_FALSE(ParseMailArgs({{"to", "a@x.org"}, {"subject", "s"}, {"body", "\xc0\xaf"}}).ok());
  EXPECT_FALSE(ParseMailArgs({{"to", "a@x.org"},
                              {"subject", "s"},
                              {"body", "b"},
                              {"attachments",
                               Json::array({{{"name", "../etc/passwd"}, {"content_base64", ""}}})}})
                   .ok());
  EXPECT_FALSE(
      ParseMailArgs({{"to", "a@x.org"},
                     {"subject", "s"},
                     {"body", "b"},
                     {"attachments", Json::array({{{"name", "a"}, {"content_base64", "a=b="}}})}})
          .ok());
  EXPECT_TRUE(ValidateAddress("first.last+tag@sub.example-mail.com").ok());
}

TEST(MailBase64, RoundTripsAndIsStrict) {
  for (std::string s : {std::string(""), std::string("f"), std::string("fo"), std::string("foo"),
                        std::string("\0\xff\x10", 3)}) {
    auto d = Base64Decode(Base64Encode(s));
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(*d, s);
  }
  EXPECT_FALSE(Base64Decode("Zm9").ok());
  EXPECT_FALSE(Base64Decode("Zm9v\n").ok());
  EXPECT_FALSE(Base64Decode("Zh==").ok());  // non-zero padding bits
  EXPECT_FALSE(Base64Decode("====").ok());
  EXPECT_FALSE(Base64Decode("Z=9v").ok());
}

}  // namespace
}  // namespace airlock::mail
