// The worker pool: producer (claims, heartbeats, LISTEN), executors (run handlers, cancel on
// lost lease or shutdown), completer (finishes attempts in batches), and the handler registry.
// Over 400 lines on purpose, for now: the three threads share one Impl (slots, queues, the
// shutdown protocol) whose invariants read best in one place; splitting it into producer /
// executor / completer files comes with WorkerPool::run_once() and store factories (issue
// "route_sync in parts", item 4, not done yet).

#include "mailsync/queue/worker_pool.hpp"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "mailsync/log.hpp"
#include "mailsync/metrics.hpp"
#include "mailsync/postgres/errors.hpp"
#include "mailsync/queue/job_store.hpp"
#include "mailsync/util/random.hpp"

namespace mailsync::queue {

namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string default_owner() {
  char host[256] = "host";
  ::gethostname(host, sizeof host - 1);
  return std::string(host) + ":" + std::to_string(::getpid()) + ":" + util::random_hex(4);
}

// A finished attempt waiting for the completer.
struct Pending {
  int64_t job_id;
  int attempt;
  const KindConfig* kind;
  std::string run_id;
  JobResult result;
  std::string kind_name;
  bool release =
      false;  // interrupted by shutdown: give the job back instead of recording an outcome
};

}  // namespace

// ---- handlers ------------------------------------------------------------------------------

void HandlerRegistry::add(std::string kind, KindConfig config) {
  if (!config.handler) throw std::invalid_argument("kind " + kind + ": no handler");
  if (const std::string problem = config.retry.validate(); !problem.empty())
    throw std::invalid_argument("kind " + kind + ": " + problem);
  kinds_[std::move(kind)] = std::move(config);
}

const KindConfig* HandlerRegistry::find(const std::string& kind) const {
  const auto found = kinds_.find(kind);
  return found == kinds_.end() ? nullptr : &found->second;
}

std::vector<std::string> HandlerRegistry::kinds() const {
  std::vector<std::string> names;
  for (const auto& [name, config] : kinds_) names.push_back(name);
  return names;
}

JobResult run_noop(JobContext& context) {
  const auto args =
      nlohmann::json::parse(context.job.args_json, nullptr, /*allow_exceptions=*/false);
  if (!args.is_object()) return JobResult::succeeded();
  if (const auto sleep = args.find("sleep_ms"); sleep != args.end() && sleep->is_number_integer()) {
    // Tests wait for this line to know the job is executing, not only claimed.
    spdlog::info("noop: sleeping {} ms", sleep->get<int64_t>());
    const auto until = SteadyClock::now() + milliseconds(sleep->get<int64_t>());
    // "ignore_cancel": a stand-in for a handler stuck in a call that cannot be interrupted.
    const bool ignore_cancel = args.value("ignore_cancel", false);
    while (SteadyClock::now() < until) {
      if (context.cancelled() && !ignore_cancel)
        return JobResult::cancelled("cancelled while sleeping");
      std::this_thread::sleep_for(
          std::min<SteadyClock::duration>(milliseconds(10), until - SteadyClock::now()));
    }
  }
  if (const auto text = args.find("throw"); text != args.end() && text->is_string())
    throw std::runtime_error(text->get<std::string>());
  if (const auto text = args.find("fail"); text != args.end() && text->is_string())
    return JobResult::failed(text->get<std::string>());
  if (const auto text = args.find("dead"); text != args.end() && text->is_string())
    return JobResult::dead(text->get<std::string>());
  if (const auto delay = args.find("retry_in_ms");
      delay != args.end() && delay->is_number_integer())
    return JobResult::retry(Clock::now() + milliseconds(delay->get<int64_t>()), "asked to wait");
  return JobResult::succeeded();
}

KindConfig noop_kind() {
  return KindConfig{run_noop, RetryPolicy{}, false};
}

