#include "postgres/deadline.hpp"

#include <libpq-fe.h>
#include <sys/socket.h>

#include <cctype>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <pqxx/except>

#include "mailsync/cli.hpp"
#include "mailsync/net/tls_stream.hpp"

namespace mailsync::postgres::detail {

namespace {

using Steady = std::chrono::steady_clock;

// One thread for the process, started with the first deadline. It never ends (the process does),
// so it is created once and never destroyed: no static destructor joins it at exit.
class Watchdog {
 public:
  static Watchdog& get() {
    static auto* const instance = new Watchdog;
    return *instance;
  }

  uint64_t arm(int fd, Steady::time_point at, std::atomic<bool>* expired) {
    std::lock_guard lock(mutex_);
    const uint64_t id = ++next_id_;
    watched_[id] = {fd, at, expired};
    if (!started_) {
      started_ = true;
      std::thread([this] { loop(); }).detach();
    }
    cv_.notify_one();
    return id;
  }

  // After disarm returns, the watchdog no longer touches the socket (it may then be closed).
  void disarm(uint64_t id) {
    std::lock_guard lock(mutex_);
    watched_.erase(id);
  }

 private:
  struct Watched {
    int fd;
    Steady::time_point at;
    std::atomic<bool>* expired;
  };

  void loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
      auto next = Steady::time_point::max();
      const auto now = Steady::now();
      for (auto it = watched_.begin(); it != watched_.end();) {
        if (it->second.at <= now) {
          it->second.expired->store(true);
          ::shutdown(it->second.fd, SHUT_RDWR);  // under the lock: the socket is still open
          it = watched_.erase(it);
        } else {
          next = std::min(next, it->second.at);
          ++it;
        }
      }
      if (next == Steady::time_point::max())
        cv_.wait(lock);
      else
        cv_.wait_until(lock, next);
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<uint64_t, Watched> watched_;
  uint64_t next_id_ = 0;
  bool started_ = false;
};

bool has_parameter(const std::string& url, const std::string& name) {
  return url.find(name + "=") != std::string::npos;
}

}  // namespace

std::chrono::milliseconds statement_timeout() {
  const cli::IntSetting seconds = cli::env_positive_int("MAILSYNC_DATABASE_TIMEOUT_SECONDS", 60);
  return std::chrono::seconds(seconds.error.empty() ? seconds.value : 60);
}

namespace {

constexpr std::chrono::seconds kResolveTimeout{10};  // as connect_timeout

// The host name libpq would resolve: one host, a name (not an address, not a socket directory),
// and no hostaddr given. Otherwise nothing.
std::optional<std::string> single_host_name(const std::string& url) {
  PQconninfoOption* options = PQconninfoParse(url.c_str(), nullptr);
  if (options == nullptr) return std::nullopt;  // libpq will say what is wrong with it
  std::string host, hostaddr;
  for (const PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    if (std::string_view(o->keyword) == "host") host = o->val;
    if (std::string_view(o->keyword) == "hostaddr") hostaddr = o->val;
  }
  PQconninfoFree(options);
  if (host.empty() || !hostaddr.empty() || host.find(',') != std::string::npos ||
      host.starts_with('/') || host.starts_with('@'))
    return std::nullopt;
  if (net::is_ip_literal(host)) return std::nullopt;
  return host;
}

bool is_uri(const std::string& url) {
  return url.starts_with("postgres://") || url.starts_with("postgresql://");
}

// `value` as a URI query value (RFC 3986 unreserved kept, the rest %XX) or as a quoted keyword
// value (libpq: single quotes, backslash escapes).
std::string encoded(const std::string& value, bool uri) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = uri ? "" : "'";
  for (const char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if (uri) {
      if (std::isalnum(byte) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
        out += c;
      } else {
        out += '%';
        out += kHex[byte >> 4];
        out += kHex[byte & 0xF];
      }
    } else {
      if (c == '\\' || c == '\'') out += '\\';
      out += c;
    }
  }
  return uri ? out : out + "'";
}

void add_parameter(std::string& out, bool uri, const char* name, const std::string& value) {
  if (uri)
    out += std::string(out.find('?') == std::string::npos ? "?" : "&") + name + "=" +
           encoded(value, true);
  else
    out += std::string(out.empty() ? "" : " ") + name + "=" + encoded(value, false);
}

}  // namespace

std::string connection_string(const std::string& database_url,
                              const std::string& application_name) {
  static constexpr std::pair<const char*, const char*> kBounds[] = {
      {"connect_timeout", "10"},     {"keepalives", "1"},       {"keepalives_idle", "30"},
      {"keepalives_interval", "10"}, {"keepalives_count", "3"}, {"tcp_user_timeout", "60000"}};
  const bool uri = is_uri(database_url);
  std::string out = database_url;
  for (const auto& [name, value] : kBounds)
    if (!has_parameter(database_url, name)) add_parameter(out, uri, name, value);
  if (!application_name.empty() && !has_parameter(database_url, "application_name"))
    add_parameter(out, uri, "application_name", application_name);
  // libpq resolves the host name with a blocking getaddrinfo that connect_timeout does not cover
  // (a DNS server that does not answer holds the connecting thread for 30 s or more). Resolve it
  // here within the connect timeout and hand libpq the address; `host` stays for TLS host name
  // verification and messages. Resolved anew for every connection, so a failover that moves the
  // name is followed.
  if (const auto name = single_host_name(database_url)) {
    try {
      add_parameter(out, uri, "hostaddr", net::resolve_address(*name, kResolveTimeout));
    } catch (const net::TransportError& e) {
      throw pqxx::broken_connection(std::string("database host: ") + e.what());
    }
  }
  return out;
}

Deadline::Deadline(int fd, std::chrono::milliseconds limit) {
  if (fd >= 0) id_ = Watchdog::get().arm(fd, Steady::now() + limit, &expired_);
}

Deadline::~Deadline() {
  if (id_ != 0) Watchdog::get().disarm(id_);
}

}  // namespace mailsync::postgres::detail
