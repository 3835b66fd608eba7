// Fencing against real PostgreSQL (docs/state_machine.md): a route's job leased outside a worker
// (claim_route, LeaseKeeper), writes conditional on a live lease and on the claim's own attempt,
// crash recovery that takes over only the claims of attempts that are over.

#include <gtest/gtest.h>

#include <thread>

#include "mailsync/postgres/errors.hpp"
#include "mailsync/postgres/migrator.hpp"
#include "mailsync/queue/job_store.hpp"
#include "mailsync/queue/lease_keeper.hpp"
#include "mailsync/sync/sync_store.hpp"
#include "support/cut_proxy.hpp"
#include "support/test_database.hpp"
#include "support/wait_for.hpp"

namespace {

using namespace mailsync;
using std::chrono::milliseconds;
using std::chrono::seconds;

class Fencing : public ::testing::Test {
 protected:
  void SetUp() override {
    postgres::Migrator(db_.url(), postgres::embedded_migrations()).run();
    jobs_ = queue::make_pg_job_store(db_.url(), "fencing test");
    store_ = sync::make_pg_sync_store(db_.url(), "fencing test");
    route_.gmail_email = "alice@gmail.test";
    route_.outlook_email = "me@outlook.test";
    route_.target_folder = "Gmail/alice";
    store_->ensure_route(route_);
  }

  sync::Fence lease_route(const std::string& owner) {
    const queue::RouteClaim claim = jobs_->claim_route(owner, route_.key(), seconds(60));
    EXPECT_TRUE(claim.job.has_value()) << "held by " << claim.held_by;
    return {claim.job->id, claim.job->attempt, owner};
  }
  // The lease runs out and the scheduler's maintenance rescues the job.
  void expire_and_rescue(const sync::Fence& fence) {
    db_.execute(
        "UPDATE mailsync.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = " +
        std::to_string(fence.job_id));
    ASSERT_EQ(jobs_->rescue_expired(10, std::nullopt).made_available.size(), 1u);
  }
  std::vector<sync::SyncStore::ClaimRequest> requests(std::initializer_list<uint32_t> uids) {
    std::vector<sync::SyncStore::ClaimRequest> out;
    for (const uint32_t uid : uids)
      out.push_back({uid, "<" + std::to_string(uid) + "@x>", std::string(64, 'a'), 100});
    return out;
  }
  std::string claims(const std::string& where = "true") {
    return db_.query_value(
        "SELECT coalesce(string_agg(uid || ':' || state || ':' || job_id || '/' || "
        "coalesce(attempt::text, '-'), ',' ORDER BY uid), '') FROM mailsync.uid_claims WHERE " +
        where);
  }

