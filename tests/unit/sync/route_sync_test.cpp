// The orchestrator's decisions, end to end over in-memory fakes of its four ports: what is copied,
// what is skipped, what a crash or a refusal leaves behind, what the next run does about it.
// Time is injected; nothing sleeps.

#include "mailsync/sync/route_sync.hpp"

#include <gtest/gtest.h>

#include "fakes.hpp"
#include "mailsync/oauth/token_provider.hpp"
#include "mailsync/postgres/errors.hpp"
#include "mailsync/util/sha256.hpp"

namespace mailsync::sync {
namespace {

using namespace std::chrono_literals;
using fakes::FakeClock;
using fakes::FakeDestination;
using fakes::FakeSource;
using fakes::FakeStateMirror;
using fakes::FakeSyncStore;

std::string message(const std::string& id, const std::string& body = "hello") {
  return "Message-ID: <" + id + "@x>\r\nSubject: " + id + "\r\n\r\n" + body + "\r\n";
}

class RouteSyncRun : public ::testing::Test {
 protected:
  RouteSyncRun() {
    route_.gmail_email = "alice@gmail.test";
    route_.outlook_email = "me@outlook.test";
    route_.target_folder = "Gmail/alice";
    route_.initial_sync = config::InitialSync::kAll;
    options_.now = clock_.function();
  }

  // Each run is a new attempt of the route's job, as the queue would make it.
  SyncReport run(int64_t job_id = 1) {
    lease_.fence = {job_id, ++attempt_, "worker-a"};
    return RouteSync(route_, {source_, dest_, store_, mirror_}, options_).run(lease_, cancel_);
  }

  // Seeds n messages; returns their bytes.
  std::vector<std::string> seed(int n, const std::string& prefix = "m") {
    std::vector<std::string> sent;
    for (int i = 0; i < n; ++i) {
      sent.push_back(message(prefix + std::to_string(i)));
      source_.add(sent.back(), clock_.now);
    }
    return sent;
  }

  void expect_each_copied_once(const std::vector<std::string>& sent) {
    for (const auto& bytes : sent) EXPECT_EQ(dest_.count(route_.target_folder, bytes), 1u) << bytes;
  }

  uint32_t watermark() {
    const auto found = store_.watermarks.find(route_.key());
    return found == store_.watermarks.end() ? 0 : found->second.last_uid;
  }

