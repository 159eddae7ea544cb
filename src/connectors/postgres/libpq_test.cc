#include "connectors/postgres/libpq.h"

#include <gtest/gtest.h>

namespace airlock::pg {
namespace {

// The DSN is airlock's secret: whatever a message quotes of it must come out redacted.
TEST(PostgresRedactor, HidesTheDsnAndItsPassword) {
  const std::string kv = "host=db.internal dbname=app user=app password=S3cret-pw";
  Redactor r(kv);
  EXPECT_EQ(r("connecting with " + kv + " failed"), "connecting with [redacted] failed");
  EXPECT_EQ(r("password S3cret-pw was rejected; S3cret-pw"),
            "password [redacted] was rejected; [redacted]");
  const std::string uri = "postgresql://app:S3cret%2Dpw@db.internal/app";
  Redactor u(uri);
  EXPECT_EQ(u("bad: " + uri), "bad: [redacted]");
  EXPECT_EQ(u("pw S3cret-pw"), "pw [redacted]");  // the decoded password too
  EXPECT_EQ(Redactor("host=x")("nothing secret: host=y"), "nothing secret: host=y");
}

TEST(PostgresConn, AnUnreachableServerIsAnErrorWithoutThePassword) {
  auto c = Conn::Open(
      "host=127.0.0.1 port=1 dbname=app user=app password=S3cret-pw "
      "connect_timeout=2");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message().find("S3cret-pw"), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find("connecting to PostgreSQL"), std::string::npos);
}

TEST(PostgresQuote, IdentifiersAndLiterals) {
  EXPECT_EQ(QuoteIdent("users"), "\"users\"");
  EXPECT_EQ(QuoteIdent("a\"b"), "\"a\"\"b\"");
  EXPECT_EQ(QuoteLiteral("it's"), "'it''s'");
}

}  // namespace
}  // namespace airlock::pg
