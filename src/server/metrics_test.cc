// /metrics against a real gateway on a real SQLite store: the numbers an operator's
// dashboard would show, and a text that a Prometheus scraper accepts.
#include "server/metrics.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <regex>
#include <sstream>

#include "core/clock.h"
#include "server/hub_test_util.h"

namespace airlock::server {
namespace {

using testing::GatewayFixture;
using testing::ReadFailingStore;

// The samples of an exposition, by their full series text (`name{labels}`), after checking
// that every line is a comment or a well-formed sample and that every sample's family was
// declared (HELP and TYPE) before it.
std::map<std::string, std::string> ParseExposition(const std::string& text) {
  std::map<std::string, std::string> samples;
  std::map<std::string, std::string> types;
  const std::regex sample_re(
      R"re(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\\n])*",?)*\})? (\S+)$)re");
  const std::regex type_re(R"re(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (gauge|counter|histogram)$)re");
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (line.rfind("# HELP ", 0) == 0) continue;
    if (std::regex_match(line, m, type_re)) {
      EXPECT_FALSE(types.count(m[1])) << "family declared twice: " << line;
      types[m[1]] = m[2];
      continue;
    }
    if (!std::regex_match(line, m, sample_re)) {
      ADD_FAILURE() << "not a valid sample line: " << line;
      continue;
    }
    std::string family = m[1];
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s = suffix;
      if (!types.count(family) && family.size() > s.size() &&
          family.compare(family.size() - s.size(), s.size(), s) == 0) {
        family.resize(family.size() - s.size());
      }
    }
    EXPECT_TRUE(types.count(family)) << "sample before its TYPE: " << line;
    const std::string series = line.substr(0, line.rfind(' '));
    EXPECT_FALSE(samples.count(series)) << "series twice: " << series;
    samples[series] = m[5];
  }
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  return samples;
}

class MetricsTest : public GatewayFixture {
 protected:
  void SetUp() override {
    GatewayFixture::SetUp();
    gateway_ = OpenGateway();
    ASSERT_NE(gateway_, nullptr);
  }
  void TearDown() override {
    gateway_.reset();
    GatewayFixture::TearDown();
  }
  std::map<std::string, std::string> Scrape(const notify::Stats* stats = nullptr) {
    text_ = metrics_.Render(*gateway_, stats);
    return ParseExposition(text_);
  }

  std::unique_ptr<Gateway> gateway_;
  Metrics metrics_;
  std::string text_;
};

// A server's store (grouped commits) checkpoints on a thread of its own and says how in
// /metrics; a store that checkpoints inside its commits (the CLI's) has nothing to say.
TEST_F(MetricsTest, AServersStoreReportsItsCheckpoints) {
  ::unsetenv("AIRLOCK_CHECKPOINT_THREAD");  // a benchmark's leftover would turn it off
  Submit(*gateway_, "bot-token", "SELECT 1", ActionStatus::kApplied);
  EXPECT_EQ(Scrape().count("airlock_store_wal_frames_max"), 0u) << text_;
  gateway_.reset();
  auto served = Gateway::Open(policy_, GatewayOptions::WithGroupCommit());
  ASSERT_TRUE(served.ok()) << served.status().ToString();
  gateway_ = std::move(*served);
  Submit(*gateway_, "bot-token", "SELECT 2", ActionStatus::kApplied);
  Submit(*gateway_, "bot-token", "UPDATE users SET name = 'x' WHERE id = 5",
         ActionStatus::kApplied);
  auto m = Scrape();
  EXPECT_EQ(m["airlock_store_checkpoints_total{by=\"thread\"}"], "0") << text_;
  EXPECT_EQ(m["airlock_store_checkpoints_total{by=\"finish\"}"], "0");
  EXPECT_EQ(m["airlock_store_checkpoints_total{by=\"inline\"}"], "0");
  EXPECT_EQ(m["airlock_store_checkpoint_failures_total"], "0");
  EXPECT_EQ(m["airlock_store_wal_restarts_total"], "0");
  ASSERT_TRUE(m.count("airlock_store_wal_frames_max"));
  EXPECT_GT(std::stoll(m["airlock_store_wal_frames_max"]), 0) << "the commits were reported";
  EXPECT_NE(text_.find("# TYPE airlock_store_checkpoints_total counter"), std::string::npos);
}

