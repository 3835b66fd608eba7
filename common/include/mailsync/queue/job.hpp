#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

// The job queue's vocabulary. States and transitions are drawn in sql/0001_initial_schema.sql.
namespace mailsync::queue {

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;

inline constexpr const char* kRouteSyncKind = "route_sync";
inline constexpr const char* kRouteWatchKind = "route_watch";
inline constexpr const char* kNoopKind = "noop";

struct NewJob {
  std::string kind;
  std::optional<std::string> route_key;
  std::string args_json = "{}";
  int priority = 0;                 // lower runs first
  std::optional<TimePoint> run_at;  // now when empty
  int max_attempts = 25;
};

struct Job {
  int64_t id = 0;
  std::string kind;
  std::optional<std::string> route_key;
  std::string args_json;
  int priority = 0;
  int attempt = 0;  // this attempt, counting from 1
  int max_attempts = 0;
  TimePoint run_at;
  TimePoint created_at;
};

// The lease an attempt holds, as the process holding it knows it: renewed by the worker's
// heartbeats (run-once: its LeaseKeeper). `renewed` is when the last successful renewal, or the
// claim, was sent, so the database's lease ends no earlier than that plus the duration.
class Lease {
 public:
  using Steady = std::chrono::steady_clock;
  Lease(std::string owner, std::chrono::milliseconds duration, Steady::time_point sent)
      : owner_(std::move(owner)),
        duration_(duration),
        renewed_ns_(sent.time_since_epoch().count()) {}
  void renewed(Steady::time_point sent) {
    renewed_ns_.store(sent.time_since_epoch().count(), std::memory_order_relaxed);
  }
  // Whether this process may still start an APPEND under it: the last renewal is less than two
  // thirds of the lease old. Heartbeats go every third, so one may be missed; a third of the
  // lease is then still left for the APPEND to end in.
  bool fresh(Steady::time_point now = Steady::now()) const {
    const Steady::time_point renewed{Steady::duration(renewed_ns_.load(std::memory_order_relaxed))};
    return now - renewed < duration_ * 2 / 3;
  }
  const std::string& owner() const { return owner_; }
  std::chrono::milliseconds duration() const { return duration_; }

 private:
  std::string owner_;
  std::chrono::milliseconds duration_;
  std::atomic<Steady::rep> renewed_ns_;
};

// How one attempt of a job ended.
enum class Outcome {
  kSucceeded,  // -> succeeded
  kFailed,     // -> available at the backoff time, or dead when out of attempts
  kRetryAt,    // -> available at a chosen time, not counted as a failure (throttling)
  kCancelled,  // -> cancelled, not retried
  kDead,       // -> dead now, whatever attempts are left (a permanent error)
};

std::string_view to_string(Outcome outcome);

// Counts a handler reports for the attempt history and the dashboards.
struct JobStats {
  int fetched = 0;
  int appended = 0;
  int skipped = 0;
  int failed = 0;
  int64_t bytes = 0;
};

struct JobResult {
  Outcome outcome = Outcome::kSucceeded;
  std::string error;  // failed / dead / cancelled: why; retry: the reason for waiting
  TimePoint retry_at{};
  JobStats stats;

  static JobResult succeeded(JobStats stats = {}) { return {Outcome::kSucceeded, {}, {}, stats}; }
  static JobResult failed(std::string error, JobStats stats = {}) {
    return {Outcome::kFailed, std::move(error), {}, stats};
  }
  static JobResult retry(TimePoint at, std::string reason, JobStats stats = {}) {
    return {Outcome::kRetryAt, std::move(reason), at, stats};
  }
  static JobResult cancelled(std::string reason) {
    return {Outcome::kCancelled, std::move(reason), {}, {}};
  }
  static JobResult dead(std::string error, JobStats stats = {}) {
    return {Outcome::kDead, std::move(error), {}, stats};
  }
};

// One finished attempt as the store records it.
struct Finish {
  int64_t job_id = 0;
  Outcome outcome = Outcome::kSucceeded;
  std::string error;
  std::optional<TimePoint> run_at;  // failed: the backoff time; retry: the chosen time
  bool record_attempt = false;      // write a mailsync.job_attempts row
  std::string run_id;
  JobStats stats;
};

}  // namespace mailsync::queue
