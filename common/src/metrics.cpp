#include "mailsync/metrics.hpp"

#include <arpa/inet.h>  // inet_pton: checking the listen address
#include <civetweb.h>
#include <prometheus/text_serializer.h>

#include <mutex>
#include <stdexcept>
#include <thread>

#include "mailsync/net/wake_listener.hpp"

namespace mailsync::metrics {

namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

}  // namespace

// Every metric is created here, named once, so the exposition and the README's table agree.
Metrics::Metrics()
    : registry(std::make_shared<prometheus::Registry>()),
      jobs_claimed(BuildCounter()
                       .Name("mailsync_jobs_claimed_total")
                       .Help("Jobs claimed by this worker, by kind")
                       .Register(*registry)),
      jobs_succeeded(BuildCounter()
                         .Name("mailsync_jobs_succeeded_total")
                         .Help("Job attempts that succeeded, by kind")
                         .Register(*registry)),
      jobs_failed(BuildCounter()
                      .Name("mailsync_jobs_failed_total")
                      .Help("Job attempts that failed and will be retried with backoff, by kind")
                      .Register(*registry)),
      jobs_dead(BuildCounter()
                    .Name("mailsync_jobs_dead_total")
                    .Help("Jobs moved to dead (out of attempts or a permanent error), by kind")
                    .Register(*registry)),
      jobs_cancelled(BuildCounter()
                         .Name("mailsync_jobs_cancelled_total")
                         .Help("Jobs cancelled (route unconfigured, auth_required), by kind")
                         .Register(*registry)),
      job_duration(BuildHistogram()
                       .Name("mailsync_job_duration_seconds")
                       .Help("Time from the start of a job attempt to its end, by kind")
                       .Register(*registry)),
      messages_appended(BuildCounter()
                            .Name("mailsync_messages_appended_total")
                            .Help("Messages appended to the destination")
                            .Register(*registry)
                            .Add({})),
      bytes_appended(BuildCounter()
                         .Name("mailsync_bytes_appended_total")
                         .Help("Bytes of the messages appended to the destination")
                         .Register(*registry)
                         .Add({})),
      messages_skipped(BuildCounter()
                           .Name("mailsync_messages_skipped_total")
                           .Help("Messages found already copied (crash reconciliation, dedupe)")
                           .Register(*registry)
                           .Add({})),
      message_failures(BuildCounter()
                           .Name("mailsync_message_failures_total")
                           .Help("Messages not copied, by reason (permanent ones are not retried)")
                           .Register(*registry)),
      gate_failures(BuildCounter()
                        .Name("mailsync_gate_failures_total")
                        .Help("Jobs stopped before any IMAP work because DynamoDB was unavailable")
                        .Register(*registry)
                        .Add({})),
      leases_lost(BuildCounter()
                      .Name("mailsync_route_sync_leases_lost_total")
                      .Help("route_sync runs stopped because their job's lease was rescued or not "
                            "renewed in time (nothing more appended)")
                      .Register(*registry)
                      .Add({})),
      token_refreshes(BuildCounter()
                          .Name("mailsync_token_refreshes_total")
                          .Help("OAuth access tokens obtained from a refresh token, by provider")
                          .Register(*registry)),
      token_refresh_failures(BuildCounter()
                                 .Name("mailsync_token_refresh_failures_total")
                                 .Help("OAuth refreshes that failed, by provider")
                                 .Register(*registry)),
      routes_set_auth_required(BuildCounter()
                                   .Name("mailsync_routes_set_auth_required_total")
                                   .Help("Times a route was stopped in auth_required")
                                   .Register(*registry)
                                   .Add({})),
      watches_active(BuildGauge()
                         .Name("mailsync_watches_active")
                         .Help("route_watch jobs holding (or reconnecting) IDLE in this worker")
                         .Register(*registry)
                         .Add({})),
      watch_pushes(BuildCounter()
                       .Name("mailsync_watch_pushes_total")
                       .Help("route_sync jobs a route_watch enqueued because mail arrived")
                       .Register(*registry)
                       .Add({})),
      delivery_latency(
          BuildHistogram()
              .Name("mailsync_delivery_latency_seconds")
              .Help("From a message's arrival in Gmail (INTERNALDATE, 1 s resolution) to its "
                    "APPEND confirmed by Outlook")
              .Register(*registry)
              .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 3, 5, 10, 30, 60, 120, 300,
                                                               600, 1800, 3600, 86400})),
      queue_due(BuildGauge()
                    .Name("mailsync_queue_due_jobs")
                    .Help("Available jobs whose run_at has come, by kind")
                    .Register(*registry)),
      jobs_by_state(BuildGauge()
                        .Name("mailsync_jobs")
                        .Help("Jobs in the table, by kind and state")
                        .Register(*registry)),
      oldest_due_age(BuildGauge()
                         .Name("mailsync_queue_oldest_due_age_seconds")
                         .Help("Age of the oldest due job (0 when none is due)")
                         .Register(*registry)
                         .Add({})),
      routes_auth_required(BuildGauge()
                               .Name("mailsync_routes_auth_required")
                               .Help("Routes stopped until a person renews their token")
                               .Register(*registry)
                               .Add({})),
      routes_paused(BuildGauge()
                        .Name("mailsync_routes_paused")
                        .Help("Routes paused by an operator")
                        .Register(*registry)
                        .Add({})),
      token_expiry(BuildGauge()
                       .Name("mailsync_refresh_token_expiry_timestamp_seconds")
                       .Help("When the first of a route's refresh tokens ends unless renewed "
                             "(Unix time), by route")
                       .Register(*registry)),
      jobs_enqueued(BuildCounter()
                        .Name("mailsync_scheduler_jobs_enqueued_total")
                        .Help("route_sync jobs enqueued by this scheduler's cycles")
                        .Register(*registry)
                        .Add({})) {}

