// The worker pool, the worker and scheduler executables and the admin commands against real
// PostgreSQL.

#include <gtest/gtest.h>

#include <signal.h>
#include <fstream>
#include <sstream>

#include <future>
#include <thread>

#include "mailsync/health.hpp"
#include "mailsync/http/http_client.hpp"
#include "mailsync/postgres/migrator.hpp"
#include "mailsync/queue/job_store.hpp"
#include "mailsync/queue/route_store.hpp"
#include "mailsync/queue/worker_pool.hpp"
#include "scheduler.hpp"
#include "support/process.hpp"
#include "support/prometheus_text.hpp"
#include "support/test_database.hpp"
#include "support/wait_for.hpp"

namespace {

using namespace mailsync::queue;
using mailsync::testing::ChildProcess;
using mailsync::testing::metric_value;
using mailsync::testing::run_process;
using mailsync::testing::wait_for;
using std::chrono::milliseconds;
using std::chrono::seconds;

class Worker : public ::testing::Test {
 protected:
  void SetUp() override {
    mailsync::postgres::Migrator(db_.url(), mailsync::postgres::embedded_migrations()).run();
    store_ = make_pg_job_store(db_.url(), "worker test");
  }
  std::vector<int64_t> enqueue(int count, const std::string& args = "{}") {
    return store_->enqueue(std::vector<NewJob>(count, NewJob{kNoopKind, std::nullopt, args}));
  }
  WorkerConfig config(int concurrency, bool drain) {
    WorkerConfig c;
    c.database_url = db_.url();
    c.concurrency = concurrency;
    c.drain = drain;
    c.poll_interval = milliseconds(200);
    return c;
  }
  static HandlerRegistry noop_only() {
    HandlerRegistry handlers;
    handlers.add(kNoopKind, noop_kind());
    return handlers;
  }
  std::string count(const std::string& where) {
    return db_.query_value("SELECT count(*) FROM mailsync.jobs WHERE " + where);
  }
  std::string succeeded_total() {
    return db_.query_value("SELECT coalesce(sum(succeeded), 0) FROM mailsync.job_counts");
  }
  mailsync::testing::EnvChanges env() {
    return {{"MAILSYNC_DATABASE_URL", db_.url()}, {"LOG_LEVEL", "warn"}};
  }

