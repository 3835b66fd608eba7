#include "mailsync/ui/status_page.hpp"

#include <arpa/inet.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>

#include "mailsync/postgres/errors.hpp"
#include "mailsync/queue/route_store.hpp"
#include "mailsync/util/base64.hpp"
#include "mailsync/util/strings.hpp"
#include "ui/assets.hpp"

namespace mailsync::ui {

using nlohmann::json;

namespace {

// Only the page's own script and stylesheet, no inline script or style, no frames, no forms.
constexpr const char* kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

metrics::Reply with_safety(metrics::Reply reply) {
  reply.headers.emplace_back("Content-Security-Policy", kContentSecurityPolicy);
  reply.headers.emplace_back("X-Content-Type-Options", "nosniff");
  reply.headers.emplace_back("X-Frame-Options", "DENY");
  reply.headers.emplace_back("Referrer-Policy", "no-referrer");
  return reply;
}

bool same_secret(std::string_view given, const std::string& expected) {
  return given.size() == expected.size() &&
         CRYPTO_memcmp(given.data(), expected.data(), expected.size()) == 0;
}

// "Bearer TOKEN", or "Basic base64(user:TOKEN)" (a browser's prompt; the user name is not looked
// at).
bool authorized(const metrics::Request& request, const config::Secret& token) {
  if (!request.authorization) return false;
  const std::string_view header = *request.authorization;
  if (header.starts_with("Bearer ")) return same_secret(header.substr(7), token.reveal());
  if (!header.starts_with("Basic ")) return false;
  const auto decoded = util::base64_decode(header.substr(6));
  if (!decoded) return false;
  const size_t colon = decoded->find(':');
  return colon != std::string::npos &&
         same_secret(std::string_view(*decoded).substr(colon + 1), token.reveal());
}

// A field as escaped text: strings as they are, numbers and booleans printed, null as `absent`.
std::string text(const json& row, const char* field, std::string_view absent = "") {
  const auto found = row.find(field);
  if (found == row.end() || found->is_null()) return html_escape(absent);
  if (found->is_string()) return html_escape(found->get<std::string>());
  return html_escape(found->dump());
}

bool present(const json& row, const char* field) {
  const auto found = row.find(field);
  return found != row.end() && !found->is_null();
}

int64_t number(const json& row, const char* field) {
  const auto found = row.find(field);
  if (found == row.end() || found->is_null()) return 0;
  if (found->is_number()) return found->get<int64_t>();
  if (found->is_string()) return static_cast<int64_t>(std::stod(found->get<std::string>()));
  return 0;
}

// "2026-12-06T03:20:00.123456+00:00" -> "2026-12-06 03:20:00+00:00"
std::string when(const json& row, const char* field) {
  if (!present(row, field) || !row[field].is_string()) return "";
  std::string t = row[field].get<std::string>();
  if (t.size() > 10 && t[10] == 'T') t[10] = ' ';
  if (const size_t dot = t.find('.'); dot != std::string::npos) {
    const size_t zone = t.find_first_of("+-Z", dot);
    t.erase(dot, zone == std::string::npos ? std::string::npos : zone - dot);
  }
  return html_escape(t);
}

// "1 route", "2 routes"
std::string count(int64_t n, const std::string& one, const std::string& many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string duration(int64_t seconds) {
  if (seconds < 0) seconds = 0;
  if (seconds < 120) return std::to_string(seconds) + " s";
  if (seconds < 7200) return std::to_string(seconds / 60) + " min";
  if (seconds < 172800) return std::to_string(seconds / 3600) + " h";
  return std::to_string(seconds / 86400) + " d";
}

// One word for a route, and the class its badge gets.
std::pair<std::string, std::string> route_state(const json& r) {
  if (!r.value("enabled", true)) return {"disabled", "idle"};
  if (r.value("paused", false)) return {"paused", "idle"};
  if (r.value("auth_state", std::string("ok")) != "ok") return {"auth required", "bad"};
  if (r.value("queued_job_state", json()) == "running") return {"running", "busy"};
  if (!present(r, "last_outcome")) return {"not run yet", "idle"};
  if (r["last_outcome"] != "succeeded") return {"failing", "bad"};
  return {"ok", "ok"};
}

std::string progress_cell(const json& r) {
  if (!present(r, "progress_messages_total")) return "";
  const int64_t done = number(r, "progress_messages_done"),
                total = number(r, "progress_messages_total");
  std::string cell = R"(<progress max=")" + std::to_string(std::max<int64_t>(total, 1)) +
                     R"(" value=")" + std::to_string(done) +
                     R"("></progress> <span class="figures">)" + std::to_string(done) + " of " +
                     std::to_string(total);
  if (present(r, "progress_rate_per_s"))
    cell += " · " + std::to_string(number(r, "progress_rate_per_s")) + " msgs/s";
  if (present(r, "progress_eta_seconds"))
    cell += " · ETA " + duration(number(r, "progress_eta_seconds"));
  return cell + "</span>";
}

std::string route_link(const std::string& key, const std::string& label) {
  return R"(<a href="/route?key=)" + html_escape(util::percent_encode(key)) + R"(">)" +
         html_escape(label) + "</a>";
}

// Rows of the Routes panel on "/" unless ?routes=all: enough for a team, while 5,000 routes would
// be ~2.5 MB of HTML every refresh. The query orders those needing attention first.
constexpr size_t kRoutesShown = 500;

std::string routes_panel(const json& routes, size_t most = SIZE_MAX) {
  std::string html =
      R"(<section id="routes"><h2>Routes</h2><table><thead><tr><th>Gmail</th><th>Outlook )"
      "folder</th><th>State</th><th>Last success</th><th>Queue</th><th>Token</th><th>Not "
      "copied</th><th>Progress</th></tr></thead><tbody>";
  for (size_t i = 0; i < std::min(most, routes.size()); ++i) {
    const json& r = routes[i];
    const auto [state, badge] = route_state(r);
    const std::string key = r.value("route_key", std::string());
    html += R"(<tr class="route" data-route=")" + html_escape(key) + R"("><td>)" +
            route_link(key, r.value("gmail_email", key)) + "</td><td>" + text(r, "outlook_email") +
            " / " + text(r, "target_folder") + R"(</td><td><span class="badge )" + badge + R"(">)" +
            html_escape(state) + "</span>";
    if (state == "failing" || state == "auth required")
      html += R"(<div class="error">)" + text(r, "last_error") + "</div>";
    html += "</td><td>" +
            (present(r, "last_success_at") ? duration(number(r, "lag_seconds")) + " ago"
                                           : std::string("never")) +
            "</td><td>";
    if (present(r, "queued_job_state")) {
      const int64_t attempt = number(r, "queued_job_attempt");
      html += r["queued_job_state"] == "running" ? "running" : "queued";
      if (attempt > 0) html += " (attempt " + std::to_string(attempt) + ")";
    }
    html += "</td><td>" + text(r, "token_state") + "</td><td>";
    const int64_t refused = number(r, "refused_messages"),
                  retrying = number(r, "retrying_messages");
    if (refused + retrying > 0)
      html += std::to_string(refused) + " refused, " + std::to_string(retrying) + " retrying";
    html += "</td><td>" + progress_cell(r) + "</td></tr>";
  }
  if (routes.empty()) html += R"(<tr><td colspan="8">No routes yet.</td></tr>)";
  html += "</tbody></table>";
  if (routes.size() > most)
    html += R"(<p class="more">The first )" + std::to_string(most) + " of " +
            std::to_string(routes.size()) +
            R"( routes, those needing attention first. <a href="/?routes=all">Show all</a></p>)";
  return html + "</section>";
}

// Jobs finished per minute in the last hour: bars drawn by the server (an SVG, no script).
std::string activity_panel(const json& per_minute, const json& queue) {
  int64_t most = 1, succeeded = 0, failed = 0;
  for (const json& m : per_minute) {
    most = std::max(most, number(m, "succeeded") + number(m, "failed"));
    succeeded += number(m, "succeeded");
    failed += number(m, "failed");
  }
  constexpr int kBar = 10, kHeight = 60;
  std::string html = R"(<section id="activity"><h2>Jobs, last hour</h2><p>)" +
                     std::to_string(succeeded) + " succeeded, " + std::to_string(failed) +
                     " failed · due now " + text(queue, "due_jobs", "0") + ", oldest waiting " +
                     duration(number(queue, "oldest_due_age_seconds")) + " · by state:";
  if (const auto states = queue.find("by_state"); states != queue.end() && states->is_object())
    for (const auto& [state, n] : states->items())
      html += " " + html_escape(state) + " " + html_escape(n.dump());
  html += R"(</p><svg class="chart" role="img" aria-label="jobs per minute" width=")" +
          std::to_string(kBar * 60) + R"(" height=")" + std::to_string(kHeight) + R"(">)";
  int x = 0;
  for (const json& m : per_minute) {
    const int64_t ok = number(m, "succeeded"), bad = number(m, "failed");
    const auto h_ok = static_cast<int>(ok * kHeight / most),
               h_bad = static_cast<int>(bad * kHeight / most);
    const std::string title = "<title>" + when(m, "minute") + ": " + std::to_string(ok) +
                              " succeeded, " + std::to_string(bad) + " failed</title>";
    html += "<g>" + title + R"(<rect class="ok" x=")" + std::to_string(x) + R"(" y=")" +
            std::to_string(kHeight - h_ok) + R"(" width=")" + std::to_string(kBar - 2) +
            R"(" height=")" + std::to_string(h_ok) + R"("></rect><rect class="bad" x=")" +
            std::to_string(x) + R"(" y=")" + std::to_string(kHeight - h_ok - h_bad) +
            R"(" width=")" + std::to_string(kBar - 2) + R"(" height=")" + std::to_string(h_bad) +
            R"("></rect></g>)";
    x += kBar;
  }
  return html + R"(</svg><p class="axis"><span>60 min ago</span><span>now</span></p></section>)";
}

