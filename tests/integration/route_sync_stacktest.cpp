// route_sync against the whole local stack: Gmail-side Dovecot, Outlook-side Dovecot, the OAuth
// emulator, dynalite and PostgreSQL. Each test has a source mailbox, a destination folder and a
// database of its own.

#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "mailsync/dynamo/dynamo_client.hpp"
#include "mailsync/http/http_client.hpp"
#include "mailsync/mail/rfc822.hpp"
#include "mailsync/postgres/errors.hpp"
#include "mailsync/postgres/migrator.hpp"
#include "mailsync/queue/lease_keeper.hpp"
#include "mailsync/queue/route_store.hpp"
#include "mailsync/sync/dynamo_state_mirror.hpp"
#include "mailsync/sync/imap_login.hpp"
#include "mailsync/sync/live_route_sync.hpp"
#include "mailsync/sync/message_retry.hpp"
#include "mailsync/ui/status_page.hpp"
#include "mailsync/util/sha256.hpp"
#include "mailsync/util/strings.hpp"
#include "route_sync_fixture.hpp"
#include "support/corpus.hpp"
#include "support/cut_proxy.hpp"
#include "support/process.hpp"
#include "support/prometheus_text.hpp"
#include "support/scripted_imap_stream.hpp"
#include "support/stack.hpp"
#include "support/test_database.hpp"
#include "support/wait_for.hpp"

namespace {

using namespace mailsync;
using mailsync::testing::hashes;
using mailsync::testing::metric_value;
using mailsync::testing::read_folder;
using mailsync::testing::RouteSyncTest;
using mailsync::testing::Server;
using mailsync::testing::stack_env;
using mailsync::testing::Stored;

TEST_F(RouteSyncTest,
       CopiesTrickyMessagesByteExactOnceUnreadWithTheirDatesAndLeavesTheSourceAlone) {
  std::multiset<std::string> sent;
  std::map<std::string, std::string> date_of;  // sha -> INTERNALDATE given
  int n = 0;
  for (const auto& [name, bytes] : mailsync::testing::tricky_messages()) {
    const std::string date = "0" + std::to_string(1 + n++ % 9) + "-Mar-2024 10:11:12 +0130";
    sent.insert(seed(bytes, date));
    date_of[util::Sha256::hex_of(bytes)] = date;
  }
  // Same Message-ID, different bodies; and two byte-identical messages: all four are copied.
  sent.insert(seed(mailsync::testing::message("Message-ID: <twin@x>\r\n", "first\r\n")));
  sent.insert(seed(mailsync::testing::message("Message-ID: <twin@x>\r\n", "second\r\n")));
  sent.insert(seed(mailsync::testing::message("Message-ID: <same@x>\r\n", "same\r\n")));
  sent.insert(seed(mailsync::testing::message("Message-ID: <same@x>\r\n", "same\r\n")));
  std::string large(20 << 20, 'z');
  for (size_t i = 998; i < large.size(); i += 1000) large.replace(i, 2, "\r\n");
  sent.insert(seed(mailsync::testing::message("Message-ID: <large@x>\r\n", large)));
  const auto source_before = read_folder(*gmail_as(user_), "INBOX");

  const sync::SyncReport first = run(route_);
  ASSERT_EQ(first.result.outcome, queue::Outcome::kSucceeded) << first.result.error;
  EXPECT_EQ(first.result.stats.appended, static_cast<int>(sent.size()));

  auto destination = outlook();
  const auto copied = read_folder(*destination, route_.target_folder);
  EXPECT_EQ(hashes(copied), sent) << "the destination does not hold exactly the source's bytes";
  for (const auto& m : copied) {
    EXPECT_EQ(std::count(m.flags.begin(), m.flags.end(), "\\Seen"), 0) << "copied as read";
    if (date_of.contains(m.sha256)) {
      EXPECT_EQ(mail::parse_internaldate(m.internaldate)->instant,
                mail::parse_internaldate(date_of[m.sha256])->instant);
    }
  }
  const auto source_after = read_folder(*gmail_as(user_), "INBOX");
  ASSERT_EQ(source_after.size(), source_before.size()) << "the source changed";
  for (size_t i = 0; i < source_after.size(); ++i)
    EXPECT_EQ(source_after[i].flags, source_before[i].flags);

  const sync::SyncReport second = run(route_);
  EXPECT_EQ(second.result.outcome, queue::Outcome::kSucceeded);
  EXPECT_EQ(second.result.stats.appended, 0);
  EXPECT_EQ(read_folder(*destination, route_.target_folder).size(), copied.size())
      << "a re-run copied again";

  // Postgres and the DynamoDB mirror agree.
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.uid_claims WHERE state = 'DONE'"),
            std::to_string(sent.size()));
  EXPECT_EQ(dynamo_->query(route_.key(), "UID#").size(), sent.size());
  const auto mark = dynamo_->get(route_.key(), "WATERMARK");
  ASSERT_TRUE(mark.has_value());
  EXPECT_EQ((*mark)["last_uid"]["N"], db_.query_value("SELECT last_uid FROM mailsync.watermarks"));
}

TEST_F(RouteSyncTest, AChangedUidvalidityCopiesOnlyTheNewMessages) {
  for (int i = 0; i < 5; ++i)
    seed(mailsync::testing::message("Message-ID: <v" + std::to_string(i) + "@x>\r\n", "body\r\n"));
  seed(mailsync::testing::message("Subject: no id\r\n", "anonymous\r\n"));
  ASSERT_EQ(run(route_).result.stats.appended, 6);
  // As if the source mailbox had been rebuilt: our watermark's UIDVALIDITY no longer matches.
  db_.execute("UPDATE mailsync.watermarks SET uidvalidity = uidvalidity + 1");
  seed(mailsync::testing::message("Message-ID: <new1@x>\r\n", "new\r\n"));
  seed(mailsync::testing::message("Message-ID: <new2@x>\r\n", "new\r\n"));
  const sync::SyncReport report = run(route_);
  ASSERT_EQ(report.result.outcome, queue::Outcome::kSucceeded) << report.result.error;
  EXPECT_EQ(report.result.stats.appended, 2);
  EXPECT_EQ(report.result.stats.skipped, 6);
  EXPECT_EQ(read_folder(*outlook(), route_.target_folder).size(), 8u);
}

