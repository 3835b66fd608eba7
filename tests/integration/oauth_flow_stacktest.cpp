// Tokens against the local OAuth emulator: caching, single-flight refresh, expiry, rotation
// write-back, revocation, retries; and `mailsync auth` end to end. Every test uses users of its
// own, so the emulator knobs it turns do not reach tests running beside it. Every log line
// written during these tests is scanned for the token values.

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "mailsync/imap/client.hpp"
#include "mailsync/oauth/token_provider.hpp"
#include "support/process.hpp"
#include "support/stack.hpp"
#include "support/wait_for.hpp"

namespace {

using namespace mailsync::oauth;
using mailsync::config::Secret;
using mailsync::testing::emulator_admin;
using mailsync::testing::mint_refresh_token;
using mailsync::testing::refresh_grant;
using mailsync::testing::Server;
using mailsync::testing::stack_env;
using mailsync::testing::unique_name;
using nlohmann::json;

class Tokens : public ::testing::Test {
 protected:
  void SetUp() override {
    previous_ = spdlog::default_logger();
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_);
    auto logger = std::make_shared<spdlog::logger>("test", sink);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  void TearDown() override {
    spdlog::set_default_logger(previous_);
    for (const auto& secret : secrets_)
      EXPECT_EQ(log_.str().find(secret), std::string::npos) << "a token reached the log:\n"
                                                            << log_.str();
  }

  // A refresh token of a fresh user, remembered so that the log scan looks for it.
  std::string mint(Server server, std::string& user) {
    user = unique_name("oauth") + (server == Server::kGmail ? "@gmail.test" : "@outlook.test");
    return remember(mint_refresh_token(server, user));
  }
  const std::string& remember(const std::string& secret) { return secrets_.emplace_back(secret); }

  Credential credential(Server server, const std::string& refresh_token,
                        Secret::Source source = Secret::Source::kInline,
                        const std::string& reference = "inline") {
    const bool gmail = server == Server::kGmail;
    Credential c;
    c.provider = gmail ? Provider::kGoogle : Provider::kMicrosoft;
    c.token_url = stack_env(gmail ? "GOOGLE_TOKEN_URL" : "MS_TOKEN_URL");
    c.client_id = stack_env(gmail ? "GMAIL_CLIENT_ID" : "MS_CLIENT_ID");
    c.client_secret = Secret(stack_env(gmail ? "GMAIL_CLIENT_SECRET" : "MS_CLIENT_SECRET"),
                             Secret::Source::kEnv, "env:X");
    c.refresh_token = Secret(refresh_token, source, reference);
    c.label = gmail ? "gmail test" : "outlook test";
    return c;
  }
  static int grants(const std::string& user) {
    mailsync::http::HttpClient client;
    const auto stats =
        json::parse(client.get(stack_env("MAILSYNC_STACK_OAUTH_URL") + "/admin/stats").body);
    return stats["grants_by_user"].value(user, 0);
  }
  static void knobs(const std::string& user, json settings) {
    settings["user"] = user;
    emulator_admin("/admin/config", settings.dump());
  }
  TokenProviderOptions options() {
    TokenProviderOptions o;
    o.http.ca_file = stack_env("MAILSYNC_TLS_CA_FILE");
    o.sleep = [this](std::chrono::milliseconds d) { slept_.push_back(d); };
    return o;
  }

