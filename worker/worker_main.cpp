// `mailsync-worker`: claims jobs from mailsync.jobs and runs them (DESIGN.md section 3).

#include <boost/program_options.hpp>
#include <iostream>

#include "mailsync/build_info.hpp"
#include "mailsync/cli.hpp"
#include "mailsync/exit_codes.hpp"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  po::options_description options(
      "Usage: mailsync-worker [options]\n"
      "Claims due jobs with FOR UPDATE SKIP LOCKED, runs them on --concurrency threads, "
      "heartbeats\n"
      "their leases, retries failures with backoff and dead-letters them after max attempts. "
      "Wakes\n"
      "on LISTEN/NOTIFY with a poll fallback; SIGTERM/SIGINT stop it gracefully.\n\nOptions");
  options.add_options()("help,h", "show this help")("version", "print the version")(
      "concurrency", po::value<unsigned>()->default_value(4), "jobs run at once")(
      "drain", "exit when no job is due")("poll-only",
                                          "never LISTEN; poll (for PgBouncer transaction pooling)")(
      "metrics-port", po::value<unsigned>(), "serve Prometheus metrics, /healthz and /readyz");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, options), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "mailsync-worker: " << e.what() << "\n";
    return mailsync::exit_code::kUsage;
  }
  if (vm.count("help")) {
    std::cout << options
              << "\nExit codes: 0 ok, 1 failure, 2 usage or configuration error, "
                 "4 database unavailable.\n";
    return mailsync::exit_code::kOk;
  }
  if (vm.count("version")) {
    std::cout << mailsync::version_line() << "\n";
    return mailsync::exit_code::kOk;
  }
  return mailsync::cli::not_built("mailsync-worker", "the worker pool");
}
