// route_sync against the stack's "providers" profile: the "gmail" and "outlook" servers behave
// like imap.gmail.com and outlook.office365.com (deploy/local/provider_proxy.py, which cites where
// each behaviour comes from). A test that needs a provider behaviour skips under the plain
// "dovecot" profile; tests/run.sh runs this file under both.

#include <gtest/gtest.h>

#include "mailsync/imap/errors.hpp"
#include "route_sync_fixture.hpp"
#include "support/wait_for.hpp"

namespace {

using namespace mailsync;
using mailsync::testing::hashes;
using mailsync::testing::ProviderRules;
using mailsync::testing::read_folder;
using mailsync::testing::RouteSyncTest;
using mailsync::testing::Server;
using mailsync::testing::stack_env;

#define REQUIRE_PROVIDERS()                    \
  if (!mailsync::testing::providers_profile()) \
  GTEST_SKIP() << "needs the providers profile (deploy/local/up.sh --profile providers)"

class ProvidersTest : public RouteSyncTest {
 protected:
  std::string outlook_user() const { return stack_env("OUTLOOK_EMAIL"); }
  // n distinct messages in the source; their SHA-256s in UID order.
  std::vector<std::string> seed_many(int n, const std::string& prefix = "p") {
    std::vector<std::string> sent;
    for (int i = 0; i < n; ++i)
      sent.push_back(
          seed(mailsync::testing::message("Message-ID: <" + prefix + std::to_string(i) + "@x>\r\n",
                                          "body " + std::to_string(i) + "\r\n")));
    return sent;
  }
  static std::multiset<std::string> without(const std::vector<std::string>& sent, size_t index) {
    std::multiset<std::string> out(sent.begin(), sent.end());
    out.erase(out.find(sent[index]));
    return out;
  }
  // UIDs of the source INBOX, ascending.
  std::vector<uint32_t> inbox_uids() {
    auto client = gmail_as(user_);
    client->examine("INBOX");
    return client->uid_search(imap::SearchCriteria::all());
  }
};

TEST_F(ProvidersTest, TheServersAnnounceWhatGmailAndOutlookAnnounce) {
  REQUIRE_PROVIDERS();
  auto outlook = mailsync::testing::logged_in_client(Server::kOutlook);
  outlook->refresh_capabilities();
  EXPECT_TRUE(outlook->has("LITERAL+"));
  EXPECT_FALSE(outlook->has("MULTIAPPEND")) << "Outlook.com appends one message per command";
  EXPECT_FALSE(outlook->has("APPENDLIMIT"));
  auto gmail = gmail_as(user_);
  gmail->refresh_capabilities();
  EXPECT_TRUE(gmail->has("X-GM-EXT-1"));
  EXPECT_TRUE(gmail->has("LITERAL-"));
  EXPECT_FALSE(gmail->has("LITERAL+"));
}

// Gmail gives a message archived and moved back to the INBOX (or labelled INBOX again) a new,
// higher UID and keeps its X-GM-MSGID and bytes. Invariant 5a: it is not copied again, although
// the run is incremental (no UIDVALIDITY change, no window).
TEST_F(ProvidersTest, AnArchivedMessageMovedBackToTheInboxIsNotCopiedAgain) {
  REQUIRE_PROVIDERS();
  const std::string kept = seed(mailsync::testing::message("Message-ID: <kept@x>\r\n", "k\r\n"));
  const std::string archived =
      seed(mailsync::testing::message("Message-ID: <archived@x>\r\n", "a\r\n"));
  ASSERT_EQ(run(route_).result.stats.appended, 2);

  const std::vector<uint32_t> before = inbox_uids();
  ASSERT_EQ(before.size(), 2u);
  // Archived in Gmail's web UI (the INBOX label removed), then moved back.
  mailsync::testing::gmail_commands(user_, {"CREATE Archive", "SELECT INBOX",
                                            "UID MOVE " + std::to_string(before[1]) + " Archive",
                                            "SELECT Archive", "UID MOVE 1:* INBOX"});
  const std::vector<uint32_t> after = inbox_uids();
  ASSERT_EQ(after.size(), 2u);
  ASSERT_GT(after[1], before[1]) << "moved back under a new UID";
  seed(mailsync::testing::message("Message-ID: <later@x>\r\n", "l\r\n"));

  const sync::SyncReport report = run(route_);
  ASSERT_EQ(report.result.outcome, queue::Outcome::kSucceeded) << report.result.error;
  EXPECT_EQ(report.result.stats.appended, 1) << "only the new message";
  EXPECT_EQ(report.result.stats.skipped, 1) << "the restored one, by its X-GM-MSGID";
  const auto copied = hashes(read_folder(*outlook(), route_.target_folder));
  EXPECT_EQ(copied.count(archived), 1u);
  EXPECT_EQ(copied.count(kept), 1u);
  EXPECT_EQ(copied.size(), 3u);
}

// Gmail answers a FETCH whose UID set holds a message it cannot serve with "NO Some messages could
// not be FETCHed (Failure)", every time, after serving the others. Before, the batch failed on
// every run and the route never got past it.
TEST_F(ProvidersTest, AMessageGmailWillNotServeIsRecordedWithItsWordsAndTheRestAreCopied) {
  REQUIRE_PROVIDERS();
  const std::vector<std::string> sent = seed_many(6);
  const std::vector<uint32_t> uids = inbox_uids();
  ProviderRules rules(user_, {{{"action", "fetch_fail"}, {"uid", uids[2]}}});
  const sync::SyncReport report = run(route_);
  ASSERT_EQ(report.result.outcome, queue::Outcome::kSucceeded) << report.result.error;
  EXPECT_EQ(report.result.stats.appended, 5);
  EXPECT_EQ(report.result.stats.failed, 1);
  EXPECT_EQ(
      db_.query_value("SELECT uid || ' ' || reason || ' ' || permanent FROM mailsync.failures"),
      std::to_string(uids[2]) + " fetch_failed false");
  EXPECT_NE(db_.query_value("SELECT last_error FROM mailsync.failures")
                .find("NO Some messages could not be FETCHed (Failure)"),
            std::string::npos);
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)), without(sent, 2));
  EXPECT_EQ(db_.query_value("SELECT last_uid FROM mailsync.watermarks"),
            std::to_string(uids.back()))
      << "the route goes on past it";
}

