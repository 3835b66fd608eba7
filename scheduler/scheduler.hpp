#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mailsync/config/config.hpp"
#include "mailsync/queue/job_store.hpp"
#include "mailsync/queue/route_store.hpp"

namespace mailsync::scheduler {

struct SchedulerConfig {
  std::string database_url;
  std::string owner;                                              // default "host:pid"
  std::chrono::milliseconds interval{std::chrono::seconds(300)};  // SYNC_INTERVAL_SECONDS
  std::chrono::milliseconds tick{std::chrono::seconds(10)};  // maintenance and "is a cycle due?"
  std::chrono::seconds retention{std::chrono::hours(24)};    // succeeded / cancelled jobs
  std::chrono::seconds dead_retention{std::chrono::hours(24 * 30)};  // dead jobs, attempt history
  int route_sync_max_attempts = 25;
  int rescue_limit = 1000;
  int prune_limit = 10'000;
  std::string validate() const;
};

struct CycleReport {
  queue::RouteUpsert routes;
  std::optional<int> enqueued;  // nullopt: another replica ran this interval's cycle
  int watches = 0;              // route_watch jobs made for push routes without one
  queue::RescueResult rescued;
  queue::PruneResult pruned;
};

// Every tick: upsert the configured routes, run the route_sync cycle when one is due (shared by
// all replicas through mailsync.periodic_cycles), keep a route_watch job for each push route,
// rescue expired leases, prune old jobs.
class Scheduler {
 public:
  Scheduler(SchedulerConfig config,
            std::vector<config::Route> routes);  // throws std::invalid_argument
  ~Scheduler();

  // One tick. `force` runs the cycle even when one ran within the interval (`--once`); the
  // partial unique index still allows only one queued or running route_sync per route.
  CycleReport run_once(bool force, std::optional<queue::TimePoint> now = std::nullopt);

  // Ticks until stop(); database outages are logged and retried with backoff.
  void run();
  void stop();  // idempotent, async-signal-safe

 private:
  void connect();
  SchedulerConfig config_;
  std::vector<config::Route> routes_;
  std::unique_ptr<queue::RouteStore> routes_store_;
  std::unique_ptr<queue::JobStore> jobs_store_;
  std::atomic<bool> stopping_{false};
};

}  // namespace mailsync::scheduler
