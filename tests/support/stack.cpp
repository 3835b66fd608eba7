#include "support/stack.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <random>

#include "mailsync/net/tls_stream.hpp"
#include "support/process.hpp"

namespace mailsync::testing {

namespace {
http::HttpOptions http_options() {
  return {.ca_file = stack_env("MAILSYNC_TLS_CA_FILE")};
}
}  // namespace

imap::ClientOptions imap_options(Server server) {
  imap::ClientOptions options;
  const bool gmail = server == Server::kGmail;
  options.host = stack_env(gmail ? "GMAIL_IMAP_HOST" : "OUTLOOK_IMAP_HOST");
  options.port =
      static_cast<uint16_t>(std::stoi(stack_env(gmail ? "GMAIL_IMAP_PORT" : "OUTLOOK_IMAP_PORT")));
  options.tls.ca_file = stack_env("MAILSYNC_TLS_CA_FILE");
  options.tls.connect_timeout = std::chrono::seconds(10);
  options.tls.io_timeout = std::chrono::seconds(60);
  return options;
}

imap::ClientOptions dovecot_options(Server server) {
  imap::ClientOptions options = imap_options(server);
  options.port = static_cast<uint16_t>(
      std::stoi(stack_env(server == Server::kGmail ? "MAILSYNC_STACK_GMAIL_DOVECOT_PORT"
                                                   : "MAILSYNC_STACK_OUTLOOK_DOVECOT_PORT")));
  return options;
}

bool providers_profile() {
  return stack_env("MAILSYNC_STACK_PROFILE") == "providers";
}

namespace {
std::string control_post(const std::string& path, const std::string& body) {
  http::HttpClient client(http_options());
  const auto response = client.post(stack_env("MAILSYNC_STACK_PROVIDER_CONTROL_URL") + path,
                                    "application/json", body);
  EXPECT_EQ(response.status, 200) << response.body;
  return response.body;
}
}  // namespace

ProviderRules::ProviderRules(std::string user, const nlohmann::json& rules)
    : user_(std::move(user)) {
  replace(rules);
}

ProviderRules::~ProviderRules() {
  try {
    control_post("/rules/" + user_, "[]");
  } catch (const std::exception&) {
    // the stack is going away; its rules with it
  }
}

void ProviderRules::replace(const nlohmann::json& rules) {
  // {rule} in a braced list is the rule itself, not a list of one.
  control_post("/rules/" + user_,
               (rules.is_array() ? rules : nlohmann::json::array({rules})).dump());
}

nlohmann::json provider_stats(const std::string& user) {
  http::HttpClient client(http_options());
  const auto response =
      client.get(stack_env("MAILSYNC_STACK_PROVIDER_CONTROL_URL") + "/stats/" + user);
  EXPECT_EQ(response.status, 200) << response.body;
  return nlohmann::json::parse(response.body);
}

std::string imap_user(Server server) {
  return stack_env(server == Server::kGmail ? "GMAIL_EMAIL" : "OUTLOOK_EMAIL");
}

http::HttpResponse refresh_grant(Server server, const std::string& refresh_token) {
  const bool gmail = server == Server::kGmail;
  http::HttpClient client(http_options());
  return client.post_form(
      stack_env(gmail ? "GOOGLE_TOKEN_URL" : "MS_TOKEN_URL"),
      {{"grant_type", "refresh_token"},
       {"client_id", stack_env(gmail ? "GMAIL_CLIENT_ID" : "MS_CLIENT_ID")},
       {"client_secret", stack_env(gmail ? "GMAIL_CLIENT_SECRET" : "MS_CLIENT_SECRET")},
       {"refresh_token", refresh_token}});
}

std::string access_token(Server server) {
  const auto response = refresh_grant(
      server, stack_env(server == Server::kGmail ? "GMAIL_REFRESH_TOKEN" : "MS_REFRESH_TOKEN"));
  EXPECT_EQ(response.status, 200) << response.body;
  return nlohmann::json::parse(response.body).value("access_token", "");
}

std::string emulator_admin(const std::string& path, const std::string& json_body) {
  http::HttpClient client(http_options());
  const auto response =
      client.post(stack_env("MAILSYNC_STACK_OAUTH_URL") + path, "application/json", json_body);
  EXPECT_EQ(response.status, 200) << response.body;
  return response.body;
}

std::string mint_refresh_token(Server server, const std::string& user) {
  const nlohmann::json body = {{"provider", server == Server::kGmail ? "google" : "microsoft"},
                               {"user", user}};
  return nlohmann::json::parse(emulator_admin("/admin/grant", body.dump()))
      .value("refresh_token", "");
}

std::unique_ptr<imap::Client> logged_in_client(Server server) {
  auto client = imap::Client::connect(imap_options(server));
  client->authenticate_xoauth2(imap_user(server), access_token(server));
  return client;
}

namespace {
std::string claim_user(const char* variable) {
  const std::string users = stack_env(variable);
  size_t start = 0;
  while (start < users.size()) {
    const size_t end = users.find(' ', start);
    const std::string user = users.substr(start, end - start);
    start = end == std::string::npos ? users.size() : end + 1;
    const std::string lock = stack_env("MAILSYNC_STACK_DIR") + "/claimed-" + user;
    const int fd = ::open(lock.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600);
    if (fd < 0) continue;
    ::close(fd);
    return user;
  }
  ADD_FAILURE() << "all spare mailboxes of " << variable << " are taken; restart the stack";
  return "";
}
}  // namespace

std::string claim_gmail_user() {
  return claim_user("MAILSYNC_STACK_TEST_USERS");
}

std::string claim_outlook_user() {
  return claim_user("MAILSYNC_STACK_OUTLOOK_TEST_USERS");
}

std::unique_ptr<imap::Client> logged_in_client(Server server, const std::string& user) {
  const auto grant = refresh_grant(server, mint_refresh_token(server, user));
  EXPECT_EQ(grant.status, 200) << grant.body;
  auto client = imap::Client::connect(imap_options(server));
  client->authenticate_xoauth2(user, nlohmann::json::parse(grant.body).value("access_token", ""));
  return client;
}

void append_to_gmail(const std::string& user, const std::string& bytes,
                     const std::string& internaldate, const std::string& folder) {
  auto client = imap::Client::connect(imap_options(Server::kGmail));
  client->login(user, stack_env("MAILSYNC_STACK_IMAP_PASSWORD"));
  client->append(folder, {bytes, {}, internaldate});
}

void gmail_commands(const std::string& user, const std::vector<std::string>& commands) {
  const imap::ClientOptions options = imap_options(Server::kGmail);
  auto stream = net::TlsStream::connect(options.host, options.port, options.tls);
  std::string buffer;
  auto read_line = [&] {
    for (;;) {
      if (const size_t end = buffer.find("\r\n"); end != std::string::npos) {
        std::string line = buffer.substr(0, end);
        buffer.erase(0, end + 2);
        return line;
      }
      char chunk[4096];
      buffer.append(chunk, stream->read_some(chunk, sizeof chunk));
    }
  };
  read_line();  // greeting
  std::vector<std::string> all = {"LOGIN \"" + user + "\" \"" +
                                  stack_env("MAILSYNC_STACK_IMAP_PASSWORD") + "\""};
  all.insert(all.end(), commands.begin(), commands.end());
  all.emplace_back("LOGOUT");
  for (size_t i = 0; i < all.size(); ++i) {
    const std::string tag = "t" + std::to_string(i);
    stream->write_all(tag + " " + all[i] + "\r\n");
    for (std::string line = read_line();; line = read_line()) {
      if (!line.starts_with(tag + " ")) continue;
      if (!line.starts_with(tag + " OK"))
        ADD_FAILURE() << (i == 0 ? std::string("LOGIN") : all[i]) << ": " << line;
      break;
    }
  }
}

std::string unique_name(const std::string& prefix) {
  static std::atomic<int> counter{0};
  static const unsigned seed = std::random_device{}();
  return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
         std::to_string(seed % 100000);
}

}  // namespace mailsync::testing
