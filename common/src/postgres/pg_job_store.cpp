// The PostgreSQL JobStore: runs the named statements of queue_queries.hpp on one connection.

#include <poll.h>
#include <unistd.h>
#include <algorithm>
#include <tuple>

#include <cerrno>
#include <cstring>

#include "mailsync/queue/job_store.hpp"
#include "mailsync/util/strings.hpp"
#include "postgres/connection.hpp"
#include "postgres/params.hpp"
#include "postgres/pg_arrays.hpp"
#include "postgres/queue_queries.hpp"

namespace mailsync::queue {

namespace {

namespace q = postgres::queries;
using postgres::detail::exec;
using postgres::detail::exec1;
using postgres::detail::TextArray;

constexpr const char* kChannel = "mailsync_jobs";

using postgres::detail::from_micros;

// NULL (the database's now()) or the injected time, as a parameter.
struct NowParam : postgres::detail::NullableParam {
  explicit NowParam(std::optional<TimePoint> now) : NullableParam(NullableParam::time(now)) {}
};

class JobReceiver final : public pqxx::notification_receiver {
 public:
  explicit JobReceiver(pqxx::connection_base& connection)
      : pqxx::notification_receiver(connection, kChannel) {}
  void operator()(const std::string&, int) override { notified = true; }
  bool notified = false;
};

// A row of kJobClaim, kJobTake or kJobInsertRunning.
Job job_of(const pqxx::row& row) {
  Job job;
  job.id = row[0].as<int64_t>();
  job.kind = row[1].as<std::string>();
  if (!row[2].is_null()) job.route_key = row[2].as<std::string>();
  job.args_json = row[3].as<std::string>();
  job.priority = row[4].as<int>();
  job.attempt = row[5].as<int>();
  job.max_attempts = row[6].as<int>();
  job.run_at = from_micros(row[7].as<int64_t>());
  job.created_at = from_micros(row[8].as<int64_t>());
  return job;
}

class PgJobStore final : public JobStore {
 public:
  PgJobStore(std::string url, const std::string& application_name)
      : db_(std::move(url), application_name) {}

  std::vector<int64_t> enqueue(std::span<const NewJob> jobs) override {
    if (jobs.empty()) return {};
    TextArray kinds, routes, args, priorities, run_ats, max_attempts;
    for (const NewJob& job : jobs) {
      kinds.add(job.kind);
      routes.add_optional(job.route_key);
      args.add(job.args_json);
      priorities.add(std::to_string(job.priority));
      run_ats.add_time(job.run_at);
      max_attempts.add(std::to_string(job.max_attempts));
    }
    return db_.run([&] {
      pqxx::work work(db_.connection());
      const pqxx::result result = exec(work, q::kJobEnqueue, kinds.str(), routes.str(), args.str(),
                                       priorities.str(), run_ats.str(), max_attempts.str());
      work.commit();
      std::vector<int64_t> ids;
      for (const auto& row : result) ids.push_back(row[0].as<int64_t>());
      return ids;
    });
  }

  std::vector<Job> claim(const std::string& owner, int limit, std::chrono::milliseconds lease,
                         std::span<const std::string> kinds,
                         std::optional<TimePoint> now) override {
    TextArray kind_array;
    for (const auto& kind : kinds) kind_array.add(kind);
    const NowParam now_param(now);
    return db_.run([&] {
      pqxx::work work(db_.connection());
      const pqxx::result result = exec(work, q::kJobClaim, owner, limit, now_param.get(),
                                       static_cast<int64_t>(lease.count()), kind_array.str());
      work.commit();
      std::vector<Job> jobs;
      jobs.reserve(result.size());
      for (const auto& row : result) jobs.push_back(job_of(row));
      // The UPDATE returns rows in no particular order; hand them out in claim order.
      std::sort(jobs.begin(), jobs.end(), [](const Job& a, const Job& b) {
        return std::tie(a.priority, a.run_at, a.id) < std::tie(b.priority, b.run_at, b.id);
      });
      return jobs;
    });
  }

