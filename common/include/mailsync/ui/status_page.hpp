#pragma once

#include <memory>
#include <optional>
#include <string>

#include "mailsync/config/secret.hpp"
#include "mailsync/metrics.hpp"

// The status page (`mailsync-scheduler --ui-port`): a read-only view of the routes, their progress,
// the messages not copied, dead jobs and the last hour's jobs, from the SQL views. Server-rendered
// HTML that works without JavaScript; a small script (served from the binary) refreshes the panels
// in place. Every text from the database is escaped (IMAP servers' words are hostile input); a
// strict Content-Security-Policy allows the page's own script and stylesheet only.
namespace mailsync::ui {

struct StatusPageOptions {
  std::string address = "127.0.0.1";
  unsigned port = 0;  // 0: any free port (tests)
  std::string database_url;
  // Required when `address` is not a loopback address: a browser gives it as the password of HTTP
  // basic auth (any user name), a program as "Authorization: Bearer TOKEN".
  std::optional<config::Secret> token;
  int refresh_seconds = 5;  // how often the page refreshes itself
};

// Starts serving; throws std::runtime_error (nothing listening) when the address is not loopback
// and there is no token, or when it cannot listen.
std::unique_ptr<metrics::Server> serve_status_page(StatusPageOptions options);

// Exposed for tests: HTML text escaping (& < > " ').
std::string html_escape(std::string_view text);
bool is_loopback(const std::string& address);

}  // namespace mailsync::ui
