#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mailsync/queue/job.hpp"
#include "mailsync/queue/retry_policy.hpp"

namespace mailsync::queue {

// What a handler sees of its job.
struct JobContext {
  const Job& job;
  const std::string& run_id;             // one per attempt; on every log line of the attempt
  const std::atomic<bool>& cancel_flag;  // set at shutdown timeout or when the lease was lost
  const Lease& lease;                    // owner and freshness of this attempt's lease
  bool cancelled() const { return cancel_flag.load(std::memory_order_relaxed); }
};

// Runs one attempt. Returning reports the outcome; throwing fails the attempt (not the worker).
using Handler = std::function<JobResult(JobContext&)>;

struct KindConfig {
  Handler handler;
  RetryPolicy retry;
  bool record_attempts = false;  // write mailsync.job_attempts rows (route_sync: yes; noop: no)
};

class HandlerRegistry {
 public:
  void add(std::string kind, KindConfig config);
  const KindConfig* find(const std::string& kind) const;
  std::vector<std::string> kinds() const;

 private:
  std::map<std::string, KindConfig, std::less<>> kinds_;
};

// The `noop` kind for tests and benchmarks. Args (all optional): {"sleep_ms": N} sleeps,
// cooperatively cancellable; {"fail": "text"} fails; {"throw": "text"} throws; {"dead": "text"}
// dead-letters; {"retry_in_ms": N} asks to be retried later.
JobResult run_noop(JobContext& context);
KindConfig noop_kind();

struct WorkerConfig {
  std::string database_url;
  std::string owner;  // lease owner name; default "host:pid:random"
  int concurrency = 4;
  // Jobs claimed beyond the running ones, waiting in memory for a free executor (graphile-worker's
  // localQueue). Fewer, larger claims for short jobs; 0 for long ones, so that an idle worker
  // elsewhere is not kept from a job this one holds. Held jobs are heartbeated, and given back at
  // once on shutdown.
  int prefetch = 0;
  std::chrono::milliseconds poll_interval{1000};  // fallback when no notification arrives
  std::chrono::milliseconds lease{60'000};        // heartbeat every lease / 3
  std::chrono::milliseconds shutdown_timeout{30'000};
  bool listen = true;            // false: poll only (PgBouncer in transaction pooling mode)
  bool drain = false;            // return once nothing is due and nothing runs
  std::string validate() const;  // first problem, or empty
};

struct WorkerCounters {
  std::atomic<int64_t> claimed{0};
  std::atomic<int64_t> succeeded{0};
  std::atomic<int64_t> failed{0};  // back to available with backoff
  std::atomic<int64_t> retried{0};
  std::atomic<int64_t> dead{0};
  std::atomic<int64_t> cancelled{0};
  std::atomic<int64_t> lost{0};      // leases lost (rescued elsewhere) before finishing
  std::atomic<int64_t> released{0};  // given back at shutdown
  // Test signal (River's testSignals): how often the producer went to wait for a notification or
  // the poll, LISTEN already in place; a test waits for it instead of sleeping.
  std::atomic<int64_t> waits{0};
};

// Claims jobs with FOR UPDATE SKIP LOCKED into its free slots and runs them on `concurrency`
// executor threads. One producer thread claims (woken by NOTIFY, a freed slot, or the poll
// interval) and heartbeats leases; one completer thread records finished attempts in batches, so
// a busy worker spends one round trip per batch, not per job.
class WorkerPool {
 public:
  WorkerPool(WorkerConfig config, HandlerRegistry handlers);  // throws std::invalid_argument
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Runs until stop() (then shuts down gracefully) or, with drain, until nothing is due. Throws
  // postgres::DatabaseUnavailable when the database cannot be reached at start.
  void run();
  // False when a handler ignored cancellation past the shutdown timeout: its thread still runs,
  // detached, and may use anything the handler captured. The process must then end without
  // running destructors (std::_Exit), never by returning from main.
  bool stopped_cleanly() const { return !leak_; }
  // One claim of as many due jobs as there are free slots, run to completion and recorded; then
  // the pool shuts down as run() does. Returns how many jobs it claimed. For tests, like the
  // scheduler's run_once (STYLE rule 5); a pool runs either run() or run_once(), once.
  int64_t run_once();

  // Idempotent and async-signal-safe (an atomic store and a write(2)), so a signal handler may
  // call it.
  void stop();

  const WorkerCounters& counters() const;
  const std::string& owner() const;

 private:
  struct Impl;
  Impl* impl_;
  bool leak_ = false;  // a handler ignored cancellation past the shutdown timeout: its detached
                       // thread still uses impl_, so it is never freed (the process is exiting)
};

}  // namespace mailsync::queue
