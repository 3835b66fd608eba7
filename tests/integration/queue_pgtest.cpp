// The queue's statements against real PostgreSQL. Time is injected through `now`: no test sleeps
// waiting for a timer.

#include <gtest/gtest.h>

#include <future>
#include <nlohmann/json.hpp>
#include <set>

#include "mailsync/postgres/errors.hpp"
#include "mailsync/postgres/migrator.hpp"
#include "mailsync/queue/job_store.hpp"
#include "support/test_database.hpp"
#include "support/wait_for.hpp"

namespace {

using namespace mailsync::queue;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

class QueueStore : public ::testing::Test {
 protected:
  void SetUp() override {
    mailsync::postgres::Migrator(db_.url(), mailsync::postgres::embedded_migrations()).run();
    store_ = make_pg_job_store(db_.url(), "queue test");
  }
  std::unique_ptr<JobStore> another_store() { return make_pg_job_store(db_.url(), "queue test 2"); }

  std::vector<int64_t> enqueue_noops(int count, int priority = 0,
                                     std::optional<TimePoint> run_at = {}, int max_attempts = 25) {
    std::vector<NewJob> jobs(count,
                             NewJob{kNoopKind, std::nullopt, "{}", priority, run_at, max_attempts});
    return store_->enqueue(jobs);
  }
  std::string state_of(int64_t id) {
    return db_.query_value("SELECT state FROM mailsync.jobs WHERE id = " + std::to_string(id));
  }
  std::string column_of(int64_t id, const std::string& column) {
    return db_.query_value("SELECT " + column +
                           " FROM mailsync.jobs WHERE id = " + std::to_string(id));
  }
  std::vector<Job> claim(const std::string& owner, int limit, std::optional<TimePoint> now = {},
                         milliseconds lease = seconds(30)) {
    return store_->claim(owner, limit, lease, kinds_, now);
  }

  mailsync::testing::TestDatabase db_;
  std::unique_ptr<JobStore> store_;
  const std::vector<std::string> kinds_{kNoopKind};
};

TEST_F(QueueStore, EnqueueInsertsABatchInOneStatementAndReturnsIdsInOrder) {
  const auto ids = enqueue_noops(500);
  ASSERT_EQ(ids.size(), 500u);
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.jobs WHERE state = 'available'"), "500");
}

TEST_F(QueueStore, EnqueueKeepsArgumentsAndRouteKeysExactly) {
  const std::string args = R"({"text": "quote \" backslash \\ brace } comma , unicode Entwürfe"})";
  const auto ids =
      store_->enqueue(std::vector<NewJob>{{kNoopKind, std::string("ROUTE#a\"b{c}"), args}});
  const auto jobs = claim("w", 1);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].id, ids[0]);
  EXPECT_EQ(nlohmann::json::parse(jobs[0].args_json), nlohmann::json::parse(args));
  EXPECT_EQ(jobs[0].route_key, "ROUTE#a\"b{c}");
}

TEST_F(QueueStore, ClaimTakesDueJobsByPriorityThenRunAtThenIdAndLeasesThem) {
  const TimePoint now = Clock::now();
  const auto low = enqueue_noops(1, 5, now - seconds(10));
  const auto high_later = enqueue_noops(1, -1, now - seconds(1));
  const auto high_earlier = enqueue_noops(1, -1, now - seconds(5));
  const auto jobs = claim("worker-a", 10, now);
  ASSERT_EQ(jobs.size(), 3u);
  EXPECT_EQ(jobs[0].id, high_earlier[0]);
  EXPECT_EQ(jobs[1].id, high_later[0]);
  EXPECT_EQ(jobs[2].id, low[0]);
  EXPECT_EQ(jobs[0].attempt, 1);
  EXPECT_EQ(state_of(low[0]), "running");
  EXPECT_EQ(column_of(low[0], "lease_owner"), "worker-a");
  EXPECT_EQ(
      db_.query_value(
          "SELECT round(extract(epoch FROM lease_expires_at - attempted_at)) FROM mailsync.jobs "
          "WHERE id = " +
          std::to_string(low[0])),
      "30");
}

TEST_F(QueueStore, ClaimLeavesJobsThatAreNotDueYet) {
  const TimePoint now = Clock::now();
  enqueue_noops(1, 0, now + hours(1));
  EXPECT_TRUE(claim("w", 10, now).empty());
  EXPECT_EQ(claim("w", 10, now + hours(1) + seconds(1)).size(), 1u);
}

