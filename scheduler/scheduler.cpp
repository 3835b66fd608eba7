#include "scheduler.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <stdexcept>
#include <thread>

#include "mailsync/metrics.hpp"
#include "mailsync/postgres/errors.hpp"

namespace mailsync::scheduler {

using std::chrono::milliseconds;

std::string SchedulerConfig::validate() const {
  if (database_url.empty()) return "MAILSYNC_DATABASE_URL is not set";
  if (interval < std::chrono::seconds(1)) return "SYNC_INTERVAL_SECONDS must be at least 1";
  if (tick < milliseconds(100)) return "tick must be at least 100 ms";
  if (retention.count() < 0 || dead_retention.count() < 0) return "retention must not be negative";
  if (route_sync_max_attempts < 1) return "max attempts must be at least 1";
  return {};
}

Scheduler::Scheduler(SchedulerConfig config, std::vector<config::Route> routes)
    : config_(std::move(config)), routes_(std::move(routes)) {
  if (const std::string problem = config_.validate(); !problem.empty())
    throw std::invalid_argument(problem);
  if (config_.owner.empty()) {
    char host[256] = "host";
    ::gethostname(host, sizeof host - 1);
    config_.owner = std::string(host) + ":" + std::to_string(::getpid());
  }
}

Scheduler::~Scheduler() = default;

void Scheduler::connect() {
  if (!routes_store_)
    routes_store_ = queue::make_pg_route_store(config_.database_url, "mailsync-scheduler");
  if (!jobs_store_)
    jobs_store_ = queue::make_pg_job_store(config_.database_url, "mailsync-scheduler");
}

CycleReport Scheduler::run_once(bool force, std::optional<queue::TimePoint> now) {
  try {
    connect();
    CycleReport report;
    report.routes = routes_store_->upsert_routes(routes_);
    report.enqueued = routes_store_->run_route_sync_cycle(config_.owner, config_.interval, force,
                                                          config_.route_sync_max_attempts, now);
    report.watches = routes_store_->ensure_route_watches();
    if (report.watches > 0) spdlog::info("route_watch: {} watches enqueued", report.watches);
    report.rescued = jobs_store_->rescue_expired(config_.rescue_limit, now);
    report.pruned =
        jobs_store_->prune(config_.retention, config_.dead_retention, config_.prune_limit, now);
    if (report.routes.changed > 0 || report.routes.disabled > 0)
      spdlog::info("routes: {} added or changed, {} no longer configured (disabled)",
                   report.routes.changed, report.routes.disabled);
    if (report.enqueued) {
      metrics::get().jobs_enqueued.Increment(*report.enqueued);
      spdlog::info("route_sync cycle: {} jobs enqueued", *report.enqueued);
    }
    if (!report.rescued.made_available.empty() || !report.rescued.made_dead.empty())
      spdlog::warn("rescued {} jobs with expired leases ({} dead: out of attempts)",
                   report.rescued.made_available.size() + report.rescued.made_dead.size(),
                   report.rescued.made_dead.size());
    if (report.pruned.jobs > 0 || report.pruned.attempts > 0)
      spdlog::info("pruned {} finished jobs and {} attempt records", report.pruned.jobs,
                   report.pruned.attempts);
    return report;
  } catch (const postgres::DatabaseUnavailable&) {
    routes_store_.reset();  // reconnect next time
    jobs_store_.reset();
    throw;
  }
}

void Scheduler::run() {
  spdlog::info("scheduler {} started: {} routes, interval {} s, tick {} ms", config_.owner,
               routes_.size(),
               std::chrono::duration_cast<std::chrono::seconds>(config_.interval).count(),
               config_.tick.count());
  milliseconds backoff{500};
  while (!stopping_.load()) {
    milliseconds wait = config_.tick;
    try {
      run_once(false);
      backoff = milliseconds(500);
    } catch (const postgres::DatabaseUnavailable& e) {
      spdlog::warn("database unavailable: {}; retrying in {} ms", e.what(), backoff.count());
      wait = backoff;
      backoff = std::min(backoff * 2, milliseconds(30'000));
    } catch (const postgres::DatabaseError& e) {
      spdlog::error("scheduler statement failed (SQLSTATE {}): {}", e.sqlstate(), e.what());
    }
    const auto until = std::chrono::steady_clock::now() + wait;
    while (!stopping_.load() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(milliseconds(50));
  }
  spdlog::info("scheduler {} stopped", config_.owner);
}

void Scheduler::stop() {
  stopping_.store(true);
}

}  // namespace mailsync::scheduler