TEST_F(RouteSyncTest, AClosedGateStopsTheRunBeforeAnyImapLogin) {
  seed(mailsync::testing::message("Message-ID: <gate@x>\r\n", "x\r\n"));
  dynamo::DynamoOptions closed = dynamo_options_;
  closed.endpoint = "http://127.0.0.1:1/";
  closed.attempts = 1;
  dynamo::DynamoClient unreachable(closed);
  const std::string log = stack_env("MAILSYNC_STACK_GMAIL_LOG");
  const auto size_before = std::filesystem::file_size(log);
  const sync::SyncReport report = run(route_, &unreachable);
  EXPECT_EQ(report.result.outcome, queue::Outcome::kFailed);
  EXPECT_NE(report.result.error.find("gate unavailable"), std::string::npos) << report.result.error;
  std::ifstream in(log);
  in.seekg(static_cast<std::streamoff>(size_before));
  const std::string after((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(after.find("user=<" + user_ + ">"), std::string::npos) << "an IMAP login happened:\n"
                                                                   << after;
  EXPECT_EQ(db_.query_value("SELECT last_outcome FROM mailsync.routes"), "gate_unavailable");
}

TEST_F(RouteSyncTest, ARouteWithARevokedTokenNeedsAuthAndAnotherRouteGoesOn) {
  const std::string other_user = mailsync::testing::claim_gmail_user();
  config::Route healthy = make_route(other_user);
  mailsync::testing::append_to_gmail(
      other_user, mailsync::testing::message("Message-ID: <ok@x>\r\n", "ok\r\n"),
      mail::format_internaldate({std::chrono::system_clock::now(), 0}));
  seed(mailsync::testing::message("Message-ID: <blocked@x>\r\n", "x\r\n"));
  mailsync::testing::emulator_admin(
      "/admin/revoke",
      nlohmann::json{{"refresh_token", route_.gmail_refresh_token->reveal()}}.dump());
  const sync::SyncReport broken = run(route_);
  EXPECT_EQ(broken.result.outcome, queue::Outcome::kCancelled);
  EXPECT_NE(broken.result.error.find("mailsync auth gmail"), std::string::npos)
      << broken.result.error;
  EXPECT_EQ(db_.query_value("SELECT auth_state FROM mailsync.routes WHERE route_key = '" +
                            route_.key() + "'"),
            "auth_required");
  EXPECT_EQ(run(healthy).result.stats.appended, 1) << "the other route was disturbed";
  // A second run of the broken route does not retry in a loop: it ends at once.
  EXPECT_EQ(run(route_).result.outcome, queue::Outcome::kCancelled);
  // What the log tells the operator to run after fixing the token: `mailsync resume`.
  queue::make_pg_route_store(db_.url(), "test")->set_paused(route_.key(), false);
  EXPECT_EQ(db_.query_value("SELECT auth_state FROM mailsync.routes WHERE route_key = '" +
                            route_.key() + "'"),
            "ok");
}

TEST_F(RouteSyncTest, AClaimLeftPendingByACrashIsReconciledNotCopiedTwice) {
  const std::string appended =
      mailsync::testing::message("Message-ID: <crash1@x>\r\n", "was appended before the crash\r\n");
  const std::string not_appended =
      mailsync::testing::message("Message-ID: <crash2@x>\r\n", "was not\r\n");
  seed(appended);
  seed(not_appended);
  // The crash: both claimed (Postgres), the first already in the destination, neither finalized.
  const uint32_t uidvalidity = gmail_as(user_)->examine("INBOX").uidvalidity;
  store_->ensure_route(route_);
  {
    // The attempt that crashed: it claimed under its lease, which ended with it.
    queue::LeaseKeeper crashed(db_.url(), "crashed worker", route_.key());
    store_->claim(
        route_.key(), uidvalidity,
        {{1, "<crash1@x>", util::Sha256::hex_of(appended), static_cast<int64_t>(appended.size())},
         {2, "<crash2@x>", util::Sha256::hex_of(not_appended),
          static_cast<int64_t>(not_appended.size())}},
        {crashed.job().id, crashed.job().attempt, "crashed worker"});
  }
  // Claimed by a version that recorded no marks (dest_uidnext NULL, not 0 "never sent"): each
  // claim is looked for by its bytes.
  db_.execute("UPDATE mailsync.uid_claims SET dest_uidnext = NULL");
  auto destination = outlook();
  destination->create(route_.target_folder);
  destination->append(route_.target_folder, {appended});

  const sync::SyncReport report = run(route_);
  ASSERT_EQ(report.result.outcome, queue::Outcome::kSucceeded) << report.result.error;
  const auto copied = read_folder(*destination, route_.target_folder);
  EXPECT_EQ(hashes(copied), (std::multiset<std::string>{util::Sha256::hex_of(appended),
                                                        util::Sha256::hex_of(not_appended)}));
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.uid_claims WHERE state = 'DONE'"), "2");
}

// The folder was deleted and made again between a batch's mark and its APPEND (a person, or
// another tool): the mark names the old UIDVALIDITY, yet the APPEND reached the new folder. The
// claim is looked for by its bytes there, not taken as never arrived (which copied it twice).
TEST_F(RouteSyncTest, AClaimWhoseMarkNamesARecreatedFolderIsLookedForByItsBytes) {
  const std::string appended =
      mailsync::testing::message("Message-ID: <recreated@x>\r\n", "reached the new folder\r\n");
  seed(appended);
  const uint32_t uidvalidity = gmail_as(user_)->examine("INBOX").uidvalidity;
  store_->ensure_route(route_);
  auto destination = outlook();
  destination->create(route_.target_folder);
  const imap::MailboxInfo folder = destination->examine(route_.target_folder);
  {
    queue::LeaseKeeper crashed(db_.url(), "crashed worker", route_.key());
    const sync::Fence fence{crashed.job().id, crashed.job().attempt, "crashed worker"};
    store_->claim(route_.key(), uidvalidity,
                  {{1, "<recreated@x>", util::Sha256::hex_of(appended),
                    static_cast<int64_t>(appended.size())}},
                  fence);
    // As the folder before it was made again: another UIDVALIDITY.
    store_->record_destination_mark(fence, route_.key(), uidvalidity, {1}, folder.uidvalidity - 1,
                                    folder.uidnext);
  }
  destination->append(route_.target_folder, {appended});

  const sync::SyncReport report = run(route_);
  ASSERT_EQ(report.result.outcome, queue::Outcome::kSucceeded) << report.result.error;
  EXPECT_EQ(report.result.stats.appended, 0);
  EXPECT_EQ(hashes(read_folder(*destination, route_.target_folder)),
            (std::multiset<std::string>{util::Sha256::hex_of(appended)}));
}

// Issue 13: "AUTHENTICATE + NO" was judged before [UNAVAILABLE], so two blips of the shared
// Outlook login set auth_required and stopped every route. A real access token (the emulator),
// a server that answers AUTHENTICATE with Microsoft's transient NO.
TEST_F(RouteSyncTest, UnavailableAtAuthenticateIsAFailureToRetryNeverAuthRequired) {
  int authenticates = 0;
  for (int run = 0; run < 2; ++run) {
    auto client = imap::Client::over(std::make_unique<mailsync::testing::ScriptedImapStream>(
        "* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 SASL-IR LITERAL+] ready\r\n",
        [&](const mailsync::testing::ScriptedCommand& c) -> std::string {
          if (!c.line.starts_with("AUTHENTICATE")) return c.tag + " BAD unexpected\r\n";
          ++authenticates;
          return c.tag + " NO [UNAVAILABLE] Temporary authentication failure.\r\n";
        }));
    try {
      sync::login_xoauth2(*client, settings_.outlook_email, sync::outlook_credential(settings_),
                          tokens_);
      ADD_FAILURE() << "logged in";
    } catch (const sync::SyncStop& e) {
      ADD_FAILURE() << "a transient answer stopped the route: " << e.what();
    } catch (const imap::ImapError& e) {
      EXPECT_EQ(imap::classify(e).kind, imap::ErrorClass::Kind::kRetryable) << e.what();
    }
  }
  EXPECT_EQ(authenticates, 2) << "a transient refusal is not retried at once with a new token";
  store_->ensure_route(route_);
  EXPECT_FALSE(store_->auth_required(route_.key()));
}

// Issue 13: a Message-ID with invalid UTF-8 or a NUL went raw into a text[] parameter and into
// strict JSON, failing its batch on every run. Stored escaped (util::encode_header_bytes), both are
// copied, deduplicated and reconciled like any other, and nothing after them is held up.
TEST_F(RouteSyncTest, MessageIdsWithInvalidUtf8OrANulAreCopiedAndHoldNothingUp) {
  const std::string eight_bit =
      mailsync::testing::message("Message-ID: <caf\xe9\xff@x>\r\n", "8-bit Message-ID\r\n");
  const std::string nul = mailsync::testing::message(std::string("Message-ID: <a\0b@x>\r\n", 20),
                                                     "a NUL in the Message-ID\r\n");
  const std::string after = mailsync::testing::message("Message-ID: <after@x>\r\n", "after\r\n");
  std::multiset<std::string> sent;
  for (const auto* bytes : {&eight_bit, &nul, &after}) {
    try {
      sent.insert(seed(*bytes));
    } catch (const std::exception& e) {
      // a server that refuses a NUL in a literal keeps it out of the source, not out of the test
      ADD_FAILURE() << "the source refused a message: " << e.what();
    }
  }
  // What the source serves is what must arrive (Dovecot stores a NUL as it sees fit).
  sent = hashes(read_folder(*gmail_as(user_), "INBOX"));
  const sync::SyncReport report = run(route_);
  ASSERT_EQ(report.result.outcome, queue::Outcome::kSucceeded) << report.result.error;
  EXPECT_EQ(report.result.stats.appended, static_cast<int>(sent.size()));
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)), sent);
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.uid_claims WHERE message_id LIKE "
                            "'~esc:%' AND state = 'DONE'"),
            "2");
  EXPECT_EQ(db_.query_value("SELECT message_id FROM mailsync.uid_claims WHERE uid = 1"),
            "~esc:<caf%E9%FF@x>");
  EXPECT_EQ(db_.query_value("SELECT message_id FROM mailsync.uid_claims WHERE uid = 3"),
            "<after@x>");
  int escaped_in_dynamo = 0;
  for (const auto& item : dynamo_->query(route_.key(), "UID#"))
    if (item.contains("message_id_header") &&
        item["message_id_header"]["S"].get<std::string>().starts_with("~esc:"))
      ++escaped_in_dynamo;
  EXPECT_EQ(escaped_in_dynamo, 2);
  // Deduplicated by those stored values after a UIDVALIDITY change: nothing copied twice.
  db_.execute("UPDATE mailsync.watermarks SET uidvalidity = uidvalidity + 1");
  const sync::SyncReport again = run(route_);
  ASSERT_EQ(again.result.outcome, queue::Outcome::kSucceeded) << again.result.error;
  EXPECT_EQ(again.result.stats.appended, 0);
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)), sent);
}

TEST_F(RouteSyncTest, AMissingFolderWithoutCreateFolderIsAClearPermanentError) {
  seed(mailsync::testing::message("Message-ID: <nofolder@x>\r\n", "x\r\n"));
  route_.create_folder = false;
  const sync::SyncReport report = run(route_);
  EXPECT_EQ(report.result.outcome, queue::Outcome::kDead);
  EXPECT_NE(
      report.result.error.find("does not exist in the destination and create_folder is false"),
      std::string::npos)
      << report.result.error;
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.uid_claims"), "0")
      << "nothing claimed, nothing half-done";
}

