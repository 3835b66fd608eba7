#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mailsync {

// Sets up the process-wide logger on stderr for `service` ("mailsync-worker", ...), at LOG_LEVEL
// (TRACE, DEBUG, INFO, WARN, ERROR, OFF; INFO when unset). Returns an error message for an
// unknown level and leaves INFO in place.
std::optional<std::string> init_logging(std::string_view service);

}  // namespace mailsync
