// `mailsync-scheduler`: enqueues one route_sync per enabled route every SYNC_INTERVAL_SECONDS and
// runs queue maintenance (DESIGN.md section 3).

#include <boost/program_options.hpp>
#include <iostream>

#include "mailsync/build_info.hpp"
#include "mailsync/cli.hpp"
#include "mailsync/exit_codes.hpp"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  po::options_description options(
      "Usage: mailsync-scheduler [options]\n"
      "Loads the routes configuration, upserts the routes into mailsync.routes and enqueues one\n"
      "route_sync job per enabled, unpaused route every SYNC_INTERVAL_SECONDS (default 300) "
      "unless\n"
      "one is already queued or running; rescues jobs whose lease expired and prunes old finished\n"
      "jobs. Several replicas may run at once.\n\nOptions");
  options.add_options()("help,h", "show this help")("version", "print the version")(
      "once", "run one cycle and exit")("metrics-port", po::value<unsigned>(),
                                        "serve Prometheus metrics and /healthz on this port");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, options), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "mailsync-scheduler: " << e.what() << "\n";
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
  return mailsync::cli::not_built("mailsync-scheduler", "the scheduler loop");
}
