#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "mailsync/config/config.hpp"

// The sync state of routes in Postgres (DESIGN.md section 5): watermarks, UID claims, failures,
// route outcomes. One connection, one thread; errors as postgres::DatabaseUnavailable / Error.
namespace mailsync::sync {

using TimePoint = std::chrono::system_clock::time_point;

// Which attempt of which job writes, under the lease of mailsync.jobs it holds. Every write of a
// run's state is conditional on it (docs/state_machine.md): the job row still runs this attempt
// for this owner and its lease has not expired, checked and locked (FOR SHARE, so the lease cannot
// be rescued before the write commits) in the write's own transaction; claims are finalized or
// released only by the attempt that made them.
struct Fence {
  int64_t job_id = 0;
  int attempt = 0;
  std::string owner;
};

// A fenced write found its lease gone (rescued, expired, or the job finished elsewhere) or a claim
// no longer its own: the run must stop at once and append nothing more (outcome lease_lost).
class LeaseLost : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Watermark {
  uint32_t uidvalidity = 0;
  uint32_t last_uid = 0;
};

// What claiming a UID found.
struct ClaimState {
  enum class Kind { kClaimed, kPending, kDone } kind = Kind::kClaimed;  // kClaimed: ours now
  std::optional<uint32_t> dest_uid;
  std::optional<std::string> message_id;
  std::optional<int64_t> size;
};

struct Copied {
  uint32_t uid = 0;
  std::optional<uint32_t> dest_uidvalidity;
  std::optional<uint32_t> dest_uid;
  std::optional<std::string> message_id;
  std::string sha256_hex;
  int64_t size = 0;
  std::optional<TimePoint> internaldate;
  std::optional<uint64_t> gm_msgid;
};

struct Failure {
  uint32_t uid = 0;
  std::string reason;  // too_large, throttled, network, ...
  std::string error;   // the server's words
  bool permanent = false;
  std::optional<TimePoint> next_retry_at;  // transient only
  std::optional<std::string> message_id;
  std::optional<int64_t> size;
  std::optional<int> max_retries;  // transient: permanent once retried this often (not stored)
};

struct PendingClaim {
  uint32_t uidvalidity = 0;
  uint32_t uid = 0;
  std::optional<std::string> message_id;
  std::optional<int64_t> size;
  std::string sha256_hex;
  std::optional<uint64_t> gm_msgid;       // recorded with the claim, so a reconciled DONE keeps it
  std::optional<TimePoint> internaldate;  // the date its APPEND named (none: the server chose)
  // The destination folder before its batch's APPENDs (record_destination_mark). dest_uidnext 0:
  // its APPEND was never sent (as claim() records a claim), so it cannot have arrived; unset: sent
  // without a mark, or a claim of an earlier version (found by its bytes).
  std::optional<uint32_t> dest_uidvalidity;
  std::optional<uint32_t> dest_uidnext;
};

// How far a long run has come, for `mailsync status` (mailsync.route_progress).
struct Progress {
  int64_t job_id = 0;
  double elapsed_seconds = 0;
  int64_t messages_done = 0;
  int64_t messages_total = 0;
  int64_t bytes_done = 0;
  int64_t bytes_total = 0;
  double rate_per_s = 0;               // messages
  std::optional<int64_t> eta_seconds;  // none until the run has copied for ProgressMeter::kMinEta
};

// What a run learned about one of its refresh tokens (mailsync.refresh_tokens, sql/0007). No
// secret: the fingerprint is the first 16 hex digits of the token's SHA-256.
struct TokenRecord {
  std::string token_key;  // "gmail:<route key>", "outlook:<email>"
  std::string provider;   // "google", "microsoft"
  std::string account;
  std::string fingerprint;
  std::string rule;                       // "none", "google_testing_7d", "microsoft_90d"
  std::optional<TimePoint> refreshed_at;  // a refresh that worked
  std::optional<std::string> refused;     // or a refusal, in the provider's words
};

class SyncStore {
 public:
  virtual ~SyncStore() = default;

  // Makes sure the route's row exists (run-once may come before any scheduler).
  virtual void ensure_route(const config::Route& route) = 0;

  virtual std::optional<Watermark> watermark(const std::string& route) = 0;
  // Sets the watermark; within one UIDVALIDITY it never moves back. Fenced.
  virtual void set_watermark(const Fence& fence, const std::string& route,
                             const Watermark& watermark) = 0;