  config::Route route_;
  FakeClock clock_;
  SyncOptions options_;
  FakeSource source_;
  FakeDestination dest_;
  FakeSyncStore store_;
  FakeStateMirror mirror_;
  std::atomic<bool> cancel_{false};
  RunLease lease_;
  int attempt_ = 0;
};

TEST_F(RouteSyncRun, CopiesNewMailByteExactOnceUnreadAndMovesTheWatermark) {
  const auto sent = seed(5);
  const SyncReport report = run();
  ASSERT_EQ(report.outcome, SyncOutcome::kSucceeded) << report.result.error;
  EXPECT_EQ(report.result.stats.appended, 5);
  expect_each_copied_once(sent);
  for (const auto& stored : dest_.folder(route_.target_folder)) EXPECT_TRUE(stored.flags.empty());
  EXPECT_EQ(watermark(), 5u);
  EXPECT_EQ(store_.uids_in(route_.key(), "DONE").size(), 5u);
  EXPECT_TRUE(store_.uids_in(route_.key(), "PENDING").empty());
  EXPECT_EQ(mirror_.uid_items.at({7, 3}).status, "DONE");
  EXPECT_EQ(mirror_.watermark->last_uid, 5u);
  EXPECT_EQ(dest_.closed_reusable, true);
}

TEST_F(RouteSyncRun, MarkSeenAppendsTheCopiesAsRead) {
  route_.mark_seen = true;
  seed(1);
  run();
  EXPECT_EQ(dest_.folder(route_.target_folder).at(0).flags, std::vector<std::string>{"\\Seen"});
}

TEST_F(RouteSyncRun, ASecondRunCopiesNothing) {
  const auto sent = seed(3);
  run();
  const SyncReport again = run();
  EXPECT_EQ(again.result.stats.appended, 0);
  EXPECT_EQ(again.result.stats.fetched, 0);
  expect_each_copied_once(sent);
}

TEST_F(RouteSyncRun, BatchesAreBoundedInMessages) {
  options_.batch_messages = 2;
  const auto sent = seed(5);
  run();
  EXPECT_EQ(dest_.append_calls, 3);
  EXPECT_EQ(source_.fetches.size(), 3u);
  expect_each_copied_once(sent);
}

TEST_F(RouteSyncRun, ADryRunAppendsNothingClaimsNothingAndListsWhatItWouldCopy) {
  options_.dry_run = true;
  seed(2);
  const SyncReport report = run();
  ASSERT_EQ(report.outcome, SyncOutcome::kSucceeded);
  EXPECT_EQ(report.would_copy.size(), 2u);
  EXPECT_NE(report.would_copy[0].find("<m0@x>"), std::string::npos);
  EXPECT_EQ(dest_.append_calls, 0);
  EXPECT_EQ(dest_.ensure_calls, 0);
  EXPECT_TRUE(store_.claims.empty());
  EXPECT_TRUE(mirror_.uid_items.empty());
  EXPECT_FALSE(store_.watermarks.contains(route_.key()));
}

TEST_F(RouteSyncRun, AClosedGateTouchesNoImapAndIsRetried) {
  seed(1);
  mirror_.reachable = false;
  const SyncReport report = run();
  EXPECT_EQ(report.outcome, SyncOutcome::kGateClosed);
  EXPECT_EQ(report.result.outcome, queue::Outcome::kFailed);
  EXPECT_EQ(source_.opens, 0);
  EXPECT_EQ(dest_.append_calls, 0);
}

TEST_F(RouteSyncRun, TheMirrorGoingAwayMidRunEndsItAsAClosedGateAndTheNextRunCopiesEachOnce) {
  options_.batch_messages = 2;
  const auto sent = seed(6);
  int records = 0;
  mirror_.before = [&](std::string_view op) {
    if (op == "record" && ++records == 2) throw MirrorUnavailable("DynamoDB went away");
  };
  EXPECT_EQ(run().outcome, SyncOutcome::kGateClosed);
  mirror_.before = nullptr;
  EXPECT_EQ(run().outcome, SyncOutcome::kSucceeded);
  expect_each_copied_once(sent);
}

TEST_F(RouteSyncRun, APendingClaimWhoseCopyArrivedIsFinalizedNotCopiedAgain) {
  const auto sent = seed(2);
  // A crash after the APPEND of UID 1, before its finalize.
  dest_.lose_tagged_ok_after = 0;
  EXPECT_EQ(run().outcome, SyncOutcome::kFailed);
  ASSERT_EQ(store_.uids_in(route_.key(), "PENDING").size(), 2u);
  const SyncReport recovered = run();
  ASSERT_EQ(recovered.outcome, SyncOutcome::kSucceeded) << recovered.result.error;
  expect_each_copied_once(sent);
  EXPECT_EQ(dest_.find_calls, 1);
  EXPECT_EQ(store_.claims.at({route_.key(), 7, 1}).dest_uid, 1u) << "found, not re-appended";
}

// Issue 13: reconcile finalized without the X-GM-MSGID, so an archived-and-restored message (same
// X-GM-MSGID, new UID) was copied again. The claim carries it from the start.
TEST_F(RouteSyncRun, AReconciledClaimKeepsItsGmailMessageId) {
  source_.gmail_extensions = true;
  source_.add(message("a"), clock_.now, 0x1234567890abcdefULL);
  dest_.lose_tagged_ok_after = 0;  // stored, then the connection drops before the tagged OK
  EXPECT_EQ(run().outcome, SyncOutcome::kFailed);
  ASSERT_EQ(run().outcome, SyncOutcome::kSucceeded);
  const auto& claim = store_.claims.at({route_.key(), 7, 1});
  EXPECT_EQ(claim.state, "DONE");
  EXPECT_EQ(claim.gm_msgid, 0x1234567890abcdefULL);
}

// Issue 12, invariant 5a: Gmail gives a message archived and moved back to the INBOX a new,
// higher UID and keeps its X-GM-MSGID; an incremental run (no UIDVALIDITY change) skips it.
TEST_F(RouteSyncRun, AnArchivedMessageMovedBackToTheInboxIsNotCopiedAgain) {
  source_.gmail_extensions = true;
  const std::string bytes = message("archived");
  source_.add(bytes, clock_.now, 0xfeedULL);
  ASSERT_EQ(run().outcome, SyncOutcome::kSucceeded);
  source_.inbox.erase(1);                     // archived
  source_.add(bytes, clock_.now, 0xfeedULL);  // back, as UID 2
  source_.add(message("new"), clock_.now, 0xbeefULL);
  const SyncReport again = run();
  ASSERT_EQ(again.outcome, SyncOutcome::kSucceeded);
  EXPECT_EQ(again.result.stats.appended, 1);
  EXPECT_EQ(again.result.stats.skipped, 1);
  EXPECT_EQ(dest_.count(route_.target_folder, bytes), 1u);
  EXPECT_EQ(watermark(), 3u) << "the skipped UID is passed";
}

// Issue 12: Gmail refuses a FETCH holding a message it cannot serve, every time. Before, the
// batch failed on every run and nothing after it was copied.
TEST_F(RouteSyncRun, AMessageTheSourceWillNotServeIsRecordedAndTheRestAreCopied) {
  const auto sent = seed(4);
  source_.unservable[2] = "UID FETCH failed: NO Some messages could not be FETCHed (Failure)";
  const SyncReport first = run();
  ASSERT_EQ(first.outcome, SyncOutcome::kSucceeded) << first.result.error;
  EXPECT_EQ(first.result.stats.appended, 3);
  EXPECT_EQ(first.result.stats.failed, 1);
  EXPECT_EQ(dest_.count(route_.target_folder, sent[1]), 0u);
  const auto& failure = store_.failures.at({route_.key(), 7, 2}).failure;
  EXPECT_EQ(failure.reason, "fetch_failed");
  EXPECT_FALSE(failure.permanent);
  EXPECT_NE(failure.error.find("could not be FETCHed"), std::string::npos);
  EXPECT_EQ(watermark(), 4u) << "the route goes on past it";

  source_.unservable.clear();  // served again later: copied on its retry
  clock_.now += std::chrono::hours(2);
  const SyncReport later = run();
  EXPECT_EQ(later.result.stats.appended, 1);
  expect_each_copied_once(sent);
}

TEST_F(RouteSyncRun, APendingClaimWhoseCopyNeverArrivedIsGivenBackAndCopied) {
  const auto sent = seed(3);
  dest_.drop_after = 1;  // the connection drops before the second APPEND
  EXPECT_EQ(run().outcome, SyncOutcome::kFailed);
  EXPECT_EQ(dest_.closed_reusable, false) << "a broken connection never goes back to the pool";
  EXPECT_EQ(watermark(), 0u) << "nothing is passed while its APPEND is in doubt";
  const SyncReport recovered = run();
  ASSERT_EQ(recovered.outcome, SyncOutcome::kSucceeded) << recovered.result.error;
  EXPECT_EQ(recovered.result.stats.appended, 2);
  expect_each_copied_once(sent);
  EXPECT_EQ(watermark(), 3u);
}

TEST_F(RouteSyncRun, OutlooksCatchAllRefusalIsRetriedAFewTimesThenPermanentWithItsWords) {
  const auto sent = seed(2);
  int refused = 0;
  dest_.refuse = [&](std::string_view bytes) -> std::optional<imap::ImapError> {
    if (bytes != sent[1]) return std::nullopt;
    ++refused;
    return imap::ImapError("APPEND", imap::Status::kBad, std::nullopt,
                           "Command Argument Error. 11");
  };
  for (int run_number = 0; run_number < 6; ++run_number) {
    ASSERT_EQ(run().outcome, SyncOutcome::kSucceeded);
    clock_.now += 7h;  // past any retry time
  }
  EXPECT_EQ(refused, 4) << "the first try and three retries, then no more";
  const auto& row = store_.failures.at({route_.key(), 7, 2});
  EXPECT_TRUE(row.failure.permanent);
  EXPECT_NE(row.failure.error.find("Command Argument Error. 11"), std::string::npos);
  EXPECT_NE(row.failure.error.find("permanent after 3 retries"), std::string::npos)
      << row.failure.error;
  EXPECT_EQ(dest_.count(route_.target_folder, sent[0]), 1u);
}

// ---- fencing (docs/state_machine.md) ----------------------------------------------------------

TEST_F(RouteSyncRun, ClaimsOfAnAttemptThatMayStillBeAppendingAreLeftAloneUntilItIsOver) {
  const auto sent = seed(3);
  dest_.drop_after = 1;  // attempt 1 stops with all three PENDING, their APPEND in doubt
  EXPECT_EQ(run().outcome, SyncOutcome::kFailed);
  store_.running_attempts.insert({1, 1});  // ... and, as far as the database knows, still running
  const SyncReport beside = run();
  ASSERT_EQ(beside.outcome, SyncOutcome::kInDoubt) << beside.result.error;
  EXPECT_EQ(beside.result.outcome, queue::Outcome::kRetryAt) << "retried when the grace is over";
  EXPECT_EQ(beside.result.retry_at, clock_.now + options_.reconcile_grace + 1s);
  EXPECT_NE(beside.result.error.find("3 claims of an attempt"), std::string::npos)
      << beside.result.error;
  EXPECT_EQ(beside.result.stats.appended, 0) << "a live attempt's claims were copied again";
  EXPECT_EQ(dest_.find_calls, 0) << "a live attempt's claims were reconciled";
  EXPECT_EQ(store_.uids_in(route_.key(), "PENDING").size(), 3u);
  EXPECT_EQ(watermark(), 0u) << "the watermark passed claims still in doubt";
  store_.running_attempts.clear();  // its lease expired and the grace passed
  const SyncReport recovered = run();
  ASSERT_EQ(recovered.outcome, SyncOutcome::kSucceeded) << recovered.result.error;
  expect_each_copied_once(sent);
  EXPECT_EQ(watermark(), 3u);
}

TEST_F(RouteSyncRun, WhatARunCopiedBehindAWatermarkHeldBackIsNotFetchedAgain) {
  auto sent = seed(3);
  dest_.drop_after = 1;  // attempt 1 stops with UIDs 1-3 PENDING, their APPEND in doubt
  EXPECT_EQ(run().outcome, SyncOutcome::kFailed);
  store_.running_attempts.insert({1, 1});
  for (const auto& later : seed(3, "later")) sent.push_back(later);
  ASSERT_EQ(run().outcome, SyncOutcome::kInDoubt);  // copies UIDs 4-6; the watermark stays at 0
  EXPECT_EQ(watermark(), 0u);
  store_.running_attempts.clear();
  source_.fetches.clear();
  const SyncReport recovered = run();
  ASSERT_EQ(recovered.outcome, SyncOutcome::kSucceeded) << recovered.result.error;
  for (const auto& fetch : source_.fetches)
    for (const uint32_t uid : fetch) EXPECT_LE(uid, 3u) << "UID " << uid << " was DONE already";
  EXPECT_EQ(recovered.result.stats.appended + recovered.result.stats.skipped, 6)
      << "what was copied before is counted skipped, as when its claim finds it DONE";
  expect_each_copied_once(sent);
  EXPECT_EQ(watermark(), 6u);
}

TEST_F(RouteSyncRun, ALeaseLostAtFinalizeStopsTheRunAtOnceAndWritesNothingMore) {
  options_.batch_messages = 2;
  const auto sent = seed(6);
  bool lost = false;
  store_.lease_live = [&](const Fence&) { return !lost; };
  store_.before = [&](std::string_view op) {
    if (op == "finalize") lost = true;  // rescued while the first batch was being appended
  };
  const SyncReport report = run();
  EXPECT_EQ(report.outcome, SyncOutcome::kLeaseLost);
  EXPECT_NE(report.result.error.find("no longer"), std::string::npos) << report.result.error;
  EXPECT_EQ(dest_.folder(route_.target_folder).size(), 2u) << "appended after the lease was lost";
  EXPECT_FALSE(store_.outcomes.contains(route_.key())) << "wrote the outcome of a lost run";
  EXPECT_EQ(watermark(), 0u);
  EXPECT_EQ(dest_.closed_reusable, false);
  // The attempt that took over: the two appended are found, the rest copied once.
  store_.before = nullptr;
  lost = false;
  const SyncReport next = run();
  ASSERT_EQ(next.outcome, SyncOutcome::kSucceeded) << next.result.error;
  expect_each_copied_once(sent);
}

TEST_F(RouteSyncRun, ALeaseThatGoesStaleMidBatchSendsNothingMoreAndGivesTheRestBack) {
  const auto sent = seed(5);
  int asked = 0;
  lease_.fresh = [&] { return ++asked <= 2; };  // heartbeats stop working after two messages
  const SyncReport report = run();
  EXPECT_EQ(report.outcome, SyncOutcome::kLeaseLost);
  EXPECT_NE(report.result.error.find("3 of 5 messages"), std::string::npos) << report.result.error;
  EXPECT_EQ(dest_.folder(route_.target_folder).size(), 2u);
  EXPECT_EQ(store_.uids_in(route_.key(), "DONE").size(), 2u) << "what was sent is recorded";
  EXPECT_TRUE(store_.uids_in(route_.key(), "PENDING").empty()) << "the rest is given back";
  for (const auto& [key, item] : mirror_.uid_items) EXPECT_EQ(item.status, "DONE");
  lease_.fresh = [] { return true; };
  ASSERT_EQ(run().outcome, SyncOutcome::kSucceeded);
  expect_each_copied_once(sent);
  EXPECT_EQ(dest_.find_calls, 0) << "nothing was left in doubt";
}

TEST_F(RouteSyncRun, ARefusedMessageIsAPermanentFailureWithTheServersWordsAndTheRestGoOn) {
  const auto sent = seed(3);
  dest_.refuse = [&](std::string_view bytes) -> std::optional<imap::ImapError> {
    if (bytes == sent[1]) return fakes::no("APPEND", "[LIMIT] Message too large", "LIMIT");
    return std::nullopt;
  };
  const SyncReport report = run();
  ASSERT_EQ(report.outcome, SyncOutcome::kSucceeded);
  EXPECT_EQ(report.result.stats.appended, 2);
  EXPECT_EQ(report.result.stats.failed, 1);
  const auto& failure = store_.failures.at({route_.key(), 7, 2}).failure;
  EXPECT_TRUE(failure.permanent);
  EXPECT_NE(failure.error.find("Message too large"), std::string::npos);
  EXPECT_EQ(watermark(), 3u) << "a recorded failure may be passed";
  EXPECT_FALSE(store_.claims.contains({route_.key(), 7, 2})) << "its claim is given back";
  EXPECT_TRUE(mirror_.fail_items.contains({7, 2}));
  EXPECT_FALSE(mirror_.uid_items.contains({7, 2}));
}

TEST_F(RouteSyncRun, ATransientRefusalIsRetriedWhenDueAndWaitsLongerEachTime) {
  const auto sent = seed(1);
  bool refusing = true;
  dest_.refuse = [&](std::string_view) -> std::optional<imap::ImapError> {
    if (refusing) return fakes::no("APPEND", "[UNAVAILABLE] try again later", "UNAVAILABLE");
    return std::nullopt;
  };
  run();
  const auto key = FakeSyncStore::Key{route_.key(), 7, 1};
  EXPECT_EQ(store_.failures.at(key).failure.next_retry_at, clock_.now + 1min);
  clock_.now += 30s;
  run();
  EXPECT_EQ(source_.fetches.size(), 1u) << "not retried before it is due";
  clock_.now += 31s;
  run();
  EXPECT_EQ(store_.failures.at(key).retry_count, 1);
  EXPECT_EQ(store_.failures.at(key).failure.next_retry_at, clock_.now + 2min);
  clock_.now += 2min;
  refusing = false;
  EXPECT_EQ(run().result.stats.appended, 1);
  expect_each_copied_once(sent);
  EXPECT_FALSE(store_.failures.contains(key)) << "DONE clears the failure";
}

// Issue 12: Outlook throttles the mailbox, not a message. The message is given back (no failure
// is recorded against it: before, it was, and counted towards making it permanent), the run ends
// throttled until the time the server named, and every run into that mailbox waits as long
// without connecting to either server.
TEST_F(RouteSyncRun, AServersSuggestedBackoffIsHonouredForTheWholeMailbox) {
  const auto sent = seed(3);
  int throttled = 0;
  dest_.refuse = [&](std::string_view bytes) -> std::optional<imap::ImapError> {
    if (bytes != sent[1] || throttled++ > 0) return std::nullopt;
    return fakes::no("APPEND", "Request is throttled. Suggested Backoff Time: 299609 milliseconds");
  };
  const SyncReport first = run();
  EXPECT_EQ(first.outcome, SyncOutcome::kThrottled);
  EXPECT_EQ(first.result.retry_at, clock_.now + 299609ms);
  EXPECT_TRUE(store_.failures.empty()) << "not the message's fault";
  EXPECT_FALSE(store_.claims.contains({route_.key(), 7, 2})) << "given back";
  EXPECT_EQ(store_.claims.at({route_.key(), 7, 3}).state, "DONE") << "stored before: kept";
  EXPECT_EQ(watermark(), 1u) << "the watermark waits for the message given back";
  ASSERT_TRUE(store_.backoffs.contains("outlook:me@outlook.test"));

  clock_.now += 100s;  // any route into the mailbox, meanwhile: no connection at all
  const int opens = source_.opens, appends = dest_.append_calls;
  const SyncReport waiting = run();
  EXPECT_EQ(waiting.outcome, SyncOutcome::kThrottled);
  EXPECT_EQ(waiting.result.retry_at, first.result.retry_at);
  EXPECT_EQ(source_.opens, opens);
  EXPECT_EQ(dest_.append_calls, appends);

  clock_.now += 200s;  // the time the server named has passed
  const SyncReport after = run();
  ASSERT_EQ(after.outcome, SyncOutcome::kSucceeded) << after.result.error;
  EXPECT_EQ(after.result.stats.appended, 1);
  expect_each_copied_once(sent);
}

TEST_F(RouteSyncRun, AThrottledLoginRetriesTheJobWhenTheServerSaid) {
  seed(1);
  source_.on_open = [] {
    throw fakes::no("AUTHENTICATE",
                    "Request is throttled. Suggested Backoff Time: 60000 milliseconds");
  };
  const SyncReport report = run();
  EXPECT_EQ(report.outcome, SyncOutcome::kThrottled);
  EXPECT_EQ(report.result.outcome, queue::Outcome::kRetryAt);
  EXPECT_EQ(report.result.retry_at, clock_.now + 60s);
}

TEST_F(RouteSyncRun, ARefusedRefreshTokenStopsTheRouteUntilAPersonActs) {
  seed(1);
  source_.on_open = [] { throw oauth::AuthRequired("gmail alice: invalid_grant"); };
  const SyncReport report = run();
  EXPECT_EQ(report.outcome, SyncOutcome::kAuthRequired);
  EXPECT_EQ(report.result.outcome, queue::Outcome::kCancelled);
  EXPECT_TRUE(store_.auth_required_routes.contains(route_.key()));
  source_.on_open = nullptr;
  EXPECT_EQ(run().outcome, SyncOutcome::kAuthRequired);
  EXPECT_EQ(source_.opens, 1) << "a route in auth_required does not log in again";
}

TEST_F(RouteSyncRun, AMissingFolderWithoutCreateFolderIsDeadWithAClearMessage) {
  route_.create_folder = false;
  seed(1);
  const SyncReport report = run();
  EXPECT_EQ(report.outcome, SyncOutcome::kFolderMissing);
  EXPECT_EQ(report.result.outcome, queue::Outcome::kDead);
  EXPECT_NE(report.result.error.find("create_folder is false"), std::string::npos);
  EXPECT_TRUE(store_.claims.empty());
}

TEST_F(RouteSyncRun, AMessageAnotherWriterCopiedIsSkippedAndRecordedDone) {
  const auto sent = seed(2);
  mirror_.uid_items[{7, 1}] = {"DONE", "somehash", std::nullopt, ""};  // the old Lambda copied it
  const SyncReport report = run();
  EXPECT_EQ(report.result.stats.appended, 1);
  EXPECT_EQ(report.result.stats.skipped, 1);
  EXPECT_EQ(dest_.count(route_.target_folder, sent[0]), 0u);
  EXPECT_EQ(store_.claims.at({route_.key(), 7, 1}).state, "DONE");
}

TEST_F(RouteSyncRun, AMessageAnotherWriterIsCopyingIsLeftToItAndRetriedLater) {
  const auto sent = seed(2);
  mirror_.uid_items[{7, 1}] = {"PENDING", "another-hash", std::nullopt, ""};
  const SyncReport report = run();
  EXPECT_EQ(report.result.stats.appended, 1);
  EXPECT_EQ(dest_.count(route_.target_folder, sent[0]), 0u);
  const auto& failure = store_.failures.at({route_.key(), 7, 1});
  EXPECT_EQ(failure.failure.reason, "claimed_elsewhere");
  EXPECT_EQ(failure.failure.next_retry_at, clock_.now + 5min);
  EXPECT_EQ(mirror_.uid_items.at({7, 1}).sha256_hex, "another-hash") << "its item is untouched";
}

// Issue 13: an item another writer holds with the same bytes passed for mailsync's own, and both
// appended. Now only items mailsync wrote (claimed_by) are its own; another writer's PENDING item
// is left alone in both stores, also by later runs and their crash recovery.
TEST_F(RouteSyncRun, AnotherWritersPendingItemWithTheSameBytesIsNeverTakenOrDeleted) {
  const auto sent = seed(2);
  const std::string same = util::Sha256::hex_of(sent[0]);
  mirror_.uid_items[{7, 1}] = {"PENDING", same, std::nullopt, ""};  // the Lambda, copying it
  for (int run_number = 0; run_number < 3; ++run_number) {
    const SyncReport report = run();
    ASSERT_EQ(report.outcome, SyncOutcome::kSucceeded) << report.result.error;
    clock_.now += 1h;  // its claimed_elsewhere retry is due each time
  }
  EXPECT_EQ(dest_.count(route_.target_folder, sent[0]), 0u) << "copied beside the other writer";
  EXPECT_EQ(dest_.count(route_.target_folder, sent[1]), 1u);
  const auto& item = mirror_.uid_items.at({7, 1});
  EXPECT_EQ(item.status, "PENDING");
  EXPECT_EQ(item.claimed_by, "") << "its item was taken over";
  EXPECT_EQ(store_.failures.at({route_.key(), 7, 1}).failure.reason, "claimed_elsewhere");
  EXPECT_TRUE(store_.uids_in(route_.key(), "PENDING").empty());
}

TEST_F(RouteSyncRun, AStopBetweenBatchesGivesBackTheBatchClaimedAheadAndTheNextRunFinishes) {
  options_.batch_messages = 2;
  const auto sent = seed(6);
  store_.before = [&](std::string_view op) {
    if (op == "set_watermark") cancel_ = true;  // asked to stop during the first batch
  };
  const SyncReport stopped = run();
  EXPECT_EQ(stopped.outcome, SyncOutcome::kStopped);
  EXPECT_EQ(stopped.result.outcome, queue::Outcome::kRetryAt);
  EXPECT_TRUE(store_.uids_in(route_.key(), "PENDING").empty()) << "the batch ahead is given back";
  for (const auto& [key, item] : mirror_.uid_items) EXPECT_EQ(item.status, "DONE");
  store_.before = nullptr;
  cancel_ = false;
  EXPECT_EQ(run().outcome, SyncOutcome::kSucceeded);
  expect_each_copied_once(sent);
}

TEST_F(RouteSyncRun, TheDatabaseGoingAwayIsLeftToTheWorkersLoop) {
  seed(1);
  store_.before = [](std::string_view op) {
    if (op == "claim") throw postgres::DatabaseUnavailable("connection lost");
  };
  EXPECT_THROW(run(), postgres::DatabaseUnavailable);
  EXPECT_EQ(source_.closed_reusable, false);
}

TEST_F(RouteSyncRun, AfterAUidvalidityChangeWhatWasCopiedIsSkippedByGmailMessageId) {
  source_.gmail_extensions = true;
  const std::string a = message("a"), b = message("b");
  source_.add(a, clock_.now, 1001);
  run();
  // Gmail renumbered the INBOX: the same message under a new UIDVALIDITY, and one new.
  source_.inbox.clear();
  source_.uidvalidity = 8;
  source_.uidnext = 1;
  source_.add(a, clock_.now, 1001);
  source_.add(b, clock_.now, 1002);
  const SyncReport report = run();
  EXPECT_EQ(report.result.stats.appended, 1);
  EXPECT_EQ(report.result.stats.skipped, 1);
  EXPECT_EQ(dest_.count(route_.target_folder, a), 1u);
  EXPECT_EQ(dest_.count(route_.target_folder, b), 1u);
  EXPECT_EQ(store_.watermarks.at(route_.key()).uidvalidity, 8u);
}

TEST_F(RouteSyncRun, WithoutGmailExtensionsDedupeUsesMessageIdAndSha256) {
  const std::string a = message("a");
  source_.add(a, clock_.now);
  run();
  source_.inbox.clear();
  source_.uidvalidity = 8;
  source_.uidnext = 1;
  source_.add(a, clock_.now);
  source_.add(message("a", "other bytes, same Message-ID"), clock_.now);
  const SyncReport report = run();
  EXPECT_EQ(report.result.stats.skipped, 1);
  EXPECT_EQ(report.result.stats.appended, 1) << "same Message-ID, different bytes: copied";
}

TEST_F(RouteSyncRun, ANewRouteWithInitialSyncNoneCopiesOnlyLaterMail) {
  route_.initial_sync = config::InitialSync::kNone;
  seed(3);
  EXPECT_EQ(run().result.stats.appended, 0);
  EXPECT_EQ(watermark(), 3u);
  source_.add(message("new"), clock_.now);
  EXPECT_EQ(run().result.stats.appended, 1);
}

TEST_F(RouteSyncRun, ANewRouteWithAWindowCopiesOnlyTheWindow) {
  route_.initial_sync = config::InitialSync::kWindow;
  route_.fallback_window_hours = 24;
  source_.add(message("old"), clock_.now - 48h);
  source_.add(message("recent"), clock_.now - 1h);
  EXPECT_EQ(run().result.stats.appended, 1);
  EXPECT_EQ(dest_.count(route_.target_folder, message("recent")), 1u);
}

// Issue 13: after a window start the watermark stopped at the last candidate, so a message outside
// the window with a higher UID (an old message moved back into the INBOX) was copied by the next,
// incremental run without dedupe. The window start passes everything that existed then.
TEST_F(RouteSyncRun, AWindowStartPassesEverythingThatExistedNotJustTheLastCandidate) {
  route_.initial_sync = config::InitialSync::kWindow;
  route_.fallback_window_hours = 24;
  source_.add(message("recent"), clock_.now - 1h);
  source_.add(message("old-moved-back"), clock_.now - 480h);  // UID 2, outside the window
  EXPECT_EQ(run().result.stats.appended, 1);
  EXPECT_EQ(watermark(), 2u) << "UIDNEXT - 1 at the start";
  source_.add(message("new"), clock_.now);
  EXPECT_EQ(run().result.stats.appended, 1);
  EXPECT_EQ(dest_.count(route_.target_folder, message("old-moved-back")), 0u);
}

TEST_F(RouteSyncRun, StartsFromTheWatermarkOfATableCarriedOverFromTheLambda) {
  seed(3);
  mirror_.watermark = Watermark{7, 2};
  EXPECT_EQ(run().result.stats.appended, 1);
  EXPECT_EQ(dest_.count(route_.target_folder, message("m2")), 1u);
}

TEST_F(RouteSyncRun, AMessageExpungedAfterTheSearchDoesNotHoldTheWatermark) {
  seed(3);
  source_.expunged_after_search = {2};
  const SyncReport report = run();
  EXPECT_EQ(report.result.stats.appended, 2);
  EXPECT_EQ(watermark(), 3u);
}

TEST_F(RouteSyncRun, ALongRunWritesItsProgressAndClearsItAtTheEnd) {
  options_.batch_messages = 1;
  seed(3);
  run();
  EXPECT_GE(store_.progress_writes, 1);
  EXPECT_TRUE(store_.progress.empty());
}

}  // namespace
}  // namespace mailsync::sync