  RouteClaim claim_route(const std::string& owner, const std::string& route_key,
                         std::chrono::milliseconds lease) override {
    const auto millis = static_cast<int64_t>(lease.count());
    return db_.run([&] {
      pqxx::work work(db_.connection());
      RouteClaim claim;
      const pqxx::result active = exec(work, q::kJobRouteActive, route_key);
      pqxx::result taken;
      if (active.empty()) {
        taken = exec(work, q::kJobInsertRunning, route_key, owner, millis);
      } else if (active[0][1].as<std::string>() == "available") {
        taken = exec(work, q::kJobTake, active[0][0].as<int64_t>(), owner, millis);
      } else {
        claim.held_job = active[0][0].as<int64_t>();
        claim.held_by = active[0][2].is_null() ? "" : active[0][2].as<std::string>();
        if (!active[0][3].is_null()) claim.held_until = from_micros(active[0][3].as<int64_t>());
      }
      if (!taken.empty()) claim.job = job_of(taken[0]);
      work.commit();
      return claim;
    });
  }

  std::vector<FinishedJob> finish(const std::string& owner, std::span<const Finish> finishes,
                                  std::optional<TimePoint> now) override {
    if (finishes.empty()) return {};
    const bool plain_successes = std::all_of(finishes.begin(), finishes.end(), [](const Finish& f) {
      return f.outcome == Outcome::kSucceeded && !f.record_attempt;
    });
    if (plain_successes) return succeed(owner, finishes, now);
    TextArray ids, outcomes, errors, run_ats, records, run_ids, fetched, appended, skipped, failed,
        bytes;
    for (const Finish& f : finishes) {
      ids.add(std::to_string(f.job_id));
      outcomes.add(to_string(f.outcome));
      if (f.error.empty())
        errors.add_null();
      else
        errors.add(f.error);
      run_ats.add_time(f.run_at);
      records.add(f.record_attempt ? "t" : "f");
      run_ids.add(f.run_id);
      fetched.add(std::to_string(f.stats.fetched));
      appended.add(std::to_string(f.stats.appended));
      skipped.add(std::to_string(f.stats.skipped));
      failed.add(std::to_string(f.stats.failed));
      bytes.add(std::to_string(f.stats.bytes));
    }
    const NowParam now_param(now);
    return db_.run([&] {
      pqxx::nontransaction work(db_.connection());  // one statement (see heartbeat)
      const pqxx::result result =
          exec(work, q::kJobFinish, ids.str(), outcomes.str(), errors.str(), run_ats.str(),
               records.str(), run_ids.str(), fetched.str(), appended.str(), skipped.str(),
               failed.str(), bytes.str(), now_param.get(), owner);
      std::vector<FinishedJob> finished;
      for (const auto& row : result)
        finished.push_back({row[0].as<int64_t>(), row[1].as<std::string>()});
      return finished;
    });
  }

  std::vector<FinishedJob> succeed(const std::string& owner, std::span<const Finish> finishes,
                                   std::optional<TimePoint> now) {
    std::vector<int64_t> ids;
    ids.reserve(finishes.size());
    for (const Finish& f : finishes) ids.push_back(f.job_id);
    const NowParam now_param(now);
    return db_.run([&] {
      pqxx::nontransaction work(db_.connection());  // one statement (see heartbeat)
      const pqxx::result result = exec(
          work, q::kJobSucceed, postgres::detail::int_array<int64_t>(ids), owner, now_param.get());
      std::vector<FinishedJob> finished;
      finished.reserve(result.size());
      for (const auto& row : result) finished.push_back({row[0].as<int64_t>(), "succeeded"});
      return finished;
    });
  }

