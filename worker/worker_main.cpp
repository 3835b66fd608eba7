// `mailsync-worker`: claims jobs from mailsync.jobs and runs them (DESIGN.md section 3).

#include <spdlog/spdlog.h>
#include <algorithm>
#include <boost/program_options.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <set>
#include <thread>

#include "mailsync/build_info.hpp"
#include "mailsync/cli.hpp"
#include "mailsync/config/config.hpp"
#include "mailsync/dynamo/dynamo_client.hpp"
#include "mailsync/exit_codes.hpp"
#include "mailsync/health.hpp"
#include "mailsync/log.hpp"
#include "mailsync/postgres/errors.hpp"
#include "mailsync/queue/worker_pool.hpp"
#include "mailsync/sync/imap_login.hpp"
#include "mailsync/sync/live_route_sync.hpp"
#include "mailsync/sync/route_watch.hpp"
#include "mailsync/sync/sync_store.hpp"
#include "mailsync/util/memory.hpp"

namespace po = boost::program_options;
using namespace mailsync;

int main(int argc, char** argv) {
  cli::protect_memory();  // tokens and secrets live in this process
  // clang-format off
  po::options_description options(
      "Usage: mailsync-worker [options]\n"
      "Claims due jobs with FOR UPDATE SKIP LOCKED, runs them on --concurrency threads, heartbeats\n"
      "their leases, retries failures with backoff and dead-letters them after max attempts. Wakes\n"
      "on LISTEN/NOTIFY with a poll fallback; SIGTERM/SIGINT stop it gracefully.\n"
      "Job kinds: route_sync (needs the routes configuration, tokens and DynamoDB settings),\n"
      "route_watch (IDLE on the Gmail INBOX of a push route, on --max-watches threads of their own)\n"
      "and noop (tests and benchmarks).\n\nOptions");
  options.add_options()
      ("help,h", "show this help")
      ("version", "print the version")
      ("concurrency", po::value<int>()->default_value(4), "jobs run at once")
      ("kinds", po::value<std::string>()->default_value("route_sync,route_watch,noop"), "job kinds to run, comma-separated")
      ("max-watches", po::value<int>()->default_value(100),
       "route_watch jobs (push routes) this process holds at most, each one IDLE connection on a\n"
       "thread of its own, beside --concurrency")
      ("prefetch", po::value<int>()->default_value(0),
       "claim up to this many jobs beyond --concurrency to wait in memory (short jobs: fewer,\n"
       "larger claims; keep 0 for long jobs)")
      ("drain", "exit when no job is due and none is running")
      ("poll-only", "never LISTEN; poll (for PgBouncer transaction pooling)")
      ("poll-interval-ms", po::value<int>()->default_value(1000), "poll when no notification arrives")
      ("lease-seconds", po::value<int>()->default_value(60), "lease of a claimed job; heartbeat every third")
      ("shutdown-timeout-seconds", po::value<int>()->default_value(30),
       "on SIGTERM, wait this long for running jobs before cancelling and giving them back")
      ("metrics-port", po::value<unsigned>(), "serve Prometheus /metrics, /healthz and /readyz (database\n"
       "and, for route_sync, the DynamoDB gate reachable) on this port")
      ("metrics-address", po::value<std::string>()->default_value("0.0.0.0"), "address for --metrics-port");
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
  util::cap_malloc_arenas();  // before any thread
  if (const auto error = init_logging("mailsync-worker")) {
    std::cerr << "mailsync-worker: " << *error << "\n";
    return exit_code::kUsage;
  }

  queue::WorkerConfig config;
  if (const auto& problems = config::merge_secrets_manager_once(); !problems.empty()) {
    for (const auto& problem : problems) std::cerr << "mailsync-worker: " << problem << "\n";
    return exit_code::kUsage;
  }
  config.database_url = cli::env("MAILSYNC_DATABASE_URL").value_or("");
  config.concurrency = vm["concurrency"].as<int>();
  config.prefetch = vm["prefetch"].as<int>();
  config.drain = vm.count("drain") > 0;
  config.listen = vm.count("poll-only") == 0;
  config.poll_interval = std::chrono::milliseconds(vm["poll-interval-ms"].as<int>());
  config.lease = std::chrono::seconds(vm["lease-seconds"].as<int>());
  config.shutdown_timeout = std::chrono::seconds(vm["shutdown-timeout-seconds"].as<int>());

  std::set<std::string> kinds;
  for (std::string_view rest = vm["kinds"].as<std::string>(); !rest.empty();) {
    const size_t comma = rest.find(',');
    kinds.insert(std::string(rest.substr(0, comma)));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  queue::HandlerRegistry handlers;
  if (kinds.contains(queue::kNoopKind)) handlers.add(queue::kNoopKind, queue::noop_kind());

  // route_sync: the whole configuration, secrets included, checked before anything starts.
  std::optional<config::Config> loaded;
  std::optional<dynamo::DynamoOptions> dynamo_options;
  std::unique_ptr<oauth::TokenProvider> tokens;
  std::unique_ptr<sync::ImapPool> outlook, gmail;
  std::map<std::string, const config::Route*> routes;
  // route_watch jobs run in a pool of their own: each holds a thread and an IDLE connection for as
  // long as it lives, and must not take the slots of route_sync.
  queue::HandlerRegistry watch_handlers;
  const int max_watches = vm["max-watches"].as<int>();
  if (max_watches < 0) {
    std::cerr << "mailsync-worker: --max-watches must not be negative\n";
    return exit_code::kUsage;
  }
  if (kinds.contains(queue::kRouteSyncKind) || kinds.contains(queue::kRouteWatchKind)) {
    loaded = config::load_config(config::Needs::kSecrets);
    const auto dynamo = dynamo::dynamo_options_from_env(loaded->settings.tls_ca_file);
    std::vector<std::string> problems = loaded->errors;
    problems.insert(problems.end(), dynamo.errors.begin(), dynamo.errors.end());
    const sync::ImapPool::Limits pool_limits = sync::ImapPool::limits_from_env(problems);
    const sync::WatchOptions watch_options = sync::WatchOptions::from_env(problems);
    for (const auto& warning : loaded->warnings) spdlog::warn("configuration: {}", warning);
    if (!problems.empty()) {
      for (const auto& problem : problems) std::cerr << "mailsync-worker: " << problem << "\n";
      std::cerr << "mailsync-worker: (run with --kinds noop to run without routes)\n";
      return exit_code::kUsage;
    }
    dynamo_options = dynamo.options;
    for (const auto& route : loaded->routes) routes[route.key()] = &route;
    tokens = std::make_unique<oauth::TokenProvider>(
        oauth::TokenProviderOptions{.http = {.ca_file = loaded->settings.tls_ca_file}});
    outlook = std::make_unique<sync::ImapPool>(
        [&] {
          return imap::Client::connect(
              sync::imap_options(loaded->settings, loaded->settings.outlook_imap));
        },
        pool_limits);
    gmail = std::make_unique<sync::ImapPool>(
        [&] {
          return imap::Client::connect(
              sync::imap_options(loaded->settings, loaded->settings.gmail_imap));
        },
        pool_limits);
    queue::KindConfig route_sync;
    route_sync.record_attempts = true;
    route_sync.retry = sync::route_sync_retry_policy();
    route_sync.handler = [&](queue::JobContext& context) -> queue::JobResult {
      // One store and one DynamoDB client per executor thread.
      thread_local std::unique_ptr<sync::SyncStore> store;
      thread_local std::unique_ptr<dynamo::DynamoClient> dynamo_client;
      const auto found = routes.find(context.job.route_key.value_or(""));
      if (found == routes.end() || !found->second->enabled)
        return queue::JobResult::cancelled("route " + context.job.route_key.value_or("?") +
                                           " is not configured (or disabled)");
      try {
        if (!store)
          store =
              sync::make_pg_sync_store(loaded->settings.database_url, "mailsync-worker route_sync");
        if (!dynamo_client) dynamo_client = std::make_unique<dynamo::DynamoClient>(*dynamo_options);
        sync::LiveRouteSync sync(loaded->settings, *found->second, *tokens, *store, *dynamo_client,
                                 *outlook, {}, gmail.get());
        const sync::RunLease lease{{context.job.id, context.job.attempt, context.lease.owner()},
                                   [&context] { return context.lease.fresh(); }};
        return sync.run(lease, context.cancel_flag).result;
      } catch (const postgres::DatabaseUnavailable&) {
        store.reset();  // reconnect on the next job
        throw;
      }
    };
    if (kinds.contains(queue::kRouteSyncKind))
      handlers.add(queue::kRouteSyncKind, std::move(route_sync));

    queue::KindConfig route_watch;
    route_watch.retry = sync::route_sync_retry_policy();
    route_watch.handler = [&, watch_options](queue::JobContext& context) -> queue::JobResult {
      // One database connection for every watch of this process (sync::WatchStore).
      static sync::WatchStore store([&] {
        return sync::make_pg_sync_store(loaded->settings.database_url,
                                        "mailsync-worker route_watch");
      });
      const auto found = routes.find(context.job.route_key.value_or(""));
      if (found == routes.end() || !found->second->enabled || !found->second->push)
        return queue::JobResult::cancelled("route " + context.job.route_key.value_or("?") +
                                           " is not a configured push route");
      const config::Route& route = *found->second;
      return sync::run_route_watch(
          route, store,
          [&] {
            imap::ClientOptions client =
                sync::imap_options(loaded->settings, loaded->settings.gmail_imap);
            // Every answer outside IDLE's own wait (DONE's above all) within this bound: a
            // silent server is found within reidle + answer_timeout.
            client.command_timeout = watch_options.answer_timeout;
            client.tls.io_timeout = watch_options.answer_timeout;
            std::unique_ptr<imap::Client> connected = imap::Client::connect(client);
            sync::login_xoauth2(*connected, route.gmail_email,
                                sync::gmail_credential(loaded->settings, route), *tokens);
            return connected;
          },
          context, watch_options);
    };
    const bool any_push = std::any_of(loaded->routes.begin(), loaded->routes.end(),
                                      [](const config::Route& r) { return r.enabled && r.push; });
    if (kinds.contains(queue::kRouteWatchKind) && max_watches > 0 && any_push)
      watch_handlers.add(queue::kRouteWatchKind, std::move(route_watch));
  }
  if (handlers.kinds().empty()) {
    std::cerr << "mailsync-worker: --kinds names no known kind (route_sync, noop)\n";
    return exit_code::kUsage;
  }

  std::unique_ptr<metrics::Server> metrics_server;
  if (vm.count("metrics-port") &&
      !(metrics_server = health::serve_or_report(
            vm["metrics-address"].as<std::string>(), vm["metrics-port"].as<unsigned>(),
            {"mailsync-worker", config.database_url, dynamo_options})))
    return exit_code::kUsage;

  try {
    queue::WorkerPool pool(config, std::move(handlers));
    // The watches: as many threads as --max-watches, no prefetch (a held watch is a claimed one),
    // a short shutdown wait (a watch only stops when cancelled; it notices within half a second).
    std::unique_ptr<queue::WorkerPool> watches;
    if (!watch_handlers.kinds().empty()) {
      queue::WorkerConfig watch_config = config;
      watch_config.concurrency = max_watches;
      watch_config.prefetch = 0;
      watch_config.drain = false;
      watch_config.shutdown_timeout = std::chrono::milliseconds(100);
      watch_config.owner = pool.owner() + "/watch";
      watches = std::make_unique<queue::WorkerPool>(watch_config, std::move(watch_handlers));
    }
    struct Pools {
      queue::WorkerPool* jobs;
      queue::WorkerPool* watches;
    } both{&pool, watches.get()};
    cli::on_stop_signals(
        [](void* p) {
          auto* pools = static_cast<Pools*>(p);
          pools->jobs->stop();
          if (pools->watches) pools->watches->stop();
        },
        &both);
    std::thread watch_thread;
    if (watches) {
      spdlog::info("mailsync-worker: holding up to {} route_watch jobs", max_watches);
      watch_thread = std::thread([&] {
        try {
          watches->run();
        } catch (const std::exception& e) {
          spdlog::error("route_watch pool stopped: {}", e.what());
        }
      });
    }
    pool.run();
    if (watches) {
      watches->stop();
      watch_thread.join();
    }
    if (!pool.stopped_cleanly() || (watches && !watches->stopped_cleanly())) {
      // A handler thread is still running on the routes, pools and tokens of this function:
      // returning would destroy them (and the process's statics) under its feet.
      spdlog::error(
          "mailsync-worker: a job ignored cancellation; its job was given back; exiting at once "
          "without cleaning up");
      spdlog::default_logger()->flush();
      std::fflush(nullptr);
      std::_Exit(exit_code::kFailure);
    }
    return exit_code::kOk;
  } catch (const std::invalid_argument& e) {
    std::cerr << "mailsync-worker: " << e.what() << "\n";
    return exit_code::kUsage;
  } catch (...) {
    return cli::database_failure("mailsync-worker");
  }
}