std::string failures_table(const json& failures, bool with_route) {
  std::string html = "<table><thead><tr>";
  if (with_route) html += "<th>Route</th>";
  html +=
      "<th>UID</th><th>Message-ID</th><th>Size</th><th>Reason</th><th>The server's "
      "words</th><th>Retry</th><th>Updated</th></tr></thead><tbody>";
  for (const json& f : failures) {
    html += R"(<tr class="failure">)";
    if (with_route) {
      const std::string key = f.value("route_key", std::string());
      html += "<td>" + route_link(key, key) + "</td>";
    }
    html += "<td>" + text(f, "uid") + "</td><td>" + text(f, "message_id") + "</td><td>" +
            text(f, "size") + "</td><td>" + text(f, "reason") + R"(</td><td class="words">)" +
            text(f, "last_error") + "</td><td>" +
            (f.value("permanent", false)
                 ? std::string("never (permanent)")
                 : "after " + text(f, "retry_count") + " tries, next " + when(f, "next_retry_at")) +
            "</td><td>" + when(f, "updated_at") + "</td></tr>";
  }
  if (failures.empty())
    html += R"(<tr><td colspan=")" + std::string(with_route ? "8" : "7") + R"(">None.</td></tr>)";
  return html + "</tbody></table>";
}

std::string dead_panel(const json& dead, int64_t total) {
  std::string html = R"(<section id="dead"><h2>Dead jobs ()" + std::to_string(total) +
                     R"()</h2><p class="hint">Retry with <code>mailsync dead retry ID</code>, )"
                     "drop with <code>mailsync dead discard ID</code>.</p><table><thead><tr><th>"
                     "Job</th><th>Kind</th><th>Route</th><th>Attempts</th><th>Ended</th><th>Last "
                     "error</th></tr></thead><tbody>";
  for (const json& d : dead) {
    const std::string key =
        d.value("route_key", json()).is_string() ? d["route_key"].get<std::string>() : "";
    html += R"(<tr class="dead"><td>)" + text(d, "id") + "</td><td>" + text(d, "kind") +
            "</td><td>" + (key.empty() ? "" : route_link(key, key)) + "</td><td>" +
            text(d, "attempt") + " of " + text(d, "max_attempts") + "</td><td>" +
            when(d, "finished_at") + R"(</td><td class="words">)" + text(d, "last_error") +
            "</td></tr>";
  }
  if (dead.empty()) html += R"(<tr><td colspan="6">None.</td></tr>)";
  return html + "</tbody></table></section>";
}

