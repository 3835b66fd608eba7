#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "mailsync/config/config.hpp"
#include "mailsync/queue/job.hpp"
#include "mailsync/queue/retry_policy.hpp"
#include "mailsync/sync/mail_destination.hpp"
#include "mailsync/sync/mail_source.hpp"
#include "mailsync/sync/outcome.hpp"
#include "mailsync/sync/state_mirror.hpp"
#include "mailsync/sync/sync_store.hpp"

// route_sync: one Gmail INBOX into one Outlook folder, exactly once, byte-exact (DESIGN.md
// sections 6 and 7). The orchestrator of a run; its decisions live in start_point, batch_plan,
// watermark_tracker and message_retry, its effects behind the four ports below, so the whole run
// is unit-tested with in-memory fakes (tests/unit/sync/). LiveRouteSync wires it to the real
// servers for the worker and `mailsync run-once`.
namespace mailsync::sync {

struct SyncOptions {
  size_t batch_messages = 200;  // per FETCH / claim / APPEND batch
  // Body bytes of one batch (a larger message goes alone). Two batches are held at once, one
  // appended while the next is fetched: 8 MiB keeps a worker importing 1-2 MB messages under
  // 64 MB (bench/sync/import.sh, 100,020 messages: 78 MB with 16 MiB, 61 MB with 8).
  size_t batch_bytes = 8 << 20;
  bool dry_run = false;  // list what would be copied; no claims, no APPEND
  std::chrono::seconds dynamo_ttl{std::chrono::hours(24 * 180)};
  // Crash recovery leaves a PENDING claim alone until its attempt lost its lease this long ago
  // (config::Settings::reconcile_grace).
  std::chrono::milliseconds reconcile_grace{std::chrono::minutes(2)};
  std::function<TimePoint()> now = [] { return std::chrono::system_clock::now(); };
};

// The backoff of a failed route_sync attempt, for the worker and run-once alike.
inline queue::RetryPolicy route_sync_retry_policy() {
  return {std::chrono::seconds(30), 2.0, std::chrono::minutes(30), 0.2};
}

// What a run did, for the job's attempt history, run-once's report and the demo.
struct SyncReport {
  SyncOutcome outcome = SyncOutcome::kSucceeded;
  queue::JobResult result;              // to_job_result(outcome, ...): what the queue records
  std::vector<std::string> would_copy;  // dry run: one line per message
  uint32_t watermark = 0;
};

// The lease a run writes under (docs/state_machine.md): the fence every write of its state is
// conditional on, and whether this process's last renewal still leaves room for another APPEND
// (queue::Lease::fresh; checked before each message goes out). A dry run writes nothing and needs
// no lease.
struct RunLease {
  Fence fence;
  std::function<bool()> fresh = [] { return true; };
};

struct SyncPorts {
  MailSource& source;
  MailDestination& destination;
  SyncStore& store;
  StateMirror& mirror;
};

class RouteSync {
 public:
  RouteSync(const config::Route& route, SyncPorts ports, SyncOptions options = {});

  // One run. `cancel` is looked at between batches (shutdown): the run stops there, gives back
  // what it claimed ahead and ends kStopped. A lease found lost or stale ends it kLeaseLost at
  // once, with nothing more appended. Throws postgres::DatabaseUnavailable (the worker's loop
  // handles outages); every other failure is an outcome.
  SyncReport run(const RunLease& lease, const std::atomic<bool>& cancel);

 private:
  struct Run;
  const config::Route& route_;
  SyncPorts ports_;
  SyncOptions options_;
};

}  // namespace mailsync::sync
