// mailsync through the local stack's PgBouncer 1.18 in transaction pooling mode, two server
// connections for all clients (deploy/local/up.sh): consecutive transactions of one client run on
// different server connections, so any session state a store left behind (a SET, a prepared
// statement) would fail here or leak into another client's transactions.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "mailsync/postgres/migrator.hpp"
#include "mailsync/queue/job_store.hpp"
#include "mailsync/queue/lease_keeper.hpp"
#include "mailsync/queue/route_store.hpp"
#include "mailsync/sync/sync_store.hpp"
#include "support/test_database.hpp"

namespace {

using namespace mailsync;
using std::chrono::seconds;

TEST(PgBouncerTransactionPooling, EveryStoreWorksWithClientsSharingTwoServerConnections) {
  const mailsync::testing::TestDatabase db;
  const std::string& url = db.pooled_url();
  postgres::Migrator(url, postgres::embedded_migrations()).run();

  // More clients than server connections, used in turns.
  auto jobs_a = queue::make_pg_job_store(url, "pooled jobs a");
  auto jobs_b = queue::make_pg_job_store(url, "pooled jobs b");
  auto sync_a = sync::make_pg_sync_store(url, "pooled sync a");
  auto sync_b = sync::make_pg_sync_store(url, "pooled sync b");
  auto routes = queue::make_pg_route_store(url, "pooled routes");

  std::vector<config::Route> configured(3);
  for (size_t i = 0; i < configured.size(); ++i) {
    configured[i].gmail_email = "user" + std::to_string(i) + "@gmail.test";
    configured[i].outlook_email = "me@outlook.test";
    configured[i].target_folder = "Gmail/user" + std::to_string(i);
  }
  routes->upsert_routes(configured);
  ASSERT_EQ(routes->run_route_sync_cycle("pooled scheduler", seconds(300), true, 5, std::nullopt),
            std::optional<int>(3));

  uint32_t next_uid = 1;
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < configured.size(); ++i) {
      const config::Route& route = configured[i];
      queue::JobStore& jobs = (i % 2 == 0) ? *jobs_a : *jobs_b;
      sync::SyncStore& store = (i % 2 == 0) ? *sync_b : *sync_a;
      if (round > 0) {
        ASSERT_EQ(routes->enqueue_route_syncs({.route_key = route.key()}).size(), 1u);
      }
      const std::string owner = "pooled-worker-" + std::to_string(i);
      const queue::RouteClaim claim = jobs.claim_route(owner, route.key(), seconds(60));
      ASSERT_TRUE(claim.job) << route.key() << " round " << round;
      const sync::Fence fence{claim.job->id, claim.job->attempt, owner};
      store.ensure_route(route);
      std::vector<sync::SyncStore::ClaimRequest> requests;
      for (int k = 0; k < 4; ++k, ++next_uid)
        requests.push_back({next_uid, "<" + std::to_string(next_uid) + "@x>", std::string(64, 'a'),
                            100, std::nullopt});
      const auto states = store.claim(route.key(), 7, requests, fence);
      ASSERT_EQ(states.size(), requests.size());
      std::vector<sync::Copied> copied;
      for (const auto& r : requests)
        copied.push_back(
            {r.uid, 9, r.uid, r.message_id, r.sha256_hex, r.size, std::nullopt, std::nullopt});
      store.finalize(fence, route.key(), 7, copied);
      store.set_watermark(fence, route.key(), {7, requests.back().uid});
      ASSERT_EQ(jobs.heartbeat(owner, std::span(&claim.job->id, 1), seconds(60), std::nullopt),
                std::vector<int64_t>{claim.job->id});
      const queue::Finish done[] = {{claim.job->id, queue::Outcome::kSucceeded}};
      ASSERT_EQ(jobs.finish(owner, done, std::nullopt).size(), 1u);
      store.set_outcome(route.key(), "succeeded", "", true);
    }
  }
  // A LeaseKeeper heartbeats on a connection of its own while the run writes on another.
  {
    queue::LeaseKeeper keeper(url, "pooled run-once", configured[0].key());
    const sync::Fence fence{keeper.job().id, keeper.job().attempt, "pooled run-once"};
    sync_a->set_watermark(fence, configured[0].key(), {7, next_uid});
    EXPECT_TRUE(keeper.finish(queue::JobResult::succeeded(), "pooled-run", {}));
  }

  EXPECT_EQ(db.query_value("SELECT count(*) FROM mailsync.uid_claims WHERE state = 'DONE'"),
            std::to_string(next_uid - 1));
  EXPECT_EQ(db.query_value("SELECT count(*) FROM mailsync.jobs WHERE state <> 'succeeded'"), "0");
  EXPECT_EQ(routes->route_status().size(), 3u);
  EXPECT_FALSE(routes->queue_summary().empty());
  // The pool really was shared: never more than its two server connections to this database.
  EXPECT_LE(std::stoi(db.query_value("SELECT count(*) FROM pg_stat_activity WHERE datname = '" +
                                     db.name() + "' AND pid <> pg_backend_pid()")),
            2);
}

TEST(PgBouncerTransactionPooling, TheApplicationNameIsAStartupParameterNotASessionSet) {
  const mailsync::testing::TestDatabase db;
  postgres::Migrator(db.url(), postgres::embedded_migrations()).run();
  auto direct = queue::make_pg_job_store(db.url(), "mailsync name check: a/b");
  EXPECT_EQ(db.query_value("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                           "'mailsync name check: a/b'"),
            "1");
}

}  // namespace
