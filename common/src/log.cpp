#include "mailsync/log.hpp"

#include "mailsync/util/strings.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "mailsync/util/random.hpp"

namespace mailsync {

namespace {

thread_local log::Context t_context;
thread_local const nlohmann::ordered_json* t_fields = nullptr;

std::string_view level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "off";
  }
}

// 2026-11-21T15:27:28.123Z
std::string utc_timestamp(spdlog::log_clock::time_point at) {
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
  const auto seconds = static_cast<std::time_t>(millis / 1000);
  std::tm parts{};
  gmtime_r(&seconds, &parts);
  char out[40];
  const size_t n = std::strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%S", &parts);
  std::snprintf(out + n, sizeof out - n, ".%03dZ", static_cast<int>(millis % 1000));
  return out;
}

// One JSON object per line. nlohmann escapes control characters and quotes; bytes that are not
// UTF-8 (a header quoted in an error) become U+FFFD instead of aborting the line.
class JsonFormatter final : public spdlog::formatter {
 public:
  explicit JsonFormatter(std::string service) : service_(std::move(service)) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    nlohmann::ordered_json line;
    line["ts"] = utc_timestamp(msg.time);
    line["level"] = level_name(msg.level);
    line["msg"] = std::string(msg.payload.data(), msg.payload.size());
    line["service"] = service_;
    if (!t_context.run_id.empty()) line["run_id"] = t_context.run_id;
    if (t_context.job_id != 0) line["job_id"] = t_context.job_id;
    if (!t_context.route.empty()) line["route"] = t_context.route;
    if (t_fields != nullptr)
      for (const auto& [key, value] : t_fields->items())
        if (!line.contains(key)) line[key] = value;
    const std::string text =
        line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    dest.append(text.data(), text.data() + text.size());
    dest.push_back('\n');
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>(service_);
  }

 private:
  std::string service_;
};

// 2026-11-21T15:27:28.123Z mailsync-worker info [job 12 run 3fa1… route …] message key=value
class TextFormatter final : public spdlog::formatter {
 public:
  explicit TextFormatter(std::string service) : service_(std::move(service)) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string text =
        utc_timestamp(msg.time) + " " + service_ + " " + std::string(level_name(msg.level)) + " ";
    std::string where;
    if (t_context.job_id != 0) where += "job " + std::to_string(t_context.job_id);
    if (!t_context.route.empty()) where += (where.empty() ? "" : " ") + t_context.route;
    if (!where.empty()) text += "[" + where + "] ";
    // A server's words may hold a line break (a forged log line) or bytes a terminal acts on:
    // escaped (util::safe_text), one event per line.
    text += util::safe_text(std::string_view(msg.payload.data(), msg.payload.size()));
    if (t_fields != nullptr)
      for (const auto& [key, value] : t_fields->items())
        text += " " + key + "=" +
                util::safe_text(value.is_string()
                                    ? value.get<std::string>()
                                    : value.dump(-1, ' ', false,
                                                 nlohmann::ordered_json::error_handler_t::replace));
    text += '\n';
    dest.append(text.data(), text.data() + text.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<TextFormatter>(service_);
  }

 private:
  std::string service_;
};

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return text;
}

}  // namespace

void init_logging(std::string_view service, LogFormat format, spdlog::sink_ptr sink) {
  auto logger = std::make_shared<spdlog::logger>(std::string(service), std::move(sink));
  if (format == LogFormat::kJson)
    logger->set_formatter(std::make_unique<JsonFormatter>(std::string(service)));
  else
    logger->set_formatter(std::make_unique<TextFormatter>(std::string(service)));
  logger->set_level(spdlog::level::trace);  // the global level decides
  spdlog::set_default_logger(std::move(logger));
  spdlog::set_level(spdlog::level::info);
}

std::optional<std::string> init_logging(std::string_view service) {
  std::optional<std::string> error;
  LogFormat format = LogFormat::kJson;
  // NOLINTNEXTLINE(concurrency-mt-unsafe): at start, before any thread
  if (const char* raw = std::getenv("LOG_FORMAT"); raw != nullptr && *raw != '\0') {
    const std::string name = lower(raw);
    if (name == "text")
      format = LogFormat::kText;
    else if (name != "json")
      error = "LOG_FORMAT=" + std::string(raw) + " is not one of json, text";
  }
  init_logging(service, format, std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (error) return error;

  const char* raw = std::getenv("LOG_LEVEL");  // NOLINT(concurrency-mt-unsafe): likewise
  if (raw == nullptr || *raw == '\0') return std::nullopt;
  std::string name = lower(raw);
  if (name == "warning") name = "warn";
  const auto level = spdlog::level::from_str(name);
  // from_str answers "off" for anything it does not know; only accept "off" when asked for.
  if (level == spdlog::level::off && name != "off")
    return "LOG_LEVEL=" + std::string(raw) + " is not one of TRACE, DEBUG, INFO, WARN, ERROR, OFF";
  spdlog::set_level(level);
  return std::nullopt;
}

namespace log {

ContextScope::ContextScope(Context context) : previous_(t_context) {
  if (context.run_id.empty()) context.run_id = previous_.run_id;
  if (context.job_id == 0) context.job_id = previous_.job_id;
  if (context.route.empty()) context.route = previous_.route;
  t_context = std::move(context);
}

ContextScope::~ContextScope() {
  t_context = std::move(previous_);
}

const Context& context() {
  return t_context;
}

void event(spdlog::level::level_enum level, std::string_view message,
           const nlohmann::ordered_json& fields) {
  const auto* previous = t_fields;
  t_fields = &fields;
  spdlog::log(level, "{}", message);
  t_fields = previous;
}

std::string new_run_id() {
  return util::random_hex(16);
}

}  // namespace log
}  // namespace mailsync
