// The status page's server against real PostgreSQL: what each panel shows, escaping of every text
// that came from a server, the security headers, read-only, the token, and a database that does
// not answer. The same page in a real browser: status_page_stacktest.cpp.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "mailsync/postgres/migrator.hpp"
#include "mailsync/ui/status_page.hpp"
#include "mailsync/util/base64.hpp"
#include "support/test_database.hpp"

namespace {

using mailsync::ui::serve_status_page;
using mailsync::ui::StatusPageOptions;

struct Answer {
  int status = 0;
  std::string head;  // status line and headers
  std::string body;
};

// One HTTP/1.1 request on a fresh connection, read until the server closes (it always does).
Answer request(unsigned port, const std::string& method, const std::string& target,
               const std::string& extra_headers = "") {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return {};
  }
  const std::string text = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                           extra_headers + "Connection: close\r\nContent-Length: 0\r\n\r\n";
  (void)::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
  std::string all;
  char buffer[16384];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;)
    all.append(buffer, static_cast<size_t>(n));
  ::close(fd);
  Answer answer;
  const size_t split = all.find("\r\n\r\n");
  answer.head = all.substr(0, split);
  answer.body = split == std::string::npos ? "" : all.substr(split + 4);
  if (all.size() > 12) answer.status = std::stoi(all.substr(9, 3));
  return answer;
}

const std::string kHostile =
    R"(<script>document.title="owned"</script><img src=x onerror=alert(1)> & "q" 'a')";

class StatusPage : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string hostile = mailsync::testing::sql_literal(kHostile);
    mailsync::postgres::Migrator(db_.url(), mailsync::postgres::embedded_migrations()).run();
    // A route copying (its job running, its progress 40 of 100), one failing with hostile words,
    // a message one of them could not copy, a dead job, and attempts for the history.
    db_.execute(R"sql(
INSERT INTO mailsync.routes (route_key, gmail_email, outlook_email, target_folder, last_outcome,
                             last_run_at, last_success_at)
VALUES ('ROUTE#a@gmail.test#DEST#me@outlook.test#FOLDER#A', 'a@gmail.test', 'me@outlook.test', 'A',
        'succeeded', now() - interval '5 minutes', now() - interval '5 minutes'),
       ('ROUTE#b@gmail.test#DEST#me@outlook.test#FOLDER#B & <b>', 'b@gmail.test', 'me@outlook.test',
        'B & <b>', 'failed', now(), NULL);
INSERT INTO mailsync.jobs (kind, route_key, state, attempt, lease_owner, lease_expires_at, args)
VALUES ('route_sync', 'ROUTE#a@gmail.test#DEST#me@outlook.test#FOLDER#A', 'running', 1, 'w1',
        now() + interval '1 minute', '{}');
INSERT INTO mailsync.route_progress (route_key, job_id, started_at, messages_done, messages_total,
                                     bytes_done, bytes_total, rate_per_s, eta_seconds)
SELECT route_key, id, now(), 40, 100, 4000, 10000, 12.5, 5 FROM mailsync.jobs;
INSERT INTO mailsync.jobs (kind, route_key, state, attempt, max_attempts, last_error, finished_at, args)
VALUES ('route_sync', 'ROUTE#b@gmail.test#DEST#me@outlook.test#FOLDER#B & <b>', 'dead', 25, 25,
        'dead: ' || )sql" +
                hostile + R"sql(, now(), '{}');
INSERT INTO mailsync.failures (route_key, uidvalidity, uid, reason, last_error, permanent, message_id, size)
VALUES ('ROUTE#b@gmail.test#DEST#me@outlook.test#FOLDER#B & <b>', 1, 7, 'too_large',
        'NO refused: ' || )sql" +
                hostile + R"sql(, true, '<m7@x>', 123456);
INSERT INTO mailsync.job_attempts (job_id, attempt, kind, route_key, worker, started_at, finished_at,
                                   outcome, error, fetched, appended)
VALUES (9001, 1, 'route_sync', 'ROUTE#a@gmail.test#DEST#me@outlook.test#FOLDER#A', 'w1',
        now() - interval '6 minutes', now() - interval '5 minutes', 'succeeded', NULL, 12, 11),
       (9002, 1, 'route_sync', 'ROUTE#b@gmail.test#DEST#me@outlook.test#FOLDER#B & <b>', 'w1',
        now() - interval '1 minute', now(), 'failed', 'attempt: ' || )sql" +
                hostile + R"sql(, 0, 0);
)sql");
  }

  std::unique_ptr<mailsync::metrics::Server> serve(std::optional<std::string> token = {}) {
    StatusPageOptions options;
    options.database_url = db_.url();
    if (token)
      options.token = mailsync::config::Secret(*token, mailsync::config::Secret::Source::kEnv,
                                               "env:MAILSYNC_UI_TOKEN");
    return serve_status_page(options);
  }

  mailsync::testing::TestDatabase db_;
};

