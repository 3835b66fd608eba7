// route_sync against the stack's "providers" profile: the "gmail" and "outlook" servers behave
// like imap.gmail.com and outlook.office365.com (deploy/local/provider_proxy.py, which cites where
// each behaviour comes from). A test that needs a provider behaviour skips under the plain
// "dovecot" profile; tests/run.sh runs this file under both.

#include <gtest/gtest.h>

#include "mailsync/imap/errors.hpp"
#include "route_sync_fixture.hpp"

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

}  // namespace
