// AWS Secrets Manager against the stack's emulator of it (deploy/local/oauth_emulator.py, which
// checks every SigV4 signature): AWS_SECRETS_MANAGER_SECRET_IDS merged into the environment with
// explicit variables winning, aws-sm:ID#KEY references, a missing key and a refused secret named
// without a value, a rotated Microsoft refresh token written back into its secret, and two
// writers at once.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "mailsync/aws/secrets_manager.hpp"
#include "mailsync/http/http_client.hpp"
#include "mailsync/util/sha256.hpp"
#include "route_sync_fixture.hpp"
#include "support/corpus.hpp"
#include "support/process.hpp"
#include "support/stack.hpp"

namespace {

using namespace mailsync;
using mailsync::testing::emulator_admin;
using mailsync::testing::EnvChanges;
using mailsync::testing::hashes;
using mailsync::testing::mint_refresh_token;
using mailsync::testing::read_folder;
using mailsync::testing::Server;
using mailsync::testing::stack_env;
using mailsync::testing::unique_name;
using nlohmann::json;

// A new secret holding `object`; its name.
std::string put_secret(const json& object) {
  const std::string name = unique_name("mailsync/test");
  emulator_admin("/admin/secret", json{{"name", name}, {"string", object.dump()}}.dump());
  return name;
}
json secret_object(const std::string& name) {
  http::HttpClient client;
  const auto answer =
      client.get(stack_env("MAILSYNC_STACK_OAUTH_URL") + "/admin/secret?name=" + name);
  EXPECT_EQ(answer.status, 200) << answer.body;
  return json::parse(json::parse(answer.body).at("string").get<std::string>());
}
json emulator_stats() {
  http::HttpClient client;
  return json::parse(client.get(stack_env("MAILSYNC_STACK_OAUTH_URL") + "/admin/stats").body);
}
void expect_none_in(const std::string& output, const std::vector<std::string>& secrets) {
  for (const auto& secret : secrets)
    EXPECT_EQ(output.find(secret), std::string::npos) << "a secret value reached the output";
}

// The environment of a process that gets everything else from its secrets.
EnvChanges from_secrets(const std::string& ids, const std::string& database_url) {
  EnvChanges env;
  for (const char* name :
       {"SYNC_ROUTES_JSON", "SYNC_ROUTES_FILE", "GMAIL_EMAIL", "GMAIL_REFRESH_TOKEN",
        "OUTLOOK_TARGET_FOLDER", "OUTLOOK_EMAIL", "MS_REFRESH_TOKEN", "GMAIL_CLIENT_SECRET"})
    env[name] = std::nullopt;
  env["AWS_SECRETS_MANAGER_SECRET_IDS"] = ids;
  env["MAILSYNC_DATABASE_URL"] = database_url;
  env["LOG_LEVEL"] = "debug";
  return env;
}

class SecretsManager : public mailsync::testing::RouteSyncTest {};

TEST_F(SecretsManager, KeysAreMergedIntoTheEnvironmentAndExplicitVariablesWin) {
  const json routes = json::array({{{"gmail_email", user_},
                                    {"outlook_target_folder", "FromSecret/first"},
                                    {"gmail_refresh_token", "env:ALICE_TOKEN"}}});
  const std::string first = put_secret({{"SYNC_ROUTES_JSON", routes.dump()},
                                        {"OUTLOOK_EMAIL", "first@outlook.test"},
                                        {"ALICE_TOKEN", "t"}});
  const std::string second =
      put_secret({{"OUTLOOK_EMAIL", "second@outlook.test"}, {"UNUSED_NUMBER", 120}});
  EnvChanges env = from_secrets(first + "," + second, db_.url());
  const auto merged =
      mailsync::testing::run_process({MAILSYNC_TEST_BIN_MAILSYNC, "routes", "--json"}, env);
  ASSERT_EQ(merged.exit_code, 0) << merged.err;
  const json listed = json::parse(merged.out);
  ASSERT_EQ(listed.size(), 1U) << merged.out;
  EXPECT_EQ(listed[0].value("outlook_target_folder", ""), "FromSecret/first");
  EXPECT_EQ(listed[0].value("outlook_email", ""), "first@outlook.test")
      << "between secrets the first listed wins";

  env["OUTLOOK_EMAIL"] = "explicit@outlook.test";
  const auto explicit_wins =
      mailsync::testing::run_process({MAILSYNC_TEST_BIN_MAILSYNC, "routes", "--json"}, env);
  ASSERT_EQ(explicit_wins.exit_code, 0) << explicit_wins.err;
  EXPECT_EQ(json::parse(explicit_wins.out)[0].value("outlook_email", ""), "explicit@outlook.test");
  EXPECT_NE(explicit_wins.err.find("1 of them set explicitly in the environment"),
            std::string::npos)
      << explicit_wins.err;
}

TEST_F(SecretsManager, AMissingKeyAndARefusedSecretAreNamedWithoutAValue) {
  const std::string token = route_.gmail_refresh_token->reveal();
  const std::string name = put_secret({{"GMAIL_TOKEN", token}});
  EnvChanges env = process_env("debug");
  json routes = json::array({{{"gmail_email", user_},
                              {"outlook_target_folder", route_.target_folder},
                              {"gmail_refresh_token", "aws-sm:" + name + "#NOT_THERE"}}});
  env["SYNC_ROUTES_JSON"] = routes.dump();
  const auto missing =
      mailsync::testing::run_process({MAILSYNC_TEST_BIN_MAILSYNC, "run-once"}, env);
  EXPECT_EQ(missing.exit_code, 2) << missing.err;
  EXPECT_NE(missing.err.find("gmail_refresh_token: secret " + name + " has no key NOT_THERE"),
            std::string::npos)
      << missing.err;
  expect_none_in(missing.out + missing.err, {token});

  emulator_admin("/admin/secret", json{{"name", name}, {"denied", true}}.dump());
  routes[0]["gmail_refresh_token"] = "aws-sm:" + name + "#GMAIL_TOKEN";
  env["SYNC_ROUTES_JSON"] = routes.dump();
  const auto refused =
      mailsync::testing::run_process({MAILSYNC_TEST_BIN_MAILSYNC, "run-once"}, env);
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_NE(refused.err.find("GetSecretValue of secret " + name + ": AccessDeniedException"),
            std::string::npos)
      << refused.err;
  expect_none_in(refused.out + refused.err, {token});

  // A wrong secret access key: the emulator checks the signature as AWS does.
  emulator_admin("/admin/secret", json{{"name", name}, {"denied", false}}.dump());
  env["AWS_SECRET_ACCESS_KEY"] = "not-the-key";
  const auto unsigned_run =
      mailsync::testing::run_process({MAILSYNC_TEST_BIN_MAILSYNC, "run-once"}, env);
  EXPECT_EQ(unsigned_run.exit_code, 2) << unsigned_run.err;
  EXPECT_NE(unsigned_run.err.find("InvalidSignatureException"), std::string::npos)
      << unsigned_run.err;
  expect_none_in(unsigned_run.out + unsigned_run.err, {token, "not-the-key"});
}

// Everything from one secret: routes, the Gmail token (through env:), the Outlook mailbox and its
// refresh token. Microsoft rotates the refresh token on every refresh; with the old one revoked
// at once, the second run works only if the first stored the new one in the secret.
TEST_F(SecretsManager, ARotatedRefreshTokenIsWrittenBackIntoItsSecretAndUsedNextTime) {
  use_own_outlook();
  const std::string gmail_token = route_.gmail_refresh_token->reveal();
  const std::string outlook_token = settings_.ms_refresh_token->reveal();
  emulator_admin("/admin/config", json{{"user", outlook_user_}, {"revoke_rotated", true}}.dump());
  const json routes = json::array({{{"gmail_email", user_},
                                    {"outlook_target_folder", route_.target_folder},
                                    {"gmail_refresh_token", "env:ALICE_TOKEN"},
                                    {"initial_sync", "all"}}});
  const json original = {{"SYNC_ROUTES_JSON", routes.dump()},
                         {"ALICE_TOKEN", gmail_token},
                         {"OUTLOOK_EMAIL", outlook_user_},
                         {"MS_REFRESH_TOKEN", outlook_token},
                         {"GMAIL_CLIENT_SECRET", stack_env("GMAIL_CLIENT_SECRET")}};
  const std::string name = put_secret(original);
  const EnvChanges env = from_secrets(name, db_.url());

  std::multiset<std::string> sent;
  sent.insert(seed(mailsync::testing::message("Message-ID: <sm-1@x>\r\n", "one\r\n")));
  const auto first = mailsync::testing::run_process({MAILSYNC_TEST_BIN_MAILSYNC, "run-once"}, env);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(
      first.err.find("stored the rotated refresh token in aws-sm:" + name + "#MS_REFRESH_TOKEN"),
      std::string::npos)
      << first.err;
  const json after_first = secret_object(name);
  const std::string rotated = after_first.value("MS_REFRESH_TOKEN", "");
  EXPECT_NE(rotated, outlook_token);
  for (const char* kept :
       {"SYNC_ROUTES_JSON", "ALICE_TOKEN", "OUTLOOK_EMAIL", "GMAIL_CLIENT_SECRET"})
    EXPECT_EQ(after_first.at(kept), original.at(kept)) << kept << " was not kept";
  EXPECT_EQ(mailsync::testing::refresh_grant(Server::kOutlook, outlook_token).status, 400)
      << "the emulator revoked the rotated-from token";

  sent.insert(seed(mailsync::testing::message("Message-ID: <sm-2@x>\r\n", "two\r\n")));
  const auto second = mailsync::testing::run_process({MAILSYNC_TEST_BIN_MAILSYNC, "run-once"}, env);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(hashes(read_folder(*outlook(), route_.target_folder)), sent);
  const std::string again = secret_object(name).value("MS_REFRESH_TOKEN", "");
  expect_none_in(first.out + first.err + second.out + second.err,
                 {gmail_token, outlook_token, rotated, again, stack_env("AWS_SECRET_ACCESS_KEY"),
                  stack_env("GMAIL_CLIENT_SECRET")});
}

// Two workers rotate at once (the emulator holds both reads until both came): both read version V,
// one moves AWSCURRENT, the other's move from V
// fails, it reads again, finds a token it did not expect and keeps it (kKeptOther). Meanwhile a
// writer of another key loses nothing.
TEST_F(SecretsManager, TwoRotationsAtOnceKeepOneTokenAndEveryOtherKey) {
  const std::string name = put_secret({{"MS_REFRESH_TOKEN", "t0"}, {"OTHER", "kept"}});
  // Both reads are held until both have arrived: they see the same version, whatever the load.
  emulator_admin("/admin/secret", json{{"name", name}, {"get_barrier", 2}}.dump());
  const int conflicts_before = emulator_stats().value("sm_stage_conflicts", 0);
  auto a = aws::secrets_manager_from_env();
  auto b = aws::secrets_manager_from_env();
  config::SecretWrite result_a{}, result_b{};
  std::thread ta([&] { result_a = a->write(name, "MS_REFRESH_TOKEN", "t1", "t0"); });
  std::thread tb([&] { result_b = b->write(name, "MS_REFRESH_TOKEN", "t2", "t0"); });
  ta.join();
  tb.join();
  EXPECT_NE(result_a, result_b) << "one writes, the other keeps what the first wrote";
  const json stored = secret_object(name);
  EXPECT_EQ(stored.value("MS_REFRESH_TOKEN", ""),
            result_a == config::SecretWrite::kWritten ? "t1" : "t2");
  EXPECT_EQ(stored.value("OTHER", ""), "kept");
  EXPECT_EQ(a->conflicts() + b->conflicts(), 1);
  EXPECT_EQ(emulator_stats().value("sm_stage_conflicts", 0) - conflicts_before, 1);

  // Different keys at once, no expectation: both land (the loser merges into the new version).
  emulator_admin("/admin/secret", json{{"name", name}, {"get_barrier", 2}}.dump());
  std::thread tc([&] { a->write(name, "GMAIL_TOKEN", "g", std::nullopt); });
  std::thread td([&] { b->write(name, "OTHER", "changed", std::nullopt); });
  tc.join();
  td.join();
  const json both = secret_object(name);
  EXPECT_EQ(both.value("GMAIL_TOKEN", ""), "g");
  EXPECT_EQ(both.value("OTHER", ""), "changed");
  EXPECT_EQ(both.value("MS_REFRESH_TOKEN", ""), stored.value("MS_REFRESH_TOKEN", ""));
}

}  // namespace