// "BODY[] NIL" is a message the server has no bytes for, never a message of zero bytes.
TEST_F(ProvidersTest, ABodyServedAsNilIsAFailureNeverAnEmptyCopy) {
  REQUIRE_PROVIDERS();
  const std::vector<std::string> sent = seed_many(4);
  const std::vector<uint32_t> uids = inbox_uids();
  ProviderRules rules(user_, {{{"action", "nil_body"}, {"uid", uids[1]}}});
  const sync::SyncReport report = run(route_);
  ASSERT_EQ(report.result.outcome, queue::Outcome::kSucceeded) << report.result.error;
  EXPECT_EQ(report.result.stats.appended, 3);
  EXPECT_EQ(report.result.stats.failed, 1);
  EXPECT_NE(db_.query_value("SELECT last_error FROM mailsync.failures").find("NIL"),
            std::string::npos);
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)), without(sent, 1));
}

// A server that sends one message's FETCH response twice: it is copied once.
TEST_F(ProvidersTest, AUidTheServerReturnsTwiceIsCopiedOnce) {
  REQUIRE_PROVIDERS();
  const std::vector<std::string> sent = seed_many(4);
  const std::vector<uint32_t> uids = inbox_uids();
  ProviderRules rules(user_, {{{"action", "duplicate"}, {"uid", uids[2]}}});
  const sync::SyncReport report = run(route_);
  ASSERT_EQ(report.result.outcome, queue::Outcome::kSucceeded) << report.result.error;
  EXPECT_EQ(report.result.stats.appended, 4);
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)),
            std::multiset<std::string>(sent.begin(), sent.end()));
}