TEST_F(QueueStore, ClaimTakesOnlyTheKindsTheWorkerRuns) {
  store_->enqueue(std::vector<NewJob>{{"other_kind"}});
  EXPECT_TRUE(claim("w", 10).empty());
}

TEST_F(QueueStore, ClaimUsesThePartialIndex) {
  enqueue_noops(2000);
  db_.execute("ANALYZE mailsync.jobs");
  const std::string plan = db_.query_lines(
      "EXPLAIN SELECT id FROM mailsync.jobs WHERE finished_at IS NULL AND state = 'available' AND "
      "run_at <= now() "
      "ORDER BY priority, run_at, id LIMIT 10 FOR UPDATE SKIP LOCKED");
  EXPECT_NE(plan.find("jobs_claim_idx"), std::string::npos) << plan;
}

TEST_F(QueueStore, ConcurrentClaimersNeverGetTheSameJob) {
  const auto ids = enqueue_noops(2000);
  std::vector<std::future<std::vector<int64_t>>> claimers;
  for (int w = 0; w < 4; ++w) {
    claimers.push_back(std::async(std::launch::async, [this, w] {
      auto store = another_store();
      std::vector<int64_t> mine;
      for (;;) {
        const auto jobs =
            store->claim("w" + std::to_string(w), 37, seconds(30), kinds_, std::nullopt);
        if (jobs.empty()) return mine;
        for (const auto& job : jobs) mine.push_back(job.id);
      }
    }));
  }
  std::multiset<int64_t> all;
  for (auto& claimer : claimers)
    for (const int64_t id : claimer.get()) all.insert(id);
  EXPECT_EQ(all.size(), ids.size());
  EXPECT_EQ(std::set<int64_t>(all.begin(), all.end()).size(), ids.size())
      << "a job was claimed twice";
}

TEST_F(QueueStore, SucceededJobsAreDeletedAndCountedPerMinute) {
  const auto ids = enqueue_noops(3);
  claim("w", 3);
  std::vector<Finish> finishes;
  for (const int64_t id : ids) finishes.push_back({id, Outcome::kSucceeded});
  const auto finished = store_->finish("w", finishes, std::nullopt);
  ASSERT_EQ(finished.size(), 3u);
  EXPECT_EQ(finished[0].state, "succeeded");
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.jobs"), "0");
  EXPECT_EQ(
      db_.query_value("SELECT kind || ' ' || worker || ' ' || succeeded FROM mailsync.job_counts"),
      "noop w 3");
  EXPECT_EQ(db_.query_value("SELECT sum(succeeded) FROM mailsync.jobs_per_minute"), "3");
}

TEST_F(QueueStore, AMixedBatchDeletesSuccessesAndUpdatesTheRest) {
  const auto ids = enqueue_noops(2);
  claim("w", 2);
  store_->finish("w",
                 std::vector<Finish>{{ids[0], Outcome::kSucceeded, "", std::nullopt, true, "r1"},
                                     {ids[1], Outcome::kFailed, "boom", Clock::now()}},
                 std::nullopt);
  EXPECT_EQ(state_of(ids[0]), "");
  EXPECT_EQ(state_of(ids[1]), "available");
  EXPECT_EQ(db_.query_value("SELECT succeeded || ' ' || failed FROM mailsync.job_counts"), "1 1");
  EXPECT_EQ(db_.query_value("SELECT outcome FROM mailsync.job_attempts"), "succeeded");
}

TEST_F(QueueStore, ClaimsAreHotUpdates) {
  enqueue_noops(200);
  db_.execute("SELECT pg_stat_reset()");
  {
    auto claimer = another_store();
    for (int i = 0; i < 4; ++i) claimer->claim("w", 50, seconds(30), kinds_, std::nullopt);
  }  // a backend flushes its statistics when its connection closes
  const std::string counts =
      "SELECT n_tup_upd || ' updates, ' || n_tup_hot_upd || ' HOT' FROM pg_stat_user_tables "
      "WHERE relid = 'mailsync.jobs'::regclass";
  mailsync::testing::wait_for([&] { return db_.query_value(counts) != "0 updates, 0 HOT"; },
                              seconds(5));
  EXPECT_EQ(db_.query_value(counts), "200 updates, 200 HOT");
}