  mailsync::testing::TestDatabase db_;
  std::unique_ptr<JobStore> store_;
};

TEST_F(Worker, ManyWorkersCompleteEveryJobExactlyOnce) {
  enqueue(3000);
  std::vector<std::unique_ptr<WorkerPool>> pools;
  for (int i = 0; i < 3; ++i)
    pools.push_back(std::make_unique<WorkerPool>(config(8, true), noop_only()));
  std::vector<std::thread> threads;
  for (auto& pool : pools) threads.emplace_back([&pool] { pool->run(); });
  for (auto& thread : threads) thread.join();
  int64_t claimed = 0, succeeded = 0;
  for (const auto& pool : pools) {
    claimed += pool->counters().claimed;
    succeeded += pool->counters().succeeded;
  }
  EXPECT_EQ(claimed, 3000) << "a job was claimed twice or not at all";
  EXPECT_EQ(succeeded, 3000);
  EXPECT_EQ(count("true"), "0") << "succeeded jobs are deleted when they finish";
  EXPECT_EQ(succeeded_total(), "3000");
}

TEST_F(Worker, AThrowingHandlerFailsItsJobNotTheWorker) {
  const int64_t bad = enqueue(1, R"({"throw": "kaboom"})")[0];
  enqueue(5);
  WorkerPool pool(config(2, true), noop_only());
  pool.run();
  EXPECT_EQ(pool.counters().failed, 1);
  EXPECT_EQ(pool.counters().succeeded, 5);
  EXPECT_EQ(
      db_.query_value(
          "SELECT state || ' ' || attempt || ' ' || last_error FROM mailsync.jobs WHERE id = " +
          std::to_string(bad)),
      "available 1 handler threw: kaboom");
}

TEST_F(Worker, FailingJobsAreRetriedWithBackoffAndDeadLetteredAtMaxAttempts) {
  KindConfig noop = noop_kind();
  noop.retry.base = milliseconds(1);  // due again almost at once
  noop.retry.cap = milliseconds(1);
  noop.retry.jitter = 0;
  const int64_t id = store_->enqueue(std::vector<NewJob>{
      {kNoopKind, std::nullopt, R"({"fail": "no luck"})", 0, std::nullopt, /*max_attempts=*/3}})[0];
  int64_t failed = 0, dead = 0;
  // A drain stops when the retry is not yet due (1 ms later), so drain until the job settles.
  for (int pass = 0; pass < 50 && count("state = 'dead'") == "0"; ++pass) {
    HandlerRegistry handlers;
    handlers.add(kNoopKind, noop);
    WorkerPool pool(config(1, true), std::move(handlers));
    pool.run();
    failed += pool.counters().failed;
    dead += pool.counters().dead;
  }
  EXPECT_EQ(failed, 2);
  EXPECT_EQ(dead, 1);
  EXPECT_EQ(
      db_.query_value(
          "SELECT state || ' ' || attempt || ' ' || last_error FROM mailsync.jobs WHERE id = " +
          std::to_string(id)),
      "dead 3 no luck");
}

TEST_F(Worker, DrainReturnsAtOnceWhenOnlyLaterJobsRemain) {
  store_->enqueue(std::vector<NewJob>{
      {kNoopKind, std::nullopt, "{}", 0, Clock::now() + std::chrono::hours(1)}});
  WorkerPool pool(config(2, true), noop_only());
  pool.run();
  EXPECT_EQ(pool.counters().claimed, 0);
}

TEST_F(Worker, RunOnceClaimsOneBatchOfFreeSlotsRunsItToTheEndAndLeavesTheRest) {
  enqueue(3);
  WorkerPool pool(config(2, false), noop_only());
  EXPECT_EQ(pool.run_once(), 2);
  EXPECT_EQ(pool.counters().succeeded, 2);
  EXPECT_EQ(succeeded_total(), "2") << "their finishes are recorded before it returns";
  EXPECT_EQ(count("state = 'available'"), "1");
  EXPECT_EQ(count("state = 'running'"), "0");
}

TEST_F(Worker, ANotificationWakesAnIdleWorkerLongBeforeItsNextPoll) {
  WorkerConfig c = config(2, false);
  c.poll_interval = seconds(60);
  WorkerPool pool(c, noop_only());
  std::thread runner([&] { pool.run(); });
  EXPECT_TRUE(wait_for([&] { return pool.counters().waits > 0; })) << "it never waited";
  enqueue(1);
  const bool done = wait_for([&] { return pool.counters().succeeded == 1; }, seconds(10));
  pool.stop();
  runner.join();
  EXPECT_TRUE(done) << "the job waited for the 60 s poll";
}

TEST_F(Worker, PollOnlyModeFindsJobsWithoutListen) {
  WorkerConfig c = config(2, false);
  c.listen = false;
  c.poll_interval = milliseconds(50);
  WorkerPool pool(c, noop_only());
  std::thread runner([&] { pool.run(); });
  enqueue(3);
  const bool done = wait_for([&] { return pool.counters().succeeded == 3; });
  pool.stop();
  runner.join();
  EXPECT_TRUE(done);
}

TEST_F(Worker, KilledWorkersJobsAreRescuedAfterTheLeaseAndCompletedElsewhere) {
  const auto ids = enqueue(3, R"({"sleep_ms": 600000})");
  ChildProcess worker(
      {MAILSYNC_TEST_BIN_WORKER, "--kinds", "noop", "--concurrency", "3", "--lease-seconds", "60"},
      env());
  ASSERT_TRUE(wait_for([&] { return count("state = 'running'") == "3"; }))
      << "the worker did not claim the jobs";
  // Issue 13: a process holding tokens leaves no core file behind.
  std::ifstream limits("/proc/" + std::to_string(worker.pid()) + "/limits");
  std::string line;
  while (std::getline(limits, line) && !line.starts_with("Max core file size")) {
  }
  std::istringstream fields(line.substr(std::string("Max core file size").size()));
  std::string soft, hard;
  fields >> soft >> hard;
  EXPECT_EQ(soft + " " + hard, "0 0") << "hard limit too, so no child can raise it: " << line;
  worker.signal(SIGKILL);
  EXPECT_EQ(worker.wait().exit_code, -1);
  EXPECT_EQ(count("state = 'running'"), "3")
      << "a killed worker's jobs stay leased until the lease expires";

  // Time moves past the lease instead of the test sleeping through it.
  EXPECT_TRUE(store_->rescue_expired(100, Clock::now() + seconds(30)).made_available.empty());
  EXPECT_EQ(store_->rescue_expired(100, Clock::now() + seconds(61)).made_available.size(), 3u);
  // Rescue ran at the injected time; bring the jobs back to real time, and let them finish at once.
  db_.execute("UPDATE mailsync.jobs SET args = '{}', run_at = now()");
  WorkerPool pool(config(3, true), noop_only());
  pool.run();
  EXPECT_EQ(pool.counters().succeeded, 3);
  EXPECT_EQ(count("true"), "0");
  EXPECT_EQ(
      db_.query_value(
          "SELECT count(*) FROM mailsync.job_attempts WHERE outcome = 'rescued' AND attempt = 1"),
      "3");
  (void)ids;
}

TEST_F(Worker, SigtermFinishesShortJobsAndGivesLongOnesBack) {
  const auto short_jobs = enqueue(2, R"({"sleep_ms": 300})");
  const auto long_jobs = enqueue(2, R"({"sleep_ms": 600000})");
  auto info = env();
  info["LOG_LEVEL"] = "info";
  ChildProcess worker({MAILSYNC_TEST_BIN_WORKER, "--kinds", "noop", "--concurrency", "4",
                       "--shutdown-timeout-seconds", "2"},
                      info);
  // Executing, not only claimed: a job claimed but not yet started is given back by a SIGTERM,
  // and under a loaded sanitizer build that window was long enough to catch a short job.
  ASSERT_TRUE(wait_for([&] {
    const std::string err = worker.read_err();
    size_t started = 0;
    for (size_t at = err.find("noop: sleeping"); at != std::string::npos;
         at = err.find("noop: sleeping", at + 1))
      ++started;
    return started == 4;
  }));
  worker.signal(SIGTERM);
  const auto result = worker.wait();
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(count("state = 'running'"), "0") << "graceful shutdown left a job running";
  EXPECT_EQ(succeeded_total(), "2");
  EXPECT_EQ(count("state = 'available' AND attempt = 1 AND max_attempts = 26"), "2")
      << "long jobs should be given back without using up an attempt";
}

TEST_F(Worker, AJobThatIgnoresCancellationEndsTheWorkerWithoutCleanupAndIsGivenBack) {
  // Before: main returned while the detached handler thread still ran, destroying the routes,
  // pools and statics it uses, and reported success.
  enqueue(1, R"({"sleep_ms": 600000, "ignore_cancel": true})");
  ChildProcess worker({MAILSYNC_TEST_BIN_WORKER, "--kinds", "noop", "--concurrency", "1",
                       "--shutdown-timeout-seconds", "1"},
                      env());
  ASSERT_TRUE(wait_for([&] { return count("state = 'running'") == "1"; }));
  worker.signal(SIGTERM);
  const auto result = worker.wait();
  EXPECT_EQ(result.exit_code, 1) << result.err;
  EXPECT_NE(result.err.find("a job ignored cancellation"), std::string::npos) << result.err;
  EXPECT_EQ(count("state = 'available' AND attempt = 1"), "1") << "the job was not given back";
}

TEST_F(Worker, WorkerBinaryDrainsTheQueueAndExitsZero) {
  enqueue(500);
  const auto result = run_process(
      {MAILSYNC_TEST_BIN_WORKER, "--kinds", "noop", "--drain", "--concurrency", "16"}, env());
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(succeeded_total(), "500");
  EXPECT_EQ(count("true"), "0");
}

// ---- scheduler -------------------------------------------------------------------------------

class Scheduling : public Worker {
 protected:
  std::vector<mailsync::config::Route> routes_{
      {"a@gmail.test", "me@outlook.test", "Gmail/a", true},
      {"b@gmail.test", "me@outlook.test", "Gmail/b", true},
      {"c@gmail.test", "me@outlook.test", "Gmail/c", true}};
  mailsync::scheduler::SchedulerConfig scheduler_config() {
    mailsync::scheduler::SchedulerConfig c;
    c.database_url = db_.url();
    c.interval = seconds(300);
    return c;
  }
  std::string route_syncs() { return count("kind = 'route_sync'"); }
};

TEST_F(Scheduling, TwoSchedulersEnqueueEachRouteOncePerInterval) {
  // Six replicas tick at the same moment.
  std::vector<std::unique_ptr<mailsync::scheduler::Scheduler>> replicas;
  for (int i = 0; i < 6; ++i)
    replicas.push_back(
        std::make_unique<mailsync::scheduler::Scheduler>(scheduler_config(), routes_));
  const TimePoint start = Clock::now();
  std::vector<std::future<void>> ticks;
  for (int i = 0; i < 6; ++i)
    ticks.push_back(
        std::async(std::launch::async, [&, i] { replicas[i]->run_once(false, start); }));
  for (auto& tick : ticks) tick.get();
  auto& first = *replicas[0];
  auto& second = *replicas[1];
  EXPECT_EQ(route_syncs(), "3");

  // The jobs finish quickly; ticks later in the same interval still enqueue nothing.
  db_.execute("UPDATE mailsync.jobs SET state = 'succeeded', finished_at = now()");
  EXPECT_EQ(first.run_once(false, start + seconds(120)).enqueued, std::nullopt);
  EXPECT_EQ(second.run_once(false, start + seconds(299)).enqueued, std::nullopt);
  EXPECT_EQ(route_syncs(), "3");

  EXPECT_EQ(second.run_once(false, start + seconds(301)).enqueued, 3);
  EXPECT_EQ(first.run_once(false, start + seconds(302)).enqueued, std::nullopt);
  EXPECT_EQ(route_syncs(), "6");
}

TEST_F(Scheduling, ARouteWithAQueuedJobIsNotEnqueuedAgain) {
  mailsync::scheduler::Scheduler scheduler(scheduler_config(), routes_);
  const TimePoint start = Clock::now();
  EXPECT_EQ(scheduler.run_once(false, start).enqueued, 3);
  EXPECT_EQ(scheduler.run_once(false, start + seconds(301)).enqueued, 0);  // all three still queued
  EXPECT_EQ(scheduler.run_once(true, start + seconds(302)).enqueued, 0);   // even when forced
}

TEST_F(Scheduling, PausedAndDisabledRoutesAreNotEnqueued) {
  auto routes = routes_;
  routes[2].enabled = false;
  mailsync::scheduler::Scheduler scheduler(scheduler_config(), routes);
  scheduler.run_once(false, Clock::now());
  db_.execute("UPDATE mailsync.jobs SET state = 'succeeded', finished_at = now()");
  make_pg_route_store(db_.url(), "test")->set_paused(routes_[0].key(), true);
  EXPECT_EQ(scheduler.run_once(true, Clock::now()).enqueued, 1);
  EXPECT_EQ(count("kind = 'route_sync' AND state = 'available' AND route_key = '" +
                  routes_[1].key() + "'"),
            "1");
}

TEST_F(Scheduling, RoutesDroppedFromTheConfigurationAreDisabledNotDeleted) {
  mailsync::scheduler::Scheduler(scheduler_config(), routes_).run_once(true);
  const auto report =
      mailsync::scheduler::Scheduler(scheduler_config(), {routes_[0]}).run_once(true);
  EXPECT_EQ(report.routes.disabled, 2);
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.routes WHERE NOT enabled"), "2");
}

TEST_F(Scheduling, MaintenanceRescuesExpiredLeases) {
  enqueue(2);
  store_->claim("gone", 2, seconds(5), std::vector<std::string>{kNoopKind}, std::nullopt);
  const auto report = mailsync::scheduler::Scheduler(scheduler_config(), routes_)
                          .run_once(false, Clock::now() + seconds(10));
  EXPECT_EQ(report.rescued.made_available.size(), 2u);
}

// ---- admin commands ----------------------------------------------------------------------------

TEST_F(Scheduling, AdminCommandsEnqueuePauseAndReportStatus) {
  mailsync::scheduler::Scheduler(scheduler_config(), routes_).run_once(true);
  db_.execute("UPDATE mailsync.jobs SET state = 'succeeded', finished_at = now()");
  const std::string bin = MAILSYNC_TEST_BIN_MAILSYNC;

  auto enqueue_a = run_process({bin, "enqueue", "--route", "a@gmail.test"}, env());
  EXPECT_EQ(enqueue_a.exit_code, 0) << enqueue_a.err;
  EXPECT_NE(enqueue_a.out.find("enqueued job"), std::string::npos) << enqueue_a.out;
  EXPECT_NE(run_process({bin, "enqueue", "--route", routes_[0].key()}, env())
                .out.find("already has a queued"),
            std::string::npos);
  EXPECT_EQ(run_process({bin, "enqueue", "--route", "nobody@gmail.test"}, env()).exit_code, 2);

  EXPECT_EQ(run_process({bin, "pause", "a@gmail.test"}, env()).exit_code, 0);
  const auto status = run_process({bin, "status", "--json"}, env());
  ASSERT_EQ(status.exit_code, 0) << status.err;
  const auto json = nlohmann::json::parse(status.out);
  ASSERT_EQ(json["routes"].size(), 3u);
  EXPECT_EQ(json["routes"][0]["paused"], true);
  EXPECT_TRUE(json["routes"][0]["queued_job_id"].is_null()) << "pausing cancels the queued job";
  EXPECT_EQ(json["queue"]["by_state"]["cancelled"], 1);

  const auto all = run_process({bin, "enqueue", "--all", "--json"}, env());
  EXPECT_EQ(nlohmann::json::parse(all.out)["enqueued"].size(), 2u) << "the paused route is skipped";
  EXPECT_EQ(run_process({bin, "resume", "a@gmail.test"}, env()).exit_code, 0);
  const auto table = run_process({bin, "status"}, env());
  EXPECT_NE(table.out.find("a@gmail.test"), std::string::npos);
  EXPECT_NE(table.out.find("queue: available 2"), std::string::npos) << table.out;
}

TEST_F(Scheduling, AdminCommandsRetryAndDiscardDeadJobs) {
  const auto ids = enqueue(2);
  store_->claim("w", 2, seconds(30), std::vector<std::string>{kNoopKind}, std::nullopt);
  store_->finish(
      "w",
      std::vector<Finish>{{ids[0], Outcome::kDead, "broken"}, {ids[1], Outcome::kDead, "broken"}},
      std::nullopt);
  const std::string bin = MAILSYNC_TEST_BIN_MAILSYNC;
  const auto list = run_process({bin, "dead", "list"}, env());
  EXPECT_NE(list.out.find("broken"), std::string::npos) << list.out;
  const auto retry =
      run_process({bin, "dead", "retry", std::to_string(ids[0]), "--attempts", "2"}, env());
  EXPECT_EQ(retry.exit_code, 0) << retry.err;
  EXPECT_EQ(db_.query_value("SELECT state || ' ' || max_attempts FROM mailsync.jobs WHERE id = " +
                            std::to_string(ids[0])),
            "available 3");
  EXPECT_EQ(run_process({bin, "dead", "discard", "--all"}, env()).exit_code, 0);
  EXPECT_EQ(count("state = 'dead'"), "0");
  EXPECT_EQ(run_process({bin, "dead", "retry", "999999"}, env()).exit_code, 1);
}

}  // namespace

