// Refresh tokens announced before they stop working, and re-authorisation that resumes with
// nothing lost: real `mailsync run-once`, `status` and `resume` against the stack, tokens given as
// file: secrets as an operator would, the emulator revoking them.

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "mailsync/config/secret.hpp"
#include "mailsync/health.hpp"
#include "mailsync/http/http_client.hpp"
#include "route_sync_fixture.hpp"
#include "support/corpus.hpp"
#include "support/process.hpp"
#include "support/prometheus_text.hpp"
#include "support/stack.hpp"

namespace {

using namespace mailsync;
using mailsync::testing::emulator_admin;
using mailsync::testing::EnvChanges;
using mailsync::testing::hashes;
using mailsync::testing::mint_refresh_token;
using mailsync::testing::read_folder;
using mailsync::testing::run_process;
using mailsync::testing::Server;
using mailsync::testing::stack_env;
using nlohmann::json;

class TokenExpiry : public mailsync::testing::RouteSyncTest {
 protected:
  void SetUp() override {
    RouteSyncTest::SetUp();
    char dir_template[] = "/tmp/mailsync-tokens.XXXXXX";
    dir_ = ::mkdtemp(dir_template);
    gmail_file_ = dir_ + "/gmail.refresh_token";
    config::write_secret_file(gmail_file_, route_.gmail_refresh_token->reveal());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // The route as an operator configures it: its token in a file, Outlook's from the environment
  // (or a file: use_outlook_file()).
  EnvChanges env(bool app_testing = false) const {
    EnvChanges e = process_env("debug");
    json route = {{"gmail_email", user_},
                  {"outlook_target_folder", route_.target_folder},
                  {"gmail_refresh_token", "file:" + gmail_file_},
                  {"initial_sync", "all"}};
    if (app_testing) route["gmail_oauth_app_testing"] = true;
    e["SYNC_ROUTES_JSON"] = json::array({route}).dump();
    if (!outlook_user_.empty()) e["OUTLOOK_EMAIL"] = outlook_user_;
    if (!outlook_file_.empty()) e["MS_REFRESH_TOKEN"] = "file:" + outlook_file_;
    return e;
  }
  void use_outlook_file() {
    use_own_outlook();
    outlook_file_ = dir_ + "/outlook.refresh_token";
    config::write_secret_file(outlook_file_, settings_.ms_refresh_token->reveal());
  }
  std::string file_token(const std::string& path) const {
    std::string token;
    std::getline(std::ifstream(path), token);
    return token;
  }
  json status_row(const EnvChanges& e) const {
    const auto status = run_process({MAILSYNC_TEST_BIN_MAILSYNC, "status", "--json"}, e);
    EXPECT_EQ(status.exit_code, 0) << status.err;
    const json parsed = json::parse(status.out);
    for (const auto& row : parsed.at("routes"))
      if (row.value("route_key", "") == route_.key()) return row;
    ADD_FAILURE() << "no status row for " << route_.key() << ": " << status.out;
    return json::object();
  }
  std::string status_text(const EnvChanges& e) const {
    const auto status = run_process({MAILSYNC_TEST_BIN_MAILSYNC, "status"}, e);
    EXPECT_EQ(status.exit_code, 0) << status.err;
    return status.out;
  }
  std::string seed_one(const std::string& tag) {
    return seed(mailsync::testing::message("Message-ID: <" + tag + "@x>\r\n", tag + "\r\n"));
  }

  std::string dir_, gmail_file_, outlook_file_;
};

TEST_F(TokenExpiry, AGoogleTestingAppTokenIsAnnouncedBeforeItEnds) {
  const EnvChanges e = env(/*app_testing=*/true);
  seed_one("testing-app");  // mail to copy: both tokens are used
  const auto run = run_process({MAILSYNC_TEST_BIN_MAILSYNC, "run-once"}, e);
  ASSERT_EQ(run.exit_code, 0) << run.err;

  const std::string gmail_key = "gmail:" + route_.key();
  EXPECT_EQ(db_.query_value("SELECT rule FROM mailsync.refresh_tokens WHERE token_key = '" +
                            gmail_key + "'"),
            "google_testing_7d");
  EXPECT_EQ(db_.query_value("SELECT rule || ' ' || (last_refresh_at IS NOT NULL) FROM "
                            "mailsync.refresh_tokens WHERE token_key = 'outlook:" +
                            stack_env("OUTLOOK_EMAIL") + "'"),
            "microsoft_90d true");
  const std::string table =
      db_.query_value("SELECT string_agg(t::text, ' ') FROM mailsync.refresh_tokens t");
  EXPECT_EQ(table.find(route_.gmail_refresh_token->reveal()), std::string::npos)
      << "no token in the database";
  EXPECT_EQ(table.find(stack_env("MS_REFRESH_TOKEN")), std::string::npos);

  // Seven days from first sight: "expiring" at once, as a Testing app's token is.
  json row = status_row(e);
  EXPECT_EQ(row.value("token_state", ""), "expiring") << row.dump();
  EXPECT_EQ(row.value("token_rule", ""), "google_testing_7d");
  EXPECT_EQ(row.value("token_account", ""), user_);
  EXPECT_NE(status_text(e).find("expires in 6 d"), std::string::npos) << status_text(e);

  // Six days and four hours later (moved back in the database, as time would move forward).
  db_.execute(
      "UPDATE mailsync.refresh_tokens SET first_seen_at = now() - interval '6 days 4 "
      "hours' WHERE token_key = '" +
      gmail_key + "'");
  const std::string text = status_text(e);
  EXPECT_TRUE(text.find("expires in 19 h") != std::string::npos ||
              text.find("expires in 20 h") != std::string::npos)
      << text;

  // The scheduler's metric, what the Prometheus alert rule (deploy/prometheus) fires on.
  const auto server =
      health::serve("127.0.0.1", 0, {"mailsync-scheduler", db_.url(), std::nullopt, true});
  http::HttpClient http;
  const std::string body =
      http.get("http://127.0.0.1:" + std::to_string(server->port()) + "/metrics").body;
  const double expiry = mailsync::testing::metric_value(
      body, "mailsync_refresh_token_expiry_timestamp_seconds{route=\"" + route_.key() + "\"}");
  const double in_hours =
      (expiry - static_cast<double>(std::chrono::duration_cast<std::chrono::seconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count())) /
      3600;
  EXPECT_GT(in_hours, 19.5) << body;
  EXPECT_LT(in_hours, 20.1) << body;

  // A new token (mailsync auth) starts the seven days again.
  config::write_secret_file(gmail_file_, mint_refresh_token(Server::kGmail, user_));
  ASSERT_EQ(run_process({MAILSYNC_TEST_BIN_MAILSYNC, "run-once"}, e).exit_code, 0);
  EXPECT_NE(status_text(e).find("expires in 6 d"), std::string::npos) << status_text(e);
}

// Revoked → mail arrives → auth_required → a new token → resume: everything that arrived while
// the route waited is copied, once.
TEST_F(TokenExpiry, ReauthorisingAGmailRouteResumesWithNothingLostOrTwice) {
  const EnvChanges e = env();
  std::multiset<std::string> sent = {seed_one("before-1"), seed_one("before-2")};
  ASSERT_EQ(run_process({MAILSYNC_TEST_BIN_MAILSYNC, "run-once"}, e).exit_code, 0);

  emulator_admin("/admin/revoke", json{{"refresh_token", file_token(gmail_file_)}}.dump());
  sent.insert(seed_one("while-1"));
  const auto refused = run_process({MAILSYNC_TEST_BIN_MAILSYNC, "run-once"}, e);
  EXPECT_NE(refused.exit_code, 0);
  sent.insert(seed_one("while-2"));
  const json row = status_row(e);
  EXPECT_EQ(row.value("token_state", ""), "auth_required") << row.dump();
  EXPECT_NE(status_text(e).find("auth_required since 20"), std::string::npos);
  EXPECT_EQ(db_.query_value("SELECT refused_at IS NOT NULL FROM mailsync.refresh_tokens WHERE "
                            "token_key = 'gmail:" +
                            route_.key() + "'"),
            "t");
  // Until a person acts, runs do nothing.
  ASSERT_NE(run_process({MAILSYNC_TEST_BIN_MAILSYNC, "run-once"}, e).exit_code, 0);

  config::write_secret_file(gmail_file_, mint_refresh_token(Server::kGmail, user_));
  const auto resumed = run_process({MAILSYNC_TEST_BIN_MAILSYNC, "resume", user_}, e);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const auto after = run_process({MAILSYNC_TEST_BIN_MAILSYNC, "run-once"}, e);
  ASSERT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)), sent);
  EXPECT_EQ(status_row(e).value("token_state", ""), "ok");
  EXPECT_EQ(db_.query_value("SELECT refused_at IS NULL FROM mailsync.refresh_tokens WHERE "
                            "token_key = 'gmail:" +
                            route_.key() + "'"),
            "t");
}

