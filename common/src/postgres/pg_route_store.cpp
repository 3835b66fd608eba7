// The PostgreSQL RouteStore: runs the named statements of route_queries.hpp on one connection.

#include "mailsync/queue/route_store.hpp"
#include "postgres/connection.hpp"
#include "postgres/params.hpp"
#include "postgres/pg_arrays.hpp"
#include "postgres/route_queries.hpp"

namespace mailsync::queue {

namespace {

namespace q = postgres::queries;
using postgres::detail::exec;
using postgres::detail::exec1;
using postgres::detail::NullableParam;
using postgres::detail::TextArray;

// NULL for "all", else the ids as an array literal.
NullableParam id_array(std::span<const int64_t> ids) {
  return ids.empty() ? NullableParam() : NullableParam(postgres::detail::int_array(ids));
}

std::vector<int64_t> ids_of(const pqxx::result& result) {
  std::vector<int64_t> ids;
  for (const auto& row : result) ids.push_back(row[0].as<int64_t>());
  return ids;
}

class PgRouteStore final : public RouteStore {
 public:
  PgRouteStore(std::string url, const std::string& application_name)
      : db_(std::move(url), application_name) {}

  RouteUpsert upsert_routes(std::span<const config::Route> routes) override {
    TextArray keys, gmail, outlook, folders, enabled, push;
    for (const auto& route : routes) {
      keys.add(route.key());
      gmail.add(route.gmail_email);
      outlook.add(route.outlook_email);
      folders.add(route.target_folder);
      enabled.add(route.enabled ? "t" : "f");
      push.add(route.push ? "t" : "f");
    }
    return db_.run([&] {
      pqxx::work work(db_.connection());
      const pqxx::row row = exec1(work, q::kRouteUpsert, keys.str(), gmail.str(), outlook.str(),
                                  folders.str(), enabled.str(), push.str());
      work.commit();
      return RouteUpsert{row[0].as<int>(), row[1].as<int>()};
    });
  }

  int ensure_route_watches() override {
    return db_.run([&] {
      pqxx::work work(db_.connection());
      const pqxx::result made = exec(work, q::kRouteWatchEnsure);
      work.commit();
      return static_cast<int>(made.size());
    });
  }

  std::optional<int> run_route_sync_cycle(const std::string& owner,
                                          std::chrono::milliseconds interval, bool force,
                                          int max_attempts, std::optional<TimePoint> now) override {
    const NullableParam now_param = NullableParam::time(now);
    return db_.run([&]() -> std::optional<int> {
      pqxx::work work(db_.connection());
      const pqxx::result claimed =
          exec(work, q::kCycleClaim, "route_sync", owner, static_cast<int64_t>(interval.count()),
               now_param.get(), force);
      if (claimed.empty()) return std::nullopt;  // another replica ran this interval's cycle
      const pqxx::result enqueued =
          exec(work, q::kRouteSyncEnqueue, static_cast<const char*>(nullptr), 0, now_param.get(),
               max_attempts);
      work.commit();
      return static_cast<int>(enqueued.size());
    });
  }

  std::vector<int64_t> enqueue_route_syncs(const EnqueueFilter& filter) override {
    const NullableParam route(filter.route_key);
    const NullableParam run_at = NullableParam::time(filter.run_at);
    return db_.run([&] {
      pqxx::work work(db_.connection());
      const pqxx::result result = exec(work, q::kRouteSyncEnqueue, route.get(), filter.priority,
                                       run_at.get(), filter.max_attempts);
      work.commit();
      return ids_of(result);
    });
  }

  bool route_exists(const std::string& route_key) override {
    return db_.run([&] {
      pqxx::read_transaction work(db_.connection());
      return !exec(work, q::kRouteExists, route_key).empty();
    });
  }

  bool set_paused(const std::string& route_key, bool paused) override {
    return db_.run([&] {
      pqxx::work work(db_.connection());
      const pqxx::row row = exec1(work, q::kRoutePause, route_key, paused);
      work.commit();
      return row[0].as<int>() == 1;
    });
  }

  nlohmann::json route_status() override { return json_of(q::kRouteStatus); }
  nlohmann::json queue_summary() override { return json_of(q::kQueueSummary); }
  nlohmann::json health_snapshot() override { return json_of(q::kHealthSnapshot); }
  nlohmann::json status_page() override { return json_of(q::kStatusPage); }
  nlohmann::json route_page(const std::string& route_key) override {
    return db_.run([&] {
      pqxx::read_transaction work(db_.connection());
      return nlohmann::json::parse(exec1(work, q::kRoutePage, route_key)[0].as<std::string>());
    });
  }

  nlohmann::json list_jobs(const JobsFilter& filter) override {
    const NullableParam state(filter.state), kind(filter.kind), route(filter.route_key);
    return db_.run([&] {
      pqxx::read_transaction work(db_.connection());
      const pqxx::row row =
          exec1(work, q::kJobsList, state.get(), kind.get(), route.get(), filter.limit);
      return nlohmann::json::parse(row[0].as<std::string>());
    });
  }

  std::vector<int64_t> retry_dead(std::span<const int64_t> ids, int extra_attempts) override {
    const NullableParam id_param = id_array(ids);
    return db_.run([&] {
      pqxx::work work(db_.connection());
      const pqxx::result result = exec(work, q::kDeadRetry, id_param.get(), extra_attempts);
      work.commit();
      return ids_of(result);
    });
  }

  std::vector<int64_t> discard_dead(std::span<const int64_t> ids) override {
    const NullableParam id_param = id_array(ids);
    return db_.run([&] {
      pqxx::work work(db_.connection());
      const pqxx::result result = exec(work, q::kDeadDiscard, id_param.get());
      work.commit();
      return ids_of(result);
    });
  }

 private:
  nlohmann::json json_of(const postgres::queries::Query& statement) {
    return db_.run([&] {
      pqxx::read_transaction work(db_.connection());
      return nlohmann::json::parse(exec1(work, statement)[0].as<std::string>());
    });
  }

  postgres::detail::StoreConnection db_;
};

}  // namespace

std::unique_ptr<RouteStore> make_pg_route_store(const std::string& database_url,
                                                const std::string& application_name) {
  return std::make_unique<PgRouteStore>(database_url, application_name);
}

}  // namespace mailsync::queue
