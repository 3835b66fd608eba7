#include "mailsync/sync/outcome.hpp"

namespace mailsync::sync {

std::string_view to_string(SyncOutcome outcome) {
  switch (outcome) {
    case SyncOutcome::kSucceeded:
      return "succeeded";
    case SyncOutcome::kStopped:
      return "stopped";
    case SyncOutcome::kGateClosed:
      return "gate_unavailable";
    case SyncOutcome::kAuthRequired:
      return "auth_required";
    case SyncOutcome::kFolderMissing:
      return "folder_missing";
    case SyncOutcome::kThrottled:
      return "throttled";
    case SyncOutcome::kInDoubt:
      return "in_doubt";
    case SyncOutcome::kLeaseLost:
      return "lease_lost";
    case SyncOutcome::kFailed:
      return "failed";
  }
  return "failed";
}

queue::JobResult to_job_result(SyncOutcome outcome, const std::string& error, TimePoint retry_at,
                               const queue::JobStats& stats) {
  queue::JobResult result;
  switch (outcome) {
    case SyncOutcome::kSucceeded:
      result = queue::JobResult::succeeded();
      break;
    case SyncOutcome::kStopped:
    case SyncOutcome::kThrottled:
    case SyncOutcome::kInDoubt:
      result = queue::JobResult::retry(retry_at, error);
      break;
    case SyncOutcome::kGateClosed:
      result = queue::JobResult::failed("gate unavailable: " + error);
      break;
    case SyncOutcome::kAuthRequired:
      result = queue::JobResult::cancelled("auth_required: " + error);
      break;
    case SyncOutcome::kFolderMissing:
      result = queue::JobResult::dead(error);
      break;
    case SyncOutcome::kLeaseLost:  // recorded only if the lease is somehow still ours
    case SyncOutcome::kFailed:
      result = queue::JobResult::failed(error);
      break;
  }
  result.stats = stats;
  return result;
}

}  // namespace mailsync::sync
