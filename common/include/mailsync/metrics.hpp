#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

// Prometheus metrics of a process (worker, scheduler, run-once) and the small HTTP server that
// exposes them with /healthz and /readyz. The registry is process-wide, like the logger: the queue,
// the sync pipeline and the token provider count into it whether or not a server exposes it.
namespace mailsync::metrics {

struct Metrics {
  Metrics();
  std::shared_ptr<prometheus::Registry> registry;

  // Worker: jobs by kind.
  prometheus::Family<prometheus::Counter>& jobs_claimed;
  prometheus::Family<prometheus::Counter>& jobs_succeeded;
  prometheus::Family<prometheus::Counter>& jobs_failed;  // an attempt failed; retried later
  prometheus::Family<prometheus::Counter>& jobs_dead;
  prometheus::Family<prometheus::Counter>& jobs_cancelled;
  prometheus::Family<prometheus::Histogram>& job_duration;  // seconds, by kind

  // route_sync.
  prometheus::Counter& messages_appended;
  prometheus::Counter& bytes_appended;
  prometheus::Counter& messages_skipped;                      // already copied (dedupe, reconcile)
  prometheus::Family<prometheus::Counter>& message_failures;  // by reason
  prometheus::Counter& gate_failures;
  prometheus::Counter& leases_lost;  // runs stopped because their job's lease was lost or stale
  prometheus::Family<prometheus::Counter>& token_refreshes;         // by provider
  prometheus::Family<prometheus::Counter>& token_refresh_failures;  // by provider
  prometheus::Counter& routes_set_auth_required;
  // Push (route_watch): watches held now, route_sync jobs they enqueued, and how long a message
  // took from arriving in Gmail (its INTERNALDATE) to stored in Outlook.
  prometheus::Gauge& watches_active;
  prometheus::Counter& watch_pushes;
  prometheus::Histogram& delivery_latency;

  // Scheduler (from the database, refreshed before each scrape).
  prometheus::Family<prometheus::Gauge>& queue_due;  // due available jobs, by kind
  prometheus::Family<prometheus::Gauge>& jobs_by_state;
  prometheus::Gauge& oldest_due_age;
  prometheus::Gauge& routes_auth_required;
  prometheus::Gauge& routes_paused;
  // When each route's first refresh token to end ends (by route key; only routes with a known
  // end: Google "Testing" apps, Microsoft's 90 days without use).
  prometheus::Family<prometheus::Gauge>& token_expiry;
  prometheus::Counter& jobs_enqueued;
};

Metrics& get();

// The registry in the Prometheus text exposition format (version 0.0.4).
std::string render();

// One label value ({"kind", "route_sync"}) of a family: shorthand for Family::Add.
template <typename T>
T& of(prometheus::Family<T>& family, const std::string& name, const std::string& value) {
  return family.Add({{name, value}});
}

// A request to ServerOptions::pages: GET or HEAD only reach it (anything else is answered 405).
struct Request {
  std::string method;
  std::string path;                          // decoded, without the query
  std::string query;                         // as sent, undecoded
  std::optional<std::string> authorization;  // the Authorization header
};

struct Reply {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // added to the standard ones
};

struct ServerOptions {
  std::string address = "0.0.0.0";
  // What the server is for, in its errors ("cannot serve metrics on ...").
  std::string purpose = "metrics";
  // /metrics, /healthz and /readyz; off for a server of pages only.
  bool probes = true;
  // Every other path, from civetweb's threads (GET and HEAD; HEAD's body is not sent). Unset: 404.
  std::function<Reply(const Request&)> pages;
  unsigned port = 0;  // 0: any free port (tests)
  // /readyz: nullopt when ready, else why not (one line, no secrets). Answers are cached for
  // `ready_cache` so a probe storm does not become a database storm.
  std::function<std::optional<std::string>()> ready;
  std::chrono::milliseconds ready_cache{2000};
  // Called before /metrics is rendered (the scheduler refreshes its gauges from the database).
  std::function<void()> before_scrape;
};

// GET /metrics, /healthz (the process answers), /readyz (ServerOptions::ready), and
// ServerOptions::pages for the rest. Runs its own threads (civetweb); stops in the destructor.
class Server {
 public:
  explicit Server(ServerOptions options);  // throws std::runtime_error when it cannot listen
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  unsigned port() const { return port_; }
  struct State;  // the implementation's (civetweb handlers reach it)

 private:
  std::unique_ptr<State> state_;
  unsigned port_ = 0;
};

}  // namespace mailsync::metrics