  std::vector<int64_t> heartbeat(const std::string& owner, std::span<const int64_t> ids,
                                 std::chrono::milliseconds lease,
                                 std::optional<TimePoint> now) override {
    if (ids.empty()) return {};
    const NowParam now_param(now);
    return db_.run([&] {
      // Autocommit, as finish and release: a worker frozen (SIGSTOP, a paused VM) between a
      // transaction's UPDATE and its COMMIT would hold the job row's lock for the whole freeze,
      // and the rescue of its lease, a run-once and the next fenced write would wait on it.
      pqxx::nontransaction work(db_.connection());
      const pqxx::result result = exec(work, q::kJobHeartbeat, postgres::detail::int_array(ids),
                                       owner, static_cast<int64_t>(lease.count()), now_param.get());
      std::vector<int64_t> held;
      for (const auto& row : result) held.push_back(row[0].as<int64_t>());
      return held;
    });
  }

  int release(const std::string& owner, std::span<const int64_t> ids,
              std::optional<TimePoint> now) override {
    if (ids.empty()) return 0;
    const NowParam now_param(now);
    return db_.run([&] {
      pqxx::nontransaction work(db_.connection());  // one statement (see heartbeat)
      const pqxx::result result =
          exec(work, q::kJobRelease, postgres::detail::int_array(ids), owner, now_param.get());
      return static_cast<int>(result.affected_rows());
    });
  }

  RescueResult rescue_expired(int limit, std::optional<TimePoint> now) override {
    const NowParam now_param(now);
    return db_.run([&] {
      pqxx::work work(db_.connection());
      const pqxx::result result = exec(work, q::kJobRescue, limit, now_param.get());
      work.commit();
      RescueResult rescued;
      for (const auto& row : result)
        (row[1].as<std::string>() == "dead" ? rescued.made_dead : rescued.made_available)
            .push_back(row[0].as<int64_t>());
      return rescued;
    });
  }

  PruneResult prune(std::chrono::seconds retention, std::chrono::seconds dead_retention, int limit,
                    std::optional<TimePoint> now) override {
    const NowParam now_param(now);
    return db_.run([&] {
      pqxx::work work(db_.connection());
      const pqxx::row row =
          exec1(work, q::kJobPrune, static_cast<int64_t>(retention.count()),
                static_cast<int64_t>(dead_retention.count()), limit, now_param.get());
      work.commit();
      return PruneResult{row[0].as<int>(), row[1].as<int>()};
    });
  }

  void listen() override {
    db_.run([&] { receiver_ = std::make_unique<JobReceiver>(db_.connection()); });
  }

  bool wait(std::chrono::milliseconds timeout, int wake_fd) override {
    return db_.run(
        [&] {
          if (receiver_) {
            receiver_->notified = false;
            db_.connection().get_notifs();  // what arrived while other statements ran
            if (receiver_->notified) return true;
          }
          pollfd fds[2] = {{receiver_ ? db_.connection().sock() : -1, POLLIN, 0},
                           {wake_fd, POLLIN, 0}};
          const int ready = ::poll(fds, 2, static_cast<int>(timeout.count()));
          if (ready < 0 && errno != EINTR)
            throw postgres::DatabaseUnavailable(std::string("poll: ") + util::errno_text(errno));
          if (fds[1].fd >= 0 && (fds[1].revents & POLLIN) != 0) {
            uint64_t count = 0;
            [[maybe_unused]] const ssize_t n =
                ::read(wake_fd, &count, sizeof count);  // reset the eventfd
          }
          if (receiver_ && (fds[0].revents & (POLLIN | POLLERR | POLLHUP)) != 0) {
            db_.connection().get_notifs();  // throws broken_connection when the server went away
            return receiver_->notified;
          }
          return false;
        },
        timeout);
  }

 private:
  postgres::detail::StoreConnection db_;
  std::unique_ptr<JobReceiver> receiver_;
};

}  // namespace

std::unique_ptr<JobStore> make_pg_job_store(const std::string& database_url,
                                            const std::string& application_name) {
  return std::make_unique<PgJobStore>(database_url, application_name);
}

}  // namespace mailsync::queue
