#pragma once

#include <chrono>
#include <ctime>
#include <string>

namespace mailsync::sync {

// "2026-11-21T15:46:34Z": the DynamoDB items' timestamps, as the Lambda version wrote them.
inline std::string iso8601(std::chrono::system_clock::time_point t) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char out[32];
  std::strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return out;
}

}  // namespace mailsync::sync
