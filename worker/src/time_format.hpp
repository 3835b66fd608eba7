#pragma once

#include <chrono>
#include <string>

#include "mailsync/util/strings.hpp"

namespace mailsync::sync {

// "2026-11-21T15:46:34Z": the DynamoDB items' timestamps, as the Lambda version wrote them.
inline std::string iso8601(std::chrono::system_clock::time_point t) {
  return util::utc_text(t);
}

}  // namespace mailsync::sync