TEST_F(QueueStore, AFailedJobComesBackAtItsBackoffTimeAndDiesAfterMaxAttempts) {
  const TimePoint now = Clock::now();
  const int64_t id = enqueue_noops(1, 0, now, /*max_attempts=*/2)[0];
  claim("w", 1, now);
  auto finished = store_->finish(
      "w", std::vector<Finish>{{id, Outcome::kFailed, "boom 1", now + seconds(30)}}, now);
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_EQ(finished[0].state, "available");
  EXPECT_EQ(column_of(id, "last_error"), "boom 1");
  EXPECT_TRUE(claim("w", 1, now + seconds(29)).empty()) << "due before its backoff time";
  ASSERT_EQ(claim("w", 1, now + seconds(31)).size(), 1u);
  finished = store_->finish(
      "w", std::vector<Finish>{{id, Outcome::kFailed, "boom 2", now + seconds(90)}}, now);
  EXPECT_EQ(finished[0].state, "dead");
  EXPECT_EQ(column_of(id, "last_error"), "boom 2");
  EXPECT_EQ(column_of(id, "attempt"), "2");
}

TEST_F(QueueStore, RetryAtWaitsWithoutUsingUpAnAttempt) {
  const TimePoint now = Clock::now();
  const int64_t id = enqueue_noops(1, 0, now, /*max_attempts=*/1)[0];
  for (int i = 1; i <= 3; ++i) {
    ASSERT_EQ(claim("w", 1, now + seconds(60 * i)).size(), 1u) << i;
    const auto finished = store_->finish(
        "w", std::vector<Finish>{{id, Outcome::kRetryAt, "throttled", now + seconds(60 * i + 30)}},
        now);
    EXPECT_EQ(finished[0].state, "available");
  }
  ASSERT_EQ(claim("w", 1, now + hours(1)).size(), 1u);
  store_->finish("w", std::vector<Finish>{{id, Outcome::kSucceeded}}, now);
  EXPECT_EQ(state_of(id), "") << "succeeded, so deleted";
}

TEST_F(QueueStore, CancelledAndDeadOutcomesAreFinalAtOnce) {
  const auto ids = enqueue_noops(2);
  claim("w", 2);
  store_->finish("w",
                 std::vector<Finish>{{ids[0], Outcome::kCancelled, "not wanted"},
                                     {ids[1], Outcome::kDead, "bad args"}},
                 std::nullopt);
  EXPECT_EQ(state_of(ids[0]), "cancelled");
  EXPECT_EQ(state_of(ids[1]), "dead");
  EXPECT_EQ(column_of(ids[1], "last_error"), "bad args");
}

TEST_F(QueueStore, AWorkerThatLostTheLeaseCannotFinishTheJob) {
  const TimePoint now = Clock::now();
  const int64_t id = enqueue_noops(1, 0, now)[0];
  claim("slow-worker", 1, now, seconds(30));
  store_->rescue_expired(100, now + seconds(31));
  ASSERT_EQ(claim("fast-worker", 1, now + seconds(31)).size(), 1u);
  EXPECT_TRUE(
      store_->finish("slow-worker", std::vector<Finish>{{id, Outcome::kSucceeded}}, std::nullopt)
          .empty());
  EXPECT_EQ(state_of(id), "running");
  EXPECT_EQ(column_of(id, "lease_owner"), "fast-worker");
}

TEST_F(QueueStore, RescueReturnsExpiredLeasesOrKillsJobsOutOfAttempts) {
  const TimePoint now = Clock::now();
  const int64_t retryable = enqueue_noops(1, 0, now, 3)[0];
  const int64_t last_try = enqueue_noops(1, 0, now, 1)[0];
  const int64_t healthy = enqueue_noops(1, 0, now, 3)[0];
  claim("lost-worker", 2, now, seconds(10));
  claim("live-worker", 1, now, seconds(600));
  EXPECT_TRUE(store_->rescue_expired(100, now + seconds(9)).made_available.empty());
  const RescueResult rescued = store_->rescue_expired(100, now + seconds(11));
  EXPECT_EQ(rescued.made_available, std::vector<int64_t>{retryable});
  EXPECT_EQ(rescued.made_dead, std::vector<int64_t>{last_try});
  EXPECT_EQ(state_of(healthy), "running");
  EXPECT_NE(column_of(retryable, "last_error").find("lease expired: worker lost-worker"),
            std::string::npos);
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.job_attempts WHERE outcome = 'rescued'"),
            "2");
}