Metrics& get() {
  static Metrics metrics;
  return metrics;
}

std::string render() {
  return prometheus::TextSerializer().Serialize(get().registry->Collect());
}

// ---- the HTTP server --------------------------------------------------------------------------

struct Server::State {
  ServerOptions options;
  mg_context* context = nullptr;
  std::mutex ready_mutex;
  std::chrono::steady_clock::time_point ready_at{};
  std::optional<std::string> ready_answer;
  std::mutex scrape_mutex;

  std::optional<std::string> readiness() {
    if (!options.ready) return std::nullopt;
    std::lock_guard lock(ready_mutex);
    const auto now = std::chrono::steady_clock::now();
    if (ready_at == std::chrono::steady_clock::time_point{} ||
        now - ready_at >= options.ready_cache) {
      ready_answer = options.ready();
      ready_at = now;
    }
    return ready_answer;
  }
};

namespace {

void reply(mg_connection* connection, int status, const char* reason, const char* content_type,
           const std::string& body, const std::string& extra_headers = "", bool head = false) {
  mg_printf(connection,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: "
            "no-store\r\nConnection: close\r\n%s\r\n",
            status, reason, content_type, body.size(), extra_headers.c_str());
  if (!head) mg_write(connection, body.data(), body.size());
}

int on_page(mg_connection* connection, void* data) {
  auto& state = *static_cast<Server::State*>(data);
  const mg_request_info* info = mg_get_request_info(connection);
  Request request;
  request.method = info->request_method != nullptr ? info->request_method : "";
  request.path = info->local_uri != nullptr ? info->local_uri : "/";
  request.query = info->query_string != nullptr ? info->query_string : "";
  if (const char* authorization = mg_get_header(connection, "Authorization"))
    request.authorization = authorization;
  Reply answer;
  if (request.method != "GET" && request.method != "HEAD") {
    answer = {405,
              "text/plain; charset=utf-8",
              "read-only: GET and HEAD only\n",
              {{"Allow", "GET, HEAD"}}};
  } else if (!state.options.pages) {
    answer = {404, "text/plain; charset=utf-8", "not found\n", {}};
  } else {
    try {
      answer = state.options.pages(request);
    } catch (const std::exception&) {
      answer = {500, "text/plain; charset=utf-8", "internal error\n", {}};
    }
  }
  std::string headers;
  for (const auto& [name, value] : answer.headers)
    headers.append(name).append(": ").append(value).append("\r\n");
  reply(connection, answer.status, mg_get_response_code_text(connection, answer.status),
        answer.content_type.c_str(), answer.body, headers, request.method == "HEAD");
  return answer.status;
}

int on_metrics(mg_connection* connection, void* data) {
  auto& state = *static_cast<Server::State*>(data);
  std::string body;
  {
    std::lock_guard lock(state.scrape_mutex);
    try {
      if (state.options.before_scrape) state.options.before_scrape();
    } catch (const std::exception&) {
      // Stale gauges are better than no metrics; /readyz says what is wrong.
    }
    body = render();
  }
  reply(connection, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
  return 200;
}

int on_healthz(mg_connection* connection, void*) {
  reply(connection, 200, "OK", "text/plain; charset=utf-8", "ok\n");
  return 200;
}

int on_readyz(mg_connection* connection, void* data) {
  auto& state = *static_cast<Server::State*>(data);
  std::optional<std::string> problem;
  try {
    problem = state.readiness();
  } catch (const std::exception& e) {
    problem = e.what();
  }
  if (problem) {
    reply(connection, 503, "Service Unavailable", "text/plain; charset=utf-8",
          "not ready: " + *problem + "\n");
    return 503;
  }
  reply(connection, 200, "OK", "text/plain; charset=utf-8", "ready\n");
  return 200;
}

int quiet_log(const mg_connection*, const char*) {
  return 1;
}  // civetweb's own lines: none

}  // namespace

Server::Server(ServerOptions options) : state_(std::make_unique<State>()) {
  state_->options = std::move(options);
  static std::once_flag init;
  std::call_once(init, [] { mg_init_library(0); });
  // civetweb reads what it cannot parse as "any address": check the address first.
  const std::string& address = state_->options.address;
  unsigned char parsed[16];
  const bool v6 = inet_pton(AF_INET6, address.c_str(), parsed) == 1;
  if (!v6 && inet_pton(AF_INET, address.c_str(), parsed) != 1)
    throw std::runtime_error("cannot serve " + state_->options.purpose + ": '" + address +
                             "' is not an IPv4 or IPv6 address");
  if (state_->options.port > 65535)
    throw std::runtime_error("cannot serve " + state_->options.purpose + ": port " +
                             std::to_string(state_->options.port) + " is out of range");
  const std::string listen =
      (v6 ? "[" + address + "]" : address) + ":" + std::to_string(state_->options.port);
  const char* config[] = {"listening_ports",    listen.c_str(), "num_threads", "2",
                          "request_timeout_ms", "10000",        nullptr};
  mg_callbacks callbacks{};
  callbacks.log_message = quiet_log;
  char error_text[256] = "";
  mg_init_data init_data{&callbacks, nullptr, config};
  mg_error_data error_data{};
  error_data.text = error_text;
  error_data.text_buffer_size = sizeof error_text;
  state_->context = mg_start2(&init_data, &error_data);
  if (state_->context == nullptr)
    throw std::runtime_error("cannot serve " + state_->options.purpose + " on " + listen +
                             (error_text[0] != '\0' ? ": " + std::string(error_text) : ""));
  if (state_->options.probes) {
    mg_set_request_handler(state_->context, "/metrics$", on_metrics, state_.get());
    mg_set_request_handler(state_->context, "/healthz$", on_healthz, state_.get());
    mg_set_request_handler(state_->context, "/readyz$", on_readyz, state_.get());
  }
  if (state_->options.pages) mg_set_request_handler(state_->context, "/", on_page, state_.get());
  mg_server_port ports[4]{};
  const int count = mg_get_server_ports(state_->context, 4, ports);
  port_ = count > 0 ? static_cast<unsigned>(ports[0].port) : state_->options.port;
}

Server::~Server() {
  if (!state_ || state_->context == nullptr) return;
  // civetweb's listener polls with a 2 s timeout before it sees the stop flag; a connection
  // made once the flag is set wakes it at once, so stopping takes milliseconds, not seconds.
  std::thread waker([port = port_, address = state_->options.address] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    net::wake_listener(address, static_cast<uint16_t>(port));
  });
  mg_stop(state_->context);
  waker.join();
}

}  // namespace mailsync::metrics
