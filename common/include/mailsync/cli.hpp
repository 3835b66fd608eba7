#pragma once

#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

// Shared command-line plumbing for the three executables: a subcommand table with generated usage,
// and environment look-ups.
namespace mailsync::cli {

struct Command {
  std::string_view name;  // "migrate"
  std::string_view
      synopsis;  // "migrate" / "enqueue --route KEY | --all [--priority P] [--run-at T]"
  std::string_view summary;  // one line
  // Receives the arguments after the command name.
  std::function<int(std::span<const std::string> args)> run;
};

struct Program {
  std::string_view name;     // "mailsync"
  std::string_view summary;  // one line under the usage line
  std::vector<Command> commands;
  std::string_view footer;  // environment and exit codes
};

// Usage text: synopsis, commands, footer.
std::string usage(const Program& program);

// Runs the command named by argv[1]. --help / -h / help print usage and exit 0; --version prints
// the version line; no command or an unknown one prints usage to stderr and exits 2.
int dispatch(const Program& program, int argc, char** argv);

// The variable's value when set and not empty: from the process environment, else from the
// overlay (variables merged in from AWS Secrets Manager: explicit variables win).
std::optional<std::string> env(const char* name);

// The overlay: name -> value and where it came from ("aws-sm:ID#KEY"). Replaced as a whole;
// thread-safe.
struct OverlayValue {
  std::string value;
  std::string origin;
};
void set_environment_overlay(std::map<std::string, OverlayValue> overlay);
// Where env(name) came from when the overlay supplied it; nullopt for the process environment.
std::optional<std::string> env_origin(const char* name);

// A positive integer variable: its value, `fallback` when unset, or an error message naming it.
struct IntSetting {
  long value = 0;
  std::string error;
};
IntSetting env_positive_int(const char* name, long fallback);

// For a `catch (...)` block: a database failure (postgres::DatabaseUnavailable, DatabaseError) as
// a one-line message prefixed with `program` and its exit code (4 or 1); rethrows anything else.
int database_failure(std::string_view program);

// For processes that hold tokens and secrets in memory: no core file (RLIMIT_CORE 0) and not
// dumpable (PR_SET_DUMPABLE 0: no core, no ptrace or /proc/PID/mem by other processes of the same
// user). Sanitizer builds stay dumpable: LeakSanitizer attaches to the process at exit.
void protect_memory();

// Calls `stop(arg)` from the SIGTERM and SIGINT handlers; `stop` must be async-signal-safe.
void on_stop_signals(void (*stop)(void*), void* arg);

}  // namespace mailsync::cli
