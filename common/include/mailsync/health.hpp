#pragma once

#include <memory>
#include <optional>
#include <string>

#include "mailsync/dynamo/dynamo_client.hpp"
#include "mailsync/metrics.hpp"

// What the worker and the scheduler answer on --metrics-port: /metrics, /healthz and /readyz.
namespace mailsync::health {

struct Checks {
  std::string program;       // "mailsync-worker": names the database connection
  std::string database_url;  // /readyz: the database answers a query
  // /readyz: the DynamoDB gate is open too (a worker running route_sync). Empty: not checked.
  std::optional<dynamo::DynamoOptions> gate;
  // Refresh the queue and route gauges from the database before each scrape (the scheduler).
  bool queue_gauges = false;
};

// Starts the HTTP server; throws std::runtime_error when it cannot listen.
std::unique_ptr<metrics::Server> serve(const std::string& address, unsigned port, Checks checks);

// For an executable's --metrics-port: serve() and log the port, or say why not on stderr
// ("mailsync-worker: cannot serve metrics on ...") and return null (the caller exits 2).
std::unique_ptr<metrics::Server> serve_or_report(const std::string& address, unsigned port,
                                                 Checks checks);

}  // namespace mailsync::health