// Issue 13: the folder was looked up with LIST, whose argument is a pattern: a target folder named
// with '*' "existed" as soon as any folder matched.
TEST_F(RouteSyncTest, AFolderNameWithAWildcardIsLookedUpAsItselfNotAsAPattern) {
  seed(mailsync::testing::message("Message-ID: <wildcard@x>\r\n", "x\r\n"));
  outlook()->create(route_.target_folder + "-other");
  config::Route wildcard = route_;
  wildcard.target_folder = route_.target_folder + "*";
  wildcard.create_folder = false;
  const sync::SyncReport report = run(wildcard);
  EXPECT_EQ(report.result.outcome, queue::Outcome::kDead) << report.result.error;
  EXPECT_NE(report.result.error.find("does not exist in the destination"), std::string::npos)
      << report.result.error;
}

TEST_F(RouteSyncTest, MarkSeenCopiesMessagesAsRead) {
  seed(mailsync::testing::message("Message-ID: <seen@x>\r\n", "x\r\n"));
  route_.mark_seen = true;
  ASSERT_EQ(run(route_).result.stats.appended, 1);
  const auto copied = read_folder(*outlook(), route_.target_folder);
  ASSERT_EQ(copied.size(), 1u);
  EXPECT_EQ(std::count(copied[0].flags.begin(), copied[0].flags.end(), "\\Seen"), 1);
}

TEST_F(RouteSyncTest, ADryRunListsAndCopiesNothing) {
  seed(mailsync::testing::message("Message-ID: <dry@x>\r\n", "x\r\n"));
  sync::LiveRouteSync sync(settings_, route_, tokens_, *store_, *dynamo_, pool_, {.dry_run = true});
  const sync::SyncReport report = sync.run({}, never_);  // a dry run needs no lease
  ASSERT_EQ(report.would_copy.size(), 1u);
  EXPECT_NE(report.would_copy[0].find("<dry@x>"), std::string::npos);
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.uid_claims"), "0");
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.watermarks"), "0");
}

TEST_F(RouteSyncTest, OnlyNewMailWhenTheRouteSaysNone) {
  seed(mailsync::testing::message("Message-ID: <old@x>\r\n", "x\r\n"));
  route_.initial_sync = config::InitialSync::kNone;
  EXPECT_EQ(run(route_).result.stats.appended, 0);
  seed(mailsync::testing::message("Message-ID: <fresh@x>\r\n", "x\r\n"));
  EXPECT_EQ(run(route_).result.stats.appended, 1);
}

TEST_F(RouteSyncTest, StartsFromTheWatermarkOfATableCarriedOverFromTheLambda) {
  for (int i = 0; i < 3; ++i)
    seed(mailsync::testing::message("Message-ID: <carried" + std::to_string(i) + "@x>\r\n",
                                    "x\r\n"));
  const uint32_t uidvalidity = gmail_as(user_)->examine("INBOX").uidvalidity;
  dynamo_->put({{"PK", dynamo::S(route_.key())},
                {"SK", dynamo::S("WATERMARK")},
                {"uidvalidity", dynamo::N(uidvalidity)},
                {"last_uid", dynamo::N(2)},
                {"updated_at", dynamo::S("2025-01-01T00:00:00Z")}});
  EXPECT_EQ(run(route_).result.stats.appended, 1) << "UIDs 1 and 2 were copied by the Lambda";
}

// Issue 13: a second writer on the table (the Lambda, still running) holding PENDING items for the
// same messages, same bytes. Before claimed_by, mailsync took such an item for its own and both
// appended; and crash recovery deleted it. Now: none of them copied, every item as it was.
TEST_F(RouteSyncTest, ASecondWritersPendingItemsAreLeftAloneAndTheirMessagesNotCopied) {
  std::vector<std::string> sent;
  for (int i = 0; i < 3; ++i)
    sent.push_back(seed(mailsync::testing::message(
        "Message-ID: <second" + std::to_string(i) + "@x>\r\n", "second writer\r\n")));
  const uint32_t uidvalidity = gmail_as(user_)->examine("INBOX").uidvalidity;
  auto lambda_item = [&](uint32_t uid) {
    return nlohmann::json{
        {"PK", dynamo::S(route_.key())},
        {"SK", dynamo::S("UID#" + std::to_string(uidvalidity) + "#" + std::to_string(uid))},
        {"status", dynamo::S("PENDING")},
        {"rfc822_sha256", dynamo::S(sent[uid - 1])},
        {"message_id_header", dynamo::S("<second" + std::to_string(uid - 1) + "@x>")},
        {"ttl", dynamo::N(4102444800)}};
  };
  dynamo_->put(lambda_item(1));
  dynamo_->put(lambda_item(2));
  // UID 2 was also claimed in Postgres by a mailsync attempt that crashed: its recovery must not
  // reconcile the other writer's item away either.
  store_->ensure_route(route_);
  {
    queue::LeaseKeeper crashed(db_.url(), "crashed worker", route_.key());
    store_->claim(route_.key(), uidvalidity, {{2, "<second1@x>", sent[1], 100}},
                  {crashed.job().id, crashed.job().attempt, "crashed worker"});
  }
  for (int run_number = 0; run_number < 2; ++run_number) {
    const sync::SyncReport report = run(route_);
    ASSERT_EQ(report.result.outcome, queue::Outcome::kSucceeded) << report.result.error;
    db_.execute("UPDATE mailsync.failures SET next_retry_at = now()");  // retried the second time
  }
  const auto copied = read_folder(*outlook(), route_.target_folder);
  EXPECT_EQ(hashes(copied), (std::multiset<std::string>{sent[2]}));
  for (const uint32_t uid : {1u, 2u}) {
    const auto item = dynamo_->get(route_.key(), sync::DynamoStateMirror::uid_sk(uidvalidity, uid));
    ASSERT_TRUE(item) << "UID " << uid << ": the other writer's item was deleted";
    EXPECT_EQ(*item, lambda_item(uid)) << "UID " << uid << ": changed";
  }
  EXPECT_EQ(db_.query_value("SELECT string_agg(uid || ' ' || reason, ',' ORDER BY uid) "
                            "FROM mailsync.failures"),
            "1 claimed_elsewhere,2 claimed_elsewhere");
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.uid_claims WHERE state = 'PENDING'"),
            "0");
  const auto mine = dynamo_->get(route_.key(), sync::DynamoStateMirror::uid_sk(uidvalidity, 3));
  ASSERT_TRUE(mine);
  EXPECT_TRUE((*mine)["claimed_by"]["S"].get<std::string>().starts_with("mailsync:"));
}

// The port a child has announced on stderr right after `prefix`; 0 while it has not.
unsigned announced_port(const mailsync::testing::ChildProcess& child, const std::string& prefix) {
  const std::string err = child.read_err();
  const auto at = err.find(prefix);
  return at == std::string::npos
             ? 0u
             : static_cast<unsigned>(std::stoul(err.substr(at + prefix.size())));
}

// Seeds `count` distinct messages of about 5 KB in one pipelined batch; their SHA-256s.
std::multiset<std::string> seed_many(imap::Client& gmail, int count, const std::string& tag) {
  std::vector<std::string> bodies;
  for (int i = 0; i < count; ++i) {
    std::string body;
    while (body.size() < 5000)
      body +=
          tag + " message " + std::to_string(i) + " line " + std::to_string(body.size()) + "\r\n";
    bodies.push_back(
        mailsync::testing::message("Message-ID: <" + tag + std::to_string(i) + "@x>\r\n", body));
  }
  std::vector<imap::AppendMessage> batch;
  std::multiset<std::string> hashes;
  for (const auto& b : bodies) {
    batch.push_back({b});
    hashes.insert(util::Sha256::hex_of(b));
  }
  gmail.append_many("INBOX", batch);
  return hashes;
}

TEST_F(RouteSyncTest, TheDestinationDroppingTheConnectionMidAppendLosesAndDuplicatesNothing) {
  const auto sent = seed_many(*gmail_as(user_), 300, "drop");
  // Through a proxy that cuts the Outlook connection once ~400 KB went out: in the middle of
  // the first batch's APPEND (about 1 MB).
  mailsync::testing::CutProxy proxy(settings_.outlook_imap.port, 400'000);
  config::Settings via_proxy = settings_;
  via_proxy.outlook_imap.port = proxy.port();
  sync::ImapPool proxied(
      [&] { return imap::Client::connect(sync::imap_options(via_proxy, via_proxy.outlook_imap)); });
  sync::LiveRouteSync cut_sync(via_proxy, route_, tokens_, *store_, *dynamo_, proxied);
  const sync::SyncReport cut = leased_run(cut_sync, route_);
  EXPECT_TRUE(proxy.cut());
  EXPECT_EQ(cut.result.outcome, queue::Outcome::kFailed)
      << "a dropped connection is retried later, not dead";
  // Answers read before the cut are DONE; what was sent whole but not answered stays PENDING for
  // reconciliation; what was never sent whole (a command cut off cannot be stored) is given back.
  // So nothing in the destination was given back, and nothing DONE is missing from it.
  const size_t stored = read_folder(*outlook(), route_.target_folder).size();
  const size_t done =
      std::stoul(db_.query_value("SELECT count(*) FROM mailsync.uid_claims WHERE state = 'DONE'"));
  const size_t pending = std::stoul(
      db_.query_value("SELECT count(*) FROM mailsync.uid_claims WHERE state = 'PENDING'"));
  EXPECT_LE(done, stored);
  EXPECT_GE(done + pending, stored) << "a message stored in the destination was given back";

  const sync::SyncReport recovered = run(route_);
  ASSERT_EQ(recovered.result.outcome, queue::Outcome::kSucceeded) << recovered.result.error;
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)), sent)
      << "lost or duplicated after the drop";
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.uid_claims WHERE state = 'DONE'"),
            "300");
}