// ---- what the scheduler's metrics endpoint shows -----------------------------------------------

TEST_F(Scheduling, TheSchedulersMetricsShowTheQueueAndRoutesThatNeedAPerson) {
  mailsync::scheduler::Scheduler(scheduler_config(), routes_).run_once(true);
  db_.execute("UPDATE mailsync.jobs SET run_at = now() - interval '90 seconds'");
  db_.execute("UPDATE mailsync.routes SET auth_state = 'auth_required' WHERE route_key = '" +
              routes_[1].key() + "'");
  const auto server = mailsync::health::serve(
      "127.0.0.1", 0, {"mailsync-scheduler", db_.url(), std::nullopt, /*queue_gauges=*/true});
  const std::string base = "http://127.0.0.1:" + std::to_string(server->port());
  mailsync::http::HttpClient http;
  std::string body = http.get(base + "/metrics").body;
  EXPECT_EQ(metric_value(body, R"(mailsync_queue_due_jobs{kind="route_sync"})"), 3) << body;
  EXPECT_EQ(metric_value(body, R"(mailsync_jobs{kind="route_sync",state="available"})"), 3) << body;
  EXPECT_GE(metric_value(body, "mailsync_queue_oldest_due_age_seconds"), 90);
  EXPECT_EQ(metric_value(body, "mailsync_routes_auth_required"), 1);
  EXPECT_EQ(http.get(base + "/readyz").status, 200);

  // The workers take the jobs: the gauges follow at the next scrape.
  db_.execute("DELETE FROM mailsync.jobs");
  body = http.get(base + "/metrics").body;
  EXPECT_EQ(metric_value(body, R"(mailsync_queue_due_jobs{kind="route_sync"})"), 0) << body;
  EXPECT_EQ(metric_value(body, "mailsync_queue_oldest_due_age_seconds"), 0);
}

