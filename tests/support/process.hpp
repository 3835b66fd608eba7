#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mailsync::testing {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out;
  std::string err;
};

// Environment changes for a child: a value sets the variable, nullopt unsets it.
using EnvChanges = std::map<std::string, std::optional<std::string>>;

// Runs `argv` to completion, capturing stdout and stderr.
ProcessResult run_process(const std::vector<std::string>& argv, const EnvChanges& env = {});

// A started child whose output goes to files; for running several at once. Destroyed while still
// running, it is killed (SIGKILL).
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const EnvChanges& env = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ProcessResult wait();
  void signal(int signal_number) const;
  std::string read_err() const;  // what the child wrote to stderr so far
  int pid() const { return pid_; }

 private:
  int pid_ = -1;
  std::string out_path_, err_path_;
};

// The value of an environment variable the integration tests need; fails the current test with a
// hint when the local stack's env file was not sourced.
std::string stack_env(const char* name);

}  // namespace mailsync::testing