TEST_F(RouteSyncTest, AWorkerKilledMidSyncLeavesEveryMessageExactlyOnceAfterRecovery) {
  const auto sent = seed_many(*gmail_as(user_), 1000, "kill");
  const mailsync::testing::EnvChanges env = process_env("warn");
  ASSERT_EQ(mailsync::testing::run_process({MAILSYNC_TEST_BIN_SCHEDULER, "--once"}, env).exit_code,
            0);
  mailsync::testing::ChildProcess worker({MAILSYNC_TEST_BIN_WORKER, "--kinds", "route_sync",
                                          "--concurrency", "1", "--lease-seconds", "2"},
                                         env);
  const std::string done = "SELECT count(*) FROM mailsync.uid_claims WHERE state = 'DONE'";
  ASSERT_TRUE(mailsync::testing::wait_for([&] { return std::stoi(db_.query_value(done)) >= 200; }))
      << worker.read_err();
  worker.signal(SIGKILL);
  worker.wait();
  const int done_at_kill = std::stoi(db_.query_value(done));
  ASSERT_LT(done_at_kill, 1000)
      << "the worker finished before it was killed: nothing was interrupted";

  // While the killed attempt's lease lasts, the route is its own: run-once is refused.
  const auto busy = mailsync::testing::run_process({MAILSYNC_TEST_BIN_MAILSYNC, "run-once"}, env);
  EXPECT_EQ(busy.exit_code, 5) << busy.out << busy.err;
  EXPECT_NE(busy.out.find("is being synced by"), std::string::npos) << busy.out;
  // Its lease expires and the scheduler's maintenance rescues the job; the next run (crash
  // recovery's grace set to nothing here) picks up where the killed one stopped.
  ASSERT_TRUE(mailsync::testing::wait_for([&] {
    mailsync::testing::run_process({MAILSYNC_TEST_BIN_SCHEDULER, "--once"}, env);
    return db_.query_value(
               "SELECT count(*) FROM mailsync.job_attempts WHERE outcome = 'rescued'") == "1";
  }));
  settings_.reconcile_grace = std::chrono::seconds(0);
  const sync::SyncReport recovered = run(route_);
  ASSERT_EQ(recovered.result.outcome, queue::Outcome::kSucceeded) << recovered.result.error;
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)), sent)
      << "lost or duplicated after kill -9";
  EXPECT_EQ(db_.query_value(done), "1000");
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.uid_claims WHERE state = 'PENDING'"),
            "0");
}

// Issue 13's PgBouncer finding end to end: migrate, scheduler, two worker slots and status, all
// through the stack's PgBouncer 1.18 in transaction pooling mode with two server connections, the
// worker with --poll-only. A prepared statement or a session SET would fail or leak here.
TEST_F(RouteSyncTest, SchedulerAndWorkerSyncARouteThroughPgBouncerInTransactionPooling) {
  const auto sent = seed_many(*gmail_as(user_), 60, "pooled");
  mailsync::testing::EnvChanges env = process_env("warn");
  env["MAILSYNC_DATABASE_URL"] = db_.pooled_url();
  const auto migrate = mailsync::testing::run_process({MAILSYNC_TEST_BIN_MAILSYNC, "migrate"}, env);
  ASSERT_EQ(migrate.exit_code, 0) << migrate.err;
  const auto scheduled =
      mailsync::testing::run_process({MAILSYNC_TEST_BIN_SCHEDULER, "--once"}, env);
  ASSERT_EQ(scheduled.exit_code, 0) << scheduled.err;
  const auto worked =
      mailsync::testing::run_process({MAILSYNC_TEST_BIN_WORKER, "--kinds", "route_sync",
                                      "--concurrency", "2", "--poll-only", "--drain"},
                                     env);
  ASSERT_EQ(worked.exit_code, 0) << worked.err;
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)), sent);
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.uid_claims WHERE state = 'DONE'"), "60");
  EXPECT_EQ(db_.query_value("SELECT string_agg(outcome::text, ',') FROM mailsync.job_attempts"),
            "succeeded");
  const auto status =
      mailsync::testing::run_process({MAILSYNC_TEST_BIN_MAILSYNC, "status", "--json"}, env);
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find(user_), std::string::npos) << status.out;
  EXPECT_EQ(worked.err.find("prepared statement"), std::string::npos) << worked.err;
}

// Issue 13: the database socket going half-open in the middle of a job (a proxy that stops
// forwarding without closing, as a partition or a stalled server would). The worker's statements
// end within MAILSYNC_DATABASE_TIMEOUT_SECONDS, its heartbeats fail, it appends nothing more
// once its lease is stale; the scheduler (which still reaches the database) rescues the job and
// a second worker finishes the route: every message exactly once.
TEST_F(RouteSyncTest, AWorkerWhoseDatabaseGoesSilentMidJobStopsAndTheRouteIsFinishedOnce) {
  const auto sent = seed_many(*gmail_as(user_), 600, "silent");
  const std::string url = db_.url();
  const size_t port_at = url.find(':', url.find('@')) + 1;
  mailsync::testing::CutProxy proxy(static_cast<uint16_t>(std::stoi(url.substr(port_at))),
                                    UINT64_MAX, mailsync::testing::CutProxy::Mode::kSilence);
  mailsync::testing::EnvChanges direct = process_env("warn");
  mailsync::testing::EnvChanges silenced = direct;
  silenced["MAILSYNC_DATABASE_URL"] =
      url.substr(0, port_at) + std::to_string(proxy.port()) + url.substr(url.find('/', port_at));
  silenced["MAILSYNC_DATABASE_TIMEOUT_SECONDS"] = "2";
  ASSERT_EQ(
      mailsync::testing::run_process({MAILSYNC_TEST_BIN_SCHEDULER, "--once"}, direct).exit_code, 0);
  mailsync::testing::ChildProcess first(
      {MAILSYNC_TEST_BIN_WORKER, "--kinds", "route_sync", "--concurrency", "1", "--lease-seconds",
       "3", "--poll-only"},
      silenced);
  const std::string done = "SELECT count(*) FROM mailsync.uid_claims WHERE state = 'DONE'";
  ASSERT_TRUE(mailsync::testing::wait_for([&] { return std::stoi(db_.query_value(done)) >= 50; }))
      << first.read_err();
  proxy.cut_now();
  ASSERT_LT(std::stoi(db_.query_value(done)), 600) << "finished before the database went silent";

  // The lease (3 s) runs out; the scheduler's maintenance rescues the job.
  ASSERT_TRUE(mailsync::testing::wait_for(
      [&] {
        mailsync::testing::run_process({MAILSYNC_TEST_BIN_SCHEDULER, "--once"}, direct);
        return db_.query_value(
                   "SELECT count(*) FROM mailsync.job_attempts WHERE outcome = "
                   "'rescued'") == "1";
      },
      std::chrono::seconds(30)))
      << first.read_err();
  // The rescued attempt's PENDING claims are reconciled after a grace of 1 s past its lease: had
  // the silenced worker gone on appending, its copies would be found twice or missed.
  direct["MAILSYNC_RECONCILE_GRACE_SECONDS"] = "1";
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const auto second = mailsync::testing::run_process(
      {MAILSYNC_TEST_BIN_WORKER, "--kinds", "route_sync", "--concurrency", "1", "--drain"}, direct);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)), sent)
      << "lost or duplicated with a silent database";
  EXPECT_EQ(db_.query_value(done), "600");
  const std::string log = first.read_err();
  EXPECT_NE(log.find("MAILSYNC_DATABASE_TIMEOUT_SECONDS"), std::string::npos) << log;
  first.signal(SIGKILL);
  first.wait();
}

// /proc/PID/stat's state: 'T' once a process stopped itself.
char process_state(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const size_t paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() ? '?' : line[paren + 2];
}

