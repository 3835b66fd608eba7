// Push (route option `push`): a route_watch job holds IDLE on the Gmail INBOX and enqueues the
// route's sync when mail arrives. Real scheduler and worker processes against the stack, with the
// schedule set to an hour so that only push can deliver within the test's wait.

#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include "route_sync_fixture.hpp"
#include "support/corpus.hpp"
#include "support/cut_proxy.hpp"
#include "support/process.hpp"
#include "support/stack.hpp"
#include "support/wait_for.hpp"

namespace {

using namespace mailsync;
using mailsync::testing::ChildProcess;
using mailsync::testing::EnvChanges;
using mailsync::testing::hashes;
using mailsync::testing::read_folder;
using mailsync::testing::run_process;
using mailsync::testing::stack_env;
using mailsync::testing::wait_for;
using nlohmann::json;

class Push : public mailsync::testing::RouteSyncTest {
 protected:
  EnvChanges env(int interval_seconds = 3600) const {
    EnvChanges e = process_env("info");
    e["SYNC_ROUTES_JSON"] =
        json::array({{{"gmail_email", user_},
                      {"outlook_target_folder", route_.target_folder},
                      {"gmail_refresh_token", route_.gmail_refresh_token->reveal()},
                      {"initial_sync", "all"},
                      {"push", true}}})
            .dump();
    e["SYNC_INTERVAL_SECONDS"] = std::to_string(interval_seconds);
    return e;
  }
  std::unique_ptr<ChildProcess> scheduler(const EnvChanges& e) const {
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{MAILSYNC_TEST_BIN_SCHEDULER, "--tick-seconds", "1"}, e);
  }
  std::unique_ptr<ChildProcess> worker(const EnvChanges& e, const std::string& lease = "60") const {
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{MAILSYNC_TEST_BIN_WORKER, "--concurrency", "2", "--max-watches",
                                 "2", "--lease-seconds", lease},
        e);
  }
  std::string watch_state() const {
    return db_.query_value(
        "SELECT coalesce(watch_state, '') FROM mailsync.routes WHERE route_key = '" + route_.key() +
        "'");
  }
  bool copied(const std::multiset<std::string>& sent) {
    try {
      return hashes(read_folder(*outlook(), route_.target_folder)) == sent;
    } catch (const std::exception&) {
      return false;  // the folder is made with the first copy
    }
  }
  std::string seed_one(const std::string& tag) {
    return seed(mailsync::testing::message("Message-ID: <" + tag + "@x>\r\n", tag + "\r\n"));
  }
  static void stop(std::unique_ptr<ChildProcess>& child) {
    child->signal(SIGTERM);
    child->wait();
  }
};

TEST_F(Push, MailIsCopiedWithinSecondsNotAtTheNextScheduledRun) {
  const EnvChanges e = env();
  std::multiset<std::string> sent = {seed_one("push-before")};
  auto s = scheduler(e);
  auto w = worker(e);
  ASSERT_TRUE(wait_for([&] { return watch_state() == "watching" && copied(sent); },
                       std::chrono::seconds(30)))
      << w->read_err();
  const auto status = run_process({MAILSYNC_TEST_BIN_MAILSYNC, "status"}, e);
  EXPECT_NE(status.out.find("watching"), std::string::npos) << status.out;

  for (int i = 0; i < 3; ++i) {
    sent.insert(seed_one("push-" + std::to_string(i)));
    // The schedule is an hour away: only the watch can bring it within the wait.
    ASSERT_TRUE(wait_for([&] { return copied(sent); }, std::chrono::seconds(30)))
        << "message " << i << " not copied\n"
        << w->read_err();
  }
  EXPECT_GE(std::stoi(db_.query_value("SELECT count(*) FROM mailsync.job_attempts WHERE kind = "
                                      "'route_sync' AND outcome = 'succeeded'")),
            4);
  stop(w);
  stop(s);
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.jobs WHERE kind = 'route_watch' AND "
                            "state = 'available'"),
            "1")
      << "a stopped worker gives its watch back for another to take";
}