  // Claims the messages for the fence's attempt (a conditional insert, committed before
  // returning), recording what the reconciliation after a crash needs: per UID whether it is ours
  // now, or already PENDING (another attempt's, running or crashed) or DONE. Fenced; every write
  // below that takes a Fence throws LeaseLost when the lease is gone.
  struct ClaimRequest {
    uint32_t uid = 0;
    std::optional<std::string> message_id;
    std::string sha256_hex;
    int64_t size = 0;
    std::optional<uint64_t> gm_msgid;
    std::optional<TimePoint> internaldate;  // the date the APPEND will name, if any
  };
  virtual std::map<uint32_t, ClaimState> claim(const std::string& route, uint32_t uidvalidity,
                                               const std::vector<ClaimRequest>& requests,
                                               const Fence& fence) = 0;
  // DONE with the destination's UID; clears any failure recorded for them. Only the fence's own
  // PENDING claims: any other (not ours, or no longer PENDING) throws LeaseLost, nothing written.
  virtual void finalize(const Fence& fence, const std::string& route, uint32_t uidvalidity,
                        const std::vector<Copied>& copied) = 0;
  // Records the destination folder's UIDVALIDITY and UIDNEXT with the fence's own PENDING claims,
  // before their APPENDs are sent: crash recovery looks only at what arrived since. Without a
  // mark (the server named none) the claims are still marked as sent: recovery looks for them by
  // their bytes. A claim never marked was never sent (claim() records it so). Fenced.
  virtual void record_destination_mark(const Fence& fence, const std::string& route,
                                       uint32_t uidvalidity, const std::vector<uint32_t>& uids,
                                       std::optional<uint32_t> dest_uidvalidity,
                                       std::optional<uint32_t> dest_uidnext) = 0;
  // Drops the fence's own PENDING claims whose APPEND failed or never happened, so a later run can
  // claim them again. Same rule as finalize.
  virtual void release(const Fence& fence, const std::string& route, uint32_t uidvalidity,
                       const std::vector<uint32_t>& uids) = 0;
  // How often each of these UIDs failed before (absent: never): the n-th retry waits longer
  // (sync::next_message_retry_at).
  virtual std::map<uint32_t, int> failure_retry_counts(const std::string& route,
                                                       uint32_t uidvalidity,
                                                       const std::vector<uint32_t>& uids) = 0;
  // Records (or counts again) the failures, with the next_retry_at given. Returns each UID's retry
  // count (0 the first time).
  virtual std::map<uint32_t, int> record_failures(const Fence& fence, const std::string& route,
                                                  uint32_t uidvalidity,
                                                  const std::vector<Failure>& failures) = 0;
  // Transient failures due again by `now`.
  virtual std::vector<uint32_t> due_failures(const std::string& route, uint32_t uidvalidity,
                                             TimePoint now) = 0;
  // Every UID with a failure recorded (due or not, permanent or not): the watermark may pass them.
  virtual std::set<uint32_t> failed_uids(const std::string& route, uint32_t uidvalidity) = 0;
  // The UIDs above `above_uid` whose claims are DONE: copied by a run whose watermark stayed
  // behind them (claims in doubt held it, or it ended between a batch's DONE and its watermark).
  virtual std::set<uint32_t> copied_uids_above(const std::string& route, uint32_t uidvalidity,
                                               uint32_t above_uid) = 0;
  // Crash recovery: the route's PENDING claims whose attempt is over
  // (mailsync.attempt_may_be_running is false with `grace`), made the fence's own in one fenced
  // statement and returned, so that only this run reconciles them. Claims of an attempt that may
  // still be appending are left alone: the run copies around them and the watermark waits for them.
  struct Adopted {
    std::vector<PendingClaim> claims;  // ours now, to reconcile
    int64_t in_doubt = 0;              // PENDING claims of other attempts left alone
  };
  virtual Adopted adopt_pending(const Fence& fence, const std::string& route,
                                std::chrono::milliseconds grace) = 0;

  // Dedupe after a UIDVALIDITY change: which of these were copied already (any UIDVALIDITY).
  virtual std::set<uint64_t> copied_gm_msgids(const std::string& route,
                                              const std::vector<uint64_t>& ids) = 0;
  virtual bool copied_message(const std::string& route,
                              const std::optional<std::string>& message_id,
                              const std::string& sha256_hex) = 0;

  // The route's last outcome for status and dashboards.
  virtual void set_outcome(const std::string& route, const std::string& outcome,
                           const std::string& error, bool success) = 0;
  virtual void set_auth_required(const std::string& route, const std::string& detail) = 0;
  // The watch of a push route (routes.watch_state, sql/0007): "watching", "backoff",
  // "unsupported", "stopped", and why.
  virtual void set_watch_state(const std::string& route, const std::string& state,
                               const std::string& detail) = 0;
  // Mail arrived in a watched INBOX: the route's route_sync now at `priority` (lower runs first).
  // kEnqueued: a new job; kQueued: one was queued already (brought forward to now if it was a
  // scheduled one); kRunning: one is running and may have looked before the mail came, so ask
  // again once it has ended; kNotRunnable: the route is paused, disabled or needs a person.
  enum class SyncRequest { kEnqueued, kQueued, kRunning, kNotRunnable };
  virtual SyncRequest request_sync(const std::string& route, int priority) = 0;
  // Upserts the token's row: a new fingerprint starts it anew (first seen now); a refresh clears a
  // refusal, a refusal keeps its first time.
  virtual void record_token(const TokenRecord& record) = 0;
  // The progress row of a running sync: written every few seconds, cleared when the run ends.
  virtual void set_progress(const std::string& route, const Progress& progress) = 0;
  virtual void clear_progress(const std::string& route) = 0;
  virtual bool auth_required(const std::string& route) = 0;

  // An account that asked every client to back off (Outlook's "Suggested Backoff Time" for the
  // whole mailbox): until when, and the server's words. Shared by every route and worker; a later
  // time wins. Keyed "outlook:<email>".
  struct Backoff {
    TimePoint not_before;
    std::string reason;
  };
  virtual std::optional<Backoff> account_backoff(const std::string& account, TimePoint now) = 0;
  virtual void set_account_backoff(const std::string& account, const Backoff& backoff) = 0;
};

std::unique_ptr<SyncStore> make_pg_sync_store(const std::string& database_url,
                                              const std::string& application_name);

}  // namespace mailsync::sync
