#include "mailsync/cli.hpp"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <mutex>

#include "mailsync/build_info.hpp"
#include "mailsync/exit_codes.hpp"
#include "mailsync/postgres/errors.hpp"

namespace mailsync::cli {

std::string usage(const Program& program) {
  std::string text = "Usage: " + std::string(program.name) + " <command> [options]\n" +
                     std::string(program.summary) + "\n\nCommands:\n";
  size_t width = 0;
  for (const Command& command : program.commands) width = std::max(width, command.synopsis.size());
  for (const Command& command : program.commands) {
    text += "  " + std::string(command.synopsis) +
            std::string(width - command.synopsis.size() + 2, ' ') + std::string(command.summary);
    text += "\n";
  }
  text += "\nRun '" + std::string(program.name) + " <command> --help' for a command's options.\n";
  if (!program.footer.empty()) text += "\n" + std::string(program.footer);
  return text;
}

int dispatch(const Program& program, int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << usage(program);
    return exit_code::kUsage;
  }
  const std::string& first = args.front();
  if (first == "--help" || first == "-h" || first == "help") {
    std::cout << usage(program);
    return exit_code::kOk;
  }
  if (first == "--version") {
    std::cout << version_line() << "\n";
    return exit_code::kOk;
  }
  for (const Command& command : program.commands) {
    if (command.name != first) continue;
    return command.run(std::span<const std::string>(args).subspan(1));
  }
  std::cerr << program.name << ": unknown command '" << first << "'\n\n" << usage(program);
  return exit_code::kUsage;
}

namespace {

std::mutex overlay_mutex;
std::map<std::string, OverlayValue>& overlay() {
  static std::map<std::string, OverlayValue> values;
  return values;
}

bool in_process_environment(const char* name) {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): nothing in mailsync writes the environment
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0';
}

}  // namespace

std::optional<std::string> env(const char* name) {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): nothing in mailsync writes the environment
  const char* value = std::getenv(name);
  if (value != nullptr && *value != '\0') return std::string(value);
  const std::lock_guard lock(overlay_mutex);
  const auto found = overlay().find(name);
  if (found == overlay().end() || found->second.value.empty()) return std::nullopt;
  return found->second.value;
}

void set_environment_overlay(std::map<std::string, OverlayValue> values) {
  const std::lock_guard lock(overlay_mutex);
  overlay() = std::move(values);
}

std::optional<std::string> env_origin(const char* name) {
  if (in_process_environment(name)) return std::nullopt;
  const std::lock_guard lock(overlay_mutex);
  const auto found = overlay().find(name);
  if (found == overlay().end() || found->second.value.empty()) return std::nullopt;
  return found->second.origin;
}

IntSetting env_positive_int(const char* name, long fallback) {
  const auto text = env(name);
  if (!text) return {fallback, {}};
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text->c_str(), &end, 10);
  if (errno != 0 || end == text->c_str() || *end != '\0' || value <= 0)
    return {fallback, std::string(name) + "=" + *text + " is not a positive integer"};
  return {value, {}};
}

int database_failure(std::string_view program) {
  try {
    throw;
  } catch (const postgres::DatabaseUnavailable& e) {
    std::cerr << program << ": database unavailable: " << e.what() << "\n";
    return exit_code::kDatabaseUnavailable;
  } catch (const postgres::DatabaseError& e) {
    std::cerr << program << ": database error (SQLSTATE " << e.sqlstate() << "): " << e.what()
              << "\n";
    return exit_code::kFailure;
  }
}

namespace {
void (*g_stop)(void*) = nullptr;
void* g_stop_arg = nullptr;
extern "C" void handle_stop_signal(int) {
  if (g_stop != nullptr) g_stop(g_stop_arg);
}
}  // namespace

void on_stop_signals(void (*stop)(void*), void* arg) {
  g_stop = stop;
  g_stop_arg = arg;
  struct sigaction action {};
  action.sa_handler = handle_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

void protect_memory() {
  const rlimit none{0, 0};
  ::setrlimit(RLIMIT_CORE, &none);
#if !defined(__SANITIZE_ADDRESS__)
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#endif
}

}  // namespace mailsync::cli
