#include "mailsync/health.hpp"

#include <spdlog/spdlog.h>

#include <iostream>
#include <mutex>
#include <set>

#include "mailsync/postgres/errors.hpp"
#include "mailsync/queue/route_store.hpp"

namespace mailsync::health {

namespace {

// One database connection (and one DynamoDB client) for the probes and scrapes, made on first
// use and again after a failure. civetweb calls from its own threads: everything under one mutex.
class Probe {
 public:
  explicit Probe(Checks checks) : checks_(std::move(checks)) {}

  std::optional<std::string> ready() {
    std::lock_guard lock(mutex_);
    if (auto problem = query_database()) return "database: " + *problem;
    if (checks_.gate) {
      try {
        if (!dynamo_) dynamo_ = std::make_unique<dynamo::DynamoClient>(*checks_.gate);
        dynamo_->check_table();
      } catch (const std::exception& e) {
        dynamo_.reset();
        return "DynamoDB gate: " + std::string(e.what());
      }
    }
    return std::nullopt;
  }

  void refresh_gauges() {
    std::lock_guard lock(mutex_);
    query_database();
  }

 private:
  // Runs the snapshot query (and, for the scheduler, sets the gauges from it): nullopt when the
  // database answered.
  std::optional<std::string> query_database() {
    try {
      if (!store_)
        store_ = queue::make_pg_route_store(checks_.database_url, checks_.program + " health");
      const nlohmann::json snapshot = store_->health_snapshot();
      if (checks_.queue_gauges) set_gauges(snapshot);
      return std::nullopt;
    } catch (const postgres::DatabaseUnavailable& e) {
      store_.reset();
      return std::string(e.what());
    } catch (const postgres::DatabaseError& e) {
      store_.reset();
      return std::string(e.what());
    }
  }

  void set_gauges(const nlohmann::json& snapshot) {
    auto& m = metrics::get();
    // A kind with nothing due any more goes back to 0 instead of keeping its last value.
    for (const auto& kind : due_kinds_) metrics::of(m.queue_due, "kind", kind).Set(0);
    for (const auto& [kind, n] : snapshot["due"].items()) {
      metrics::of(m.queue_due, "kind", kind).Set(n.get<double>());
      due_kinds_.insert(kind);
    }
    for (const auto& row : snapshot["jobs"])
      m.jobs_by_state
          .Add({{"kind", row["kind"].get<std::string>()},
                {"state", row["state"].get<std::string>()}})
          .Set(row["jobs"].get<double>());
    const auto& age = snapshot["oldest_due_age_seconds"];
    m.oldest_due_age.Set(age.is_number() ? age.get<double>() : std::stod(age.get<std::string>()));
    m.routes_auth_required.Set(snapshot["auth_required"].get<double>());
    m.routes_paused.Set(snapshot["paused"].get<double>());
    // A route gone from the answer (removed, renewed to no known end) loses its series.
    std::set<std::string> now_expiring;
    for (const auto& [route, at] : snapshot["token_expiry"].items()) {
      metrics::of(m.token_expiry, "route", route).Set(at.get<double>());
      now_expiring.insert(route);
    }
    for (const auto& route : expiring_routes_)
      if (!now_expiring.contains(route))
        m.token_expiry.Remove(&metrics::of(m.token_expiry, "route", route));
    expiring_routes_ = std::move(now_expiring);
  }

  Checks checks_;
  std::mutex mutex_;
  std::unique_ptr<queue::RouteStore> store_;
  std::unique_ptr<dynamo::DynamoClient> dynamo_;
  std::set<std::string> due_kinds_;
  std::set<std::string> expiring_routes_;
};

}  // namespace

std::unique_ptr<metrics::Server> serve(const std::string& address, unsigned port, Checks checks) {
  const bool gauges = checks.queue_gauges;
  auto probe = std::make_shared<Probe>(std::move(checks));
  metrics::ServerOptions options;
  options.address = address;
  options.port = port;
  options.ready = [probe] { return probe->ready(); };
  if (gauges) options.before_scrape = [probe] { probe->refresh_gauges(); };
  return std::make_unique<metrics::Server>(std::move(options));
}

std::unique_ptr<metrics::Server> serve_or_report(const std::string& address, unsigned port,
                                                 Checks checks) {
  const std::string program = checks.program;
  try {
    auto server = serve(address, port, std::move(checks));
    spdlog::info("metrics, /healthz and /readyz on port {}", server->port());
    return server;
  } catch (const std::runtime_error& e) {
    std::cerr << program << ": " << e.what() << "\n";
    return nullptr;
  }
}

}  // namespace mailsync::health
