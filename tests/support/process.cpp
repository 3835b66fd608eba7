#include "support/process.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace mailsync::testing {

namespace {

[[noreturn]] void exec_child(const std::vector<std::string>& argv, const EnvChanges& env) {
  for (const auto& [name, value] : env) {
    if (value)
      ::setenv(name.c_str(), value->c_str(), 1);
    else
      ::unsetenv(name.c_str());
  }
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  ::execv(args[0], args.data());
  std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
  ::_exit(127);
}

int decode_status(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace

ProcessResult run_process(const std::vector<std::string>& argv, const EnvChanges& env) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe failed");
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    exec_child(argv, env);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ProcessResult result;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_count = 2;
  char buffer[4096];
  while (open_count > 0) {
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_count;
      }
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exit_code = decode_status(status);
  return result;
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const EnvChanges& env) {
  char out_template[] = "/tmp/mailsync-test-out.XXXXXX";
  char err_template[] = "/tmp/mailsync-test-err.XXXXXX";
  const int out_fd = ::mkstemp(out_template);
  const int err_fd = ::mkstemp(err_template);
  out_path_ = out_template;
  err_path_ = err_template;
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    exec_child(argv, env);
  }
  ::close(out_fd);
  ::close(err_fd);
}

ChildProcess::~ChildProcess() {
  // A test that ended early (a failed ASSERT, an exception) leaves its long-running children (a
  // worker, a scheduler) running: they are killed rather than waited for forever. A test that
  // wants a child's own end calls wait() itself.
  int status = 0;
  if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == 0)
    ::kill(pid_, SIGKILL);
  else if (pid_ > 0)
    pid_ = -1;  // reaped just now
  if (pid_ > 0) wait();
  ::unlink(out_path_.c_str());
  ::unlink(err_path_.c_str());
}

std::string ChildProcess::read_err() const {
  return slurp(err_path_);
}

void ChildProcess::signal(int signal_number) const {
  if (pid_ > 0) ::kill(pid_, signal_number);
}

ProcessResult ChildProcess::wait() {
  ProcessResult result;
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  result.exit_code = decode_status(status);
  result.out = slurp(out_path_);
  result.err = slurp(err_path_);
  return result;
}

std::string stack_env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    ADD_FAILURE() << name << " is not set: integration tests need the local stack. Run "
                  << "tests/run.sh, or: stack=$(deploy/local/up.sh); . \"$stack/env\"";
    return {};
  }
  return value;
}

}  // namespace mailsync::testing
