#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "mailsync/config/config.hpp"
#include "mailsync/queue/job.hpp"

// Statements about routes and their route_sync jobs: the scheduler's cycle and the admin
// command's. Same rules as JobStore: one connection, one thread, `now` injectable, errors as
// postgres::DatabaseUnavailable / DatabaseError.
namespace mailsync::queue {

struct RouteUpsert {
  int changed = 0;   // inserted or enabled/disabled by the configuration
  int disabled = 0;  // in the database but no longer configured
};

struct EnqueueFilter {
  std::optional<std::string> route_key;  // empty: every enabled, unpaused route
  int priority = 0;
  std::optional<TimePoint> run_at;
  int max_attempts = 25;
};

struct JobsFilter {
  std::optional<std::string> state;
  std::optional<std::string> kind;
  std::optional<std::string> route_key;
  int limit = 50;
};

class RouteStore {
 public:
  virtual ~RouteStore() = default;

  // Makes mailsync.routes match the configuration: inserts new routes, updates `enabled`, disables
  // routes that are no longer configured (their state is kept).
  virtual RouteUpsert upsert_routes(std::span<const config::Route> routes) = 0;

  // The periodic route_sync cycle, shared by every scheduler replica: when no cycle ran within
  // `interval` (or `force`), records this one and enqueues a route_sync for every enabled,
  // unpaused route without a queued or running one, in one transaction. nullopt when another
  // replica already ran this interval's cycle; otherwise the number of jobs enqueued.
  virtual std::optional<int> run_route_sync_cycle(const std::string& owner,
                                                  std::chrono::milliseconds interval, bool force,
                                                  int max_attempts,
                                                  std::optional<TimePoint> now) = 0;

  // A route_watch job for every push route without one that can be watched (sql/0007); returns how
  // many were made. Every scheduler tick: cheap, and a watch that ended comes back at once.
  virtual int ensure_route_watches() = 0;

  // `mailsync enqueue`: route_sync jobs for one route or all; returns the ids enqueued (routes that
  // already have a queued or running job are skipped).
  virtual std::vector<int64_t> enqueue_route_syncs(const EnqueueFilter& filter) = 0;

  virtual bool route_exists(const std::string& route_key) = 0;
  // Sets routes.paused; pausing also cancels the route's queued (not running) route_sync, resuming
  // also clears auth_required.
  // Returns false when there is no such route.
  virtual bool set_paused(const std::string& route_key, bool paused) = 0;

  // Rows of mailsync.route_status and of mailsync.queue_depth / queue_due, as JSON.
  virtual nlohmann::json route_status() = 0;
  virtual nlohmann::json queue_summary() = 0;
  // For the metrics gauges and /readyz: {"due": {kind: n}, "jobs": [{kind, state, jobs}],
  // "oldest_due_age_seconds", "auth_required", "paused"}.
  virtual nlohmann::json health_snapshot() = 0;
  // The status page's data (src/ui/status_page.cpp): every panel in one statement, and one route's
  // page ({"route": null} when there is no such route).
  virtual nlohmann::json status_page() = 0;
  virtual nlohmann::json route_page(const std::string& route_key) = 0;
  virtual nlohmann::json list_jobs(const JobsFilter& filter) = 0;

  // Dead jobs back to available with `extra_attempts` more attempts; ids empty means all. Returns
  // the ids retried (a route_sync whose route already has a queued job stays dead).
  virtual std::vector<int64_t> retry_dead(std::span<const int64_t> ids, int extra_attempts) = 0;
  // Deletes dead jobs; ids empty means all. Returns the ids deleted.
  virtual std::vector<int64_t> discard_dead(std::span<const int64_t> ids) = 0;
};

std::unique_ptr<RouteStore> make_pg_route_store(const std::string& database_url,
                                                const std::string& application_name);

}  // namespace mailsync::queue
