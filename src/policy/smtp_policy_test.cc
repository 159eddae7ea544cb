// The mail target's policy entry (kind: smtp), its recipient limits, and the default risk of
// a message: loader errors name FILE:LINE:COLUMN; one recipient is low, more is high.
#include <algorithm>

#include <gtest/gtest.h>

#include "policy/policy.h"

namespace airlock {
namespace {

const std::string kFile = "/etc/airlock/airlock.yaml";

std::string WithMail(const std::string& entry, const std::string& extra = "") {
  return "version: 1\n"
         "targets:\n"
         "  mail: " +
         entry + "\n" +
         "agents:\n"
         "  - {name: bot, token_sha256: \"" +
         std::string(64, 'a') + "\", scopes: [mail]}\n" + extra;
}

// The error of loading `text`, which must fail and point at the line of `needle`.
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

TEST(SmtpPolicy, LoadsAMailTarget) {
  auto p = LoadPolicyText(
      WithMail("{kind: smtp, url: \"smtps://mail.example.com:465\", from: support@example.com, "
               "username: support, password_env: SMTP_PASSWORD, max_recipients: 50, timeout: "
               "30s}",
               "limits:\n  - {match: {target: mail}, rate: 20/min, max_recipients_per_hour: 500, "
               "on_exceed: trip}\n"),
      kFile);
  ASSERT_TRUE(p.ok()) << p.status().message();
  const TargetSpec* t = (*p)->FindTarget("mail");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->kind, "smtp");
  EXPECT_EQ(t->fields["url"], "smtps://mail.example.com:465");
  EXPECT_EQ(t->fields["password_env"], "SMTP_PASSWORD");
  EXPECT_EQ(t->fields["max_recipients"], 50);
  EXPECT_EQ(t->fields["timeout_ms"], 30000);
  ASSERT_EQ((*p)->limits.size(), 1u);
  EXPECT_EQ((*p)->limits[0].max_recipients_per_hour, 500);
}

TEST(SmtpPolicy, DefaultsAndFileResolution) {
  auto p = LoadPolicyText(WithMail("{kind: smtp, url: \"smtp://127.0.0.1:2525\", from: a@b.org, "
                                   "username: u, password_file: secrets/smtp}"),
                          kFile);
  ASSERT_TRUE(p.ok()) << p.status().message();
  const TargetSpec* t = (*p)->FindTarget("mail");
  EXPECT_EQ(t->fields["max_recipients"], 100);
  EXPECT_EQ(t->fields["password_file"], "/etc/airlock/secrets/smtp");
}

TEST(SmtpPolicy, ErrorsNameTheLine) {
  EXPECT_NE(ErrorAt(WithMail("{kind: smtp, from: a@b.org}"), "kind: smtp").find("url"),
            std::string::npos);
  EXPECT_NE(ErrorAt(WithMail("{kind: smtp, url: \"http://x\", from: a@b.org}"), "kind: smtp")
                .find("smtp://HOST"),
            std::string::npos);
  EXPECT_NE(ErrorAt(WithMail("{kind: smtp, url: \"smtp://u:p@x\", from: a@b.org}"), "kind: smtp")
                .find("credentials"),
            std::string::npos);
  EXPECT_NE(ErrorAt(WithMail("{kind: smtp, url: \"smtp://x\"}"), "kind: smtp").find("from"),
            std::string::npos);
  EXPECT_NE(
      ErrorAt(WithMail("{kind: smtp, url: \"smtp://x\", from: \"Ann <a@b.org>\"}"), "kind: smtp")
          .find("from"),
      std::string::npos);
  EXPECT_NE(ErrorAt(WithMail("{kind: smtp, url: \"smtp://x\", from: a@b.org, username: u, "
                             "password_env: A, password_file: f}"),
                    "kind: smtp")
                .find("not both"),
            std::string::npos);
  EXPECT_NE(ErrorAt(WithMail("{kind: smtp, url: \"smtp://x\", from: a@b.org, password_env: A}"),
                    "kind: smtp")
                .find("username"),
            std::string::npos);
  EXPECT_NE(ErrorAt(WithMail("{kind: smtp, url: \"smtp://x\", from: a@b.org, username: u, "
                             "password_env: \"A B\"}"),
                    "kind: smtp")
                .find("environment variable"),
            std::string::npos);
  EXPECT_NE(ErrorAt(WithMail("{kind: smtp, url: \"smtp://x\", from: a@b.org, max_recipients: 0}"),
                    "kind: smtp")
                .find("max_recipients"),
            std::string::npos);
  EXPECT_NE(ErrorAt(WithMail("{kind: smtp, url: \"smtp://x\", from: a@b.org, password: hunter2}"),
                    "kind: smtp")
                .find("password"),
            std::string::npos);
}

Effect MailEffect(int64_t recipients) {
  Effect e;
  e.kind = "mail";
  e.extra = {{"recipient_count", recipients}};
  return e;
}

TEST(SmtpPolicy, OneRecipientIsLowABatchIsHigh) {
  auto p = LoadPolicyText(WithMail("{kind: smtp, url: \"smtp://x\", from: a@b.org}"), kFile);
  ASSERT_TRUE(p.ok()) << p.status().message();
  Classifier c(*p);
  EXPECT_EQ(c.Classify("bot", "mail", MailEffect(1)).risk, Risk::kLow);
  Classification batch = c.Classify("bot", "mail", MailEffect(2));
  EXPECT_EQ(batch.risk, Risk::kHigh);
  ASSERT_FALSE(batch.reasons.empty());
  EXPECT_NE(batch.reasons[0].find("2 recipients: a batch"), std::string::npos);
  // A count that is missing is not trusted to be small.
  EXPECT_EQ(c.Classify("bot", "mail", MailEffect(0)).risk, Risk::kHigh);
  Effect none;
  none.kind = "mail";
  EXPECT_EQ(c.Classify("bot", "mail", none).risk, Risk::kHigh);
}

TEST(SmtpPolicy, RulesCanRaiseMailByKind) {
  auto p = LoadPolicyText(
      WithMail("{kind: smtp, url: \"smtp://x\", from: a@b.org}",
               "rules:\n  - {match: {kind: mail}, risk: critical, reason: \"all mail\"}\n"),
      kFile);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(Classifier(*p).Classify("bot", "mail", MailEffect(1)).risk, Risk::kCritical);
}

}  // namespace
}  // namespace airlock
