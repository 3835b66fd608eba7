#include <gtest/gtest.h>

#include "mailsync/queue/retry_policy.hpp"

namespace {

using mailsync::queue::retry_delay;
using mailsync::queue::RetryPolicy;
using std::chrono::milliseconds;
using std::chrono::seconds;

RetryPolicy no_jitter() {
  RetryPolicy policy;
  policy.base = seconds(15);
  policy.factor = 2;
  policy.cap = seconds(3600);
  policy.jitter = 0;
  return policy;
}

TEST(RetryDelay, DoublesWithEachAttempt) {
  EXPECT_EQ(retry_delay(no_jitter(), 1, 0.5), seconds(15));
  EXPECT_EQ(retry_delay(no_jitter(), 2, 0.5), seconds(30));
  EXPECT_EQ(retry_delay(no_jitter(), 5, 0.5), seconds(240));
}

TEST(RetryDelay, StopsAtTheCapEvenForHugeAttemptNumbers) {
  EXPECT_EQ(retry_delay(no_jitter(), 9, 0.5), seconds(3600));
  EXPECT_EQ(retry_delay(no_jitter(), 5000, 0.5), seconds(3600));
}

TEST(RetryDelay, JitterSpreadsWithinTheFraction) {
  RetryPolicy policy = no_jitter();
  policy.jitter = 0.2;
  EXPECT_EQ(retry_delay(policy, 1, 0.0), seconds(12));
  EXPECT_EQ(retry_delay(policy, 1, 0.5), seconds(15));
  EXPECT_EQ(retry_delay(policy, 1, 0.999999), milliseconds(17999));
}

TEST(RetryDelay, JitterNeverExceedsTheCap) {
  RetryPolicy policy = no_jitter();
  policy.jitter = 1.0;
  EXPECT_LE(retry_delay(policy, 30, 0.999), seconds(3600));
}

TEST(RetryPolicy, ValidateNamesTheBadField) {
  RetryPolicy policy = no_jitter();
  EXPECT_EQ(policy.validate(), "");
  policy.factor = 0.5;
  EXPECT_EQ(policy.validate(), "retry factor must be at least 1");
  policy = no_jitter();
  policy.cap = seconds(1);
  EXPECT_EQ(policy.validate(), "retry cap must not be below the base");
}

}  // namespace
