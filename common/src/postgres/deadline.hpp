#pragma once

// Private to the Postgres layer: every wait for the database has a bound.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace mailsync::postgres::detail {

// MAILSYNC_DATABASE_TIMEOUT_SECONDS (default 60): the longest any statement (or transaction
// step) may wait for the database's answer, read when a connection opens.
std::chrono::milliseconds statement_timeout();

// The connection string with what libpq leaves unset added where the URL does not set it: the
// socket bounds connect_timeout=10, TCP keepalives (idle 30 s, every 10 s, 3 probes) and
// tcp_user_timeout=60000, so a connection whose peer vanished (a network partition, a host gone)
// fails within about a minute instead of TCP's ~15; and `application_name` (pg_stat_activity),
// a startup parameter rather than a SET, so that it survives PgBouncer's transaction pooling; and
// for a single host given by name, `hostaddr` with its address resolved within 10 s (libpq's own
// lookup has no bound). Throws pqxx::broken_connection when that name does not resolve in time.
std::string connection_string(const std::string& database_url, const std::string& application_name);

// While alive, the socket `fd` is watched: past `limit` a watchdog thread shuts it down, so the
// read blocked on it fails at once (libpq: connection lost) instead of waiting for an answer that
// never comes (a half-open connection, a proxy that stopped forwarding, a stopped server). The
// connection is unusable afterwards; callers reconnect, as after any outage.
class Deadline {
 public:
  Deadline(int fd, std::chrono::milliseconds limit);
  ~Deadline();
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;
  bool expired() const { return expired_.load(); }

 private:
  uint64_t id_ = 0;
  std::atomic<bool> expired_{false};
};

}  // namespace mailsync::postgres::detail