TEST_F(MetricsTest, CountsWhatTheStoreRecorded) {
  auto empty = Scrape();
  EXPECT_EQ(empty["airlock_pending_actions"], "0");
  EXPECT_EQ(empty["airlock_audit_events"], "0");
  EXPECT_EQ(empty["airlock_scrape_error"], "0");

  Submit(*gateway_, "bot-token", "SELECT 1", ActionStatus::kApplied);
  Submit(*gateway_, "bot-token", "SELECT 2", ActionStatus::kApplied);
  Submit(*gateway_, "bot2-token", "UPDATE users SET name = 'x' WHERE id = 5",
         ActionStatus::kApplied);
  Submit(*gateway_, "bot-token", "DELETE FROM users", ActionStatus::kPending);
  const std::string high =
      Submit(*gateway_, "bot-token", "UPDATE users SET status = 'z'", ActionStatus::kPending);
  ASSERT_TRUE(gateway_->Vote(std::string("dba-token"), high, false, "").status.ok());

  auto m = Scrape();
  EXPECT_EQ(m["airlock_actions{status=\"applied\",risk=\"read\",target=\"db\"}"], "2") << text_;
  EXPECT_EQ(m["airlock_actions{status=\"applied\",risk=\"low\",target=\"db\"}"], "1");
  EXPECT_EQ(m["airlock_actions{status=\"pending\",risk=\"critical\",target=\"db\"}"], "1");
  EXPECT_EQ(m["airlock_actions{status=\"rejected\",risk=\"high\",target=\"db\"}"], "1");
  EXPECT_EQ(m["airlock_pending_actions"], "1");
  // read, read, submitted + applied, submitted, submitted + vote + rejected
  EXPECT_EQ(m["airlock_audit_events"], "8");
  EXPECT_EQ(m["airlock_audit_events"], std::to_string(Head(*gateway_)));
  EXPECT_EQ(m["airlock_scrape_error"], "0");
  EXPECT_EQ(text_.find("airlock_notifications_total{"), std::string::npos)
      << "no notify: in the policy, no notification series";
}