TEST_F(QueueStore, HeartbeatExtendsOnlyTheLeasesStillHeld) {
  const TimePoint now = Clock::now();
  const auto ids = enqueue_noops(2, 0, now);
  claim("w", 2, now, seconds(10));
  store_->rescue_expired(100, now + seconds(11));  // both lost
  claim("w", 1, now + seconds(11), seconds(10));   // one claimed again
  const auto held = store_->heartbeat("w", ids, seconds(60), now + seconds(12));
  ASSERT_EQ(held.size(), 1u);
  EXPECT_TRUE(store_->rescue_expired(100, now + seconds(30)).made_available.empty())
      << "heartbeat did not extend";
}

TEST_F(QueueStore, ReleaseGivesJobsBackWithoutCountingTheAttempt) {
  const int64_t id = enqueue_noops(1, 0, std::nullopt, 1)[0];
  claim("w", 1);
  EXPECT_EQ(store_->release("w", std::vector<int64_t>{id}, std::nullopt), 1);
  EXPECT_EQ(state_of(id), "available");
  ASSERT_EQ(claim("w", 1).size(), 1u);
  store_->finish("w", std::vector<Finish>{{id, Outcome::kFailed, "x", Clock::now()}}, std::nullopt);
  EXPECT_EQ(state_of(id), "dead") << "one real attempt of max_attempts 1 should end it";
}

TEST_F(QueueStore, PruneDeletesOldCancelledJobsAndKeepsDeadOnesLonger) {
  const TimePoint now = Clock::now();
  const auto ids = enqueue_noops(3, 0, now);
  claim("w", 3, now);
  store_->finish(
      "w", std::vector<Finish>{{ids[0], Outcome::kCancelled, "x"}, {ids[1], Outcome::kDead, "x"}},
      now);
  EXPECT_EQ(store_->prune(hours(24), hours(24 * 30), 1000, now + hours(1)).jobs, 0);
  EXPECT_EQ(store_->prune(hours(24), hours(24 * 30), 1000, now + hours(25)).jobs, 1);
  EXPECT_EQ(state_of(ids[0]), "");
  EXPECT_EQ(state_of(ids[1]), "dead");
  EXPECT_EQ(store_->prune(hours(24), hours(24 * 30), 1000, now + hours(24 * 31)).jobs, 1);
  EXPECT_EQ(state_of(ids[2]), "running");
}

TEST_F(QueueStore, FinishRecordsAttemptHistoryOnlyWhenAsked) {
  const auto ids = enqueue_noops(2);
  claim("w", 2);
  Finish recorded{ids[0],  Outcome::kSucceeded,        "", std::nullopt, true,
                  "run-1", JobStats{5, 4, 1, 0, 12345}};
  store_->finish("w", std::vector<Finish>{recorded, {ids[1], Outcome::kSucceeded}}, std::nullopt);
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.job_attempts"), "1");
  EXPECT_EQ(db_.query_value("SELECT outcome || ' ' || run_id || ' ' || appended || ' ' || bytes "
                            "FROM mailsync.job_attempts"),
            "succeeded run-1 4 12345");
}

TEST_F(QueueStore, AnInsertWakesAListeningConnection) {
  store_->listen();
  EXPECT_FALSE(store_->wait(milliseconds(50), -1)) << "woke with nothing inserted";
  another_store()->enqueue(std::vector<NewJob>{{kNoopKind}});
  EXPECT_TRUE(store_->wait(seconds(5), -1));
}

TEST_F(QueueStore, AJobDueLaterDoesNotWakeListeners) {
  store_->listen();
  another_store()->enqueue(
      std::vector<NewJob>{{kNoopKind, std::nullopt, "{}", 0, Clock::now() + hours(1)}});
  EXPECT_FALSE(store_->wait(milliseconds(200), -1));
}

TEST_F(QueueStore, AnUnreachableDatabaseIsReportedAsUnavailable) {
  EXPECT_THROW(make_pg_job_store("postgresql://127.0.0.1:1/none", "x"),
               mailsync::postgres::DatabaseUnavailable);
}

}  // namespace
