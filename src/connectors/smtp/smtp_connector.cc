#include "connectors/smtp/smtp_connector.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "connectors/smtp/message.h"
#include "connectors/smtp/send.h"
#include "core/clock.h"
#include "core/crash.h"
#include "core/hash.h"
#include "core/json.h"

namespace airlock {
namespace {

constexpr const char* kIrreversibleNote =
    "a sent message cannot be recalled: airlock cannot undo mail once the server accepted it";

std::string StringField(const Json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

// Envelope recipients in message order: to, then cc, then bcc.
std::vector<std::string> Envelope(const mail::MailRequest& r) {
  std::vector<std::string> out = r.to;
  out.insert(out.end(), r.cc.begin(), r.cc.end());
  out.insert(out.end(), r.bcc.begin(), r.bcc.end());
  return out;
}

// What effect_hash covers: who sends, who receives (the envelope, Bcc included) and every
// byte of the message.
std::string MailHash(const std::string& from, const Json& envelope, const std::string& message) {
  return Sha256Hex(CanonicalJson({{"from", from}, {"envelope", envelope}, {"message", message}}));
}

// A string cut at a UTF-8 character boundary, at most `max` bytes.
std::string Preview(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end);
}

class SmtpConnector : public IrreversibleConnector {
 public:
  explicit SmtpConnector(ConnectorConfig config)
      : IrreversibleConnector(kIrreversibleNote), config_(std::move(config)) {}

  Result<DryRunResult> DryRun(const Json& args) override {
    ASSIGN_OR_RETURN(mail::MailRequest req, mail::ParseMailArgs(args));
    const std::string from = StringField(config_.fields, "from");
    ASSIGN_OR_RETURN(mail::BuiltMessage built,
                     mail::BuildMessage(req, from, NowMs(), RandomHex(16), RandomHex(12)));
    Effect e;
    e.kind = "mail";
    Json recipients = Json::array();
    Json envelope = Json::array();
    for (const auto& [field, list] :
         {std::pair{"to", &req.to}, std::pair{"cc", &req.cc}, std::pair{"bcc", &req.bcc}}) {
      for (const std::string& a : *list) {
        recipients.push_back({{"address", a}, {"field", field}});
        envelope.push_back(a);
      }
    }
    Json attachments = Json::array();
    for (const mail::Attachment& a : req.attachments) {
      attachments.push_back({{"name", a.name},
                             {"size", static_cast<int64_t>(a.content.size())},
                             {"sha256", Sha256Hex(a.content)}});
    }
    e.extra = {{"from", from},
               {"recipients", recipients},
               {"recipient_count", static_cast<int64_t>(req.RecipientCount())},
               {"subject", req.subject},
               {"body", Preview(req.body, kBodyPreviewBytes)},
               {"body_truncated", req.body.size() > kBodyPreviewBytes},
               {"attachments", attachments},
               {"size", static_cast<int64_t>(built.bytes.size())},
               {"message_id", built.message_id},
               {"message", built.bytes},
               {"irreversible", true}};
    e.effect_hash = MailHash(from, envelope, built.bytes);
    DryRunResult r;
    r.effect = std::move(e);
    return r;
  }

  Result<ApplyOutcome> Apply(
      const std::string& action_id, const Json& args, const Effect& expected,
      const std::function<Status(const UndoRecord&)>& before_commit) override {
    (void)action_id;
    ApplyOutcome out;
    out.effect = expected;
    // The message is the previewed one, read back from the approved effect; it is sent only
    // if it still hashes to the approved effect_hash and still answers the arguments asked
    // for (so a store edited behind airlock's back sends nothing).
    ASSIGN_OR_RETURN(mail::MailRequest req, mail::ParseMailArgs(args));
    const Json& x = expected.extra;
    const std::string message = StringField(x, "message");
    const std::string from = StringField(x, "from");
    Json envelope = Json::array();
    for (const std::string& a : Envelope(req)) envelope.push_back(a);
    out.effect.effect_hash = MailHash(from, envelope, message);
    out.effect_matched = !message.empty() && from == StringField(config_.fields, "from") &&
                         out.effect.effect_hash == expected.effect_hash;
    if (!out.effect_matched) return out;

    ASSIGN_OR_RETURN(mail::SmtpServer server, Server());
    out.undo.kind = "mail";
    out.undo.reversible = false;
    out.undo.note = kIrreversibleNote;
    // The intent is durable before the first SMTP command: after a crash from here on, the
    // gateway knows a send may have happened and never repeats it.
    RETURN_IF_ERROR(before_commit(out.undo));
    RETURN_IF_ERROR(mail::SendMessage(server, from, Envelope(req), message));
    CrashPoint("smtp_after_accept");
    out.result = {{"message_id", StringField(x, "message_id")},
                  {"accepted_recipients", static_cast<int64_t>(req.RecipientCount())},
                  {"size", static_cast<int64_t>(message.size())}};
    return out;
  }

 private:
  // The credentials are read at send time, from where the policy says, and go only to
  // libcurl: never into an effect, a result, an error or the audit.
  Result<mail::SmtpServer> Server() const {
    mail::SmtpServer s;
    s.url = StringField(config_.fields, "url");
    s.username = StringField(config_.fields, "username");
    if (config_.fields.contains("timeout_ms") && config_.fields["timeout_ms"].is_number_integer()) {
      s.timeout_ms = config_.fields["timeout_ms"].get<int64_t>();
    }
    const std::string env = StringField(config_.fields, "password_env");
    const std::string file = StringField(config_.fields, "password_file");
    if (!env.empty()) {
      const char* v = std::getenv(env.c_str());
      if (v == nullptr || *v == '\0') {
        return Status::FailedPrecondition("target '" + config_.name + "': password_env " + env +
                                          " is not set in airlock's environment; nothing was "
                                          "sent");
      }
      s.password = v;
    } else if (!file.empty()) {
      std::ifstream in(file, std::ios::binary);
      if (!in) {
        return Status::FailedPrecondition("target '" + config_.name +
                                          "': cannot read password_file " + file +
                                          "; nothing was sent");
      }
      std::stringstream ss;
      ss << in.rdbuf();
      s.password = ss.str();
      while (!s.password.empty() && (s.password.back() == '\n' || s.password.back() == '\r')) {
        s.password.pop_back();
      }
    }
    return s;
  }

  ConnectorConfig config_;
};

}  // namespace

Result<std::unique_ptr<Connector>> CreateSmtpConnector(const ConnectorConfig& config) {
  const std::string from = StringField(config.fields, "from");
  Status st = mail::ValidateAddress(from);
  if (!st.ok()) {
    return Status::InvalidArgument("target '" + config.name + "': from: " + st.message());
  }
  return std::unique_ptr<Connector>(new SmtpConnector(config));
}

}  // namespace airlock