// Issue 13: a worker with thousands of routes kept one idle Gmail connection (an fd, a TLS
// session, a 256 KiB buffer) per route, with no cap: ~1,000 routes took the 1,024-fd soft limit
// and a 512 MB memory cap. 2,000 routes, each its own (empty or nearly) Gmail account of the
// stack, one worker of concurrency 4: every route synced, and the fds and RSS sampled all along
// stay under what README's sizing section states.
size_t open_fds(int pid) {
  size_t count = 0;
  std::error_code error;
  for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", error), end;
       !error && it != end; it.increment(error))
    ++count;
  return count;
}
long rss_kib(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.starts_with("VmRSS:")) return std::stol(line.substr(6));
  return 0;
}

TEST_F(RouteSyncTest, OneWorkerSyncsTwoThousandRoutesWithinItsFdAndMemoryCaps) {
  const int fleet = std::stoi(stack_env("MAILSYNC_STACK_FLEET_SIZE"));
  ASSERT_GE(fleet, 2000);
  const std::string folder = mailsync::testing::unique_name("Fleet");
  const std::string tag = mailsync::testing::unique_name("fleet");
  std::multiset<std::string> seeded;
  nlohmann::json routes = nlohmann::json::array();
  for (int i = 1; i <= 2000; ++i) {
    char user[32];
    std::snprintf(user, sizeof user, "fleet%04d@gmail.test", i);
    if (i % 200 == 0) {
      const std::string bytes = mailsync::testing::message(
          "Message-ID: <" + tag + std::to_string(i) + "@x>\r\n", tag + " " + user + "\r\n");
      mailsync::testing::append_to_gmail(
          user, bytes, mail::format_internaldate({std::chrono::system_clock::now(), 0}));
      seeded.insert(util::Sha256::hex_of(bytes));
    }
    routes.push_back(
        {{"gmail_email", user},
         {"outlook_target_folder", folder},
         {"gmail_refresh_token", mailsync::testing::mint_refresh_token(Server::kGmail, user)},
         {"initial_sync", "all"}});
  }
  const std::string routes_file = stack_env("MAILSYNC_STACK_DIR") + "/" + tag + ".json";
  std::ofstream(routes_file) << routes.dump();
  mailsync::testing::EnvChanges env = process_env("warn");
  env["SYNC_ROUTES_JSON"] = std::nullopt;
  env["SYNC_ROUTES_FILE"] = routes_file;
  const auto scheduled =
      mailsync::testing::run_process({MAILSYNC_TEST_BIN_SCHEDULER, "--once"}, env);
  ASSERT_EQ(scheduled.exit_code, 0) << scheduled.err;

  mailsync::testing::ChildProcess worker(
      {MAILSYNC_TEST_BIN_WORKER, "--kinds", "route_sync", "--concurrency", "4", "--drain"}, env);
  size_t peak_fds = 0;
  long peak_rss = 0;
  while (::kill(worker.pid(), 0) == 0 && process_state(worker.pid()) != 'Z') {
    peak_fds = std::max(peak_fds, open_fds(worker.pid()));
    peak_rss = std::max(peak_rss, rss_kib(worker.pid()));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const auto result = worker.wait();
  ASSERT_EQ(result.exit_code, 0) << result.err.substr(0, 4000);
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.job_attempts WHERE outcome = "
                            "'succeeded'"),
            "2000")
      << db_.query_value("SELECT string_agg(DISTINCT error, ' | ') FROM mailsync.job_attempts");
  const auto copied = hashes(read_folder(*outlook(), folder));
  for (const auto& hash : seeded) EXPECT_EQ(copied.count(hash), 1u);
  std::cout << "2,000 routes, one worker: peak " << peak_fds << " fds, " << peak_rss / 1024
            << " MB RSS\n";
  // README, Sizing: at most 32 idle connections per pool, 4 running jobs with 2 each, PostgreSQL
  // and HTTP connections besides: under 128 fds and 128 MB, whatever the number of routes.
  EXPECT_LT(peak_fds, 128u);
#if !defined(__SANITIZE_ADDRESS__)
  EXPECT_LT(peak_rss, 128 * 1024) << "KiB";  // ASan's shadow memory and quarantine inflate RSS
#endif
  std::filesystem::remove(routes_file);
}

// The fencing test of issue 13: a worker frozen just before an APPEND (a stalled VM, a SIGSTOP),
// its lease rescued, a second worker finishing the route, the first thawed. Deterministic: the
// first worker stops itself at a named point (util::pause_point) before its second batch's APPEND.
TEST_F(RouteSyncTest, AWorkerFrozenBeforeAnAppendLosesItsLeaseAndNothingIsCopiedTwice) {
  const auto sent = seed_many(*gmail_as(user_), 400, "frozen");
  mailsync::testing::EnvChanges env = process_env("info");
  env["MAILSYNC_RECONCILE_GRACE_SECONDS"] = "1";
  ASSERT_EQ(mailsync::testing::run_process({MAILSYNC_TEST_BIN_SCHEDULER, "--once"}, env).exit_code,
            0);
  mailsync::testing::EnvChanges frozen_env = env;
  frozen_env["MAILSYNC_TEST_PAUSE_AT"] = "before_append:2";
  mailsync::testing::ChildProcess first({MAILSYNC_TEST_BIN_WORKER, "--kinds", "route_sync",
                                         "--concurrency", "1", "--lease-seconds", "2"},
                                        frozen_env);
  ASSERT_TRUE(mailsync::testing::wait_for([&] { return process_state(first.pid()) == 'T'; }))
      << first.read_err();
  const std::string done = "SELECT count(*) FROM mailsync.uid_claims WHERE state = 'DONE'";
  const std::string pending = "SELECT count(*) FROM mailsync.uid_claims WHERE state = 'PENDING'";
  EXPECT_EQ(db_.query_value(done), "200") << "the first batch";
  EXPECT_EQ(db_.query_value(pending), "200") << "the second, claimed and about to be appended";

  // While its lease lasts, the route is the frozen worker's: run-once refuses and touches nothing.
  const auto busy = mailsync::testing::run_process({MAILSYNC_TEST_BIN_MAILSYNC, "run-once"}, env);
  EXPECT_EQ(busy.exit_code, 5) << busy.out << busy.err;
  EXPECT_NE(busy.out.find("is being synced by"), std::string::npos) << busy.out;
  EXPECT_EQ(db_.query_value(pending), "200");

  // Its lease expires, maintenance rescues the job, a second worker takes it over: past the
  // grace it reconciles the frozen worker's claims (not in the destination: copied again).
  ASSERT_TRUE(mailsync::testing::wait_for([&] {
    mailsync::testing::run_process({MAILSYNC_TEST_BIN_SCHEDULER, "--once"}, env);
    return db_.query_value(
               "SELECT count(*) FROM mailsync.job_attempts WHERE outcome = 'rescued'") == "1";
  }));
  {
    // A longer lease than the frozen one's: under a sanitizer build a 2 s lease can go stale
    // between two heartbeats, and this worker must not stop for that.
    mailsync::testing::ChildProcess second({MAILSYNC_TEST_BIN_WORKER, "--kinds", "route_sync",
                                            "--concurrency", "1", "--lease-seconds", "9"},
                                           env);
    ASSERT_TRUE(mailsync::testing::wait_for(
        [&] { return db_.query_value(done) == "400" && db_.query_value(pending) == "0"; },
        std::chrono::seconds(60)))
        << second.read_err();
    second.signal(SIGTERM);
    second.wait();
  }

  // Thawed: it finds its lease gone and stops without sending its APPEND.
  first.signal(SIGCONT);
  ASSERT_TRUE(mailsync::testing::wait_for([&] {
    return first.read_err().find("route_sync lease_lost") != std::string::npos;
  })) << first.read_err();
  first.signal(SIGTERM);
  first.wait();
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)), sent)
      << "lost or duplicated around the frozen worker";
  EXPECT_EQ(db_.query_value(done), "400");
  EXPECT_EQ(db_.query_value(pending), "0");
}

TEST_F(RouteSyncTest, PostgresGoingAwayMidSyncLosesAndDuplicatesNothing) {
  const auto sent = seed_many(*gmail_as(user_), 600, "pg");
  // The sync state through a proxy that cuts the database connection part way through the job,
  // as a PostgreSQL restart would.
  const std::string url = db_.url();
  const size_t port_at = url.find(':', url.find("@")) + 1;
  const uint16_t pg_port = static_cast<uint16_t>(std::stoi(url.substr(port_at)));
  mailsync::testing::CutProxy proxy(pg_port, 40'000);
  const std::string via_proxy =
      url.substr(0, port_at) + std::to_string(proxy.port()) + url.substr(url.find('/', port_at));
  auto fragile_store = sync::make_pg_sync_store(via_proxy, "route_sync test via proxy");
  try {
    sync::LiveRouteSync fragile(settings_, route_, tokens_, *fragile_store, *dynamo_, pool_);
    const sync::SyncReport cut = leased_run(fragile, route_);
    EXPECT_NE(cut.result.outcome, queue::Outcome::kSucceeded);
  } catch (const postgres::DatabaseUnavailable&) {
    // what the worker sees: it reconnects and the job runs again
  }
  EXPECT_TRUE(proxy.cut());
  const sync::SyncReport recovered = run(route_);
  ASSERT_EQ(recovered.result.outcome, queue::Outcome::kSucceeded) << recovered.result.error;
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)), sent)
      << "lost or duplicated after the database went";
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.uid_claims WHERE state = 'DONE'"),
            "600");
}