std::string page(const std::string& title, const std::string& stamp, const std::string& body,
                 int refresh_seconds) {
  return R"(<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" )"
         R"(content="width=device-width, initial-scale=1"><title>)" +
         html_escape(title) +
         R"(</title><link rel="stylesheet" href="/static/style.css"><script )"
         R"(src="/static/app.js" defer></script><noscript><meta http-equiv="refresh" )"
         R"(content=")" +
         std::to_string(refresh_seconds) + R"("></noscript></head><body data-refresh=")" +
         std::to_string(refresh_seconds) +
         R"("><header><h1><a href="/">mailsync</a></h1><span id="updated">)" + stamp +
         R"(</span><span class="hint">read-only</span></header>)" + body + "</body></html>";
}

metrics::Reply html_reply(int status, std::string body) {
  return {status, "text/html; charset=utf-8", std::move(body), {}};
}

class StatusPage {
 public:
  explicit StatusPage(StatusPageOptions options) : options_(std::move(options)) {}

  metrics::Reply handle(const metrics::Request& request) {
    if (options_.token && !authorized(request, *options_.token))
      return {401,
              "text/plain; charset=utf-8",
              "the status page needs its token\n",
              {{"WWW-Authenticate", R"(Basic realm="mailsync", charset="UTF-8")"}}};
    if (request.path == "/static/app.js")
      return {200, "text/javascript; charset=utf-8", std::string(kAppJs), {}};
    if (request.path == "/static/style.css")
      return {200, "text/css; charset=utf-8", std::string(kStyleCss), {}};
    if (request.path == "/")
      return query([&](queue::RouteStore& store) {
        return index(store.status_page(), util::parse_query(request.query)["routes"] == "all");
      });
    if (request.path == "/api/status")
      return query([&](queue::RouteStore& store) {
        return metrics::Reply{200, "application/json", store.status_page().dump(), {}};
      });
    if (request.path == "/route") {
      const auto parameters = util::parse_query(request.query);
      const auto key = parameters.find("key");
      if (key == parameters.end())
        return html_reply(400, page("mailsync", "", "<p>Which route? (?key=)</p>", 60));
      return query([&](queue::RouteStore& store) {
        return route(store.route_page(key->second), key->second);
      });
    }
    return {404, "text/plain; charset=utf-8", "not found\n", {}};
  }

