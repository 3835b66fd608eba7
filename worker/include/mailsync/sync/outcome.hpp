#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "mailsync/queue/job.hpp"
#include "mailsync/sync/sync_store.hpp"

// How a run of route_sync ended, as a type: the worker's handler and `mailsync run-once` map it to
// a job result and an exit code in one place each (to_job_result here, run-once's exit_code_for).
namespace mailsync::sync {

enum class SyncOutcome {
  kSucceeded,
  kStopped,        // asked to stop (shutdown) between batches: retried at once
  kGateClosed,     // DynamoDB unreachable (invariant 6): retried with backoff
  kAuthRequired,   // a refresh token or a fresh access token was refused: a person must act
  kFolderMissing,  // the destination folder does not exist and create_folder is false
  kThrottled,      // the server named how long to wait: retried then
  kInDoubt,        // copied around claims of an attempt that lost its lease less than the grace
                   // ago (it may still have an APPEND on the wire): retried when the grace ends
  kLeaseLost,      // the job's lease was rescued or went stale: stopped at once, nothing more
                   // written; the queue already gave the job to another attempt
  kFailed,         // anything else (network, server errors): retried with backoff
};

std::string_view to_string(SyncOutcome outcome);

// Thrown by the parts of a run to end it with an outcome other than kFailed.
class SyncStop : public std::runtime_error {
 public:
  SyncStop(SyncOutcome outcome, const std::string& message)
      : std::runtime_error(message), outcome_(outcome) {}
  SyncOutcome outcome() const { return outcome_; }

 private:
  SyncOutcome outcome_;
};

// The state mirror (DynamoDB) could not be read or written: the gate closes for this run.
class MirrorUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The job's result: succeeded; retried (at once after a stop, at `retry_at` when throttled, with
// the kind's backoff on failure or a closed gate); cancelled until `mailsync resume` for
// auth_required; dead for a missing folder (nothing changes until a person acts).
queue::JobResult to_job_result(SyncOutcome outcome, const std::string& error, TimePoint retry_at,
                               const queue::JobStats& stats);

}  // namespace mailsync::sync