TEST_F(StatusPage, ShowsEveryPanelAndEscapesEveryTextFromTheDatabase) {
  const auto server = serve();
  const Answer page = request(server->port(), "GET", "/");
  ASSERT_EQ(page.status, 200) << page.head << page.body;
  const std::string& html = page.body;
  for (const char* panel : {"id=\"routes\"", "id=\"activity\"", "id=\"failures\"", "id=\"dead\""})
    EXPECT_NE(html.find(panel), std::string::npos) << panel;
  const size_t a = html.find("<tr class=\"route\" data-route=\"ROUTE#a@gmail.test");
  const size_t b = html.find("<tr class=\"route\" data-route=\"ROUTE#b@gmail.test");
  ASSERT_NE(a, std::string::npos);
  ASSERT_NE(b, std::string::npos);
  EXPECT_LT(b, a) << "the failing route first";
  EXPECT_NE(html.find("<progress max=\"100\" value=\"40\"></progress>"), std::string::npos) << html;
  EXPECT_NE(html.find("40 of 100 · 12 msgs/s · ETA 5 s"), std::string::npos) << html;
  EXPECT_NE(html.find(">running<"), std::string::npos);
  EXPECT_NE(html.find(">failing<"), std::string::npos);
  EXPECT_NE(html.find("5 min ago"), std::string::npos);
  EXPECT_NE(html.find("<svg class=\"chart\""), std::string::npos);
  EXPECT_NE(html.find("2 routes · 1 running · 1 failing · 0 need authorisation · 1 message not "
                      "copied · 1 dead job"),
            std::string::npos)
      << html;
  // The hostile words are shown, as text, in the failure, the dead job and the route's last error.
  const std::string escaped = mailsync::ui::html_escape(kHostile);
  EXPECT_NE(html.find("NO refused: " + escaped), std::string::npos) << html;
  EXPECT_NE(html.find("dead: " + escaped), std::string::npos) << html;
  EXPECT_EQ(html.find("<script>document"), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_EQ(html.find("<b>"), std::string::npos) << "a folder name is text too";
  // The script is the page's own file; the policy allows nothing else.
  EXPECT_NE(html.find("<script src=\"/static/app.js\" defer></script>"), std::string::npos);
  EXPECT_NE(page.head.find("Content-Security-Policy: default-src 'none'; script-src 'self'"),
            std::string::npos)
      << page.head;
  EXPECT_NE(page.head.find("X-Frame-Options: DENY"), std::string::npos);
  EXPECT_NE(page.head.find("Cache-Control: no-store"), std::string::npos);
  // Without JavaScript the page refreshes itself.
  EXPECT_NE(html.find("<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>"),
            std::string::npos);

  const Answer script = request(server->port(), "GET", "/static/app.js");
  EXPECT_EQ(script.status, 200);
  EXPECT_NE(script.head.find("Content-Type: text/javascript"), std::string::npos);
  EXPECT_EQ(script.body.find("innerHTML"), std::string::npos);
  EXPECT_EQ(request(server->port(), "GET", "/static/style.css").status, 200);

  const Answer api = request(server->port(), "GET", "/api/status");
  ASSERT_EQ(api.status, 200);
  const auto data = nlohmann::json::parse(api.body);
  EXPECT_EQ(data["routes"].size(), 2u);
  EXPECT_EQ(data["per_minute"].size(), 60u);
  EXPECT_EQ(data["dead_total"], 1);
  EXPECT_EQ(data["failures"][0]["uid"], 7);
}

TEST_F(StatusPage, ARoutesPageListsItsAttemptsAndFailuresAndAnUnknownRouteIsNotFound) {
  const auto server = serve();
  const Answer b = request(server->port(), "GET",
                           "/route?key=ROUTE%23b%40gmail.test%23DEST%23me%40outlook.test%23FOLDER%"
                           "23B+%26+%3Cb%3E");
  ASSERT_EQ(b.status, 200) << b.body;
  EXPECT_NE(b.body.find("<tr class=\"attempt\"><td>9002/1</td>"), std::string::npos) << b.body;
  EXPECT_NE(b.body.find("attempt: " + mailsync::ui::html_escape(kHostile)), std::string::npos);
  EXPECT_NE(b.body.find("<td>too_large</td>"), std::string::npos);
  EXPECT_EQ(b.body.find("9001/1"), std::string::npos) << "another route's attempt";
  // The index links to it with the key encoded.
  const Answer index = request(server->port(), "GET", "/");
  EXPECT_NE(index.body.find("href=\"/route?key=ROUTE%23b%40gmail.test%23DEST%23me%40outlook.test%"
                            "23FOLDER%23B%20%26%20%3Cb%3E\""),
            std::string::npos)
      << index.body;

  const Answer unknown = request(server->port(), "GET", "/route?key=%3Cnope%3E");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(unknown.body.find("No route &lt;nope&gt;."), std::string::npos);
  EXPECT_EQ(request(server->port(), "GET", "/route").status, 400);
  EXPECT_EQ(request(server->port(), "GET", "/elsewhere").status, 404);
}

TEST_F(StatusPage, ManyRoutesShowTheFirst500ThoseNeedingAttentionFirstAndAllOnRequest) {
  db_.execute(R"sql(
INSERT INTO mailsync.routes (route_key, gmail_email, outlook_email, target_folder, last_outcome,
                             last_run_at, last_success_at)
SELECT 'ROUTE#u' || n || '@gmail.test#DEST#me@outlook.test#FOLDER#A', 'u' || n || '@gmail.test',
       'me@outlook.test', 'A', 'succeeded', now(), now()
FROM generate_series(1, 600) n;
)sql");
  const auto server = serve();
  const auto rows = [](const std::string& html) {
    size_t n = 0;
    for (size_t at = html.find(R"(<tr class="route")"); at != std::string::npos;
         at = html.find(R"(<tr class="route")", at + 1))
      ++n;
    return n;
  };
  const Answer first = request(server->port(), "GET", "/");
  ASSERT_EQ(first.status, 200);
  EXPECT_EQ(rows(first.body), 500u);
  EXPECT_NE(first.body.find("602 routes"), std::string::npos) << "the summary counts them all";
  EXPECT_NE(first.body.find("b@gmail.test"), std::string::npos) << "the failing route was cut";
  EXPECT_NE(first.body.find("The first 500 of 602 routes"), std::string::npos);
  EXPECT_NE(first.body.find(R"(href="/?routes=all")"), std::string::npos);
  const Answer all = request(server->port(), "GET", "/?routes=all");
  EXPECT_EQ(rows(all.body), 602u);
  EXPECT_EQ(all.body.find("The first 500"), std::string::npos);
}

// Migration 0008: a killed attempt's progress row is not shown once its job was rescued or taken
// again; the new attempt's own row is.
TEST_F(StatusPage, AKilledAttemptsProgressIsNotShownOnceItsJobWasRescuedOrTakenAgain) {
  const std::string progress =
      "SELECT coalesce(progress_messages_done::text, '-') FROM mailsync.route_status "
      "WHERE gmail_email = 'a@gmail.test'";
  EXPECT_EQ(db_.query_value(progress), "40");
  db_.execute(
      "UPDATE mailsync.jobs SET state = 'available', lease_owner = NULL, "
      "lease_expires_at = NULL WHERE state = 'running'");  // the rescue
  EXPECT_EQ(db_.query_value(progress), "-");
  db_.execute(
      "UPDATE mailsync.jobs SET state = 'running', attempt = 2, lease_owner = 'w2', "
      "lease_expires_at = now() + interval '1 minute', attempted_at = now() + interval "
      "'2 seconds' WHERE state = 'available'");  // taken again, after the row was written
  EXPECT_EQ(db_.query_value(progress), "-");
  db_.execute(
      "UPDATE mailsync.route_progress SET started_at = now() + interval '3 seconds', "
      "messages_done = 60");  // the new attempt's first write
  EXPECT_EQ(db_.query_value(progress), "60");
}

TEST_F(StatusPage, IsReadOnly) {
  const auto server = serve();
  for (const char* method : {"POST", "PUT", "DELETE", "PATCH"}) {
    const Answer answer = request(server->port(), method, "/");
    EXPECT_EQ(answer.status, 405) << method;
    EXPECT_NE(answer.head.find("Allow: GET, HEAD"), std::string::npos);
  }
  const Answer head = request(server->port(), "HEAD", "/");
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());
  EXPECT_EQ(db_.query_value("SELECT count(*) FROM mailsync.jobs"), "2") << "nothing changed";
}

