// `mailsync-worker`: claims jobs from mailsync.jobs and runs them (DESIGN.md section 3).

#include <boost/program_options.hpp>
#include <iostream>

#include "mailsync/build_info.hpp"
#include "mailsync/cli.hpp"
#include "mailsync/exit_codes.hpp"
#include "mailsync/log.hpp"
#include "mailsync/postgres/errors.hpp"
#include "mailsync/queue/worker_pool.hpp"

namespace po = boost::program_options;
using namespace mailsync;

int main(int argc, char** argv) {
  // clang-format off
  po::options_description options(
      "Usage: mailsync-worker [options]\n"
      "Claims due jobs with FOR UPDATE SKIP LOCKED, runs them on --concurrency threads, heartbeats\n"
      "their leases, retries failures with backoff and dead-letters them after max attempts. Wakes\n"
      "on LISTEN/NOTIFY with a poll fallback; SIGTERM/SIGINT stop it gracefully.\n"
      "Kinds run by this build: noop (route_sync arrives with the sync pipeline).\n\nOptions");
  options.add_options()
      ("help,h", "show this help")
      ("version", "print the version")
      ("concurrency", po::value<int>()->default_value(4), "jobs run at once")
      ("prefetch", po::value<int>()->default_value(0),
       "claim up to this many jobs beyond --concurrency to wait in memory (short jobs: fewer,\n"
       "larger claims; keep 0 for long jobs)")
      ("drain", "exit when no job is due and none is running")
      ("poll-only", "never LISTEN; poll (for PgBouncer transaction pooling)")
      ("poll-interval-ms", po::value<int>()->default_value(1000), "poll when no notification arrives")
      ("lease-seconds", po::value<int>()->default_value(60), "lease of a claimed job; heartbeat every third")
      ("shutdown-timeout-seconds", po::value<int>()->default_value(30),
       "on SIGTERM, wait this long for running jobs before cancelling and giving them back")
      ("metrics-port", po::value<unsigned>(), "serve Prometheus metrics, /healthz and /readyz");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, options), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "mailsync-worker: " << e.what() << "\n";
    return exit_code::kUsage;
  }
  if (vm.count("help")) {
    std::cout << options
              << "\nExit codes: 0 ok, 1 failure, 2 usage or configuration error, "
                 "4 database unavailable.\n";
    return exit_code::kOk;
  }
  if (vm.count("version")) {
    std::cout << version_line() << "\n";
    return exit_code::kOk;
  }
  if (vm.count("metrics-port")) return cli::not_built("mailsync-worker", "--metrics-port");
  if (const auto error = init_logging("mailsync-worker")) {
    std::cerr << "mailsync-worker: " << *error << "\n";
    return exit_code::kUsage;
  }

  queue::WorkerConfig config;
  config.database_url = cli::env("MAILSYNC_DATABASE_URL").value_or("");
  config.concurrency = vm["concurrency"].as<int>();
  config.prefetch = vm["prefetch"].as<int>();
  config.drain = vm.count("drain") > 0;
  config.listen = vm.count("poll-only") == 0;
  config.poll_interval = std::chrono::milliseconds(vm["poll-interval-ms"].as<int>());
  config.lease = std::chrono::seconds(vm["lease-seconds"].as<int>());
  config.shutdown_timeout = std::chrono::seconds(vm["shutdown-timeout-seconds"].as<int>());

  queue::HandlerRegistry handlers;
  handlers.add(queue::kNoopKind, queue::noop_kind());
  try {
    queue::WorkerPool pool(config, std::move(handlers));
    cli::on_stop_signals([](void* p) { static_cast<queue::WorkerPool*>(p)->stop(); }, &pool);
    pool.run();
    return exit_code::kOk;
  } catch (const std::invalid_argument& e) {
    std::cerr << "mailsync-worker: " << e.what() << "\n";
    return exit_code::kUsage;
  } catch (const postgres::DatabaseUnavailable& e) {
    std::cerr << "mailsync-worker: database unavailable: " << e.what() << "\n";
    return exit_code::kDatabaseUnavailable;
  }
}
