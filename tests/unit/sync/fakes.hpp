#pragma once

// In-memory fakes of route_sync's four ports, for the unit tests of the orchestrator's decisions
// (tests/unit/sync/). They keep the contracts of the real ones (the SyncStore's claim semantics,
// the mirror's conditional items, an IMAP mailbox's UIDs) and can be told to fail the way the real
// servers do: refuse a message, throttle, drop the connection mid-batch, lose a tagged OK.

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "mailsync/imap/errors.hpp"
#include "mailsync/net/tls_stream.hpp"
#include "mailsync/sync/mail_destination.hpp"
#include "mailsync/sync/mail_source.hpp"
#include "mailsync/sync/outcome.hpp"
#include "mailsync/sync/state_mirror.hpp"
#include "mailsync/sync/sync_store.hpp"

namespace mailsync::sync::fakes {

inline imap::ImapError no(const std::string& command, const std::string& text,
                          std::optional<std::string> code = std::nullopt) {
  std::optional<imap::ResponseCode> response_code;
  if (code) response_code = imap::ResponseCode{*code};
  return imap::ImapError(command, imap::Status::kNo, response_code, text);
}

struct SourceMessage {
  std::string bytes;
  TimePoint internaldate;
  std::optional<uint64_t> gm_msgid;
};

// The Gmail INBOX.
class FakeSource final : public MailSource {
 public:
  uint32_t uidvalidity = 7;
  uint32_t uidnext = 1;
  bool gmail_extensions = false;
  std::map<uint32_t, SourceMessage> inbox;
  // Hooks: thrown by open_inbox (a throttled or refused login); UIDs that vanish after the search.
  std::function<void()> on_open;
  std::set<uint32_t> expunged_after_search;
  // UIDs the server will not serve (Gmail's "Some messages could not be FETCHed"), with its words.
  std::map<uint32_t, std::string> unservable;

  int opens = 0;
  std::vector<std::vector<uint32_t>> fetches;
  std::optional<bool> closed_reusable;

  uint32_t add(std::string bytes, TimePoint date = {}, std::optional<uint64_t> gm_msgid = {});

  imap::MailboxInfo open_inbox() override;
  bool has_gmail_extensions() const override { return gmail_extensions; }
  std::vector<uint32_t> uids_above(uint32_t uid) override;
  std::vector<uint32_t> uids_since(TimePoint day) override;
  std::vector<uint32_t> all_uids() override;
  std::map<uint32_t, uint64_t> sizes(const std::vector<uint32_t>& uids) override;
  std::vector<FetchedMessage> fetch(const std::vector<uint32_t>& uids) override;
  void close(bool reusable) override { closed_reusable = reusable; }

 private:
  std::mutex mutex_;  // fetch runs on the preparing thread
};

// The Outlook mailbox.
class FakeDestination final : public MailDestination {
 public:
  struct Stored {
    uint32_t uid;
    std::string bytes;
    std::vector<std::string> flags;
    std::optional<std::string> internaldate;
  };
  std::map<std::string, std::vector<Stored>> folders;
  uint32_t uidvalidity = 99;
  uint32_t next_uid = 1;

  // A refusal for a message, by its bytes (nullopt: accepted).
  std::function<std::optional<imap::ImapError>(std::string_view bytes)> refuse;
  // The connection drops after this many more messages are stored: the next APPEND throws
  // (net::TransportError) and nothing after it arrives.
  std::optional<int> drop_after;
  // The message is stored, then the connection drops before its tagged OK arrives.
  std::optional<int> lose_tagged_ok_after;

  int append_calls = 0;
  int ensure_calls = 0;
  int find_calls = 0;
  std::optional<bool> closed_reusable;

  const std::vector<Stored>& folder(const std::string& name) { return folders[name]; }
  size_t count(const std::string& folder, std::string_view bytes);

  Folder ensure_folder(const std::string& folder, bool create) override;
  std::vector<imap::AppendOutcome> append(const std::string& folder,
                                          std::span<const imap::AppendMessage> messages,
                                          const std::function<bool()>& may_send) override;
  std::optional<Mark> folder_mark(const std::string&) override {
    return Mark{uidvalidity, next_uid};
  }
  std::vector<std::optional<uint32_t>> find_arrivals(
      const std::string& folder, const std::vector<PendingClaim>& claims) override;
  void close(bool reusable) override { closed_reusable = reusable; }
};

// The Postgres store, as its contract says (sync_store.hpp).
class FakeSyncStore final : public SyncStore {
 public:
  struct Claim {
    std::string state;  // PENDING | DONE
    int64_t job_id = 0;
    int attempt = 0;
    std::optional<std::string> message_id;
    std::string sha256_hex;
    int64_t size = 0;
    std::optional<uint32_t> dest_uid;
    std::optional<uint64_t> gm_msgid;
    std::optional<TimePoint> internaldate;
    std::optional<uint32_t> dest_uidvalidity;
    std::optional<uint32_t> dest_uidnext;
  };
  struct FailureRow {
    Failure failure;
    int retry_count = 0;
  };
  using Key = std::tuple<std::string, uint32_t, uint32_t>;  // route, uidvalidity, uid

  std::set<std::string> routes;
  std::map<std::string, Watermark> watermarks;
  std::map<Key, Claim> claims;
  std::map<Key, FailureRow> failures;
  std::set<std::string> auth_required_routes;
  std::map<std::string, std::string> outcomes;
  std::map<std::string, Progress> progress;
  int progress_writes = 0;
  // Called with the operation's name before each; may throw (postgres::DatabaseUnavailable).
  std::function<void(std::string_view)> before;
  // The fence's lease as the database would judge it (jobs row running that attempt, not expired).
  std::function<bool(const Fence&)> lease_live = [](const Fence&) { return true; };
  // Attempts (job, attempt) that may still be running: adopt_pending leaves their claims alone.
  std::set<std::pair<int64_t, int>> running_attempts;

