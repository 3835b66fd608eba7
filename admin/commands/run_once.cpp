// `mailsync run-once [--dry-run] [--route KEY]`: the route_sync pipeline inline, without the queue.

#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <optional>

#include "commands/commands.hpp"
#include "commands/support.hpp"
#include "mailsync/cli.hpp"
#include "mailsync/config/config.hpp"
#include "mailsync/exit_codes.hpp"
#include "mailsync/log.hpp"
#include "mailsync/queue/lease_keeper.hpp"
#include "mailsync/sync/live_route_sync.hpp"
#include "mailsync/util/memory.hpp"

namespace mailsync::admin {

namespace {

// run-once's exit code for a route's outcome (DESIGN section 3): 3 when the DynamoDB gate was
// closed (nothing was touched), 1 for any other route that did not succeed.
int exit_code_for(sync::SyncOutcome outcome) {
  switch (outcome) {
    case sync::SyncOutcome::kSucceeded:
      return exit_code::kOk;
    case sync::SyncOutcome::kGateClosed:
      return exit_code::kGateUnavailable;
    default:
      return exit_code::kFailure;
  }
}

// The lease owner run-once's attempts are recorded under, as a worker's "host:pid:...".
std::string run_once_owner() {
  char host[256] = "host";
  ::gethostname(host, sizeof host - 1);
  return std::string("run-once:") + host + ":" + std::to_string(::getpid());
}

}  // namespace

int run_run_once(std::span<const std::string> args) {
  po::options_description options(
      "Usage: mailsync run-once [--dry-run] [--route KEY]\n"
      "Syncs every enabled route (or one) now, in this process, exactly as a worker would.\n"
      "Each route runs as its route_sync job, under a lease, like a worker's attempt: a route a\n"
      "worker is syncing right now is left alone (exit 5). --dry-run lists what would be copied\n"
      "and changes nothing. Exit codes: 0 ok, 1 a route failed, 2 configuration, 3 DynamoDB gate\n"
      "closed (nothing was touched), 4 database, 5 a route was busy.\n\nOptions");
  options.add_options()("help,h", "show this help")(
      "dry-run", "list what would be copied; copy nothing")("route", po::value<std::string>(),
                                                            "route key or Gmail address");
  po::variables_map vm;
  if (auto exit = parse_options("run-once", options, args, vm)) return *exit;
  util::cap_malloc_arenas();  // before any thread
  if (const auto error = init_logging("mailsync run-once")) {
    std::cerr << "mailsync run-once: " << *error << "\n";
    return exit_code::kUsage;
  }
  const config::Config loaded = config::load_config(config::Needs::kSecrets);
  const auto dynamo_settings = dynamo::dynamo_options_from_env(loaded.settings.tls_ca_file);
  std::vector<std::string> problems = loaded.errors;
  problems.insert(problems.end(), dynamo_settings.errors.begin(), dynamo_settings.errors.end());
  if (loaded.settings.database_url.empty())
    problems.emplace_back("MAILSYNC_DATABASE_URL is not set");
  for (const auto& warning : loaded.warnings)
    std::cerr << "mailsync run-once: warning: " << warning << "\n";
  if (!problems.empty()) {
    for (const auto& problem : problems) std::cerr << "mailsync run-once: " << problem << "\n";
    return exit_code::kUsage;
  }
  std::vector<const config::Route*> routes;
  for (const auto& route : loaded.routes) {
    if (vm.count("route") ? (route.key() == vm["route"].as<std::string>() ||
                             route.gmail_email == vm["route"].as<std::string>())
                          : route.enabled)
      routes.push_back(&route);
  }
  if (routes.empty()) {
    std::cerr << "mailsync run-once: no such route"
              << (vm.count("route") ? " '" + vm["route"].as<std::string>() + "'" : "")
              << " (`mailsync routes` lists them)\n";
    return exit_code::kUsage;
  }

  dynamo::DynamoClient dynamo(*dynamo_settings.options);
  try {
    dynamo.check_table();  // before any IMAP connection (invariant 6)
  } catch (const dynamo::DynamoError& e) {
    std::cerr << "mailsync run-once: DynamoDB gate closed, nothing touched: " << e.what() << "\n";
    return exit_code::kGateUnavailable;
  }
  try {
    auto store = sync::make_pg_sync_store(loaded.settings.database_url, "mailsync run-once");
    oauth::TokenProvider tokens({.http = {.ca_file = loaded.settings.tls_ca_file}});
    sync::ImapPool pool([&] {
      return imap::Client::connect(
          sync::imap_options(loaded.settings, loaded.settings.outlook_imap));
    });
    sync::SyncOptions sync_options;
    sync_options.dry_run = vm.count("dry-run") > 0;
    const std::atomic<bool> never{false};
    const std::string owner = run_once_owner();
    int exit = exit_code::kOk;
    for (const config::Route* route : routes) {
      const auto start = std::chrono::steady_clock::now();
      // A dry run writes nothing and needs no lease.
      std::optional<queue::LeaseKeeper> keeper;
      if (!sync_options.dry_run) {
        try {
          keeper.emplace(loaded.settings.database_url, owner, route->key());
        } catch (const queue::RouteBusy& e) {
          std::cout << route->gmail_email << " -> " << route->target_folder
                    << ": busy: " << e.what() << "\n";
          exit = std::max(exit, exit_code::kRouteBusy);
          continue;
        }
      }
      sync::RunLease lease;
      if (keeper)
        lease = {{keeper->job().id, keeper->job().attempt, owner},
                 [&keeper] { return keeper->lease().fresh(); }};
      const log::ContextScope log_context({log::new_run_id(), lease.fence.job_id, route->key()});
      const sync::SyncReport report =
          sync::LiveRouteSync(loaded.settings, *route, tokens, *store, dynamo, pool, sync_options)
              .run(lease, keeper ? keeper->lost() : never);
      if (keeper)
        keeper->finish(report.result, log::context().run_id, sync::route_sync_retry_policy());
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const auto& stats = report.result.stats;
      std::cout << route->gmail_email << " -> " << route->target_folder << ": ";
      if (report.result.outcome == queue::Outcome::kSucceeded) {
        if (sync_options.dry_run) {
          std::cout << report.would_copy.size() << " would be copied\n";
          for (const auto& line : report.would_copy) std::cout << "  " << line << "\n";
        } else {
          std::printf("%d fetched, %d appended, %d skipped, %d failed, %.1f KB in %.2f s\n",
                      stats.fetched, stats.appended, stats.skipped, stats.failed,
                      static_cast<double>(stats.bytes) / 1024, seconds);
        }
      } else {
        std::cout << queue::to_string(report.result.outcome) << ": " << report.result.error << "\n";
        exit = std::max(exit, exit_code_for(report.outcome));
      }
    }
    return exit;
  } catch (...) {
    return cli::database_failure("mailsync run-once");
  }
}

}  // namespace mailsync::admin
