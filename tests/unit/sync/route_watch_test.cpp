// The route_watch loop over a scripted Gmail server (imap::Client::over) and the fake store: what
// it does when the server has no IDLE, and that EXISTS growing asks for the route's sync.

#include "mailsync/sync/route_watch.hpp"

#include <gtest/gtest.h>

#include <atomic>

#include "fakes.hpp"
#include "support/scripted_imap_stream.hpp"

namespace {

using namespace mailsync;
using mailsync::testing::ScriptedCommand;
using mailsync::testing::ScriptedImapStream;

constexpr const char* kGreeting = "* OK [CAPABILITY IMAP4rev1 IDLE] Gimap ready\r\n";
constexpr const char* kNoIdleGreeting = "* OK [CAPABILITY IMAP4rev1] no push here\r\n";

struct Watch {
  queue::Job job{.id = 7, .kind = "route_watch"};
  std::string run_id = "run";
  std::atomic<bool> cancel{false};
  queue::Lease lease{"test", std::chrono::seconds(60), std::chrono::steady_clock::now()};
  queue::JobContext context{job, run_id, cancel, lease};
  sync::fakes::FakeSyncStore store;
  sync::WatchStore watch_store{store};
  config::Route route;
  int connects = 0;
  sync::WatchOptions options;

  Watch() {
    route.gmail_email = "a@gmail.com";
    route.outlook_email = "me@outlook.com";
    route.target_folder = "A";
    route.push = true;
    options.first_backoff = std::chrono::milliseconds(1);
  }
  queue::JobResult run(const char* greeting, ScriptedImapStream::Server server) {
    return sync::run_route_watch(
        route, watch_store,
        [&] {
          ++connects;
          return imap::Client::over(std::make_unique<ScriptedImapStream>(greeting, server));
        },
        context, options);
  }
};

TEST(RouteWatch, AServerWithoutIdleLeavesTheRoutePolledAndSaysWhy) {
  Watch w;
  const queue::JobResult result = w.run(kNoIdleGreeting, [](const ScriptedCommand& c) {
    if (c.line == "CAPABILITY") return "* CAPABILITY IMAP4rev1 NAMESPACE\r\n" + c.tag + " OK\r\n";
    return c.tag + " OK\r\n";
  });
  EXPECT_EQ(result.outcome, queue::Outcome::kSucceeded);
  ASSERT_FALSE(w.store.watch_states.empty());
  EXPECT_EQ(w.store.watch_states.back().first, "unsupported");
  EXPECT_NE(w.store.watch_states.back().second.find("polled"), std::string::npos);
  EXPECT_EQ(w.store.sync_requests, 0);
}

TEST(RouteWatch, EveryNewMessageAsksForTheRoutesSync) {
  Watch w;
  std::string idle_tag;
  int idles = 0;
  // The first request comes at the start (mail may have come while no watch ran), the second when
  // EXISTS grows; then the test cancels.
  w.store.on_request = [&](int n) {
    if (n == 2) w.cancel = true;
  };
  const queue::JobResult result = w.run(kGreeting, [&](const ScriptedCommand& c) -> std::string {
    if (c.line.starts_with("EXAMINE"))
      return "* 3 EXISTS\r\n* OK [UIDVALIDITY 9] ok\r\n" + c.tag + " OK [READ-ONLY] done\r\n";
    if (c.line == "IDLE") {
      idle_tag = c.tag;
      return ++idles == 1 ? "+ idling\r\n* 3 EXISTS\r\n* 4 EXISTS\r\n" : "+ idling\r\n";
    }
    if (c.tag == "DONE") return idle_tag + " OK IDLE terminated\r\n";
    return c.tag + " OK\r\n";
  });
  EXPECT_EQ(result.outcome, queue::Outcome::kCancelled);
  EXPECT_EQ(w.store.sync_requests, 2) << "one at the start, one for the fourth message";
  EXPECT_EQ(w.connects, 1);
  ASSERT_FALSE(w.store.watch_states.empty());
  EXPECT_EQ(w.store.watch_states.front().first, "watching");
}

TEST(RouteWatch, ALostConnectionIsSaidAndConnectedAgain) {
  Watch w;
  int connects_seen = 0;
  // Every connection is dropped at once after the greeting (the script answers nothing).
  const auto result = [&] {
    w.store.on_request = nullptr;
    return sync::run_route_watch(
        w.route, w.watch_store,
        [&]() -> std::unique_ptr<imap::Client> {
          if (++connects_seen == 3) w.cancel = true;
          throw net::TransportError(net::TransportErrorKind::kClosed, "connection refused");
        },
        w.context, w.options);
  }();
  EXPECT_EQ(result.outcome, queue::Outcome::kCancelled);
  EXPECT_EQ(connects_seen, 3) << "it kept trying, with backoff";
  ASSERT_FALSE(w.store.watch_states.empty());
  EXPECT_EQ(w.store.watch_states.back().first, "backoff");
  EXPECT_NE(w.store.watch_states.back().second.find("connection refused"), std::string::npos);
}

}  // namespace