  std::vector<uint32_t> uids_in(const std::string& route, const std::string& state);

  void ensure_route(const config::Route& route) override;
  std::optional<Watermark> watermark(const std::string& route) override;
  void set_watermark(const Fence& fence, const std::string& route,
                     const Watermark& watermark) override;
  std::map<uint32_t, ClaimState> claim(const std::string& route, uint32_t uidvalidity,
                                       const std::vector<ClaimRequest>& requests,
                                       const Fence& fence) override;
  void finalize(const Fence& fence, const std::string& route, uint32_t uidvalidity,
                const std::vector<Copied>& copied) override;
  void record_destination_mark(const Fence& fence, const std::string& route, uint32_t uidvalidity,
                               const std::vector<uint32_t>& uids,
                               std::optional<uint32_t> dest_uidvalidity,
                               std::optional<uint32_t> dest_uidnext) override;
  void release(const Fence& fence, const std::string& route, uint32_t uidvalidity,
               const std::vector<uint32_t>& uids) override;
  std::map<uint32_t, int> failure_retry_counts(const std::string& route, uint32_t uidvalidity,
                                               const std::vector<uint32_t>& uids) override;
  std::map<uint32_t, int> record_failures(const Fence& fence, const std::string& route,
                                          uint32_t uidvalidity,
                                          const std::vector<Failure>& failures) override;
  std::vector<uint32_t> due_failures(const std::string& route, uint32_t uidvalidity,
                                     TimePoint now) override;
  std::set<uint32_t> failed_uids(const std::string& route, uint32_t uidvalidity) override;
  std::set<uint32_t> copied_uids_above(const std::string& route, uint32_t uidvalidity,
                                       uint32_t above_uid) override;
  Adopted adopt_pending(const Fence& fence, const std::string& route,
                        std::chrono::milliseconds grace) override;
  std::set<uint64_t> copied_gm_msgids(const std::string& route,
                                      const std::vector<uint64_t>& ids) override;
  bool copied_message(const std::string& route, const std::optional<std::string>& message_id,
                      const std::string& sha256_hex) override;
  void set_outcome(const std::string& route, const std::string& outcome, const std::string& error,
                   bool success) override;
  void set_auth_required(const std::string& route, const std::string& detail) override;
  void record_token(const TokenRecord& record) override { tokens.push_back(record); }
  void set_watch_state(const std::string&, const std::string& state,
                       const std::string& detail) override {
    watch_states.emplace_back(state, detail);
  }
  SyncRequest request_sync(const std::string&, int) override {
    ++sync_requests;
    if (on_request) on_request(sync_requests);
    return next_request;
  }
  std::function<void(int)> on_request;  // called with the count of requests so far
  std::vector<std::pair<std::string, std::string>> watch_states;
  int sync_requests = 0;
  SyncRequest next_request = SyncRequest::kEnqueued;
  std::vector<TokenRecord> tokens;
  void set_progress(const std::string& route, const Progress& p) override;
  void clear_progress(const std::string& route) override;
  bool auth_required(const std::string& route) override;
  std::optional<Backoff> account_backoff(const std::string& account, TimePoint now) override {
    const auto found = backoffs.find(account);
    if (found == backoffs.end() || found->second.not_before <= now) return std::nullopt;
    return found->second;
  }
  void set_account_backoff(const std::string& account, const Backoff& backoff) override {
    auto& stored = backoffs[account];
    if (backoff.not_before >= stored.not_before) stored = backoff;
  }
  std::map<std::string, Backoff> backoffs;

 private:
  void hook(std::string_view operation) {
    if (before) before(operation);
  }
  void fence_check(const Fence& fence);
  static void expect_own(const Fence& fence, const Claim* claim);
};

// The DynamoDB table: UID# items by (uidvalidity, uid), FAIL# items, the WATERMARK.
class FakeStateMirror final : public StateMirror {
 public:
  struct Item {
    std::string status;  // PENDING | DONE
    std::string sha256_hex;
    std::optional<std::string> message_id;
    std::string claimed_by;  // "mailsync:..." on mailsync's items; empty on another writer's
  };
  std::map<std::pair<uint32_t, uint32_t>, Item> uid_items;
  std::map<std::pair<uint32_t, uint32_t>, MirrorFailure> fail_items;
  std::optional<Watermark> watermark;
  bool reachable = true;
  int gate_checks = 0;
  int claim_calls = 0;
  std::function<void(std::string_view)> before;  // may throw MirrorUnavailable

  void check_gate() override;
  std::optional<Watermark> carried_over_watermark() override;
  std::map<uint32_t, std::string> claim(uint32_t uidvalidity,
                                        const std::vector<MirrorClaim>& claims) override;
  void record(uint32_t uidvalidity, const std::vector<MirrorClaim>& done,
              const std::vector<MirrorFailure>& failures) override;
  void release(uint32_t uidvalidity, const std::vector<uint32_t>& uids) override;
  void set_watermark(const Watermark& w) override;

 private:
  void hook(std::string_view operation);
  std::mutex mutex_;  // claim() runs on the preparing thread
};

// A clock the test moves.
struct FakeClock {
  TimePoint now = TimePoint(std::chrono::hours(24 * 365 * 56));  // 2026
  std::function<TimePoint()> function() {
    return [this] { return now; };
  }
};

}  // namespace mailsync::sync::fakes