  std::ostringstream log_;
  std::shared_ptr<spdlog::logger> previous_;
  std::vector<std::string> secrets_;
  std::vector<std::chrono::milliseconds> slept_;
};

TEST_F(Tokens, AnAccessTokenIsCachedUntilShortlyBeforeItExpires) {
  std::string user;
  const std::string refresh = mint(Server::kGmail, user);
  knobs(user, {{"expires_in", 3600}});
  auto now = std::chrono::system_clock::now();
  TokenProviderOptions o = options();
  o.now = [&] { return now; };
  TokenProvider provider(o);
  const AccessToken first = provider.get(credential(Server::kGmail, refresh));
  remember(first.value);
  EXPECT_EQ(provider.get(credential(Server::kGmail, refresh)).value, first.value);
  EXPECT_EQ(grants(user), 1);
  now += std::chrono::minutes(54);  // 6 minutes left: still outside the 5 minute margin
  EXPECT_EQ(provider.get(credential(Server::kGmail, refresh)).value, first.value);
  now += std::chrono::minutes(2);  // 4 minutes left: refresh
  const AccessToken second = provider.get(credential(Server::kGmail, refresh));
  remember(second.value);
  EXPECT_NE(second.value, first.value);
  EXPECT_EQ(grants(user), 2);
}

TEST_F(Tokens, ManyThreadsNeedingATokenAtOnceCauseOneRefresh) {
  std::string user;
  const std::string refresh = mint(Server::kOutlook, user);
  knobs(user, {{"delay_ms", 300}});  // everyone arrives while the first refresh is in flight
  TokenProvider provider(options());
  std::vector<std::thread> threads;
  std::vector<std::string> tokens(16);
  for (size_t i = 0; i < tokens.size(); ++i)
    threads.emplace_back(
        [&, i] { tokens[i] = provider.get(credential(Server::kOutlook, refresh)).value; });
  for (auto& thread : threads) thread.join();
  remember(tokens[0]);
  EXPECT_EQ(grants(user), 1);
  for (const auto& token : tokens) EXPECT_EQ(token, tokens[0]);
}

TEST_F(Tokens, ARotatedMicrosoftRefreshTokenIsWrittenBackToItsFileAndUsed) {
  std::string user;
  const std::string original = mint(Server::kOutlook, user);
  knobs(user, {{"revoke_rotated", true}});  // stricter than Microsoft: the old token dies at once
  char dir_template[] = "/tmp/mailsync-rotation.XXXXXX";
  const std::string path = std::string(::mkdtemp(dir_template)) + "/ms.refresh_token";
  std::ofstream(path) << original << "\n";
  ::chmod(path.c_str(), 0600);
  const Credential c =
      credential(Server::kOutlook, original, Secret::Source::kFile, "file:" + path);
  TokenProvider provider(options());
  remember(provider.get(c).value);

  std::string stored;
  std::getline(std::ifstream(path), stored);
  remember(stored);
  EXPECT_NE(stored, original) << "the rotated token was not written back";
  struct stat info {};
  ::stat(path.c_str(), &info);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  // The original is dead now; the provider carries on with the rotated one.
  provider.invalidate(c, provider.get(c).value);
  remember(provider.get(c).value);
  EXPECT_EQ(refresh_grant(Server::kOutlook, original).status, 400);
  EXPECT_NE(log_.str().find("stored the rotated refresh token in file:" + path), std::string::npos)
      << log_.str();
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

TEST_F(Tokens, ARotatedTokenFromTheEnvironmentIsKeptInMemoryWithOneWarning) {
  std::string user;
  const std::string original = mint(Server::kOutlook, user);
  const Credential c =
      credential(Server::kOutlook, original, Secret::Source::kEnv, "env:MS_REFRESH_TOKEN");
  TokenProvider provider(options());
  for (int i = 0; i < 3; ++i) {
    const AccessToken token = provider.get(c);
    remember(token.value);
    provider.invalidate(c, token.value);  // force a refresh, and so a rotation, each time
  }
  const std::string log = log_.str();
  const std::string warning =
      "the provider rotated the refresh token; it came from env:MS_REFRESH_TOKEN";
  EXPECT_NE(log.find(warning), std::string::npos) << log;
  EXPECT_EQ(log.find(warning), log.rfind(warning)) << "warned more than once";
}

TEST_F(Tokens, ARevokedRefreshTokenRequiresAuthAndLeavesOtherCredentialsAlone) {
  std::string revoked_user, healthy_user;
  const std::string revoked = mint(Server::kGmail, revoked_user);
  const std::string healthy = mint(Server::kGmail, healthy_user);
  emulator_admin("/admin/revoke", json{{"refresh_token", revoked}}.dump());
  TokenProvider provider(options());
  try {
    provider.get(credential(Server::kGmail, revoked));
    FAIL() << "a revoked refresh token produced an access token";
  } catch (const AuthRequired& e) {
    EXPECT_NE(std::string(e.what()).find("invalid_grant"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("mailsync auth gmail"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find(revoked), std::string::npos)
        << "the token is in the error";
  }
  EXPECT_EQ(grants(revoked_user), 0);
  remember(provider.get(credential(Server::kGmail, healthy)).value);
  EXPECT_EQ(grants(healthy_user), 1);
}

TEST_F(Tokens, AnOutageOfTheTokenEndpointIsRetriedWithBackoff) {
  std::string user;
  const std::string refresh = mint(Server::kGmail, user);
  knobs(user, {{"fail_next", 2}});
  TokenProvider provider(options());
  remember(provider.get(credential(Server::kGmail, refresh)).value);
  EXPECT_EQ(slept_, (std::vector<std::chrono::milliseconds>{std::chrono::milliseconds(500),
                                                            std::chrono::milliseconds(1000)}));
  EXPECT_EQ(provider.refreshes(), 3);
}

TEST_F(Tokens, ALongOutageEndsAsTokenUnavailable) {
  std::string user;
  const std::string refresh = mint(Server::kGmail, user);
  knobs(user, {{"fail_next", 100}});
  TokenProvider provider(options());
  EXPECT_THROW(provider.get(credential(Server::kGmail, refresh)), TokenUnavailable);
  EXPECT_EQ(provider.refreshes(), 4);
  knobs(user, {{"fail_next", 0}});
}

TEST_F(Tokens, AnUnreachableEndpointIsTokenUnavailable) {
  Credential c = credential(Server::kGmail, "1//unused");
  c.token_url = "http://127.0.0.1:1/token";
  TokenProvider provider(options());
  EXPECT_THROW(provider.get(c), TokenUnavailable);
  EXPECT_EQ(slept_.size(), 3u);
}

TEST_F(Tokens, AFreshTokenLogsInToImap) {
  TokenProvider provider(options());
  const Credential c = credential(Server::kGmail, stack_env("GMAIL_REFRESH_TOKEN"));
  remember(stack_env("GMAIL_REFRESH_TOKEN"));
  const AccessToken token = provider.get(c);
  remember(token.value);
  auto client = mailsync::imap::Client::connect(mailsync::testing::imap_options(Server::kGmail));
  client->authenticate_xoauth2(stack_env("GMAIL_EMAIL"), token.value);
  EXPECT_TRUE(client->authenticated());
}

// ---- mailsync auth -----------------------------------------------------------------------------

class AuthCommand : public ::testing::Test {
 protected:
  mailsync::testing::EnvChanges env() {
    return {{"GOOGLE_AUTH_URL", stack_env("MAILSYNC_STACK_OAUTH_URL") + "/google/authorize"},
            {"MS_AUTH_URL",
             stack_env("MAILSYNC_STACK_OAUTH_URL") + "/microsoft/consumers/oauth2/v2.0/authorize"}};
  }
  // Waits for the URL the helper prints, follows the emulator's redirect, returns the callback URL.
  static std::string authorize(mailsync::testing::ChildProcess& helper) {
    std::string url;
    EXPECT_TRUE(mailsync::testing::wait_for([&] {
      const std::string err = helper.read_err();
      const size_t at = err.find("http://127.0.0.1:");
      if (at == std::string::npos) return false;
      url = err.substr(at, err.find('\n', at) - at);
      return true;
    }));
    mailsync::http::HttpClient client;
    const auto redirect = client.get(url);
    EXPECT_EQ(redirect.status, 302) << redirect.body;
    return redirect.redirect_url;
  }
};

TEST_F(AuthCommand, GetsARefreshTokenThatLogsInAsTheUser) {
  mailsync::testing::ChildProcess helper({MAILSYNC_TEST_BIN_MAILSYNC, "auth", "gmail",
                                          "--no-browser", "--login-hint", "bob@gmail.test"},
                                         env());
  const std::string callback = authorize(helper);
  EXPECT_TRUE(callback.find("code=") != std::string::npos &&
              callback.find("state=") != std::string::npos)
      << callback;
  mailsync::http::HttpClient client;
  const auto page = client.get(callback);
  EXPECT_EQ(page.status, 200);
  const auto result = helper.wait();
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json out = json::parse(result.out);
  const std::string refresh = out.at("refresh_token");
  EXPECT_EQ(out.at("env_export"), "export GMAIL_REFRESH_TOKEN='" + refresh + "'");
  const auto grant = mailsync::testing::refresh_grant(Server::kGmail, refresh);
  ASSERT_EQ(grant.status, 200);
  auto imap = mailsync::imap::Client::connect(mailsync::testing::imap_options(Server::kGmail));
  imap->authenticate_xoauth2("bob@gmail.test",
                             json::parse(grant.body).at("access_token").get<std::string>());
  EXPECT_TRUE(imap->authenticated());
}

TEST_F(AuthCommand, WritesTheTokenToAFileForAFileReference) {
  char dir_template[] = "/tmp/mailsync-auth.XXXXXX";
  const std::string path = std::string(::mkdtemp(dir_template)) + "/outlook.refresh_token";
  mailsync::testing::ChildProcess helper(
      {MAILSYNC_TEST_BIN_MAILSYNC, "auth", "microsoft", "--no-browser", "--write-file", path},
      env());
  mailsync::http::HttpClient client;
  client.get(authorize(helper));
  const auto result = helper.wait();
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json out = json::parse(result.out);
  EXPECT_FALSE(out.contains("refresh_token")) << "the token goes to the file, not to the terminal";
  EXPECT_EQ(out.at("env_export"), "export MS_REFRESH_TOKEN='file:" + path + "'");
  std::string stored;
  std::getline(std::ifstream(path), stored);
  EXPECT_EQ(mailsync::testing::refresh_grant(Server::kOutlook, stored).status, 200);
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

TEST_F(AuthCommand, WritesTheTokenIntoASecretsManagerSecretKeepingItsOtherKeys) {
  const std::string name = unique_name("mailsync/auth");
  emulator_admin(
      "/admin/secret",
      json{{"name", name}, {"string", json{{"MS_REFRESH_TOKEN", "old"}, {"OTHER", "kept"}}.dump()}}
          .dump());
  mailsync::testing::ChildProcess helper(
      {MAILSYNC_TEST_BIN_MAILSYNC, "auth", "microsoft", "--no-browser", "--write-secret-id", name,
       "--write-secret-key", "MS_REFRESH_TOKEN"},
      env());
  mailsync::http::HttpClient client;
  client.get(authorize(helper));
  const auto result = helper.wait();
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json out = json::parse(result.out);
  EXPECT_FALSE(out.contains("refresh_token")) << "the token goes to the secret, not the terminal";
  EXPECT_EQ(out.at("env_export"), "export MS_REFRESH_TOKEN='aws-sm:" + name + "#MS_REFRESH_TOKEN'");
  const auto stored =
      client.get(stack_env("MAILSYNC_STACK_OAUTH_URL") + "/admin/secret?name=" + name);
  const json object = json::parse(json::parse(stored.body).at("string").get<std::string>());
  EXPECT_EQ(object.value("OTHER", ""), "kept");
  const std::string token = object.value("MS_REFRESH_TOKEN", "");
  EXPECT_NE(token, "old");
  EXPECT_EQ(mailsync::testing::refresh_grant(Server::kOutlook, token).status, 200);
  EXPECT_EQ(result.err.find(token), std::string::npos);

  // A secret that does not exist is said before anyone signs in.
  const auto missing = mailsync::testing::run_process(
      {MAILSYNC_TEST_BIN_MAILSYNC, "auth", "gmail", "--no-browser", "--write-secret-id",
       name + "-nope", "--write-secret-key", "GMAIL_REFRESH_TOKEN"},
      env());
  EXPECT_EQ(missing.exit_code, 2) << missing.err;
  EXPECT_NE(missing.err.find("ResourceNotFoundException"), std::string::npos) << missing.err;
  EXPECT_EQ(missing.err.find("Open this URL"), std::string::npos) << "no sign-in was started";
}

TEST_F(AuthCommand, RefusesAClientSecretOnTheCommandLine) {
  const std::string secret = stack_env("GMAIL_CLIENT_SECRET");
  const auto result = mailsync::testing::run_process(
      {MAILSYNC_TEST_BIN_MAILSYNC, "auth", "gmail", "--no-browser", "--client-secret", secret},
      env());
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_NE(result.err.find("--client-secret takes env:NAME, file:PATH, aws-sm:ID#KEY or -"),
            std::string::npos)
      << result.err;
  EXPECT_EQ(result.err.find(secret), std::string::npos) << "the value is not repeated";
}

TEST_F(AuthCommand, ReadsTheClientSecretFromStandardInput) {
  // Through a pipe: the secret never appears in any process's argv. The emulator refuses a code
  // exchange without the right client secret, so a token means the line arrived intact.
  mailsync::testing::ChildProcess helper(
      {"/bin/sh", "-c",
       "printf '%s\\n' \"$GMAIL_CLIENT_SECRET\" | exec \"$0\" auth gmail --no-browser "
       "--client-secret -",
       MAILSYNC_TEST_BIN_MAILSYNC},
      env());
  mailsync::http::HttpClient client;
  EXPECT_EQ(client.get(authorize(helper)).status, 200);
  const auto result = helper.wait();
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(mailsync::testing::refresh_grant(
                Server::kGmail, json::parse(result.out).at("refresh_token").get<std::string>())
                .status,
            200);
}

TEST_F(AuthCommand, TheBrowserGetsNoSecretsFromTheEnvironment) {
  // A stand-in xdg-open first on PATH records the environment it was started with.
  char dir_template[] = "/tmp/mailsync-browser.XXXXXX";
  const std::string dir = ::mkdtemp(dir_template);
  {
    std::ofstream script(dir + "/xdg-open");
    script << "#!/bin/sh\nenv > " << dir << "/browser.env\n";
  }
  std::filesystem::permissions(dir + "/xdg-open", std::filesystem::perms::owner_all);
  auto changes = env();
  changes["PATH"] = dir + ":" + stack_env("PATH");
  changes["DISPLAY"] = ":7";
  changes["MS_REFRESH_TOKEN"] = "refresh-token-that-must-not-leak";
  changes["AWS_SECRET_ACCESS_KEY"] = "aws-key-that-must-not-leak";
  mailsync::testing::ChildProcess helper({MAILSYNC_TEST_BIN_MAILSYNC, "auth", "gmail"}, changes);
  mailsync::http::HttpClient client;
  client.get(authorize(helper));
  ASSERT_EQ(helper.wait().exit_code, 0);
  std::stringstream seen;
  seen << std::ifstream(dir + "/browser.env").rdbuf();
  EXPECT_NE(seen.str().find("DISPLAY=:7"), std::string::npos) << seen.str();
  const std::string client_secret = stack_env("GMAIL_CLIENT_SECRET");
  for (const std::string& leak : {std::string("must-not-leak"), std::string("GMAIL_CLIENT_SECRET"),
                                  std::string("MS_CLIENT_SECRET"), client_secret})
    EXPECT_EQ(seen.str().find(leak), std::string::npos) << leak << " reached the browser";
  std::filesystem::remove_all(dir);
}

TEST_F(AuthCommand, RefusesARedirectWithTheWrongState) {
  mailsync::testing::ChildProcess helper(
      {MAILSYNC_TEST_BIN_MAILSYNC, "auth", "gmail", "--no-browser"}, env());
  std::string callback = authorize(helper);
  callback = callback.substr(0, callback.find("state=")) + "state=forged";
  mailsync::http::HttpClient client;
  EXPECT_EQ(client.get(callback).status, 400);
  const auto result = helper.wait();
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("state does not match"), std::string::npos) << result.err;
}

}  // namespace