TEST_F(RouteSyncTest, DynamoDbGoingAwayMidSyncLosesAndDuplicatesNothing) {
  const auto sent = seed_many(*gmail_as(user_), 600, "ddb");
  const std::string endpoint = dynamo_options_.endpoint;
  const uint16_t ddb_port =
      static_cast<uint16_t>(std::stoi(endpoint.substr(endpoint.rfind(':') + 1)));
  mailsync::testing::CutProxy proxy(ddb_port,
                                    150'000);  // after the gate and about a batch of claims
  dynamo::DynamoOptions via_proxy = dynamo_options_;
  via_proxy.endpoint = "http://127.0.0.1:" + std::to_string(proxy.port()) + "/";
  via_proxy.attempts = 1;
  dynamo::DynamoClient fragile(via_proxy);
  const sync::SyncReport cut = run(route_, &fragile);
  EXPECT_TRUE(proxy.cut());
  EXPECT_EQ(cut.result.outcome, queue::Outcome::kFailed) << "DynamoDB unreachable: retried later";
  const sync::SyncReport recovered = run(route_);
  ASSERT_EQ(recovered.result.outcome, queue::Outcome::kSucceeded) << recovered.result.error;
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)), sent)
      << "lost or duplicated after DynamoDB went";
  EXPECT_EQ(dynamo_->query(route_.key(), "UID#").size(), 600u);
}

TEST_F(RouteSyncTest,
       AMessageTheDestinationRefusesIsAPermanentFailureWithTheServersWordsAndTheRestGoOn) {
  const uint64_t limit = std::stoull(stack_env("MAILSYNC_STACK_OUTLOOK_APPEND_LIMIT"));
  std::string huge = mailsync::testing::message("Message-ID: <huge@x>\r\n", "");
  while (huge.size() <= limit) huge += std::string(998, 'h') + "\r\n";
  seed(mailsync::testing::message("Message-ID: <before@x>\r\n", "x\r\n"));
  const std::string huge_sha = seed(huge);
  seed(mailsync::testing::message("Message-ID: <after@x>\r\n", "x\r\n"));

  const sync::SyncReport report = run(route_);
  ASSERT_EQ(report.result.outcome, queue::Outcome::kSucceeded) << report.result.error;
  EXPECT_EQ(report.result.stats.appended, 2);
  EXPECT_EQ(report.result.stats.failed, 1);
  EXPECT_EQ(db_.query_value("SELECT reason || ' ' || permanent FROM mailsync.failures"),
            "too_large true");
  EXPECT_NE(db_.query_value("SELECT last_error FROM mailsync.failures")
                .find(mailsync::testing::providers_profile()
                          ? "NO Maximum size of appendable message has been exceeded"
                          : "[LIMIT] Mail size is larger"),
            std::string::npos)
      << "the server's own words are kept";
  const auto fail_items = dynamo_->query(route_.key(), "FAIL#");
  ASSERT_EQ(fail_items.size(), 1u);
  EXPECT_EQ(fail_items[0]["retry_count"]["N"], "0") << "the mirror has Postgres's count";
  for (const auto& m : read_folder(*outlook(), route_.target_folder)) EXPECT_NE(m.sha256, huge_sha);
  // Invariant 4: a recorded failure does not hold the watermark back; permanent ones are not
  // retried.
  EXPECT_EQ(db_.query_value("SELECT last_uid FROM mailsync.watermarks"), "3");
  const sync::SyncReport again = run(route_);
  EXPECT_EQ(again.result.stats.fetched, 0);
  EXPECT_EQ(db_.query_value("SELECT refused_messages FROM mailsync.route_status"), "1")
      << "status keeps showing the refused message after later clean runs";
}

TEST_F(RouteSyncTest,
       NoSecretReachesTheLogsTheDatabaseDynamoDbStatusOrTheStatusPageOfAFullDebugSync) {
  for (int i = 0; i < 3; ++i)
    seed(
        mailsync::testing::message("Message-ID: <secret" + std::to_string(i) + "@x>\r\n", "x\r\n"));
  const mailsync::testing::EnvChanges env = process_env("debug");
  const auto sync = mailsync::testing::run_process({MAILSYNC_TEST_BIN_MAILSYNC, "run-once"}, env);
  ASSERT_EQ(sync.exit_code, 0) << sync.err;
  ASSERT_NE(sync.out.find("3 appended"), std::string::npos) << sync.out;
  const auto status =
      mailsync::testing::run_process({MAILSYNC_TEST_BIN_MAILSYNC, "status", "--json"}, env);

  std::string written = sync.out + sync.err + status.out + status.err;
  for (const char* table :
       {"routes", "jobs", "job_attempts", "job_counts", "watermarks", "uid_claims", "failures"})
    written += db_.query_lines("SELECT t::text FROM mailsync." + std::string(table) + " t");
  for (const auto& item : dynamo_->query(route_.key(), "")) written += item.dump();
  // The status page and its route page show what the database holds, and nothing more.
  const auto page = ui::serve_status_page({"127.0.0.1", 0, db_.url(), std::nullopt, 5});
  const std::string base = "http://127.0.0.1:" + std::to_string(page->port());
  mailsync::http::HttpClient browser;
  for (const std::string& path : {std::string("/"), std::string("/api/status"),
                                  "/route?key=" + util::percent_encode(route_.key())}) {
    const auto shown = browser.get(base + path);
    ASSERT_EQ(shown.status, 200) << path;
    written += shown.body;
  }
  ASSERT_NE(written.find("<tr class=\"attempt\">"), std::string::npos) << "the route page";

  std::vector<std::string> secrets = {route_.gmail_refresh_token->reveal(),
                                      stack_env("GMAIL_CLIENT_SECRET"),
                                      stack_env("MS_CLIENT_SECRET"), stack_env("MS_REFRESH_TOKEN"),
                                      stack_env("AWS_SECRET_ACCESS_KEY")};
  mailsync::http::HttpClient http;
  for (const std::string& user : {user_, stack_env("OUTLOOK_EMAIL")}) {
    const auto issued = nlohmann::json::parse(
        http.get(stack_env("MAILSYNC_STACK_OAUTH_URL") + "/admin/issued?user=" + user).body);
    for (const auto& token : issued["access_tokens"]) secrets.push_back(token.get<std::string>());
  }
  ASSERT_GT(secrets.size(), 6u) << "no access token was issued: the scan would prove nothing";
  EXPECT_NE(written.find(R"("level":"debug")"), std::string::npos)
      << "the sync did not log at debug level";
  for (const auto& secret : secrets)
    EXPECT_EQ(written.find(secret), std::string::npos) << "a secret was written out";
}

}  // namespace

// ---- what an operator sees: logs, metrics, health, progress -----------------------------------