TEST_F(StatusPage, WithATokenOnlyItsHolderSeesThePage) {
  const auto server = serve("s3cret-token");
  const Answer none = request(server->port(), "GET", "/");
  EXPECT_EQ(none.status, 401);
  EXPECT_NE(none.head.find("WWW-Authenticate: Basic realm=\"mailsync\""), std::string::npos);
  EXPECT_EQ(none.body.find("ROUTE#"), std::string::npos);
  EXPECT_EQ(request(server->port(), "GET", "/api/status", "Authorization: Bearer nope\r\n").status,
            401);
  EXPECT_EQ(request(server->port(), "GET", "/api/status", "Authorization: Bearer s3cret-token\r\n")
                .status,
            200);
  const std::string browser = mailsync::util::base64_encode("anyone:s3cret-token");
  EXPECT_EQ(request(server->port(), "GET", "/", "Authorization: Basic " + browser + "\r\n").status,
            200);
  const std::string wrong = mailsync::util::base64_encode("anyone:s3cret-tokeN");
  EXPECT_EQ(request(server->port(), "GET", "/", "Authorization: Basic " + wrong + "\r\n").status,
            401);
  EXPECT_EQ(request(server->port(), "GET", "/static/app.js").status, 401);
}

TEST_F(StatusPage, AnAddressBeyondThisMachineNeedsAToken) {
  StatusPageOptions options;
  options.database_url = db_.url();
  options.address = "0.0.0.0";
  try {
    serve_status_page(options);
    FAIL() << "served on every address without a token";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("needs a token"), std::string::npos) << e.what();
  }
  options.token = mailsync::config::Secret("t", mailsync::config::Secret::Source::kEnv, "env:X");
  EXPECT_NO_THROW(serve_status_page(options));
  EXPECT_TRUE(mailsync::ui::is_loopback("127.0.0.1"));
  EXPECT_TRUE(mailsync::ui::is_loopback("127.1.2.3"));
  EXPECT_TRUE(mailsync::ui::is_loopback("::1"));
  EXPECT_FALSE(mailsync::ui::is_loopback("::"));
  EXPECT_FALSE(mailsync::ui::is_loopback("10.0.0.1"));
}

TEST_F(StatusPage, ADatabaseThatDoesNotAnswerIsSaidOnThePage) {
  StatusPageOptions options;
  options.database_url = "postgresql://postgres@127.0.0.1:1/nothing?connect_timeout=2";
  const auto server = serve_status_page(options);
  const Answer down = request(server->port(), "GET", "/");
  EXPECT_EQ(down.status, 503);
  EXPECT_NE(down.body.find("The database did not answer"), std::string::npos) << down.body;
  EXPECT_NE(down.body.find("id=\"panels\""), std::string::npos) << "the script swaps it in too";
}

}  // namespace
