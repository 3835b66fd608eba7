#pragma once

#include <chrono>

#include "mailsync/queue/job.hpp"

namespace mailsync::queue {

// Backoff after a failed attempt: base * factor^(attempt-1), capped, then spread by +-jitter so
// that jobs that failed together (a provider outage) do not come back together.
struct RetryPolicy {
  std::chrono::milliseconds base{std::chrono::seconds(15)};
  double factor = 2.0;
  std::chrono::milliseconds cap{std::chrono::hours(1)};
  double jitter = 0.2;  // fraction of the delay, 0..1

  // Names the first bad field, or empty when valid.
  std::string validate() const;
};

// The delay before attempt `attempt + 1` after attempt `attempt` (>= 1) failed. `random01` in [0,
// 1) comes from the caller so that the function stays pure and testable.
std::chrono::milliseconds retry_delay(const RetryPolicy& policy, int attempt, double random01);

inline TimePoint next_retry_at(TimePoint now, const RetryPolicy& policy, int attempt,
                               double random01) {
  return now + retry_delay(policy, attempt, random01);
}

}  // namespace mailsync::queue