  mailsync::testing::TestDatabase db_;
  std::unique_ptr<queue::JobStore> jobs_;
  std::unique_ptr<sync::SyncStore> store_;
  config::Route route_;
};

TEST_F(Fencing, ClaimRouteTakesTheQueuedJobOrInsertsOneAndNamesTheHolderOfARunningOne) {
  const queue::RouteClaim first = jobs_->claim_route("run-once:a", route_.key(), seconds(60));
  ASSERT_TRUE(first.job);
  EXPECT_EQ(first.job->attempt, 1);
  EXPECT_EQ(db_.query_value("SELECT state || ' ' || lease_owner FROM mailsync.jobs"),
            "running run-once:a");

  const queue::RouteClaim second = jobs_->claim_route("run-once:b", route_.key(), seconds(60));
  EXPECT_FALSE(second.job) << "two runs of one route at once";
  EXPECT_EQ(second.held_by, "run-once:a");
  EXPECT_EQ(second.held_job, first.job->id);
  ASSERT_TRUE(second.held_until);
  EXPECT_GT(*second.held_until, std::chrono::system_clock::now());
  try {
    queue::LeaseKeeper refused(db_.url(), "run-once:b", route_.key());
    ADD_FAILURE() << "LeaseKeeper took a route another run holds";
  } catch (const queue::RouteBusy& e) {
    EXPECT_NE(std::string(e.what()).find("is being synced by run-once:a (job " +
                                         std::to_string(first.job->id)),
              std::string::npos)
        << e.what();
  }

  // The scheduler's job, queued for later: taken now, as a new attempt of that job.
  const int64_t ran = first.job->id;
  const queue::Finish done[] = {{ran, queue::Outcome::kSucceeded}};
  jobs_->finish("run-once:a", done, std::nullopt);
  const queue::NewJob later{queue::kRouteSyncKind, route_.key(), "{}", 0,
                            std::chrono::system_clock::now() + std::chrono::hours(1)};
  const int64_t queued = jobs_->enqueue(std::span(&later, 1)).at(0);
  const queue::RouteClaim taken = jobs_->claim_route("run-once:b", route_.key(), seconds(60));
  ASSERT_TRUE(taken.job);
  EXPECT_EQ(taken.job->id, queued);
  EXPECT_EQ(taken.job->attempt, 1);
}

TEST_F(Fencing, EveryWriteOfARunWhoseLeaseWasRescuedIsRefusedAndChangesNothing) {
  const sync::Fence a = lease_route("worker-a");
  store_->claim(route_.key(), 7, requests({1, 2}), a);
  expire_and_rescue(a);

  const std::string before = claims();
  EXPECT_THROW(
      store_->finalize(a, route_.key(), 7, {{1, 9, 1, "<1@x>", std::string(64, 'a'), 100}}),
      sync::LeaseLost);
  EXPECT_THROW(store_->release(a, route_.key(), 7, {2}), sync::LeaseLost);
  EXPECT_THROW(store_->set_watermark(a, route_.key(), {7, 2}), sync::LeaseLost);
  EXPECT_THROW(store_->record_failures(a, route_.key(), 7, {{2, "network", "cut", false}}),
               sync::LeaseLost);
  EXPECT_THROW(store_->claim(route_.key(), 7, requests({3}), a), sync::LeaseLost);
  EXPECT_THROW(store_->adopt_pending(a, route_.key(), milliseconds(0)), sync::LeaseLost);
  EXPECT_EQ(claims(), before);
  EXPECT_EQ(claims(), "1:PENDING:" + std::to_string(a.job_id) +
                          "/1,2:PENDING:" + std::to_string(a.job_id) + "/1");
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.watermarks"), "0");
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.failures"), "0");
}

TEST_F(Fencing, ALiveAttemptFinalizesAndReleasesOnlyItsOwnClaimsAllOrNothing) {
  const sync::Fence a = lease_route("worker-a");
  store_->claim(route_.key(), 7, requests({1, 2}), a);
  expire_and_rescue(a);
  const sync::Fence b = lease_route("worker-b");  // the same job, its next attempt
  EXPECT_EQ(b.job_id, a.job_id);
  EXPECT_EQ(b.attempt, 2);
  store_->claim(route_.key(), 7, requests({3}), b);

  // Attempt 2 holds the lease, but UIDs 1 and 2 are attempt 1's until adopted.
  EXPECT_THROW(store_->finalize(b, route_.key(), 7,
                                {{3, 9, 3, "<3@x>", std::string(64, 'a'), 100},
                                 {1, 9, 1, "<1@x>", std::string(64, 'a'), 100}}),
               sync::LeaseLost);
  EXPECT_THROW(store_->release(b, route_.key(), 7, {2, 3}), sync::LeaseLost);
  EXPECT_EQ(claims("state = 'PENDING'"), claims()) << "a refused write changed something";
  store_->finalize(b, route_.key(), 7, {{3, 9, 3, "<3@x>", std::string(64, 'a'), 100}});
  EXPECT_EQ(claims("uid = 3"), "3:DONE:" + std::to_string(b.job_id) + "/2");
}

TEST_F(Fencing, CrashRecoveryTakesOverOnlyClaimsOfAttemptsThatAreOverAndPastTheGrace) {
  const sync::Fence a = lease_route("worker-a");
  store_->claim(route_.key(), 7, requests({1}), a);
  // A claim from before 0005 (no attempt): its run is over by definition.
  db_.execute(
      "INSERT INTO mailsync.uid_claims (route_key, uidvalidity, uid, state, job_id) VALUES ('" +
      route_.key() + "', 7, 9, 'PENDING', 1)");
  EXPECT_EQ(db_.query_value("SELECT mailsync.attempt_may_be_running(" + std::to_string(a.job_id) +
                            ", 1, interval '0')"),
            "t");
  expire_and_rescue(a);
  const sync::Fence b = lease_route("worker-b");

  // Attempt 1 was rescued a moment ago: it may still have an APPEND on the wire.
  const auto within_grace = store_->adopt_pending(b, route_.key(), seconds(60));
  ASSERT_EQ(within_grace.claims.size(), 1u);
  EXPECT_EQ(within_grace.claims[0].uid, 9u);
  EXPECT_EQ(within_grace.in_doubt, 1);
  EXPECT_EQ(claims("uid = 1"), "1:PENDING:" + std::to_string(a.job_id) + "/1");

  // Past the grace: attempt 2's now, and only its writes move them.
  const auto past = store_->adopt_pending(b, route_.key(), milliseconds(0));
  ASSERT_EQ(past.claims.size(), 1u);
  EXPECT_EQ(past.claims[0].uid, 1u);
  EXPECT_EQ(past.claims[0].message_id, "<1@x>");
  EXPECT_EQ(past.in_doubt, 0);
  EXPECT_EQ(claims(), "1:PENDING:" + std::to_string(b.job_id) +
                          "/2,9:PENDING:" + std::to_string(b.job_id) + "/2");
  EXPECT_TRUE(store_->adopt_pending(b, route_.key(), milliseconds(0)).claims.empty())
      << "its own claims are not taken over again";
  store_->finalize(b, route_.key(), 7, {{1, 9, 1, "<1@x>", std::string(64, 'a'), 100}});
  store_->release(b, route_.key(), 7, {9});
  EXPECT_EQ(claims(), "1:DONE:" + std::to_string(b.job_id) + "/2");
}

TEST_F(Fencing, ALeaseKeeperRenewsItsLeaseAndNoticesWhenItIsRescuedAway) {
  queue::LeaseKeeper keeper(db_.url(), "run-once:x", route_.key(), milliseconds(900));
  const std::string remaining = "SELECT lease_expires_at > now() FROM mailsync.jobs WHERE id = " +
                                std::to_string(keeper.job().id);
  // Three lease lengths later the lease is still live: it was renewed.
  std::this_thread::sleep_for(milliseconds(2700));
  EXPECT_EQ(db_.query_value(remaining), "t");
  EXPECT_TRUE(keeper.lease().fresh());
  EXPECT_FALSE(keeper.lost().load());

  db_.execute(
      "UPDATE mailsync.jobs SET state = 'available', lease_owner = NULL, "
      "lease_expires_at = NULL WHERE id = " +
      std::to_string(keeper.job().id));
  EXPECT_TRUE(mailsync::testing::wait_for([&] { return keeper.lost().load(); }));
  EXPECT_FALSE(keeper.finish(queue::JobResult::succeeded(), "r", {}))
      << "recorded an attempt whose lease was gone";
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.jobs"), "1") << "the job was deleted";
}

TEST_F(Fencing, ALeaseKeeperRecordsItsAttemptAsAWorkerWouldOrGivesTheJobBack) {
  {
    queue::LeaseKeeper keeper(db_.url(), "run-once:x", route_.key());
    EXPECT_TRUE(keeper.finish(queue::JobResult::failed("imap down"), "run-1",
                              {seconds(30), 2.0, std::chrono::minutes(30), 0.0}));
  }
  EXPECT_EQ(db_.query_value("SELECT state || ' ' || (run_at - now() > interval '25 seconds') "
                            "FROM mailsync.jobs"),
            "available true");
  EXPECT_EQ(db_.query_value("SELECT worker || ' ' || outcome || ' ' || run_id || ' ' || error "
                            "FROM mailsync.job_attempts"),
            "run-once:x failed run-1 imap down");
  {
    queue::LeaseKeeper abandoned(db_.url(), "run-once:y", route_.key());
    EXPECT_EQ(abandoned.job().attempt, 2);
  }
  EXPECT_EQ(db_.query_value("SELECT state FROM mailsync.jobs"), "available")
      << "a lease not finished is given back";
}

// Issue 13: a half-open database socket blocked the claim thread and the heartbeats for ~15 min
// (TCP's retransmission timeout). Every statement now has a bound: a proxy that stops forwarding
// without closing, and the statement ends within MAILSYNC_DATABASE_TIMEOUT_SECONDS.
TEST_F(Fencing, AStatementWhoseAnswerNeverComesEndsWithinTheDatabaseTimeout) {
  const std::string url = db_.url();
  const size_t port_at = url.find(':', url.find('@')) + 1;
  mailsync::testing::CutProxy proxy(static_cast<uint16_t>(std::stoi(url.substr(port_at))),
                                    UINT64_MAX, mailsync::testing::CutProxy::Mode::kSilence);
  const std::string via_proxy =
      url.substr(0, port_at) + std::to_string(proxy.port()) + url.substr(url.find('/', port_at));
  ::setenv("MAILSYNC_DATABASE_TIMEOUT_SECONDS", "2", 1);
  auto store = sync::make_pg_sync_store(via_proxy, "deadline test");
  ::unsetenv("MAILSYNC_DATABASE_TIMEOUT_SECONDS");
  EXPECT_FALSE(store->watermark(route_.key()).has_value());  // answers while the proxy forwards
  proxy.cut_now();
  const auto start = std::chrono::steady_clock::now();
  try {
    store->watermark(route_.key());
    ADD_FAILURE() << "an answer came through a silent proxy";
  } catch (const postgres::DatabaseUnavailable& e) {
    EXPECT_NE(std::string(e.what()).find("MAILSYNC_DATABASE_TIMEOUT_SECONDS"), std::string::npos)
        << e.what();
  }
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, std::chrono::milliseconds(1900));
  EXPECT_LT(waited, std::chrono::seconds(10)) << "the wait had no bound";
}

}  // namespace