// Outlook.com in the middle of a pipelined batch (no MULTIAPPEND: one APPEND per message,
// LITERAL+): "BAD Request is throttled. Suggested Backoff Time: 89117 milliseconds", then "* BYE
// Connection closed. 14". Before, the BYE threw away the answers already read: the stored messages
// stayed PENDING for a later reconcile, the run was retried on the ordinary schedule (15 s), and
// every other route into the mailbox went on hammering it.
TEST_F(ProvidersTest, AThrottleThenByeMidPipelineKeepsWhatWasStoredAndTheMailboxBacksOff) {
  REQUIRE_PROVIDERS();
  use_own_outlook();
  const std::vector<std::string> sent = seed_many(10);
  ProviderRules rules(
      outlook_user_, {{{"on", "APPEND"},
                       {"after", 4},
                       {"times", 1},
                       {"action", "respond"},
                       {"status", "BAD"},
                       {"text", "Request is throttled. Suggested Backoff Time: 89117 milliseconds"},
                       {"bye", "Connection closed. 14"}}});
  const auto before = std::chrono::system_clock::now();
  const sync::SyncReport first = run(route_);
  EXPECT_EQ(first.outcome, sync::SyncOutcome::kThrottled) << first.result.error;
  EXPECT_GE(first.result.retry_at, before + std::chrono::milliseconds(89117));
  EXPECT_EQ(first.result.stats.appended, 4);
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.uid_claims WHERE state = 'DONE'"), "4")
      << "the answers read before the BYE are kept";
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.uid_claims WHERE state = 'PENDING'"),
            "0")
      << "the server stopped after the refusal: nothing after it is in doubt";
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.failures"), "0")
      << "throttling is not the message's fault";
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.account_backoffs WHERE account = "
                            "'outlook:" +
                            outlook_user_ + "'"),
            "1");
  EXPECT_EQ(read_folder(*outlook(), route_.target_folder).size(), 4u);

  // Another route into the same mailbox, meanwhile: it does not connect at all.
  config::Route other = make_route(mailsync::testing::claim_gmail_user());
  other.outlook_email = outlook_user_;
  const auto appends =
      mailsync::testing::provider_stats(outlook_user_)["commands"].value("APPEND", 0);
  const sync::SyncReport waiting = run(other);
  EXPECT_EQ(waiting.outcome, sync::SyncOutcome::kThrottled);
  EXPECT_NE(waiting.result.error.find("asked to back off"), std::string::npos)
      << waiting.result.error;
  EXPECT_EQ(mailsync::testing::provider_stats(outlook_user_)["commands"].value("APPEND", 0),
            appends);

  // The time passes (made to pass here): the rest is copied, each message once.
  db_.execute("UPDATE mailsync.account_backoff SET not_before = now()");
  const sync::SyncReport after = run(route_);
  ASSERT_EQ(after.outcome, sync::SyncOutcome::kSucceeded) << after.result.error;
  EXPECT_EQ(after.result.stats.appended, 6);
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)),
            std::multiset<std::string>(sent.begin(), sent.end()));
}

// Outlook.com drops idle connections without a BYE. Before, the next run took the dead pooled
// connection and failed; now a pooled connection is checked (NOOP) and replaced.
TEST_F(ProvidersTest, AnIdleConnectionTheServerDroppedSilentlyIsReplacedBeforeUse) {
  REQUIRE_PROVIDERS();
  use_own_outlook();
  seed_many(2, "a");
  ASSERT_EQ(run(route_).result.stats.appended, 2);
  ASSERT_EQ(pool_.idle_count(), 1u) << "the Outlook connection went back to the pool";
  ProviderRules rules(outlook_user_, {{{"action", "idle_drop"}, {"seconds", 1}}});
  ASSERT_TRUE(mailsync::testing::wait_for(
      [&] { return mailsync::testing::provider_stats(outlook_user_)["connections"] == 0; },
      std::chrono::seconds(10)))
      << "the proxy drops the idle connection";
  seed_many(2, "b");
  const sync::SyncReport report = run(route_);
  ASSERT_EQ(report.outcome, sync::SyncOutcome::kSucceeded) << report.result.error;
  EXPECT_EQ(report.result.stats.appended, 2);
}

// "BAD User is authenticated but not connected." then "* BYE Connection closed. 14" as the answer
// to the first command after a good AUTHENTICATE. A passing state (connection churn) is
// reconnected; the same every time is auth_required with the likely causes (next test), never a
// retry storm and never a message's failure.
const nlohmann::json kNotConnected = {{"on", "*"},
                                      {"first", true},
                                      {"action", "respond"},
                                      {"status", "BAD"},
                                      {"text", "User is authenticated but not connected."},
                                      {"bye", "Connection closed. 14"}};

