// The mail connector without a server: what the dry-run previews, and that Apply sends
// nothing when the approved message was altered (it refuses before the first SMTP command,
// so these tests never need a server; tests/blackbox/mail_test.sh sends for real).
#include "connectors/smtp/smtp_connector.h"

#include <gtest/gtest.h>

namespace airlock {
namespace {

std::unique_ptr<Connector> Mail() {
  ConnectorConfig c{
      "support-mail", "smtp", {{"url", "smtp://127.0.0.1:1"}, {"from", "support@example.com"}}};
  auto r = CreateSmtpConnector(c);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return std::move(*r);
}

const Json kArgs = {{"to", "ann@example.com"},
                    {"bcc", Json::array({"audit@example.org"})},
                    {"subject", "Hi"},
                    {"body", "Hello"}};

TEST(SmtpConnector, PreviewIsTheWholeMessage) {
  auto dry = Mail()->DryRun(kArgs);
  ASSERT_TRUE(dry.ok()) << dry.status().message();
  const Effect& e = dry->effect;
  EXPECT_EQ(e.kind, "mail");
  EXPECT_EQ(e.extra["recipient_count"], 2);
  EXPECT_EQ(e.extra["recipients"][1], Json({{"address", "audit@example.org"}, {"field", "bcc"}}));
  const std::string message = e.extra["message"];
  EXPECT_EQ(message.rfind("Message-ID: " + e.extra["message_id"].get<std::string>() + "\r\n", 0),
            0u);
  EXPECT_EQ(e.extra["size"], static_cast<int64_t>(message.size()));
  EXPECT_EQ(message.find("audit@example.org"), std::string::npos);
  EXPECT_EQ(e.effect_hash.size(), 64u);
  // Built once: a second dry-run is another message (its own Message-ID), another hash.
  auto again = Mail()->DryRun(kArgs);
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->effect.effect_hash, e.effect_hash);
}

TEST(SmtpConnector, AnAlteredMessageOrEnvelopeIsNotSent) {
  auto c = Mail();
  auto dry = c->DryRun(kArgs);
  ASSERT_TRUE(dry.ok());
  bool intent_recorded = false;
  auto record = [&](const UndoRecord&) {
    intent_recorded = true;
    return Status::Ok();
  };
  Effect tampered = dry->effect;
  std::string m = tampered.extra["message"];
  m.replace(m.find("Hello"), 5, "Pay us");
  tampered.extra["message"] = m;
  auto out = c->Apply("act_1", kArgs, tampered, record);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_FALSE(out->effect_matched);
  Json more = kArgs;
  more["bcc"].push_back("everyone@example.org");
  out = c->Apply("act_1", more, dry->effect, record);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_FALSE(out->effect_matched);
  EXPECT_FALSE(intent_recorded) << "nothing may start when the message is not the approved one";
}

TEST(SmtpConnector, ABrokenSendFailsAfterRecordingTheIntent) {
  // Port 1 on loopback refuses: the intent is recorded first, then the send fails.
  auto c = Mail();
  auto dry = c->DryRun(kArgs);
  ASSERT_TRUE(dry.ok());
  bool intent_recorded = false;
  auto out = c->Apply("act_1", kArgs, dry->effect, [&](const UndoRecord& u) {
    EXPECT_FALSE(u.reversible);
    intent_recorded = true;
    return Status::Ok();
  });
  EXPECT_TRUE(intent_recorded);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("smtp://127.0.0.1:1"), std::string::npos)
      << out.status().message();
}

TEST(SmtpConnector, HostileArgumentsAndUndo) {
  auto c = Mail();
  Json bad = kArgs;
  bad["subject"] = "Hi\r\nBcc: victim@example.org";
  auto dry = c->DryRun(bad);
  ASSERT_FALSE(dry.ok());
  EXPECT_EQ(dry.status().code(), StatusCode::kInvalidArgument);
  Json report;
  Status st = c->Rollback("act_1", UndoRecord{}, &report);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("cannot be recalled"), std::string::npos);
  auto applied = c->IsApplied("act_1");
  ASSERT_TRUE(applied.ok());
  EXPECT_FALSE(*applied) << "SMTP cannot be asked: recovery must treat it as unknown";
  ConnectorConfig no_from{"m", "smtp", {{"url", "smtp://x"}}};
  EXPECT_FALSE(CreateSmtpConnector(no_from).ok());
}

}  // namespace
}  // namespace airlock
