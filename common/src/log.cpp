#include "mailsync/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

namespace mailsync {

std::optional<std::string> init_logging(std::string_view service) {
  auto logger = spdlog::stderr_logger_mt(std::string(service));
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %n %l %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::info);

  const char* raw = std::getenv("LOG_LEVEL");
  if (raw == nullptr || *raw == '\0') return std::nullopt;
  std::string name(raw);
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (name == "warning") name = "warn";
  const auto level = spdlog::level::from_str(name);
  // from_str answers "off" for anything it does not know; only accept "off" when asked for.
  if (level == spdlog::level::off && name != "off")
    return "LOG_LEVEL=" + std::string(raw) + " is not one of TRACE, DEBUG, INFO, WARN, ERROR, OFF";
  spdlog::set_level(level);
  return std::nullopt;
}

}  // namespace mailsync