TEST_F(RouteSyncTest, AWorkerLogsJsonLinesAndItsMetricsAndHealthEndpointsFollowTheSync) {
  const auto sent = seed_many(*gmail_as(user_), 450, "obs");
  mailsync::testing::EnvChanges env = process_env("info");
  env["LOG_FORMAT"] = std::nullopt;  // the default: JSON
  ASSERT_EQ(mailsync::testing::run_process({MAILSYNC_TEST_BIN_SCHEDULER, "--once"}, env).exit_code,
            0);
  mailsync::testing::ChildProcess worker(
      {MAILSYNC_TEST_BIN_WORKER, "--kinds", "route_sync", "--concurrency", "1", "--metrics-port",
       "0", "--metrics-address", "127.0.0.1"},
      env);
  unsigned port = 0;
  ASSERT_TRUE(mailsync::testing::wait_for([&] {
    return (port = announced_port(worker, "on port "));
  })) << worker.read_err();
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  http::HttpClient http;
  EXPECT_EQ(http.get(base + "/healthz").status, 200);
  const auto ready = http.get(base + "/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;

  // Scrape while it copies: the appended counter moves through values until it has them all.
  std::set<double> seen;
  std::string last;
  ASSERT_TRUE(mailsync::testing::wait_for(
      [&] {
        last = http.get(base + "/metrics").body;
        seen.insert(metric_value(last, "mailsync_messages_appended_total"));
        return metric_value(last, R"(mailsync_jobs_succeeded_total{kind="route_sync"})") == 1;
      },
      std::chrono::seconds(60)))
      << last;
  EXPECT_EQ(*seen.rbegin(), 450);
  EXPECT_GE(seen.size(), 2u) << "the counter was never seen moving";
  EXPECT_EQ(metric_value(last, R"(mailsync_jobs_claimed_total{kind="route_sync"})"), 1);
  EXPECT_GE(metric_value(last, "mailsync_bytes_appended_total"), 450 * 5000);
  EXPECT_GE(metric_value(last, R"(mailsync_token_refreshes_total{provider="google"})"), 1);
  EXPECT_GE(metric_value(last, R"(mailsync_job_duration_seconds_count{kind="route_sync"})"), 1);
  EXPECT_EQ(metric_value(last, "mailsync_gate_failures_total"), 0);
  worker.signal(SIGTERM);
  const auto ended = worker.wait();
  EXPECT_EQ(ended.exit_code, 0) << ended.err;
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)), sent);

  // Every line is a JSON object with the required fields; the job's lines say which job, run
  // and route; the summary line has the counts.
  std::istringstream lines(ended.err);
  int parsed = 0;
  std::optional<nlohmann::json> summary;
  for (std::string line; std::getline(lines, line);) {
    nlohmann::json object;
    ASSERT_NO_THROW(object = nlohmann::json::parse(line)) << line;
    ++parsed;
    for (const char* field : {"ts", "level", "msg", "service"})
      EXPECT_TRUE(object.contains(field)) << field << " missing: " << line;
    EXPECT_EQ(object["service"], "mailsync-worker");
    if (object["msg"].get<std::string>().starts_with("route_sync done")) summary = object;
  }
  EXPECT_GE(parsed, 3);
  ASSERT_TRUE(summary.has_value()) << ended.err;
  EXPECT_EQ((*summary)["route"], route_.key());
  EXPECT_GT((*summary)["job_id"].get<int64_t>(), 0);
  EXPECT_EQ((*summary)["run_id"].get<std::string>().size(), 16u);
  EXPECT_EQ((*summary)["appended"], 450);
  EXPECT_EQ((*summary)["fetched"], 450);
  EXPECT_EQ((*summary)["failed"], 0);
  EXPECT_EQ((*summary)["outcome"], "succeeded");
  EXPECT_EQ((*summary)["run_id"],
            db_.query_value("SELECT run_id FROM mailsync.job_attempts ORDER BY started_at DESC "
                            "LIMIT 1"))
      << "the log's run_id is the attempt's in the database";
}

// The status page (`mailsync-scheduler --ui-port`) in a real browser, headless Chromium driven
// over the DevTools protocol (tests/support/cdp_watch.py), loaded once while a worker copies 1,400
// messages: the worker is frozen before its 3rd and its 5th APPEND, and the page, refreshing
// itself, shows the route running with its progress bar at 200 and then at 600 of 1,400, then the
// route ok. A refused message's words written to hold markup are shown as text. The screenshot is
// left in the build's tests directory (status_page.png).
TEST_F(RouteSyncTest, TheStatusPageInABrowserFollowsALiveSyncAndShowsAServersWordsAsText) {
  const auto sent = seed_many(*gmail_as(user_), 1400, "ui");
  const mailsync::testing::EnvChanges env = process_env("info");
  ASSERT_EQ(mailsync::testing::run_process({MAILSYNC_TEST_BIN_SCHEDULER, "--once"}, env).exit_code,
            0);
  const std::string words =
      R"(NO <img src=x onerror="document.title='owned'"> <b>too big</b> & 'q')";
  db_.execute(
      "INSERT INTO mailsync.failures (route_key, uidvalidity, uid, reason, last_error, "
      "permanent) VALUES (" +
      mailsync::testing::sql_literal(route_.key()) + ", 1, 99999, 'too_large', " +
      mailsync::testing::sql_literal(words) + ", true)");

  mailsync::testing::ChildProcess scheduler(
      {MAILSYNC_TEST_BIN_SCHEDULER, "--ui-port", "0", "--ui-refresh-seconds", "1"}, env);
  unsigned port = 0;
  ASSERT_TRUE(mailsync::testing::wait_for([&] {
    return (port = announced_port(scheduler, "status page on http://127.0.0.1:"));
  })) << scheduler.read_err();

  mailsync::testing::EnvChanges frozen_env = env;
  frozen_env["MAILSYNC_TEST_PAUSE_AT"] = "before_append:3,5";
  mailsync::testing::ChildProcess worker(
      {MAILSYNC_TEST_BIN_WORKER, "--kinds", "route_sync", "--concurrency", "1"}, frozen_env);
  ASSERT_TRUE(mailsync::testing::wait_for([&] { return process_state(worker.pid()) == 'T'; }))
      << worker.read_err();

  const std::string shot = std::filesystem::current_path() / "status_page.png";
  std::filesystem::remove(shot);
  const std::string sample =
      "({state: document.querySelector('tr.route .badge')?.textContent ?? null,"
      " progress: document.querySelector('tr.route progress')?.value ?? null,"
      " words: [...document.querySelectorAll('#failures td.words')].map(e => e.textContent),"
      " images: document.images.length, title: document.title})";
  mailsync::testing::ChildProcess browser(
      {std::string(MAILSYNC_TEST_SOURCE_DIR) + "/tests/support/cdp_watch.py",
       "http://127.0.0.1:" + std::to_string(port) + "/", "--sample", sample, "--until",
       "document.querySelector('tr.route .badge')?.textContent === 'ok'", "--timeout", "120",
       "--screenshot", shot});
  auto seen = [&](const std::string& fragment) {
    return mailsync::testing::wait_for(
        [&] { return browser.read_err().find(fragment) != std::string::npos; },
        std::chrono::seconds(30));
  };
  ASSERT_TRUE(seen(R"("state": "running", "progress": 200)")) << browser.read_err();
  // The next progress write is due 5 s after the first: the worker wakes past it.
  std::this_thread::sleep_for(std::chrono::milliseconds(5500));
  worker.signal(SIGCONT);
  ASSERT_TRUE(mailsync::testing::wait_for([&] { return process_state(worker.pid()) == 'T'; }))
      << worker.read_err();
  ASSERT_TRUE(seen(R"("state": "running", "progress": 600)")) << browser.read_err();
  worker.signal(SIGCONT);
  const mailsync::testing::ProcessResult watched = browser.wait();
  ASSERT_EQ(watched.exit_code, 0) << watched.err;

  // Each line is what the page showed at one moment, in order, from one load of the page.
  std::vector<nlohmann::json> moments;
  std::istringstream lines(watched.err);
  for (std::string line; std::getline(lines, line);) moments.push_back(nlohmann::json::parse(line));
  ASSERT_FALSE(moments.empty());
  std::vector<int> progress;
  for (const auto& m : moments)
    if (m["progress"].is_number() &&
        (progress.empty() || progress.back() != m["progress"].get<int>()))
      progress.push_back(m["progress"].get<int>());
  EXPECT_GE(progress.size(), 2u) << watched.err;
  EXPECT_TRUE(std::is_sorted(progress.begin(), progress.end())) << watched.err;
  const nlohmann::json& last = moments.back();
  EXPECT_EQ(last["state"], "ok");
  EXPECT_TRUE(last["progress"].is_null()) << "no progress bar once the run ended";
  ASSERT_EQ(last["words"].size(), 1u) << watched.err;
  EXPECT_EQ(last["words"][0], words) << "the server's words, as text";
  EXPECT_EQ(last["images"], 0) << "markup in the words became an element";
  EXPECT_EQ(last["title"], "mailsync");
  std::ifstream png(shot, std::ios::binary);
  std::string signature(8, '\0');
  png.read(signature.data(), 8);
  EXPECT_EQ(signature, "\x89PNG\r\n\x1a\n") << "no screenshot at " << shot;

  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)), sent);
  worker.signal(SIGTERM);
  worker.wait();
}

