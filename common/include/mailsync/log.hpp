#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

// Process-wide logging: one JSON object per line on stderr (fields ts, level, msg, service and,
// inside a job, run_id, job_id, route; a summary line adds its counts), or a human-readable line
// for a terminal with LOG_FORMAT=text. Call sites use spdlog as usual; context and fields travel
// in thread-local state, so a sync (not async) logger is required — which is what this sets up.
namespace mailsync {

enum class LogFormat { kJson, kText };

// Sets up the process-wide logger on stderr for `service` ("mailsync-worker", ...), at LOG_LEVEL
// (TRACE, DEBUG, INFO, WARN, ERROR, OFF; INFO when unset) in LOG_FORMAT (json, the default, or
// text). Returns an error message for an unknown level or format and leaves INFO/json in place.
std::optional<std::string> init_logging(std::string_view service);

// The same on any sink (tests write to a string stream).
void init_logging(std::string_view service, LogFormat format, spdlog::sink_ptr sink);

namespace log {

// Who a line belongs to: one job attempt (run_id), its job and its route. Empty parts are left out.
struct Context {
  std::string run_id;
  int64_t job_id = 0;
  std::string route;
};

// Sets the calling thread's context for its lifetime; the previous one comes back afterwards.
// Parts left empty are taken from the context already in place.
class ContextScope {
 public:
  explicit ContextScope(Context context);
  ~ContextScope();
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;

 private:
  Context previous_;
};

const Context& context();

// One line with structured fields beside the message ({"appended": 12, "bytes": 60000}): the
// summary line of a job. In text format the fields follow the message as key=value.
void event(spdlog::level::level_enum level, std::string_view message,
           const nlohmann::ordered_json& fields);

// A random id for one run (job attempt or run-once): 16 hex digits.
std::string new_run_id();

}  // namespace log
}  // namespace mailsync
