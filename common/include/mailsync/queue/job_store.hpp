#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "mailsync/queue/job.hpp"

namespace mailsync::queue {

struct FinishedJob {
  int64_t id = 0;
  std::string state;  // the state the job moved to: succeeded, available, dead, cancelled
};

struct PruneResult {
  int jobs = 0;
  int attempts = 0;
};

struct RescueResult {
  std::vector<int64_t> made_available;
  std::vector<int64_t> made_dead;
};

// What claim_route found: the route's job, ours now under a lease, or who holds it.
struct RouteClaim {
  std::optional<Job> job;
  int64_t held_job = 0;                 // when not ours: the running job
  std::string held_by;                  // its lease owner ("" when another claim_route won a race)
  std::optional<TimePoint> held_until;  // its lease end
};

// The queue's one boundary to its database (River's riverdriver): every statement the queue runs.
// One instance owns one connection and is used by one thread. Every time-dependent call takes
// `now`: empty means the database's now(), a value is used instead (tests move time this way).
// Failures throw postgres::DatabaseUnavailable or postgres::DatabaseError.
class JobStore {
 public:
  virtual ~JobStore() = default;

  // Inserts all jobs in one statement; returns their ids in order.
  virtual std::vector<int64_t> enqueue(std::span<const NewJob> jobs) = 0;

  // Claims up to `limit` due available jobs of `kinds` in (priority, run_at, id) order, marks them
  // running with attempt + 1 under a lease of `lease` owned by `owner`.
  virtual std::vector<Job> claim(const std::string& owner, int limit,
                                 std::chrono::milliseconds lease,
                                 std::span<const std::string> kinds,
                                 std::optional<TimePoint> now) = 0;

  // Takes the route's route_sync job for `owner` under a lease, as a worker's claim would (the
  // attempt counts): the queued one if there is one, due or not, else a new one (one attempt).
  // A running one is left alone and named. For `mailsync run-once`, so that it runs under the same
  // lease and fence as a worker and never beside one.
  virtual RouteClaim claim_route(const std::string& owner, const std::string& route_key,
                                 std::chrono::milliseconds lease) = 0;

  // Records finished attempts of jobs `owner` still holds; jobs it no longer holds (lease lost and
  // rescued) are left alone and not returned.
  virtual std::vector<FinishedJob> finish(const std::string& owner,
                                          std::span<const Finish> finishes,
                                          std::optional<TimePoint> now) = 0;

  // Extends the leases of `ids` still held by `owner`; returns the ids it still holds.
  virtual std::vector<int64_t> heartbeat(const std::string& owner, std::span<const int64_t> ids,
                                         std::chrono::milliseconds lease,
                                         std::optional<TimePoint> now) = 0;

  // Gives jobs back without counting the attempt (graceful shutdown): available again now.
  virtual int release(const std::string& owner, std::span<const int64_t> ids,
                      std::optional<TimePoint> now) = 0;

  // Running jobs whose lease expired: back to available, or dead when out of attempts.
  virtual RescueResult rescue_expired(int limit, std::optional<TimePoint> now) = 0;

  // Deletes up to `limit` succeeded / cancelled jobs finished more than `retention` ago, dead jobs
  // and attempt history older than `dead_retention`.
  virtual PruneResult prune(std::chrono::seconds retention, std::chrono::seconds dead_retention,
                            int limit, std::optional<TimePoint> now) = 0;

  // Subscribes this connection to job notifications (LISTEN).
  virtual void listen() = 0;
  // Waits up to `timeout` for a notification or for `wake_fd` (an eventfd; -1 for none) to become
  // readable. Returns true when a job notification arrived. Drains what arrived.
  virtual bool wait(std::chrono::milliseconds timeout, int wake_fd) = 0;
};

// The PostgreSQL implementation; `application_name` shows in pg_stat_activity.
std::unique_ptr<JobStore> make_pg_job_store(const std::string& database_url,
                                            const std::string& application_name);

}  // namespace mailsync::queue
