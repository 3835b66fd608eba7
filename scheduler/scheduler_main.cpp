// `mailsync-scheduler`: enqueues one route_sync per enabled route every SYNC_INTERVAL_SECONDS and
// runs queue maintenance (DESIGN.md section 3).

#include <algorithm>
#include <boost/program_options.hpp>
#include <iostream>

#include "mailsync/build_info.hpp"
#include "mailsync/cli.hpp"
#include "mailsync/config/config.hpp"
#include "mailsync/exit_codes.hpp"
#include "mailsync/health.hpp"
#include "mailsync/log.hpp"
#include "mailsync/ui/status_page.hpp"
#include "scheduler.hpp"

namespace po = boost::program_options;
using namespace mailsync;

int main(int argc, char** argv) {
  // clang-format off
  po::options_description options(
      "Usage: mailsync-scheduler [options]\n"
      "Loads the routes configuration, upserts the routes into mailsync.routes and enqueues one\n"
      "route_sync job per enabled, unpaused route every SYNC_INTERVAL_SECONDS (default 300) unless\n"
      "one is already queued or running; rescues jobs whose lease expired and prunes old finished\n"
      "jobs. Several replicas may run at once: each route is enqueued at most once per interval.\n\n"
      "Options");
  options.add_options()
      ("help,h", "show this help")
      ("version", "print the version")
      ("once", "run one cycle now (even if one ran within the interval) and exit")
      ("tick-seconds", po::value<int>()->default_value(10), "how often to check for a due cycle and run maintenance")
      ("retention-hours", po::value<int>()->default_value(24), "keep succeeded and cancelled jobs this long")
      ("dead-retention-days", po::value<int>()->default_value(30), "keep dead jobs and attempt history this long")
      ("metrics-port", po::value<unsigned>(), "serve Prometheus /metrics (queue depth, oldest due job,\n"
       "routes in auth_required), /healthz and /readyz (database reachable) on this port")
      ("metrics-address", po::value<std::string>()->default_value("0.0.0.0"), "address for --metrics-port")
      ("ui-port", po::value<unsigned>(), "serve the status page (routes, progress, messages not copied,\n"
       "dead jobs, the last hour's jobs; read-only) on this port")
      ("ui-address", po::value<std::string>()->default_value("127.0.0.1"), "address for --ui-port; any other\n"
       "than a loopback address needs MAILSYNC_UI_TOKEN (a value, env:NAME, file:PATH or\n"
       "aws-sm:ID#KEY), which a browser gives as the password of its login prompt")
      ("ui-refresh-seconds", po::value<int>()->default_value(5), "how often the status page refreshes itself");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, options), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "mailsync-scheduler: " << e.what() << "\n";
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

  std::vector<std::string> problems;
  if (const auto error = init_logging("mailsync-scheduler")) problems.push_back(*error);
  // The scheduler reads no secrets: only the structure of the routes is checked here.
  const config::Config loaded = config::load_config(config::Needs::kStructure);
  for (const auto& error : loaded.errors) problems.push_back(error);
  for (const auto& warning : loaded.warnings)
    std::cerr << "mailsync-scheduler: warning: " << warning << "\n";

  std::optional<config::Secret> ui_token;  // read only for the status page
  // NOLINTNEXTLINE(concurrency-mt-unsafe): at start, before any thread
  if (const char* spec = std::getenv("MAILSYNC_UI_TOKEN");
      vm.count("ui-port") && spec != nullptr && *spec != '\0') {
    const config::SecretResolution resolved = config::resolve_secret(spec, "MAILSYNC_UI_TOKEN");
    if (resolved.secret)
      ui_token = resolved.secret;
    else
      problems.push_back(resolved.error);
    if (!resolved.warning.empty())
      std::cerr << "mailsync-scheduler: warning: " << resolved.warning << "\n";
  }

  scheduler::SchedulerConfig config;
  config.database_url = loaded.settings.database_url;
  config.interval = loaded.settings.sync_interval;
  config.tick = std::chrono::seconds(vm["tick-seconds"].as<int>());
  config.retention = std::chrono::hours(vm["retention-hours"].as<int>());
  config.dead_retention = std::chrono::hours(24 * vm["dead-retention-days"].as<int>());
  if (const std::string problem = config.validate(); !problem.empty()) problems.push_back(problem);
  if (!problems.empty()) {
    for (const auto& problem : problems) std::cerr << "mailsync-scheduler: " << problem << "\n";
    return exit_code::kUsage;
  }

  try {
    scheduler::Scheduler scheduler(config, loaded.routes);
    if (vm.count("once")) {
      const scheduler::CycleReport report = scheduler.run_once(/*force=*/true);
      std::cout << "routes: " << loaded.routes.size() << " configured (" << report.routes.changed
                << " added or changed, " << report.routes.disabled << " disabled)\n"
                << "enqueued: " << report.enqueued.value_or(0) << " route_sync jobs\n"
                << "rescued: " << report.rescued.made_available.size()
                << " (dead: " << report.rescued.made_dead.size()
                << ")\npruned: " << report.pruned.jobs << " jobs, " << report.pruned.attempts
                << " attempt records\n";
      return exit_code::kOk;
    }
    std::unique_ptr<metrics::Server> metrics_server;
    if (vm.count("metrics-port") &&
        !(metrics_server = health::serve_or_report(
              vm["metrics-address"].as<std::string>(), vm["metrics-port"].as<unsigned>(),
              {"mailsync-scheduler", config.database_url, std::nullopt, /*queue_gauges=*/true})))
      return exit_code::kUsage;
    std::unique_ptr<metrics::Server> ui_server;
    if (vm.count("ui-port")) {
      try {
        ui_server = ui::serve_status_page(
            {vm["ui-address"].as<std::string>(), vm["ui-port"].as<unsigned>(), config.database_url,
             ui_token, std::max(1, vm["ui-refresh-seconds"].as<int>())});
        spdlog::info("status page on http://{}:{}/", vm["ui-address"].as<std::string>(),
                     ui_server->port());
      } catch (const std::runtime_error& e) {
        std::cerr << "mailsync-scheduler: " << e.what() << "\n";
        return exit_code::kUsage;
      }
    }
    cli::on_stop_signals([](void* s) { static_cast<scheduler::Scheduler*>(s)->stop(); },
                         &scheduler);
    scheduler.run();
    return exit_code::kOk;
  } catch (...) {
    return cli::database_failure("mailsync-scheduler");
  }
}
