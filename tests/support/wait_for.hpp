#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace mailsync::testing {

// Waits for a condition another process or thread brings about (a worker claiming jobs), checking
// every 20 ms, up to `limit`. Not a timer: tests that need time to pass inject `now` instead.
inline bool wait_for(const std::function<bool()>& condition,
                     std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

}  // namespace mailsync::testing