TEST_F(MetricsTest, HistogramBucketsAreCumulativeAndAddUpToTheCount) {
  auto decided = [](int64_t latency_ms, ActionStatus status) {
    Action a;
    a.created_ms = 1'700'000'000'000;
    a.updated_ms = a.created_ms + latency_ms;
    a.status = status;
    return a;
  };
  metrics_.ObserveDecision(decided(0, ActionStatus::kApplied));  // a read
  metrics_.ObserveDecision(decided(1, ActionStatus::kDenied));   // on the 0.001 bound
  metrics_.ObserveDecision(decided(3, ActionStatus::kApplied));
  metrics_.ObserveDecision(decided(2'000, ActionStatus::kRejected));
  metrics_.ObserveDecision(decided(7'200'000, ActionStatus::kExpired));  // beyond 3600 s
  // Not decisions: a submission waiting for approval, and a rollback.
  metrics_.ObserveDecision(decided(5, ActionStatus::kPending));
  metrics_.ObserveDecision(decided(5, ActionStatus::kRolledBack));

  auto m = Scrape();
  const std::string b = "airlock_decision_latency_seconds_bucket{le=\"";
  EXPECT_EQ(m[b + "0.001\"}"], "2") << text_;
  EXPECT_EQ(m[b + "0.005\"}"], "3");
  EXPECT_EQ(m[b + "1\"}"], "3");
  EXPECT_EQ(m[b + "5\"}"], "4");
  EXPECT_EQ(m[b + "3600\"}"], "4");
  EXPECT_EQ(m[b + "+Inf\"}"], "5");
  EXPECT_EQ(m["airlock_decision_latency_seconds_count"], "5");
  EXPECT_DOUBLE_EQ(std::stod(m["airlock_decision_latency_seconds_sum"]), 7202.004);

  int64_t previous = 0;
  int buckets = 0;
  for (double le : Metrics::kLatencyBuckets) {
    std::ostringstream key;
    key << b << le << "\"}";
    ASSERT_TRUE(m.count(key.str())) << key.str() << " missing in\n" << text_;
    const int64_t n = std::stoll(m[key.str()]);
    EXPECT_GE(n, previous) << "buckets are cumulative";
    previous = n;
    ++buckets;
  }
  EXPECT_EQ(buckets, 14);
  EXPECT_LE(previous, std::stoll(m[b + "+Inf\"}"]));
  EXPECT_EQ(m[b + "+Inf\"}"], m["airlock_decision_latency_seconds_count"]);
}

TEST_F(MetricsTest, CountsRequestsAndNotifications) {
  metrics_.ObserveRequest("/v1/actions", 200);
  metrics_.ObserveRequest("/v1/actions", 200);
  metrics_.ObserveRequest("/v1/actions", 202);
  metrics_.ObserveRequest("/v1/actions/{id}", 404);
  notify::Stats stats;
  stats.delivered = 7;
  stats.retried = 3;
  stats.failed = 1;
  stats.dropped = 2;
  auto m = Scrape(&stats);
  EXPECT_EQ(m["airlock_http_requests_total{route=\"/v1/actions\",code=\"200\"}"], "2") << text_;
  EXPECT_EQ(m["airlock_http_requests_total{route=\"/v1/actions\",code=\"202\"}"], "1");
  EXPECT_EQ(m["airlock_http_requests_total{route=\"/v1/actions/{id}\",code=\"404\"}"], "1");
  EXPECT_EQ(m["airlock_notifications_total{result=\"delivered\"}"], "7");
  EXPECT_EQ(m["airlock_notifications_total{result=\"retried\"}"], "3");
  EXPECT_EQ(m["airlock_notifications_total{result=\"failed\"}"], "1");
  EXPECT_EQ(m["airlock_notifications_total{result=\"dropped\"}"], "2");
}

TEST_F(MetricsTest, LabelValuesAreEscaped) {
  // Another process wrote a breaker whose names a policy would never allow: they must not
  // break the exposition or forge a series.
  auto store = OpenSqliteStore(policy_->store_path);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Breaker evil{"db\"} airlock_scrape_error 0\n#", "a\\b\nc", true, NowMs(), "test"};
  ASSERT_TRUE((*store)->Transact([&](StoreTxn& t) { return t.PutBreaker(evil); }).ok());
  Breaker bad_utf8{"db\xff\xc3", "ok", false, NowMs(), "test"};
  ASSERT_TRUE((*store)->Transact([&](StoreTxn& t) { return t.PutBreaker(bad_utf8); }).ok());
  metrics_.ObserveRequest("/x\"y\\z\nw", 500);

  auto m = Scrape();
  EXPECT_EQ(m["airlock_breaker_open{target=\"db\\\"} airlock_scrape_error 0\\n#\","
              "agent=\"a\\\\b\\nc\"}"],
            "1")
      << text_;
  EXPECT_EQ(m["airlock_breaker_open{target=\"db\xEF\xBF\xBD\xEF\xBF\xBD\",agent=\"ok\"}"], "0");
  EXPECT_EQ(m["airlock_http_requests_total{route=\"/x\\\"y\\\\z\\nw\",code=\"500\"}"], "1");
  EXPECT_EQ(m["airlock_scrape_error"], "0");
}

TEST_F(MetricsTest, TrippedBreakerIsOpen) {
  // A second write within the minute trips the breaker of bot on db.
  gateway_.reset();
  std::filesystem::remove_all(dir_);
  SetUpPolicy("limits:\n  - {match: {target: db}, rate: 1/min, on_exceed: trip}\n");
  gateway_ = OpenGateway();
  ASSERT_NE(gateway_, nullptr);
  Submit(*gateway_, "bot-token", "UPDATE users SET name = 'a' WHERE id = 1",
         ActionStatus::kApplied);
  Submit(*gateway_, "bot-token", "UPDATE users SET name = 'b' WHERE id = 2",
         ActionStatus::kPending);
  auto m = Scrape();
  EXPECT_EQ(m["airlock_breaker_open{target=\"db\",agent=\"bot\"}"], "1") << text_;
  ASSERT_TRUE(gateway_->ResetBreaker(std::string("dba-token"), "db", "bot").ok());
  m = Scrape();
  EXPECT_EQ(m["airlock_breaker_open{target=\"db\",agent=\"bot\"}"], "0");
}

TEST_F(MetricsTest, StoreErrorIsAScrapeErrorNotAFailedScrape) {
  ReadFailingStore* store = nullptr;
  gateway_ = OpenFailingGateway(&store);
  ASSERT_NE(gateway_, nullptr);
  Submit(*gateway_, "bot-token", "SELECT 1", ActionStatus::kApplied);
  metrics_.ObserveRequest("/healthz", 200);
  store->fail_reads = true;
  auto m = Scrape();
  EXPECT_EQ(m["airlock_scrape_error"], "1") << text_;
  EXPECT_EQ(text_.find("airlock_actions{"), std::string::npos) << "store gauges left out";
  EXPECT_FALSE(m.count("airlock_pending_actions"));
  EXPECT_FALSE(m.count("airlock_audit_events"));
  EXPECT_EQ(m["airlock_http_requests_total{route=\"/healthz\",code=\"200\"}"], "1")
      << "what this process counted is still there";
  store->fail_reads = false;
  m = Scrape();
  EXPECT_EQ(m["airlock_scrape_error"], "0");
  EXPECT_EQ(m["airlock_actions{status=\"applied\",risk=\"read\",target=\"db\"}"], "1");
}

}  // namespace
}  // namespace airlock::server