std::string WorkerConfig::validate() const {
  if (database_url.empty()) return "MAILSYNC_DATABASE_URL is not set";
  if (concurrency < 1 || concurrency > 10'000) return "concurrency must be between 1 and 10000";
  if (prefetch < 0 || prefetch > 100'000) return "prefetch must be between 0 and 100000";
  if (poll_interval < milliseconds(10)) return "poll interval must be at least 10 ms";
  if (lease < milliseconds(300)) return "lease must be at least 300 ms";
  if (shutdown_timeout.count() < 0) return "shutdown timeout must not be negative";
  return {};
}

// ---- the pool ------------------------------------------------------------------------------

// The Prometheus series of one kind, looked up once (Family::Add locks and hashes labels).
struct KindSeries {
  prometheus::Counter* claimed;
  prometheus::Counter* succeeded;
  prometheus::Counter* failed;
  prometheus::Counter* dead;
  prometheus::Counter* cancelled;
  prometheus::Histogram* duration;

  explicit KindSeries(const std::string& kind) {
    auto& m = metrics::get();
    claimed = &metrics::of(m.jobs_claimed, "kind", kind);
    succeeded = &metrics::of(m.jobs_succeeded, "kind", kind);
    failed = &metrics::of(m.jobs_failed, "kind", kind);
    dead = &metrics::of(m.jobs_dead, "kind", kind);
    cancelled = &metrics::of(m.jobs_cancelled, "kind", kind);
    duration = &m.job_duration.Add(
        {{"kind", kind}}, prometheus::Histogram::BucketBoundaries{0.001, 0.005, 0.02, 0.1, 0.5, 1,
                                                                  5, 15, 60, 300, 1800});
  }
};

struct WorkerPool::Impl {
  WorkerConfig config;
  HandlerRegistry handlers;
  std::vector<std::string> kinds;
  std::map<std::string, KindSeries> series;  // by kind; fixed after construction
  WorkerCounters counters;
  int wake_fd = -1;
  std::atomic<bool> stopping{false};
  bool once = false;  // run_once(): one claim, then wait until it is all done

  std::mutex mutex;  // guards everything below
  std::condition_variable ready_cv;
  std::condition_variable finished_cv;
  std::deque<Job> ready;          // claimed, not started
  std::set<int64_t> executing;    // started, not finished
  std::vector<Pending> finished;  // finished, not recorded
  // A job claimed and not yet recorded: its cancel flag and its lease as renewed here.
  struct Held {
    Held(const std::string& owner, milliseconds duration, SteadyClock::time_point sent)
        : lease(owner, duration, sent) {}
    std::atomic<bool> cancel{false};
    Lease lease;
  };
  std::map<int64_t, std::shared_ptr<Held>> held;
  int in_flight = 0;     // ready + executing: the used slots
  size_t recording = 0;  // batch being written
  bool executors_exit = false;
  bool completer_exit = false;

  std::vector<std::thread> executors;
  std::thread completer;

  void wake() const {
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_fd, &one, sizeof one);
  }

  std::unique_ptr<JobStore> connect(const char* role) const {
    return make_pg_job_store(config.database_url, std::string("mailsync-worker ") + role);
  }

  // Sleeps up to `duration` unless stop() is called meanwhile.
  void pause(milliseconds duration) const {
    const auto until = SteadyClock::now() + duration;
    while (!stopping.load() && SteadyClock::now() < until)
      std::this_thread::sleep_for(
          std::min<SteadyClock::duration>(milliseconds(50), until - SteadyClock::now()));
  }

  // `sent`: when the claim went out, the start of the jobs' leases as far as this process knows.
  void dispatch(std::vector<Job>& jobs, SteadyClock::time_point sent) {
    if (jobs.empty()) return;
    counters.claimed += static_cast<int64_t>(jobs.size());
    {
      std::lock_guard lock(mutex);
      for (Job& job : jobs) {
        held[job.id] = std::make_shared<Held>(config.owner, config.lease, sent);
        ready.push_back(std::move(job));
        ++in_flight;
      }
    }
    ready_cv.notify_all();
  }

  bool idle() {
    std::lock_guard lock(mutex);
    return in_flight == 0 && finished.empty() && recording == 0;
  }

  void heartbeat(JobStore& store) {
    std::vector<int64_t> ids;
    {
      std::lock_guard lock(mutex);
      for (const auto& [id, flag] : held) ids.push_back(id);
    }
    if (ids.empty()) return;
    const auto sent = SteadyClock::now();
    const std::vector<int64_t> still_held =
        store.heartbeat(config.owner, ids, config.lease, std::nullopt);
    const std::set<int64_t> kept(still_held.begin(), still_held.end());
    std::lock_guard lock(mutex);
    for (const int64_t id : ids) {
      if (kept.contains(id)) {
        if (const auto found = held.find(id); found != held.end())
          found->second->lease.renewed(sent);
        continue;
      }
      spdlog::warn("job {}: lease lost (rescued by maintenance); cancelling this attempt", id);
      if (const auto found = held.find(id); found != held.end()) found->second->cancel.store(true);
      const auto waiting =
          std::find_if(ready.begin(), ready.end(), [id](const Job& j) { return j.id == id; });
      if (waiting != ready.end()) {
        ready.erase(waiting);
        held.erase(id);
        --in_flight;
        ++counters.lost;
      }
    }
  }

  void execute_loop() {
    for (;;) {
      Job job;
      std::shared_ptr<Held> slot;
      {
        std::unique_lock lock(mutex);
        ready_cv.wait(lock, [&] { return !ready.empty() || executors_exit; });
        if (ready.empty()) return;
        job = std::move(ready.front());
        ready.pop_front();
        slot = held[job.id];
        executing.insert(job.id);
      }
      const std::string run_id = util::random_hex(16);
      const KindConfig* kind = handlers.find(job.kind);
      const log::ContextScope log_context({run_id, job.id, job.route_key.value_or("")});
      const auto started = SteadyClock::now();
      JobResult result;
      try {
        if (kind == nullptr) throw std::runtime_error("no handler for kind '" + job.kind + "'");
        JobContext context{job, run_id, slot->cancel, slot->lease};
        result = kind->handler(context);
      } catch (const std::exception& e) {
        result = JobResult::failed(std::string("handler threw: ") + e.what());
      } catch (...) {
        result = JobResult::failed("handler threw a non-standard exception");
      }
      if (const auto found = series.find(job.kind); found != series.end())
        found->second.duration->Observe(
            std::chrono::duration<double>(SteadyClock::now() - started).count());
      // Stopped by our own shutdown, not by the job: another worker should run it again.
      const bool interrupted = stopping.load() && slot->cancel.load();
      if (interrupted)
        spdlog::info("job {} ({}): interrupted by shutdown; giving it back", job.id, job.kind);
      else if (result.outcome != Outcome::kSucceeded)
        log::event(spdlog::level::warn,
                   "job " + std::to_string(job.id) + " (" + job.kind + ") " +
                       std::string(to_string(result.outcome)) + ": " + result.error,
                   {{"kind", job.kind},
                    {"attempt", job.attempt},
                    {"max_attempts", job.max_attempts},
                    {"outcome", to_string(result.outcome)}});
      {
        std::lock_guard lock(mutex);
        executing.erase(job.id);
        --in_flight;
        finished.push_back(
            Pending{job.id, job.attempt, kind, run_id, std::move(result), job.kind, interrupted});
      }
      finished_cv.notify_all();
      wake();
    }
  }

  void complete_loop() {
    std::mt19937_64 rng{std::random_device{}()};
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    std::unique_ptr<JobStore> store;
    milliseconds backoff{100};
    for (;;) {
      std::vector<Pending> batch;
      {
        std::unique_lock lock(mutex);
        finished_cv.wait(lock, [&] { return !finished.empty() || completer_exit; });
        if (finished.empty()) return;
        batch.swap(finished);
        recording = batch.size();
      }
      std::vector<Finish> finishes;
      std::vector<int64_t> releases;
      finishes.reserve(batch.size());
      const TimePoint now = Clock::now();
      for (Pending& p : batch) {
        if (p.release) {
          releases.push_back(p.job_id);
          continue;
        }
        Finish f{p.job_id,
                 p.result.outcome,
                 std::move(p.result.error),
                 std::nullopt,
                 p.kind != nullptr && p.kind->record_attempts,
                 p.run_id,
                 p.result.stats};
        if (f.outcome == Outcome::kFailed)
          f.run_at = next_retry_at(now, p.kind != nullptr ? p.kind->retry : RetryPolicy{},
                                   p.attempt, unit(rng));
        else if (f.outcome == Outcome::kRetryAt)
          f.run_at = p.result.retry_at;
        finishes.push_back(std::move(f));
      }

      std::vector<FinishedJob> recorded;
      const auto give_up_at = SteadyClock::now() + config.lease;
      for (;;) {
        try {
          if (!store) store = connect("completer");
          recorded = store->finish(config.owner, finishes, std::nullopt);
          if (!releases.empty()) {
            counters.released += store->release(config.owner, releases, std::nullopt);
            releases.clear();
          }
          backoff = milliseconds(100);
          break;
        } catch (const postgres::DatabaseUnavailable& e) {
          store.reset();
          // Past the lease the jobs are rescued and run again elsewhere; stop holding them here.
          if (SteadyClock::now() > give_up_at) {
            spdlog::error(
                "could not record {} finished jobs ({}); their leases expire and they run again",
                finishes.size(), e.what());
            break;
          }
          spdlog::warn("recording {} finished jobs: {}; retrying in {} ms", finishes.size(),
                       e.what(), backoff.count());
          std::this_thread::sleep_for(backoff);
          backoff = std::min(backoff * 2, milliseconds(5000));
        }
      }

      std::unordered_map<int64_t, const std::string*> state_of;
      state_of.reserve(recorded.size());
      for (const FinishedJob& f : recorded) state_of.emplace(f.id, &f.state);
      std::unordered_map<int64_t, const KindSeries*> series_of;
      for (const Pending& p : batch)
        if (const auto found = series.find(p.kind_name); found != series.end())
          series_of.emplace(p.job_id, &found->second);
      for (const Finish& f : finishes) {
        const auto found = state_of.find(f.job_id);
        if (found == state_of.end()) {
          ++counters.lost;  // the lease was lost: the job was rescued and may run elsewhere
          continue;
        }
        const auto kind_series = series_of.find(f.job_id);
        auto count = [&](prometheus::Counter* KindSeries::*which) {
          if (kind_series != series_of.end()) (kind_series->second->*which)->Increment();
        };
        const std::string& state = *found->second;
        if (state == "succeeded") {
          ++counters.succeeded;
          count(&KindSeries::succeeded);
        } else if (state == "dead") {
          ++counters.dead;
          count(&KindSeries::dead);
        } else if (state == "cancelled") {
          ++counters.cancelled;
          count(&KindSeries::cancelled);
        } else if (f.outcome == Outcome::kRetryAt) {
          ++counters.retried;
        } else {
          ++counters.failed;
          count(&KindSeries::failed);
        }
      }
      {
        std::lock_guard lock(mutex);
        for (const Pending& p : batch) held.erase(p.job_id);
        recording = 0;
      }
      finished_cv.notify_all();
      wake();
    }
  }

  // Graceful shutdown: give back what has not started, let running jobs finish within the
  // timeout, cancel and then give back the rest, record everything that finished.
  // Returns false when a handler ignored cancellation and its thread cannot be joined.
  bool shut_down(JobStore* store) {
    std::vector<int64_t> not_started;
    {
      std::lock_guard lock(mutex);
      for (const Job& job : ready) {
        not_started.push_back(job.id);
        held.erase(job.id);
      }
      in_flight -= static_cast<int>(ready.size());
      ready.clear();
    }
    release(store, not_started);

    std::unique_lock lock(mutex);
    if (!finished_cv.wait_for(lock, config.shutdown_timeout, [&] { return in_flight == 0; })) {
      spdlog::warn("shutdown: {} jobs still running after {} ms; cancelling them", in_flight,
                   config.shutdown_timeout.count());
      for (const int64_t id : executing) held[id]->cancel.store(true);
      finished_cv.wait_for(
          lock, std::min(config.shutdown_timeout, milliseconds(5000)) + milliseconds(100),
          [&] { return in_flight == 0; });
    }
    std::vector<int64_t> stuck(executing.begin(), executing.end());
    executors_exit = true;
    lock.unlock();
    ready_cv.notify_all();
    if (!stuck.empty()) {
      spdlog::error("shutdown: {} handlers ignored cancellation; giving their jobs back",
                    stuck.size());
      release(store, stuck);
    }
    for (auto& thread : executors) {
      if (stuck.empty())
        thread.join();
      else
        thread.detach();
    }
    {
      std::lock_guard guard(mutex);
      completer_exit = true;
    }
    finished_cv.notify_all();
    completer.join();
    return stuck.empty();
  }

  void release(JobStore* store, const std::vector<int64_t>& ids) {
    if (ids.empty()) return;
    try {
      std::unique_ptr<JobStore> own;
      if (store == nullptr) store = (own = connect("shutdown")).get();
      counters.released += store->release(config.owner, ids, std::nullopt);
    } catch (const std::exception& e) {
      spdlog::warn(
          "could not give back {} jobs at shutdown ({}); they are rescued when their lease expires",
          ids.size(), e.what());
    }
  }
};

WorkerPool::WorkerPool(WorkerConfig config, HandlerRegistry handlers) : impl_(new Impl) {
  if (const std::string problem = config.validate(); !problem.empty()) {
    delete impl_;
    throw std::invalid_argument(problem);
  }
  if (config.owner.empty()) config.owner = default_owner();
  impl_->config = std::move(config);
  impl_->handlers = std::move(handlers);
  impl_->kinds = impl_->handlers.kinds();
  for (const auto& kind : impl_->kinds) impl_->series.try_emplace(kind, kind);
  impl_->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl_->wake_fd < 0 || impl_->kinds.empty()) {
    delete impl_;
    throw std::invalid_argument("worker pool: no handlers registered or eventfd failed");
  }
}