TEST_F(Push, AWatchKilledWithSigkillIsTakenOverByAnotherWorker) {
  const EnvChanges e = env();
  auto s = scheduler(e);
  auto first = worker(e, "2");
  ASSERT_TRUE(wait_for([&] { return watch_state() == "watching"; }, std::chrono::seconds(30)))
      << first->read_err();
  auto second = worker(e, "2");
  const std::string holder_query =
      "SELECT coalesce(lease_owner, '') FROM mailsync.jobs WHERE kind = 'route_watch' AND "
      "route_key = '" +
      route_.key() + "'";
  const std::string holder = db_.query_value(holder_query);
  ASSERT_NE(holder, "");
  first->signal(SIGKILL);
  first->wait();
  // The lease runs out (2 s), the scheduler rescues the job, the second worker claims it.
  ASSERT_TRUE(wait_for(
      [&] {
        const std::string now = db_.query_value(holder_query);
        return !now.empty() && now != holder;
      },
      std::chrono::seconds(30)))
      << second->read_err();
  ASSERT_TRUE(wait_for([&] { return watch_state() == "watching"; }, std::chrono::seconds(30)));
  const std::multiset<std::string> sent = {seed_one("after-kill")};
  EXPECT_TRUE(wait_for([&] { return copied(sent); }, std::chrono::seconds(30)))
      << second->read_err();
  stop(second);
  stop(s);
}

// A NAT that forgets the connection: nothing comes back, not even a reset. The watch's DONE gets
// no answer within its bound; it reconnects and goes on.
TEST_F(Push, AnIdleConnectionThatWentSilentIsNoticedAndReplaced) {
  mailsync::testing::CutProxy proxy(static_cast<uint16_t>(std::stoi(stack_env("GMAIL_IMAP_PORT"))),
                                    UINT64_MAX, mailsync::testing::CutProxy::Mode::kSilence);
  EnvChanges e = env();
  e["GMAIL_IMAP_PORT"] = std::to_string(proxy.port());
  e["MAILSYNC_WATCH_REIDLE_SECONDS"] = "2";
  e["MAILSYNC_WATCH_ANSWER_TIMEOUT_SECONDS"] = "2";
  e["MAILSYNC_IMAP_POOL_IDLE_SECONDS"] = "1";  // the sync's own Gmail connections are not kept
  auto s = scheduler(e);
  auto w = worker(e);
  ASSERT_TRUE(wait_for([&] { return watch_state() == "watching"; }, std::chrono::seconds(30)))
      << w->read_err();
  std::this_thread::sleep_for(std::chrono::seconds(2));  // the initial sync's connection closed
  proxy.silence_open_connections();
  ASSERT_TRUE(wait_for([&] { return watch_state() == "backoff"; }, std::chrono::seconds(20)))
      << "the silent connection was not noticed\n"
      << w->read_err();
  ASSERT_TRUE(wait_for([&] { return watch_state() == "watching"; }, std::chrono::seconds(20)))
      << w->read_err();
  const std::multiset<std::string> sent = {seed_one("after-silence")};
  EXPECT_TRUE(wait_for([&] { return copied(sent); }, std::chrono::seconds(30))) << w->read_err();
  stop(w);
  stop(s);
}

// Push and the schedule (every second here) enqueue the same route all the time: the queue holds
// one route_sync per route and the claims make each copy once.
TEST_F(Push, PushAndTheScheduleRacingCopyEveryMessageOnce) {
  const EnvChanges e = env(/*interval_seconds=*/1);
  auto s = scheduler(e);
  auto w1 = worker(e);
  auto w2 = worker(e);
  ASSERT_TRUE(wait_for([&] { return watch_state() == "watching"; }, std::chrono::seconds(30)));
  std::multiset<std::string> sent;
  for (int burst = 0; burst < 4; ++burst) {
    for (int i = 0; i < 5; ++i)
      sent.insert(seed_one("race-" + std::to_string(burst) + "-" + std::to_string(i)));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  EXPECT_TRUE(wait_for([&] { return copied(sent); }, std::chrono::seconds(30)))
      << w1->read_err() << w2->read_err();
  std::this_thread::sleep_for(std::chrono::seconds(2));  // further runs copy nothing more
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)), sent);
  stop(w1);
  stop(w2);
  stop(s);
}

}  // namespace