TEST_F(ProvidersTest, NotConnectedAfterLoginOnceIsReconnected) {
  REQUIRE_PROVIDERS();
  use_own_outlook();
  seed_many(2);
  nlohmann::json once = kNotConnected;
  once["times"] = 1;
  ProviderRules rules(outlook_user_, {once});
  const sync::SyncReport passing = run(route_);
  ASSERT_EQ(passing.outcome, sync::SyncOutcome::kSucceeded) << passing.result.error;
  EXPECT_EQ(passing.result.stats.appended, 2);
  EXPECT_EQ(mailsync::testing::provider_stats(outlook_user_).value("rules_fired", 0), 1);
}

TEST_F(ProvidersTest, NotConnectedAfterEveryLoginIsAuthRequiredWithTheLikelyCauses) {
  REQUIRE_PROVIDERS();
  use_own_outlook();
  seed_many(1);
  ProviderRules rules(outlook_user_, {kNotConnected});
  const sync::SyncReport persisting = run(route_);
  EXPECT_EQ(persisting.outcome, sync::SyncOutcome::kAuthRequired);
  EXPECT_NE(persisting.result.error.find("IMAP.AccessAsUser.All"), std::string::npos)
      << persisting.result.error;
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.failures"), "0");
}

// Gmail allows 15 connections per account; the 16th login gets the 400 challenge, then
// "NO [ALERT] Too many simultaneous connections. (Failure)". That is a wait, never auth_required.
TEST_F(ProvidersTest, TooManySimultaneousGmailConnectionsIsAWaitNeverAuthRequired) {
  REQUIRE_PROVIDERS();
  seed_many(1);
  std::vector<std::unique_ptr<imap::Client>> held;
  for (int i = 0; i < 15; ++i) held.push_back(gmail_as(user_));
  const sync::SyncReport full = run(route_);
  EXPECT_EQ(full.outcome, sync::SyncOutcome::kThrottled) << full.result.error;
  EXPECT_NE(full.result.error.find("Too many simultaneous connections"), std::string::npos)
      << full.result.error;
  EXPECT_GT(full.result.retry_at, std::chrono::system_clock::now());
  EXPECT_EQ(mailsync::testing::provider_stats(user_).value("refused_connections", 0), 1);
  held.clear();
  const sync::SyncReport later = run(route_);
  ASSERT_EQ(later.outcome, sync::SyncOutcome::kSucceeded) << later.result.error;
  EXPECT_EQ(later.result.stats.appended, 1);
}

// Gmail's bandwidth limit in the middle of a FETCH: "* BYE Session expired, please login again".
// The run ends to be retried (nothing was claimed for the batch being fetched); the next one copies
// everything exactly once.
TEST_F(ProvidersTest, ASessionExpiredMidFetchIsRetriedAndCopiesEverythingOnce) {
  REQUIRE_PROVIDERS();
  std::vector<std::string> sent;
  for (int i = 0; i < 20; ++i)  // 80 KB of bodies; what comes before the FETCH is under 10 KB
    sent.push_back(seed(mailsync::testing::message("Message-ID: <s" + std::to_string(i) + "@x>\r\n",
                                                   std::string(4000, 's') + "\r\n")));
  {
    ProviderRules rules(user_, {{{"action", "bye_after_bytes"},
                                 {"bytes", 20000},
                                 {"text", "Session expired, please login again"}}});
    const sync::SyncReport cut = run(route_);
    EXPECT_EQ(cut.result.outcome, queue::Outcome::kFailed) << "retried with backoff";
    EXPECT_NE(cut.result.error.find("Session expired"), std::string::npos) << cut.result.error;
    EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.uid_claims"), "0");
  }
  const sync::SyncReport after = run(route_);
  ASSERT_EQ(after.outcome, sync::SyncOutcome::kSucceeded) << after.result.error;
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)),
            std::multiset<std::string>(sent.begin(), sent.end()));
}