TEST_F(TokenExpiry, ReauthorisingTheOutlookMailboxResumesWithNothingLostOrTwice) {
  use_outlook_file();
  const EnvChanges e = env();
  std::multiset<std::string> sent = {seed_one("o-before")};
  ASSERT_EQ(run_process({MAILSYNC_TEST_BIN_MAILSYNC, "run-once"}, e).exit_code, 0);
  EXPECT_EQ(status_row(e).value("token_state", ""), "ok");

  // The file holds the token Microsoft rotated to; that one is revoked.
  emulator_admin("/admin/revoke", json{{"refresh_token", file_token(outlook_file_)}}.dump());
  sent.insert(seed_one("o-while-1"));
  sent.insert(seed_one("o-while-2"));
  const auto refused = run_process({MAILSYNC_TEST_BIN_MAILSYNC, "run-once"}, e);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_EQ(status_row(e).value("token_state", ""), "auth_required");
  EXPECT_EQ(db_.query_value("SELECT refused_at IS NOT NULL FROM mailsync.refresh_tokens WHERE "
                            "token_key = 'outlook:" +
                            outlook_user_ + "'"),
            "t");

  config::write_secret_file(outlook_file_, mint_refresh_token(Server::kOutlook, outlook_user_));
  ASSERT_EQ(run_process({MAILSYNC_TEST_BIN_MAILSYNC, "resume", user_}, e).exit_code, 0);
  const auto after = run_process({MAILSYNC_TEST_BIN_MAILSYNC, "run-once"}, e);
  ASSERT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)), sent);
  const json row = status_row(e);
  EXPECT_EQ(row.value("token_state", ""), "ok") << row.dump();
  EXPECT_EQ(row.value("token_rule", ""), "microsoft_90d");
}

}  // namespace
