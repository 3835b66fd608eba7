#include "mailsync/sync/message_retry.hpp"

#include <gtest/gtest.h>

#include "mailsync/sync/outcome.hpp"
#include "mailsync/sync/progress_meter.hpp"

namespace mailsync::sync {
namespace {

using namespace std::chrono_literals;
const TimePoint kNow = TimePoint(std::chrono::hours(24 * 365 * 56));

TEST(NextMessageRetryAt, TheFirstRetryIsAMinuteAway) {
  EXPECT_EQ(next_message_retry_at(kNow, 0), kNow + 1min);
}

TEST(NextMessageRetryAt, EachRetryWaitsTwiceAsLong) {
  EXPECT_EQ(next_message_retry_at(kNow, 1), kNow + 2min);
  EXPECT_EQ(next_message_retry_at(kNow, 2), kNow + 4min);
  EXPECT_EQ(next_message_retry_at(kNow, 5), kNow + 32min);
}

TEST(NextMessageRetryAt, NeverWaitsMoreThanSixHours) {
  EXPECT_EQ(next_message_retry_at(kNow, 9), kNow + 6h);
  EXPECT_EQ(next_message_retry_at(kNow, 1000), kNow + 6h);
}

TEST(NextMessageRetryAt, TheServersLongerHintWins) {
  // Outlook: "Request is throttled. Suggested Backoff Time: 299609 milliseconds".
  EXPECT_EQ(next_message_retry_at(kNow, 0, 299609ms), kNow + 299609ms);
  EXPECT_EQ(next_message_retry_at(kNow, 3, 10s), kNow + 8min) << "a shorter hint never hastens";
}

TEST(NextMessageRetryAt, ANegativeCountIsTheFirstRetry) {
  EXPECT_EQ(next_message_retry_at(kNow, -3), kNow + 1min);
}

TEST(ToJobResult, MapsEachOutcomeToWhatTheQueueDoes) {
  const queue::JobStats stats{3, 2, 1, 0, 100};
  EXPECT_EQ(to_job_result(SyncOutcome::kSucceeded, "", kNow, stats).outcome,
            queue::Outcome::kSucceeded);
  EXPECT_EQ(to_job_result(SyncOutcome::kSucceeded, "", kNow, stats).stats.appended, 2);
  const auto stopped = to_job_result(SyncOutcome::kStopped, "shutdown", kNow, stats);
  EXPECT_EQ(stopped.outcome, queue::Outcome::kRetryAt);
  EXPECT_EQ(stopped.retry_at, kNow);
  const auto throttled = to_job_result(SyncOutcome::kThrottled, "slow", kNow + 5min, stats);
  EXPECT_EQ(throttled.outcome, queue::Outcome::kRetryAt);
  EXPECT_EQ(throttled.retry_at, kNow + 5min);
  const auto gate = to_job_result(SyncOutcome::kGateClosed, "refused", kNow, stats);
  EXPECT_EQ(gate.outcome, queue::Outcome::kFailed);
  EXPECT_EQ(gate.error, "gate unavailable: refused");
  const auto auth = to_job_result(SyncOutcome::kAuthRequired, "invalid_grant", kNow, stats);
  EXPECT_EQ(auth.outcome, queue::Outcome::kCancelled);
  EXPECT_EQ(auth.error, "auth_required: invalid_grant");
  EXPECT_EQ(to_job_result(SyncOutcome::kFolderMissing, "no folder", kNow, stats).outcome,
            queue::Outcome::kDead);
  EXPECT_EQ(to_job_result(SyncOutcome::kFailed, "net", kNow, stats).outcome,
            queue::Outcome::kFailed);
}

TEST(ProgressMeter, WritesAfterTheFirstBatchThenEveryFiveSecondsAndLogsEveryTen) {
  const auto t0 = std::chrono::steady_clock::time_point(100s);
  ProgressMeter meter(1000, 10'000'000, t0);
  meter.add(100, 1'000'000);
  auto due = meter.due(t0 + 1s);
  EXPECT_TRUE(due.write);
  EXPECT_FALSE(due.log);
  EXPECT_FALSE(meter.due(t0 + 3s).write);
  EXPECT_TRUE(meter.due(t0 + 6s).write);
  due = meter.due(t0 + 11s);
  EXPECT_TRUE(due.write);
  EXPECT_TRUE(due.log);
}

TEST(ProgressMeter, EstimatesTheTimeLeftFromTheRateSoFar) {
  const auto t0 = std::chrono::steady_clock::time_point(100s);
  ProgressMeter meter(1000, 10'000'000, t0);
  meter.add(250, 2'500'000);
  const Progress p = meter.at(7, t0 + 10s);
  EXPECT_EQ(p.job_id, 7);
  EXPECT_DOUBLE_EQ(p.rate_per_s, 25.0);
  EXPECT_EQ(p.eta_seconds, 30);
  EXPECT_EQ(ProgressMeter::line(p),
            "progress: 250 of 1000 messages, 2.5 of 10.0 MB, 25 msgs/s, about 30 s left");
}

TEST(ProgressMeter, PromisesNoTimeLeftBeforeTheRunHasCopiedForTenSeconds) {
  const auto t0 = std::chrono::steady_clock::time_point(100s);
  ProgressMeter meter(13'220, 0, t0);
  meter.add(200, 0);  // the first batch of a run that resumed a killed one: quick, not typical
  (void)meter.due(t0 + 80ms);
  const Progress early = meter.at(1, t0 + 80ms);
  EXPECT_EQ(early.eta_seconds, std::nullopt) << "it would have said " << 13'020 / 2'500 << " s";
  EXPECT_EQ(ProgressMeter::line(early).substr(ProgressMeter::line(early).rfind(", ") + 2),
            "time left not known yet");
  meter.add(1'800, 0);
  EXPECT_EQ(meter.at(1, t0 + 10s).eta_seconds, 56);  // 11,220 left at 200 msgs/s
}

TEST(ProgressMeter, OnceAMinuteOldTheRateIsTheLastMinutesNotTheRunsAverage) {
  const auto t0 = std::chrono::steady_clock::time_point(100s);
  ProgressMeter meter(10'000, 100'000'000, t0);
  // 60 s at 100 msgs/s, then 60 s at 25 msgs/s (the destination folder grew).
  for (int s = 5; s <= 120; s += 5) {
    meter.add(s <= 60 ? 500 : 125, 0);
    (void)meter.due(t0 + std::chrono::seconds(s));
  }
  const Progress p = meter.at(1, t0 + 120s);
  EXPECT_EQ(p.messages_done, 7500);
  EXPECT_DOUBLE_EQ(p.rate_per_s, 25.0);  // the run's average would say 62.5
  EXPECT_EQ(p.eta_seconds, 100);         // 2,500 left at 25/s, not 40 s
}

}  // namespace
}  // namespace mailsync::sync
