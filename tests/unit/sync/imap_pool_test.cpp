// The worker's IMAP connection pool: caps per account and in all, the oldest closed first, and
// nothing kept past its age.

#include "mailsync/sync/imap_pool.hpp"

#include <gtest/gtest.h>

#include "support/scripted_imap_stream.hpp"

namespace {

using mailsync::sync::ImapPool;

std::unique_ptr<mailsync::imap::Client> scripted_client() {
  return mailsync::imap::Client::over(std::make_unique<mailsync::testing::ScriptedImapStream>(
      "* OK ready\r\n",
      [](const mailsync::testing::ScriptedCommand& c) { return c.tag + " OK done\r\n"; }));
}

class Pool : public ::testing::Test {
 protected:
  ImapPool pool_{[this] {
                   ++connects_;
                   return scripted_client();
                 },
                 ImapPool::Limits{.max_idle = 3,
                                  .max_idle_per_account = 2,
                                  .max_idle_age = std::chrono::seconds(60),
                                  .now = [this] { return now_; }}};
  int connects_ = 0;
  ImapPool::Clock::time_point now_{};
};

TEST_F(Pool, KeepsAtMostItsCapsAndClosesTheConnectionIdleLongestFirst) {
  auto a1 = scripted_client(), a2 = scripted_client(), a3 = scripted_client();
  const auto* newest_a = a3.get();
  pool_.release("a", std::move(a1));
  now_ += std::chrono::seconds(1);
  pool_.release("a", std::move(a2));
  now_ += std::chrono::seconds(1);
  pool_.release("a", std::move(a3));  // a third for one account: closed
  EXPECT_EQ(pool_.idle_count(), 2u);
  now_ += std::chrono::seconds(1);
  pool_.release("b", scripted_client());
  pool_.release("c", scripted_client());  // four in all: a1, idle longest, goes
  EXPECT_EQ(pool_.idle_count(), 3u);
  const auto reused = pool_.acquire("a");
  EXPECT_NE(reused.get(), newest_a) << "a3 was over the per-account cap";
  EXPECT_EQ(connects_, 0);
  EXPECT_EQ(pool_.idle_count(), 2u) << "a1 was closed to stay within 3";
  pool_.acquire("a");  // none of a's left
  EXPECT_EQ(connects_, 1);
}

TEST_F(Pool, ClosesConnectionsIdleLongerThanTheirAgeInsteadOfHandingThemOut) {
  pool_.release("a", scripted_client());
  now_ += std::chrono::seconds(59);
  pool_.release("b", scripted_client());
  pool_.acquire("a");
  EXPECT_EQ(connects_, 0) << "59 s idle: still handed out";
  pool_.release("a", scripted_client());
  now_ += std::chrono::seconds(61);
  pool_.acquire("a");
  EXPECT_EQ(connects_, 1) << "61 s idle: closed, a new connection instead";
  EXPECT_EQ(pool_.idle_count(), 0u) << "b expired too";
}

}  // namespace