 private:
  template <typename Fn>
  metrics::Reply query(Fn&& render) {
    std::lock_guard lock(mutex_);
    try {
      if (!store_) store_ = queue::make_pg_route_store(options_.database_url, "mailsync ui");
      return render(*store_);
    } catch (const postgres::DatabaseUnavailable& e) {
      store_.reset();
      return unavailable(e.what());
    } catch (const postgres::DatabaseError& e) {
      store_.reset();
      return unavailable(e.what());
    }
  }

  metrics::Reply unavailable(const std::string& why) {
    return html_reply(503, page("mailsync: database unavailable",
                                R"(<span class="stale">database unavailable</span>)",
                                R"(<main id="panels"><p class="error">The database did not )"
                                "answer: " +
                                    html_escape(why) + "</p></main>",
                                options_.refresh_seconds));
  }

  metrics::Reply index(const json& data, bool all_routes) {
    const json& routes = data["routes"];
    int running = 0, failing = 0, auth = 0;
    for (const json& r : routes) {
      const std::string state = route_state(r).first;
      running += state == "running";
      failing += state == "failing";
      auth += state == "auth required";
    }
    std::string body =
        R"(<main id="panels"><section id="summary"><p>)" +
        count(static_cast<int64_t>(routes.size()), "route", "routes") + " · " +
        std::to_string(running) + " running · " + std::to_string(failing) + " failing · " +
        std::to_string(auth) + " " + (auth == 1 ? "needs" : "need") + " authorisation · " +
        count(number(data, "failures_total"), "message", "messages") + " not copied · " +
        count(number(data, "dead_total"), "dead job", "dead jobs") + "</p></section>";
    body += routes_panel(routes, all_routes ? SIZE_MAX : kRoutesShown);
    body += activity_panel(data["per_minute"], data["queue"]);
    body += R"(<section id="failures"><h2>Messages not copied ()" +
            text(data, "failures_total", "0") + ")</h2>" + failures_table(data["failures"], true) +
            "</section>";
    body += dead_panel(data["dead"], number(data, "dead_total"));
    body += "</main>";
    return html_reply(
        200, page("mailsync", "as of " + when(data, "now"), body, options_.refresh_seconds));
  }