// Outlook.com may serve a message back as MIME regenerated from its store, with another
// RFC822.SIZE (the proxy's "regenerate" rule). Before, crash recovery searched by Message-ID and
// compared the SHA-256 of what the destination served: no match, so the message was appended
// again, a duplicate. Now it looks at what arrived since the UIDNEXT recorded before the batch's
// APPENDs, by Message-ID and INTERNALDATE, one FETCH for the batch. Under plain Dovecot the same
// path runs without the regenerated bytes.
TEST_F(ProvidersTest, ACrashAfterAnAppendIsReconciledAlthoughTheDestinationServesOtherBytes) {
  use_own_outlook();
  const std::string date = "05-Dec-2026 10:11:12 +0000";
  const std::string appended = mailsync::testing::message("Message-ID: <r1@x>\r\n", "in\r\n");
  const std::string twin = appended;  // byte-identical: each needs its own copy
  const std::string not_appended = mailsync::testing::message("Message-ID: <r2@x>\r\n", "out\r\n");
  seed(appended, date);
  seed(twin, date);
  seed(not_appended, date);
  const std::vector<uint32_t> uids = inbox_uids();
  const uint32_t uidvalidity = gmail_as(user_)->examine("INBOX").uidvalidity;
  const auto instant = mail::parse_internaldate(date)->instant;
  auto destination = outlook();
  destination->create(route_.target_folder);
  store_->ensure_route(route_);
  {
    // The attempt that crashed: claimed all three, recorded the folder's UIDNEXT, appended the
    // first (not its twin, not the third), and died before finalizing.
    queue::LeaseKeeper crashed(db_.url(), "crashed worker", route_.key());
    const sync::Fence fence{crashed.job().id, crashed.job().attempt, "crashed worker"};
    std::vector<sync::SyncStore::ClaimRequest> requests;
    for (size_t i = 0; i < 3; ++i) {
      const std::string& bytes = i == 2 ? not_appended : appended;
      requests.push_back({uids[i], i == 2 ? "<r2@x>" : "<r1@x>", util::Sha256::hex_of(bytes),
                          static_cast<int64_t>(bytes.size()), std::nullopt, instant});
    }
    store_->claim(route_.key(), uidvalidity, requests, fence);
    const imap::MailboxInfo folder = destination->examine(route_.target_folder);
    store_->record_destination_mark(fence, route_.key(), uidvalidity, uids, folder.uidvalidity,
                                    folder.uidnext);
    destination->append(route_.target_folder, {appended, {}, date});
  }
  std::optional<ProviderRules> regenerated;
  if (mailsync::testing::providers_profile())
    regenerated.emplace(outlook_user_, nlohmann::json{{"action", "regenerate"}});

  const sync::SyncReport report = run(route_);
  ASSERT_EQ(report.result.outcome, queue::Outcome::kSucceeded) << report.result.error;
  EXPECT_EQ(report.result.stats.appended, 2) << "the twin and the third, not the first again";
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.uid_claims WHERE state = 'DONE'"), "3");
  // What the server really stored, past the proxy: each source message once, bytes unchanged.
  const auto grant = mailsync::testing::refresh_grant(
      Server::kOutlook, mailsync::testing::mint_refresh_token(Server::kOutlook, outlook_user_));
  auto stored = imap::Client::connect(mailsync::testing::dovecot_options(Server::kOutlook));
  stored->authenticate_xoauth2(outlook_user_,
                               nlohmann::json::parse(grant.body).value("access_token", ""));
  EXPECT_EQ(hashes(read_folder(*stored, route_.target_folder)),
            (std::multiset<std::string>{util::Sha256::hex_of(appended), util::Sha256::hex_of(twin),
                                        util::Sha256::hex_of(not_appended)}));
}

// Whether Outlook.com answers APPEND with APPENDUID is not settled: without it the copies are DONE
// without a destination UID, and a crash is still reconciled by what arrived since the mark.
TEST_F(ProvidersTest, AppendsWithoutAppenduidAreDoneAndNotCopiedTwice) {
  REQUIRE_PROVIDERS();
  use_own_outlook();
  const std::vector<std::string> sent = seed_many(3);
  ProviderRules rules(outlook_user_, {{{"action", "no_appenduid"}}});
  const sync::SyncReport first = run(route_);
  ASSERT_EQ(first.outcome, sync::SyncOutcome::kSucceeded) << first.result.error;
  EXPECT_EQ(first.result.stats.appended, 3);
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.uid_claims WHERE state = 'DONE' AND "
                            "dest_uid IS NULL"),
            "3");
  EXPECT_EQ(run(route_).result.stats.appended, 0);
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)),
            std::multiset<std::string>(sent.begin(), sent.end()));
}

}  // namespace

