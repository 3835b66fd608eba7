#pragma once

// The state of one route_sync run and its steps, shared by route_sync.cpp (the run top-down, how
// it ends) and route_sync_batches.cpp (prepare, commit, the pipeline). Private to the library.

#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "mailsync/sync/batch_plan.hpp"
#include "mailsync/sync/progress_meter.hpp"
#include "mailsync/sync/route_sync.hpp"
#include "mailsync/sync/start_point.hpp"
#include "mailsync/sync/watermark_tracker.hpp"

namespace mailsync::sync {

using Steady = std::chrono::steady_clock;

// Milliseconds spent per phase, for the per-batch and per-job debug lines.
struct PhaseClock {
  Steady::time_point last = Steady::now();
  std::string text;
  void mark(const char* phase);
};

// The destination told the whole account to back off (Outlook throttles a mailbox, and every route
// copies into that one): the run ends throttled, retried then, and so does every other route's.
class AccountThrottled : public std::runtime_error {
 public:
  AccountThrottled(const std::string& what, TimePoint until)
      : std::runtime_error(what), until_(until) {}
  TimePoint until() const { return until_; }

 private:
  TimePoint until_;
};

struct RouteSync::Run {
  const config::Route& route;
  SyncPorts ports;
  const SyncOptions& options;
  const RunLease& lease;
  const std::atomic<bool>& cancel;
  const Fence& fence = lease.fence;
  int64_t job_id = lease.fence.job_id;
  std::string key = route.key();
  std::string destination_account = "outlook:" + route.outlook_email;  // account_backoff's key

  queue::JobStats stats;
  queue::JobStats published;
  SyncReport report;
  int failed_messages = 0;
  int64_t in_doubt = 0;  // PENDING claims of another attempt left alone by reconcile
  std::string last_message_error;
  std::exception_ptr stop_after_batch;   // commit() ended the run, once the watermark is written
  bool connections_reusable = true;      // false once an IMAP connection may be in a broken state
  bool progress_written = false;         // a mailsync.route_progress row exists for this run
  std::optional<Watermark> stored_mark;  // what the store holds, to skip writes that change nothing
  Steady::time_point started = Steady::now();
  PhaseClock job_phases;
  // ensure_folder(), started beside the source's sizes and the first batch's fetch and claims (the
  // login and CREATE are several round trips to Outlook); the first APPEND waits for it.
  std::future<void> folder_ready;

  // The store is one connection: the preparing thread and the main thread take turns on it.
  std::mutex store_mutex;
  template <typename Fn>
  decltype(auto) db(Fn&& body) {
    std::lock_guard lock(store_mutex);
    return body(ports.store);
  }

  // A batch fetched and claimed (Postgres, then the mirror): ready to APPEND.
  struct Prepared {
    std::vector<FetchedMessage> messages;
    std::vector<const FetchedMessage*> appending;  // claimed here and in the mirror
    std::vector<Copied> copied;                    // another writer (the old Lambda) copied them
    std::vector<Failure> failures;                 // another writer holds the mirror's claim
    std::vector<uint32_t> give_back;               // ... so our Postgres claims are released
    std::set<uint32_t> handled;                    // skipped: copied before
    int skipped = 0;
    std::vector<std::string> would_copy;  // dry run
    PhaseClock phases;
  };

  // the run, top-down
  SyncReport execute();
  SyncReport ended(SyncOutcome outcome, const std::string& error,
                   std::optional<TimePoint> retry_at = std::nullopt);

  // where to start
  StartPoint where_to_start(const imap::MailboxInfo& inbox);
  std::vector<uint32_t> find_candidates(const StartPoint& start, uint32_t uidvalidity);

  // before copying
  void reconcile();
  void ensure_folder();

  // the batches (route_sync_batches.cpp)
  bool copy(uint32_t uidvalidity, const std::vector<PlannedBatch>& plan, bool dedupe,
            WatermarkTracker& tracker);
  void show_progress(ProgressMeter& progress);
  std::unique_ptr<Prepared> prepare(uint32_t uidvalidity, const std::vector<uint32_t>& uids,
                                    bool dedupe);
  void abandon(uint32_t uidvalidity, const Prepared& p);
  std::set<uint32_t> commit(uint32_t uidvalidity, Prepared& p);
  std::map<uint32_t, int> record_failures(SyncStore& store, uint32_t uidvalidity,
                                          std::vector<Failure>& failures);

  // state and counts
  void set_watermark(uint32_t uidvalidity, uint32_t last_uid);
  void publish_counts();
  nlohmann::ordered_json counts(std::string_view outcome) const;

  // how a run ends
  SyncReport stop_for_auth(const std::string& why);
  SyncReport fail(SyncOutcome outcome, const std::string& label, const std::string& error,
                  std::optional<TimePoint> retry_at = std::nullopt);
  SyncReport guarded();
  void finish();
};

void log_line(spdlog::level::level_enum level, const std::string& text);

}  // namespace mailsync::sync
