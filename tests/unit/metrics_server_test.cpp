// The metrics endpoint on loopback: what Prometheus and Kubernetes probes see.

#include <gtest/gtest.h>

#include <atomic>

#include "mailsync/http/http_client.hpp"
#include "mailsync/metrics.hpp"
#include "support/prometheus_text.hpp"

namespace {

using namespace mailsync;
using mailsync::testing::metric_value;

std::string url(const metrics::Server& server, const std::string& path) {
  return "http://127.0.0.1:" + std::to_string(server.port()) + path;
}

TEST(MetricsServer, HealthzAnswersAndMetricsShowCountersMoving) {
  metrics::Server server({.address = "127.0.0.1", .port = 0});
  ASSERT_GT(server.port(), 0u);
  http::HttpClient http;
  const auto health = http.get(url(server, "/healthz"));
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok\n");

  auto& counter = metrics::of(metrics::get().message_failures, "reason", "metrics_test");
  const double before = counter.Value();
  const auto first = http.get(url(server, "/metrics"));
  EXPECT_EQ(first.status, 200);
  EXPECT_NE(first.body.find("# TYPE mailsync_messages_appended_total counter"), std::string::npos);
  EXPECT_NE(first.body.find("# TYPE mailsync_queue_oldest_due_age_seconds gauge"),
            std::string::npos);
  counter.Increment(3);
  const auto second = http.get(url(server, "/metrics"));
  EXPECT_EQ(metric_value(second.body, R"(mailsync_message_failures_total{reason="metrics_test"})"),
            before + 3)
      << second.body;
  EXPECT_EQ(http.get(url(server, "/nothing")).status, 404);
}

TEST(MetricsServer, ReadyzSaysWhatIsNotReadyAndCachesTheAnswerBriefly) {
  std::atomic<int> checks{0};
  std::atomic<bool> database_up{false};
  metrics::Server server({.address = "127.0.0.1",
                          .port = 0,
                          .ready = [&]() -> std::optional<std::string> {
                            ++checks;
                            if (!database_up) return "database: connection refused";
                            return std::nullopt;
                          },
                          .ready_cache = std::chrono::milliseconds(0)});
  http::HttpClient http;
  const auto down = http.get(url(server, "/readyz"));
  EXPECT_EQ(down.status, 503);
  EXPECT_EQ(down.body, "not ready: database: connection refused\n");
  database_up = true;
  const auto up = http.get(url(server, "/readyz"));
  EXPECT_EQ(up.status, 200);
  EXPECT_EQ(up.body, "ready\n");
  EXPECT_EQ(checks.load(), 2);

  std::atomic<int> cached_checks{0};
  metrics::Server cached(
      {.address = "127.0.0.1", .port = 0, .ready = [&]() -> std::optional<std::string> {
         ++cached_checks;
         return std::nullopt;
       }});
  for (int i = 0; i < 5; ++i) EXPECT_EQ(http.get(url(cached, "/readyz")).status, 200);
  EXPECT_EQ(cached_checks.load(), 1) << "a probe storm must not become a database storm";
}

TEST(MetricsServer, ABusyPortOrABadAddressIsAClearError) {
  metrics::Server first({.address = "127.0.0.1", .port = 0});
  try {
    metrics::Server second({.address = "127.0.0.1", .port = first.port()});
    FAIL() << "two servers on one port";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot serve metrics on 127.0.0.1:"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(metrics::Server({.address = "localhost:80", .port = 1}), std::runtime_error);
}

}  // namespace