  metrics::Reply route(const json& data, const std::string& key) {
    if (!present(data, "route"))
      return html_reply(
          404, page("mailsync: no such route", "",
                    R"(<main id="panels"><p>No route )" + html_escape(key) + ".</p></main>",
                    options_.refresh_seconds));
    const json& r = data["route"];
    std::string body = R"(<main id="panels">)" + routes_panel(json::array({r}));
    body +=
        R"(<section id="attempts"><h2>Attempts</h2><table><thead><tr><th>Job</th><th>Started</)"
        "th><th>Took</th><th>Outcome</th><th>Fetched</th><th>Appended</th><th>Skipped</"
        "th><th>Failed</th><th>Bytes</th><th>Worker / run</th><th>Error</th></tr></thead><tbody>";
    for (const json& a : data["attempts"]) {
      body += R"(<tr class="attempt"><td>)" + text(a, "job_id") + "/" + text(a, "attempt") +
              "</td><td>" + when(a, "started_at") + "</td><td>" + when(a, "finished_at") +
              "</td><td>" + text(a, "outcome", "running") + "</td><td>" + text(a, "fetched") +
              "</td><td>" + text(a, "appended") + "</td><td>" + text(a, "skipped") + "</td><td>" +
              text(a, "failed") + "</td><td>" + text(a, "bytes") + "</td><td>" + text(a, "worker") +
              " " + text(a, "run_id") + R"(</td><td class="words">)" + text(a, "error") +
              "</td></tr>";
    }
    if (data["attempts"].empty()) body += R"(<tr><td colspan="11">None yet.</td></tr>)";
    body += R"(</tbody></table></section><section id="failures"><h2>Messages not copied</h2>)" +
            failures_table(data["failures"], false) + "</section></main>";
    return html_reply(200, page("mailsync: " + r.value("gmail_email", key),
                                "as of " + when(data, "now"), body, options_.refresh_seconds));
  }

  StatusPageOptions options_;
  std::mutex mutex_;
  std::unique_ptr<queue::RouteStore> store_;
};

}  // namespace

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

bool is_loopback(const std::string& address) {
  in_addr v4{};
  if (inet_pton(AF_INET, address.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  return inet_pton(AF_INET6, address.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

std::unique_ptr<metrics::Server> serve_status_page(StatusPageOptions options) {
  if (options.token && options.token->empty()) options.token.reset();
  if (!is_loopback(options.address) && !options.token)
    throw std::runtime_error("the status page on " + options.address +
                             " (not a loopback address) needs a token: set MAILSYNC_UI_TOKEN, or "
                             "keep it on 127.0.0.1 behind a proxy that authenticates");
  auto page = std::make_shared<StatusPage>(options);
  metrics::ServerOptions server;
  server.address = options.address;
  server.port = options.port;
  server.purpose = "the status page";
  server.probes = false;
  server.pages = [page](const metrics::Request& request) {
    return with_safety(page->handle(request));
  };
  return std::make_unique<metrics::Server>(std::move(server));
}

}  // namespace mailsync::ui
