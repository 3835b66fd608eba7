#pragma once

#include <chrono>

#include "mailsync/sync/sync_store.hpp"

// When a message whose copy failed for a transient reason is tried again: one rule, a pure
// function of the time (STYLE rule 3). The n-th retry (retry_count n, 0 the first time) waits
// 1 min × 2^n, at most 6 h — or as long as the server asked ("Suggested Backoff Time"), whichever
// is later: nothing is retried earlier than the server said.
namespace mailsync::sync {

inline constexpr std::chrono::minutes kFirstMessageRetry{1};
inline constexpr std::chrono::hours kMaxMessageRetry{6};

TimePoint next_message_retry_at(TimePoint now, int retry_count,
                                std::chrono::milliseconds server_hint = {});

}  // namespace mailsync::sync