TEST_F(Scheduling, ReadyzNamesAnUnreachableDatabaseOrAClosedGate) {
  const auto no_database = mailsync::health::serve(
      "127.0.0.1", 0, {"mailsync-worker", "postgresql://postgres@127.0.0.1:1/none", std::nullopt});
  mailsync::http::HttpClient http;
  const auto answer =
      http.get("http://127.0.0.1:" + std::to_string(no_database->port()) + "/readyz");
  EXPECT_EQ(answer.status, 503);
  EXPECT_TRUE(answer.body.starts_with("not ready: database: ")) << answer.body;

  mailsync::dynamo::DynamoOptions gate;
  gate.region = "us-east-1";
  gate.table = "mailsync";
  gate.endpoint = "http://127.0.0.1:1";
  gate.access_key_id = "AKIDEXAMPLE";
  gate.secret_access_key = mailsync::config::Secret(
      "not-a-real-secret-key", mailsync::config::Secret::Source::kInline, "inline");
  gate.attempts = 1;
  const auto closed_gate =
      mailsync::health::serve("127.0.0.1", 0, {"mailsync-worker", db_.url(), gate});
  const auto gated =
      http.get("http://127.0.0.1:" + std::to_string(closed_gate->port()) + "/readyz");
  EXPECT_EQ(gated.status, 503);
  EXPECT_TRUE(gated.body.starts_with("not ready: DynamoDB gate: ")) << gated.body;
  EXPECT_EQ(gated.body.find("not-a-real-secret-key"), std::string::npos);
}
