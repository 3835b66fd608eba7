#include "mailsync/queue/lease_keeper.hpp"

#include <spdlog/spdlog.h>

#include <random>

#include "mailsync/postgres/errors.hpp"
#include "mailsync/util/strings.hpp"

namespace mailsync::queue {

namespace {

std::string format_time(TimePoint t) {
  return util::utc_text(t);
}

Job claim(JobStore& store, const std::string& owner, const std::string& route_key,
          std::chrono::milliseconds lease) {
  RouteClaim claim = store.claim_route(owner, route_key, lease);
  if (claim.job) return *claim.job;
  if (claim.held_by.empty())
    throw RouteBusy("route " + route_key + " was just claimed by another run; try again");
  std::string until;
  if (claim.held_until)
    until = (*claim.held_until < Clock::now() ? ", its lease expired at " : ", lease until ") +
            format_time(*claim.held_until);
  throw RouteBusy("route " + route_key + " is being synced by " + claim.held_by + " (job " +
                  std::to_string(claim.held_job) + until +
                  "); nothing done. Wait for it to finish (`mailsync status`), or, if that "
                  "process is gone, for its lease to be rescued");
}

}  // namespace

LeaseKeeper::LeaseKeeper(const std::string& database_url, std::string owner,
                         const std::string& route_key, std::chrono::milliseconds lease)
    : owner_(std::move(owner)),
      store_(make_pg_job_store(database_url, "mailsync lease " + owner_)),
      job_(claim(*store_, owner_, route_key, lease)),
      lease_(owner_, lease, claimed_at_) {
  heartbeats_ = std::thread([this, database_url] { heartbeat_loop(database_url); });
}

LeaseKeeper::~LeaseKeeper() {
  stop_heartbeats();
  if (finished_ || lost_.load()) return;
  try {
    const std::int64_t id = job_.id;
    store_->release(owner_, std::span(&id, 1), std::nullopt);
  } catch (const std::exception& e) {
    spdlog::warn("job {}: could not give it back ({}); its lease expires by itself", job_.id,
                 e.what());
  }
}

void LeaseKeeper::stop_heartbeats() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (heartbeats_.joinable()) heartbeats_.join();
}

// Every third of the lease, on a connection of its own (the run's thread keeps the other busy).
// A failed heartbeat is tried again at the next tick; the lease's freshness tells the run when
// too many failed.
void LeaseKeeper::heartbeat_loop(const std::string& database_url) {
  std::unique_ptr<JobStore> store;
  const auto every = lease_.duration() / 3;
  std::unique_lock lock(mutex_);
  while (!stop_cv_.wait_for(lock, every, [this] { return stop_; })) {
    lock.unlock();
    try {
      if (!store) store = make_pg_job_store(database_url, "mailsync lease heartbeat " + owner_);
      const auto sent = Lease::Steady::now();
      const std::int64_t id = job_.id;
      const auto held =
          store->heartbeat(owner_, std::span(&id, 1), lease_.duration(), std::nullopt);
      if (held.empty()) {
        spdlog::warn("job {}: lease lost (rescued); stopping this run", job_.id);
        lost_.store(true);
        return;
      }
      lease_.renewed(sent);
    } catch (const std::exception& e) {
      spdlog::warn("job {}: heartbeat failed: {}", job_.id, util::one_line(e.what()));
      store.reset();
    }
    lock.lock();
  }
}

bool LeaseKeeper::finish(const JobResult& result, const std::string& run_id,
                         const RetryPolicy& retry) {
  stop_heartbeats();
  finished_ = true;
  if (lost_.load()) return false;
  Finish finish{job_.id, result.outcome, result.error, std::nullopt, true, run_id, result.stats};
  if (result.outcome == Outcome::kFailed) {
    std::mt19937_64 rng{std::random_device{}()};
    finish.run_at = next_retry_at(Clock::now(), retry, job_.attempt,
                                  std::uniform_real_distribution<double>(0.0, 1.0)(rng));
  } else if (result.outcome == Outcome::kRetryAt) {
    finish.run_at = result.retry_at;
  }
  const Finish finishes[] = {finish};
  return !store_->finish(owner_, finishes, std::nullopt).empty();
}

}  // namespace mailsync::queue
