#include "mailsync/sync/message_retry.hpp"

#include <algorithm>

namespace mailsync::sync {

TimePoint next_message_retry_at(TimePoint now, int retry_count,
                                std::chrono::milliseconds server_hint) {
  const int doublings = std::clamp(retry_count, 0, 10);
  const std::chrono::milliseconds backoff =
      std::min<std::chrono::milliseconds>(kFirstMessageRetry * (1 << doublings), kMaxMessageRetry);
  return now + std::max(backoff, server_hint);
}

}  // namespace mailsync::sync
