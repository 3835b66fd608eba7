#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "mailsync/queue/job.hpp"
#include "mailsync/queue/job_store.hpp"
#include "mailsync/queue/retry_policy.hpp"

// A route's job leased outside a worker pool, for `mailsync run-once` (and the tests that run a
// sync in-process): claimed through JobStore::claim_route, so it runs under the same lease and
// fence as a worker's attempt and never beside one; heartbeated on a connection of its own every
// third of the lease; finished like a worker's attempt (a job_attempts row).
namespace mailsync::queue {

// claim_route found the route's job running elsewhere.
class RouteBusy : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class LeaseKeeper {
 public:
  // Throws RouteBusy (naming the holder, its job and lease end) or postgres errors.
  LeaseKeeper(const std::string& database_url, std::string owner, const std::string& route_key,
              std::chrono::milliseconds lease = std::chrono::seconds(60));
  // A job not finished is given back (available again now, the attempt not counted).
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  const Job& job() const { return job_; }
  const Lease& lease() const { return lease_; }
  // Set once a heartbeat finds the lease gone (rescued elsewhere).
  const std::atomic<bool>& lost() const { return lost_; }

  // Records the attempt as a worker would (failed: due again after `retry`'s backoff). False when
  // the lease was lost meanwhile (nothing recorded).
  bool finish(const JobResult& result, const std::string& run_id, const RetryPolicy& retry);

 private:
  void heartbeat_loop(const std::string& database_url);
  void stop_heartbeats();

  std::string owner_;
  std::unique_ptr<JobStore> store_;
  Lease::Steady::time_point claimed_at_ = Lease::Steady::now();  // before the claim is sent
  Job job_;
  Lease lease_;
  std::atomic<bool> lost_{false};
  bool finished_ = false;
  std::mutex mutex_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread heartbeats_;
};

}  // namespace mailsync::queue