TEST_F(RouteSyncTest, ALongSyncShowsItsProgressInRouteStatusUntilItEnds) {
  seed_many(*gmail_as(user_), 120, "progress");
  store_->ensure_route(route_);
  sync::SyncOptions options;
  options.batch_messages = 10;
  std::optional<sync::SyncReport> report;
  std::atomic<bool> finished{false};
  std::thread runner([&] {
    sync::LiveRouteSync sync(settings_, route_, tokens_, *store_, *dynamo_, pool_, options);
    report = leased_run(sync, route_);
    finished = true;
  });
  const std::string progress =
      "SELECT coalesce(progress_messages_done || '/' || progress_messages_total || ' ' || "
      "progress_bytes_total, '') FROM mailsync.route_status WHERE route_key = '" +
      route_.key() + "'";
  std::set<std::string> seen;
  while (!finished) {
    if (const std::string value = db_.query_value(progress); !value.empty()) seen.insert(value);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  runner.join();
  ASSERT_EQ(report->result.outcome, queue::Outcome::kSucceeded) << report->result.error;
  ASSERT_FALSE(seen.empty()) << "route_status never showed progress";
  for (const auto& value : seen) {
    EXPECT_NE(value.find("/120 "), std::string::npos) << value;
    EXPECT_GE(std::stoll(value.substr(value.find(' ') + 1)), 120 * 5000) << value;
  }
  EXPECT_EQ(db_.query_value(progress), "") << "progress stays after the run ended";
  const auto status = mailsync::testing::run_process({MAILSYNC_TEST_BIN_MAILSYNC, "status"},
                                                     {{"MAILSYNC_DATABASE_URL", db_.url()}});
  EXPECT_NE(status.out.find("PROGRESS"), std::string::npos) << status.out;
}

// The schedule itself is sync::next_message_retry_at (unit-tested); the store counts the failures
// and keeps the time the run computed from that count.
TEST_F(RouteSyncTest, ATransientFailureSeenAgainIsCountedAndStoredWithTheRetryTheRunComputed) {
  store_->ensure_route(route_);
  const auto now = std::chrono::system_clock::now();
  sync::Failure throttled{
      7, "throttled", "NO [THROTTLED] slow down", false, now, std::string("<t@x>"), 100};
  const std::string wait =
      "SELECT round(extract(epoch FROM next_retry_at - now()) / 60) FROM mailsync.failures";
  EXPECT_TRUE(store_->failure_retry_counts(route_.key(), 1, {7}).empty());
  queue::LeaseKeeper keeper(db_.url(), "route_sync test", route_.key());
  const sync::Fence fence{keeper.job().id, keeper.job().attempt, "route_sync test"};
  for (int n = 0; n < 4; ++n) {
    const auto before = store_->failure_retry_counts(route_.key(), 1, {7});
    const int count = before.contains(7) ? before.at(7) + 1 : 0;
    EXPECT_EQ(count, n);
    throttled.next_retry_at = sync::next_message_retry_at(now, count);
    EXPECT_EQ(store_->record_failures(fence, route_.key(), 1, {throttled}).at(7), n);
    EXPECT_EQ(db_.query_value(wait), std::to_string(1 << n)) << "retry " << n;
  }
  // Refused for good: never retried, whatever came before.
  sync::Failure refused = throttled;
  refused.permanent = true;
  refused.next_retry_at.reset();
  EXPECT_EQ(store_->record_failures(fence, route_.key(), 1, {refused}).at(7), 4);
  EXPECT_EQ(db_.query_value("SELECT next_retry_at IS NULL AND permanent FROM mailsync.failures"),
            "t");
}

TEST_F(RouteSyncTest, AStopBetweenBatchesGivesBackTheBatchClaimedAheadAndTheNextRunFinishes) {
  const auto sent = seed_many(*gmail_as(user_), 200, "stop");
  store_->ensure_route(route_);
  sync::SyncOptions options;
  options.batch_messages = 10;
  std::atomic<bool> cancel{false};
  std::optional<sync::SyncReport> report;
  std::atomic<bool> finished{false};
  std::thread runner([&] {
    sync::LiveRouteSync sync(settings_, route_, tokens_, *store_, *dynamo_, pool_, options);
    report = leased_run(sync, route_, &cancel);
    finished = true;
  });
  const std::string done = "SELECT count(*) FROM mailsync.uid_claims WHERE state = 'DONE'";
  ASSERT_TRUE(mailsync::testing::wait_for([&] { return std::stoi(db_.query_value(done)) >= 30; }));
  cancel = true;  // what a worker's SIGTERM does to its running jobs
  runner.join();
  ASSERT_EQ(report->result.outcome, queue::Outcome::kRetryAt) << report->result.error;
  EXPECT_NE(report->result.error.find("stopped between batches"), std::string::npos);
  const int copied = std::stoi(db_.query_value(done));
  EXPECT_LT(copied, 200) << "the run was not stopped early";
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.uid_claims WHERE state = 'PENDING'"),
            "0")
      << "the batch claimed ahead was not given back";
  int dynamo_pending = 0;
  for (const auto& item : dynamo_->query(route_.key(), "UID#"))
    if (item["status"]["S"] == "PENDING") ++dynamo_pending;
  EXPECT_EQ(dynamo_pending, 0) << "DynamoDB still holds claims of the batch given back";
  EXPECT_EQ(read_folder(*outlook(), route_.target_folder).size(), static_cast<size_t>(copied));

  const sync::SyncReport rest = run(route_);
  ASSERT_EQ(rest.result.outcome, queue::Outcome::kSucceeded) << rest.result.error;
  EXPECT_EQ(rest.result.stats.appended, 200 - copied);
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)), sent);
}

// ---- AWS credentials without keys: EKS IRSA (web identity) and the container endpoint ----------

class AwsIdentity : public RouteSyncTest {
 protected:
  std::string mint_identity(const std::string& role) {
    http::HttpClient http;
    const auto answer = http.post(stack_env("MAILSYNC_STACK_OAUTH_URL") + "/admin/aws-identity",
                                  "application/json", nlohmann::json{{"role_arn", role}}.dump());
    return nlohmann::json::parse(answer.body)["token"].get<std::string>();
  }
  std::string token_file(const std::string& token) {
    const std::string path = ::testing::TempDir() + "mailsync-aws-token-" +
                             std::to_string(::getpid()) + "-" + std::to_string(files_++);
    std::ofstream(path) << token << "\n";
    return path;
  }
  int emulator_stat(const std::string& name) {
    http::HttpClient http;
    return nlohmann::json::parse(
               http.get(stack_env("MAILSYNC_STACK_OAUTH_URL") + "/admin/stats").body)[name]
        .get<int>();
  }
  // The process environment with the AWS keys taken away.
  mailsync::testing::EnvChanges without_keys() const {
    auto env = process_env("warn");
    env["AWS_ACCESS_KEY_ID"] = std::nullopt;
    env["AWS_SECRET_ACCESS_KEY"] = std::nullopt;
    env["AWS_SESSION_TOKEN"] = std::nullopt;
    return env;
  }
  int files_ = 0;
};

TEST_F(AwsIdentity, AWebIdentityRoleOpensTheGateAndOneAssumeRoleServesAWholeSync) {
  const std::string role = "arn:aws:iam::123456789012:role/mailsync-worker";
  auto env = without_keys();
  env["AWS_ROLE_ARN"] = role;
  env["AWS_WEB_IDENTITY_TOKEN_FILE"] = token_file(mint_identity(role));
  env["AWS_ENDPOINT_URL_STS"] = stack_env("MAILSYNC_STACK_OAUTH_URL") + "/sts";
  const auto gate = mailsync::testing::run_process({MAILSYNC_TEST_BIN_MAILSYNC, "gate"}, env);
  EXPECT_EQ(gate.exit_code, 0) << gate.err;

  const auto sent = seed_many(*gmail_as(user_), 300, "irsa");
  const int before = emulator_stat("sts_calls");
  const auto run = mailsync::testing::run_process({MAILSYNC_TEST_BIN_MAILSYNC, "run-once"}, env);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)), sent);
  EXPECT_EQ(emulator_stat("sts_calls") - before, 1)
      << "the claim lanes share one cached set of temporary credentials";

  // A token the identity provider does not know: the gate stays closed, with STS's words.
  env["AWS_WEB_IDENTITY_TOKEN_FILE"] = token_file("not-a-token");
  const auto refused = mailsync::testing::run_process({MAILSYNC_TEST_BIN_MAILSYNC, "gate"}, env);
  EXPECT_EQ(refused.exit_code, 3);
  EXPECT_NE(refused.err.find("AssumeRoleWithWebIdentity refused: InvalidIdentityToken"),
            std::string::npos)
      << refused.err;
  EXPECT_EQ(refused.err.find("not-a-token"), std::string::npos) << "the token is never printed";
}

TEST_F(AwsIdentity, TheContainerCredentialsEndpointOpensTheGateAndARefusalIsNamed) {
  auto env = without_keys();
  env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] =
      stack_env("MAILSYNC_STACK_OAUTH_URL") + "/container-credentials";
  env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = token_file(mint_identity("pod-identity"));
  const auto gate = mailsync::testing::run_process({MAILSYNC_TEST_BIN_MAILSYNC, "gate"}, env);
  EXPECT_EQ(gate.exit_code, 0) << gate.err;

  env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = std::nullopt;
  env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "wrong";
  const auto refused = mailsync::testing::run_process({MAILSYNC_TEST_BIN_MAILSYNC, "gate"}, env);
  EXPECT_EQ(refused.exit_code, 3);
  EXPECT_NE(refused.err.find("refused: HTTP 401: unknown authorization token"), std::string::npos)
      << refused.err;
}

TEST_F(AwsIdentity, NoCredentialsAtAllIsAConfigurationErrorThatListsTheWays) {
  const auto result =
      mailsync::testing::run_process({MAILSYNC_TEST_BIN_MAILSYNC, "gate"}, without_keys());
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("no AWS credentials: set AWS_ACCESS_KEY_ID"), std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find("AWS_WEB_IDENTITY_TOKEN_FILE (EKS IRSA)"), std::string::npos);
}
