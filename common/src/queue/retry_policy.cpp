#include "mailsync/queue/retry_policy.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace mailsync::queue {

std::string_view to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::kSucceeded:
      return "succeeded";
    case Outcome::kFailed:
      return "failed";
    case Outcome::kRetryAt:
      return "retry";
    case Outcome::kCancelled:
      return "cancelled";
    case Outcome::kDead:
      return "dead";
  }
  return "failed";
}

std::string RetryPolicy::validate() const {
  if (base.count() <= 0) return "retry base must be positive";
  if (factor < 1.0) return "retry factor must be at least 1";
  if (cap < base) return "retry cap must not be below the base";
  if (jitter < 0.0 || jitter > 1.0) return "retry jitter must be between 0 and 1";
  return {};
}

std::chrono::milliseconds retry_delay(const RetryPolicy& policy, int attempt, double random01) {
  const double cap = static_cast<double>(policy.cap.count());
  // factor^(attempt-1) overflows to inf for large attempts; min() with the cap handles that.
  const double exponential =
      static_cast<double>(policy.base.count()) * std::pow(policy.factor, std::max(0, attempt - 1));
  const double delay = std::min(cap, exponential);
  const double spread = 1.0 + policy.jitter * (2.0 * std::clamp(random01, 0.0, 1.0) - 1.0);
  return std::chrono::milliseconds(
      static_cast<int64_t>(std::min(cap, std::max(1.0, delay * spread))));
}

}  // namespace mailsync::queue