// Each batch records the destination's mark before its APPENDs. After the first batch the mark
// comes from the APPENDUIDs already answered (the highest plus one), not from another EXAMINE: a
// round trip per batch to Outlook.com saved, and the mark still never above a copy's UID.
TEST_F(ProvidersTest, BatchMarksAfterTheFirstComeFromAppenduidWithoutAnotherExamine) {
  REQUIRE_PROVIDERS();
  use_own_outlook();
  const std::vector<std::string> sent = seed_many(6);
  store_->ensure_route(route_);
  sync::SyncOptions options;
  options.batch_messages = 2;
  const int examines_before =
      mailsync::testing::provider_stats(outlook_user_)["commands"].value("EXAMINE", 0);
  sync::LiveRouteSync sync(settings_, route_, tokens_, *store_, *dynamo_, pool_, options);
  const sync::SyncReport report = leased_run(sync, route_);
  ASSERT_EQ(report.outcome, sync::SyncOutcome::kSucceeded) << report.result.error;
  EXPECT_EQ(report.result.stats.appended, 6);
  EXPECT_EQ(mailsync::testing::provider_stats(outlook_user_)["commands"].value("EXAMINE", 0) -
                examines_before,
            1)
      << "one EXAMINE for the first batch's mark; three batches";
  // Every claim's mark is at most its copy's UID, and above the copies of the batches before.
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.uid_claims WHERE state = 'DONE' AND "
                            "dest_uidnext <= dest_uid"),
            "6");
  EXPECT_EQ(db_.query_value("SELECT count(DISTINCT dest_uidnext) FROM mailsync.uid_claims"), "3");
  EXPECT_EQ(db_.query_value(
                "SELECT count(*) FROM mailsync.uid_claims c WHERE dest_uidnext <= (SELECT "
                "max(dest_uid) FROM mailsync.uid_claims e WHERE e.dest_uidnext < c.dest_uidnext)"),
            "0");
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)),
            std::multiset<std::string>(sent.begin(), sent.end()));
}

// Crash recovery looks only for claims whose APPEND may have gone out. A claim is recorded as
// "not sent" (dest_uidnext 0) and marked before its APPEND, with the folder's UIDNEXT or, when the
// server named none, without: so the batch prepared ahead of a crash (claimed, never sent) costs
// no SEARCH, and a claim sent without a mark is still looked for by its bytes.
TEST_F(ProvidersTest, ACrashedBatchNeverSentIsNotSearchedForOneSentWithoutAMarkIs) {
  REQUIRE_PROVIDERS();
  use_own_outlook();
  const std::string sent = mailsync::testing::message("Message-ID: <sent@x>\r\n", "sent\r\n");
  const std::string ahead = mailsync::testing::message("Message-ID: <ahead@x>\r\n", "ahead\r\n");
  seed(sent);
  seed(ahead);
  const std::vector<uint32_t> uids = inbox_uids();
  const uint32_t uidvalidity = gmail_as(user_)->examine("INBOX").uidvalidity;
  auto destination = outlook();
  destination->create(route_.target_folder);
  store_->ensure_route(route_);
  {
    queue::LeaseKeeper crashed(db_.url(), "crashed worker", route_.key());
    const sync::Fence fence{crashed.job().id, crashed.job().attempt, "crashed worker"};
    store_->claim(
        route_.key(), uidvalidity,
        {{uids[0], "<sent@x>", util::Sha256::hex_of(sent), static_cast<int64_t>(sent.size())},
         {uids[1], "<ahead@x>", util::Sha256::hex_of(ahead), static_cast<int64_t>(ahead.size())}},
        fence);
    store_->record_destination_mark(fence, route_.key(), uidvalidity, {uids[0]}, std::nullopt,
                                    std::nullopt);
    destination->append(route_.target_folder, {sent});
  }
  EXPECT_EQ(db_.query_value("SELECT string_agg(coalesce(dest_uidnext::text, 'null'), ',' ORDER BY "
                            "uid) FROM mailsync.uid_claims"),
            "null,0");
  const int searches_before =
      mailsync::testing::provider_stats(outlook_user_)["commands"].value("SEARCH", 0);
  const sync::SyncReport report = run(route_);
  ASSERT_EQ(report.outcome, sync::SyncOutcome::kSucceeded) << report.result.error;
  EXPECT_EQ(report.result.stats.appended, 1) << "the one never sent";
  EXPECT_EQ(mailsync::testing::provider_stats(outlook_user_)["commands"].value("SEARCH", 0) -
                searches_before,
            1)
      << "one SEARCH: for the claim sent without a mark, none for the one never sent";
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)),
            (std::multiset<std::string>{util::Sha256::hex_of(sent), util::Sha256::hex_of(ahead)}));
}