WorkerPool::~WorkerPool() {
  if (leak_) return;
  ::close(impl_->wake_fd);
  delete impl_;
}

const WorkerCounters& WorkerPool::counters() const {
  return impl_->counters;
}
const std::string& WorkerPool::owner() const {
  return impl_->config.owner;
}

void WorkerPool::stop() {
  impl_->stopping.store(true);
  impl_->wake();
}

int64_t WorkerPool::run_once() {
  impl_->once = true;
  run();
  return impl_->counters.claimed.load();
}

void WorkerPool::run() {
  Impl& s = *impl_;
  const WorkerConfig& config = s.config;
  std::unique_ptr<JobStore> store = s.connect("producer");  // unreachable at start: throw
  if (config.listen) store->listen();
  for (int i = 0; i < config.concurrency; ++i) s.executors.emplace_back([&s] { s.execute_loop(); });
  s.completer = std::thread([&s] { s.complete_loop(); });
  std::string kind_list;
  for (const auto& kind : s.kinds) kind_list += (kind_list.empty() ? "" : ",") + kind;
  spdlog::info("worker {} started: kinds {}, concurrency {}, {}", config.owner, kind_list,
               config.concurrency, config.listen ? "LISTEN + poll" : "poll only");

  const milliseconds heartbeat_every = config.lease / 3;
  auto next_heartbeat = SteadyClock::now() + heartbeat_every;
  milliseconds backoff{200};
  bool claimed_once = false;
  while (!s.stopping.load()) {
    try {
      if (!store) {
        store = s.connect("producer");
        if (config.listen) store->listen();
        spdlog::info("database reachable again");
      }
      if (SteadyClock::now() >= next_heartbeat) {
        s.heartbeat(*store);
        next_heartbeat = SteadyClock::now() + heartbeat_every;
      }
      if (s.once && claimed_once) {
        if (s.idle()) break;
        store->wait(std::min(heartbeat_every, milliseconds(50)), s.wake_fd);
        continue;
      }
      int free_slots;
      {
        std::lock_guard lock(s.mutex);
        free_slots = config.concurrency + config.prefetch - s.in_flight;
      }
      if (free_slots > 0) {
        const auto sent = SteadyClock::now();
        std::vector<Job> jobs =
            store->claim(config.owner, free_slots, config.lease, s.kinds, std::nullopt);
        for (const Job& job : jobs)
          if (const auto found = s.series.find(job.kind); found != s.series.end())
            found->second.claimed->Increment();
        const bool full = static_cast<int>(jobs.size()) == free_slots;
        const bool none = jobs.empty();
        s.dispatch(jobs, sent);
        claimed_once = true;
        if (s.once) continue;
        if (full) continue;  // more may be due
        if (none && config.drain && s.idle()) break;
      }
      const auto until_heartbeat =
          std::chrono::duration_cast<milliseconds>(next_heartbeat - SteadyClock::now()) +
          milliseconds(1);
      s.counters.waits.fetch_add(1);
      store->wait(std::clamp(until_heartbeat, milliseconds(1), config.poll_interval), s.wake_fd);
      backoff = milliseconds(200);
    } catch (const postgres::DatabaseUnavailable& e) {
      spdlog::warn("database unavailable: {}; retrying in {} ms", e.what(), backoff.count());
      store.reset();
      s.pause(backoff);
      backoff = std::min(backoff * 2, milliseconds(10'000));
    } catch (const postgres::DatabaseError& e) {
      spdlog::error("queue statement failed (SQLSTATE {}): {}; retrying in {} ms", e.sqlstate(),
                    e.what(), backoff.count());
      s.pause(backoff);
      backoff = std::min(backoff * 2, milliseconds(10'000));
    }
  }
  const bool clean = s.shut_down(store.get());
  spdlog::info(
      "worker {} stopped: {} claimed, {} succeeded, {} failed, {} retried, {} dead, {} released, "
      "{} lost",
      config.owner, s.counters.claimed.load(), s.counters.succeeded.load(),
      s.counters.failed.load(), s.counters.retried.load(), s.counters.dead.load(),
      s.counters.released.load(), s.counters.lost.load());
  leak_ = !clean;
}

}  // namespace mailsync::queue
