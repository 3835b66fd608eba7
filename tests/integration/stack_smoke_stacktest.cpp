// The local stack works as the real providers do: an access token from the emulator's Google or
// Microsoft token endpoint logs in to the matching Dovecot over verified TLS with SASL XOAUTH2
// (https://developers.google.com/gmail/imap/xoauth2-protocol); a revoked token does not.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "mailsync/http/http_client.hpp"
#include "mailsync/net/tls_stream.hpp"
#include "mailsync/util/base64.hpp"
#include "support/process.hpp"
#include "support/stack.hpp"

namespace {

using mailsync::testing::stack_env;
using nlohmann::json;

mailsync::http::HttpOptions http_options() {
  return {.ca_file = stack_env("MAILSYNC_TLS_CA_FILE")};
}

mailsync::net::TlsOptions tls_options() {
  return {.ca_file = stack_env("MAILSYNC_TLS_CA_FILE"),
          .connect_timeout = std::chrono::seconds(10),
          .io_timeout = std::chrono::seconds(10)};
}

// Refresh-token grant (RFC 6749 section 6).
mailsync::http::HttpResponse refresh(const std::string& url, const std::string& client_id,
                                     const std::string& client_secret,
                                     const std::string& refresh_token) {
  mailsync::http::HttpClient client(http_options());
  return client.post_form(url, {{"grant_type", "refresh_token"},
                                {"client_id", client_id},
                                {"client_secret", client_secret},
                                {"refresh_token", refresh_token}});
}

std::string access_token(const mailsync::http::HttpResponse& response) {
  EXPECT_EQ(response.status, 200) << response.body;
  return json::parse(response.body).value("access_token", "");
}

json admin(const std::string& path, const json& body) {
  mailsync::http::HttpClient client(http_options());
  const auto response =
      client.post(stack_env("MAILSYNC_STACK_OAUTH_URL") + path, "application/json", body.dump());
  EXPECT_EQ(response.status, 200) << response.body;
  return json::parse(response.body);
}

// Just enough IMAP to log in: the real client arrives with the IMAP issue.
class ImapProbe {
 public:
  ImapProbe(const std::string& host, uint16_t port)
      : stream_(mailsync::net::TlsStream::connect(host, port, tls_options())) {
    greeting_ = read_line();
  }
  std::string read_line() {
    for (;;) {
      if (const size_t end = buffer_.find("\r\n"); end != std::string::npos) {
        std::string line = buffer_.substr(0, end);
        buffer_.erase(0, end + 2);
        return line;
      }
      char chunk[4096];
      buffer_.append(chunk, stream_->read_some(chunk, sizeof chunk));
    }
  }
  void send(const std::string& line) { stream_->write_all(line + "\r\n"); }
  const std::string& greeting() const { return greeting_; }

  struct AuthResult {
    std::string tagged;         // "a1 OK ..." / "a1 NO ..."
    std::string error_payload;  // decoded JSON of a "+ <base64>" challenge, if the server sent one
  };
  // AUTHENTICATE XOAUTH2 with the initial response on the command line (SASL-IR, RFC 4959).
  AuthResult authenticate_xoauth2(const std::string& user, const std::string& token) {
    send("a1 AUTHENTICATE XOAUTH2 " + mailsync::util::base64_encode("user=" + user +
                                                                    "\x01"
                                                                    "auth=Bearer " +
                                                                    token + "\x01\x01"));
    AuthResult result;
    for (;;) {
      const std::string line = read_line();
      if (line.starts_with("+ ")) {  // the error challenge; answered with an empty response
        result.error_payload =
            mailsync::util::base64_decode(line.substr(2)).value_or("<bad base64>");
        send("");
      } else if (line.starts_with("a1 ")) {
        result.tagged = line;
        return result;
      }
    }
  }

 private:
  std::unique_ptr<mailsync::net::TlsStream> stream_;
  std::string buffer_;
  std::string greeting_;
};

uint16_t port(const char* name) {
  return static_cast<uint16_t>(std::stoi(stack_env(name)));
}

TEST(LocalStack, GmailServerAcceptsAGoogleTokenOverXoauth2) {
  const std::string token =
      access_token(refresh(stack_env("GOOGLE_TOKEN_URL"), stack_env("GMAIL_CLIENT_ID"),
                           stack_env("GMAIL_CLIENT_SECRET"), stack_env("GMAIL_REFRESH_TOKEN")));
  ImapProbe imap(stack_env("GMAIL_IMAP_HOST"), port("GMAIL_IMAP_PORT"));
  EXPECT_TRUE(imap.greeting().starts_with("* OK")) << imap.greeting();
  if (mailsync::testing::providers_profile())  // Gmail names no capabilities in its greeting
    EXPECT_TRUE(imap.greeting().starts_with("* OK Gimap ready")) << imap.greeting();
  else
    EXPECT_NE(imap.greeting().find("AUTH=XOAUTH2"), std::string::npos) << imap.greeting();
  const auto result = imap.authenticate_xoauth2(stack_env("GMAIL_EMAIL"), token);
  EXPECT_TRUE(result.tagged.starts_with("a1 OK")) << result.tagged;
  EXPECT_EQ(result.error_payload, "");
}

TEST(LocalStack, OutlookServerAcceptsAMicrosoftTokenAndRotatesTheRefreshToken) {
  const auto response = refresh(stack_env("MS_TOKEN_URL"), stack_env("MS_CLIENT_ID"),
                                stack_env("MS_CLIENT_SECRET"), stack_env("MS_REFRESH_TOKEN"));
  const std::string token = access_token(response);
  const std::string rotated = json::parse(response.body).value("refresh_token", "");
  EXPECT_FALSE(rotated.empty());
  EXPECT_NE(rotated, stack_env("MS_REFRESH_TOKEN"));
  ImapProbe imap(stack_env("OUTLOOK_IMAP_HOST"), port("OUTLOOK_IMAP_PORT"));
  const auto result = imap.authenticate_xoauth2(stack_env("OUTLOOK_EMAIL"), token);
  EXPECT_TRUE(result.tagged.starts_with("a1 OK")) << result.tagged;
}

TEST(LocalStack, ARevokedAccessTokenIsRefusedWithTheServersJsonError) {
  // A refresh token of its own, so that revoking it cannot disturb other tests on the stack.
  const std::string own_refresh =
      admin("/admin/grant",
            {{"provider", "google"}, {"user", stack_env("GMAIL_EMAIL")}})["refresh_token"];
  const std::string token =
      access_token(refresh(stack_env("GOOGLE_TOKEN_URL"), stack_env("GMAIL_CLIENT_ID"),
                           stack_env("GMAIL_CLIENT_SECRET"), own_refresh));
  EXPECT_EQ(admin("/admin/revoke", {{"access_token", token}})["revoked"], 1);
  ImapProbe imap(stack_env("GMAIL_IMAP_HOST"), port("GMAIL_IMAP_PORT"));
  const auto result = imap.authenticate_xoauth2(stack_env("GMAIL_EMAIL"), token);
  EXPECT_TRUE(result.tagged.starts_with("a1 NO [AUTHENTICATIONFAILED]")) << result.tagged;
  ASSERT_FALSE(result.error_payload.empty());
  // Dovecot's challenge says 401; Gmail's says 400 and names the scope it wants.
  const json payload = json::parse(result.error_payload);
  if (mailsync::testing::providers_profile()) {
    EXPECT_EQ(payload.value("status", ""), "400") << result.error_payload;
    EXPECT_EQ(payload.value("scope", ""), "https://mail.google.com/");
    EXPECT_EQ(result.tagged, "a1 NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)");
  } else {
    EXPECT_EQ(payload.value("status", ""), "401") << result.error_payload;
  }
}

TEST(LocalStack, ARevokedRefreshTokenGetsInvalidGrant) {
  const std::string own_refresh =
      admin("/admin/grant",
            {{"provider", "microsoft"}, {"user", stack_env("OUTLOOK_EMAIL")}})["refresh_token"];
  admin("/admin/revoke", {{"refresh_token", own_refresh}});
  const auto response = refresh(stack_env("MS_TOKEN_URL"), stack_env("MS_CLIENT_ID"),
                                stack_env("MS_CLIENT_SECRET"), own_refresh);
  EXPECT_EQ(response.status, 400);
  EXPECT_EQ(json::parse(response.body).value("error", ""), "invalid_grant");
}

TEST(LocalStack, ATokenOfTheOtherProviderIsRefused) {
  const std::string google_token =
      access_token(refresh(stack_env("GOOGLE_TOKEN_URL"), stack_env("GMAIL_CLIENT_ID"),
                           stack_env("GMAIL_CLIENT_SECRET"), stack_env("GMAIL_REFRESH_TOKEN")));
  ImapProbe imap(stack_env("OUTLOOK_IMAP_HOST"), port("OUTLOOK_IMAP_PORT"));
  EXPECT_TRUE(imap.authenticate_xoauth2(stack_env("OUTLOOK_EMAIL"), google_token)
                  .tagged.starts_with("a1 NO"));
}

TEST(LocalStack, AWrongClientSecretGetsInvalidClient) {
  const auto response = refresh(stack_env("GOOGLE_TOKEN_URL"), stack_env("GMAIL_CLIENT_ID"),
                                "wrong-secret", stack_env("GMAIL_REFRESH_TOKEN"));
  EXPECT_EQ(response.status, 401);
  EXPECT_EQ(json::parse(response.body).value("error", ""), "invalid_client");
}

TEST(Transport, RefusesTheStackCertificateWithoutItsCa) {
  mailsync::net::TlsOptions options = tls_options();
  options.ca_file.clear();  // system store only: the throwaway CA is not in it
  try {
    mailsync::net::TlsStream::connect(stack_env("GMAIL_IMAP_HOST"), port("GMAIL_IMAP_PORT"),
                                      options);
    FAIL() << "an untrusted certificate was accepted";
  } catch (const mailsync::net::TransportError& e) {
    EXPECT_EQ(e.kind(), mailsync::net::TransportErrorKind::kCertificate) << e.what();
    EXPECT_FALSE(e.retryable());
    EXPECT_NE(std::string(e.what()).find("MAILSYNC_TLS_CA_FILE"), std::string::npos) << e.what();
  }
}

TEST(Transport, VerifiesAnIpAddressAgainstTheCertificateSubjectAltName) {
  auto stream =
      mailsync::net::TlsStream::connect("127.0.0.1", port("GMAIL_IMAP_PORT"), tls_options());
  EXPECT_TRUE(stream->protocol() == "TLSv1.3" || stream->protocol() == "TLSv1.2")
      << stream->protocol();
}

TEST(Transport, AClosedPortIsAConnectError) {
  try {
    mailsync::net::TlsStream::connect("127.0.0.1", 1, tls_options());
    FAIL() << "connected to port 1";
  } catch (const mailsync::net::TransportError& e) {
    EXPECT_EQ(e.kind(), mailsync::net::TransportErrorKind::kConnect) << e.what();
    EXPECT_TRUE(e.retryable());
  }
}

TEST(Transport, ATlsPeerThatSendsNothingTimesOut) {
  // Dovecot waits for the client's command after the greeting: a second read must time out.
  mailsync::net::TlsOptions options = tls_options();
  options.io_timeout = std::chrono::milliseconds(300);
  auto stream = mailsync::net::TlsStream::connect(stack_env("GMAIL_IMAP_HOST"),
                                                  port("GMAIL_IMAP_PORT"), options);
  char buffer[4096];
  std::string greeting;
  while (greeting.find("\r\n") == std::string::npos)
    greeting.append(buffer, stream->read_some(buffer, sizeof buffer));
  try {
    stream->read_some(buffer, sizeof buffer);
    FAIL() << "read returned without data";
  } catch (const mailsync::net::TransportError& e) {
    EXPECT_EQ(e.kind(), mailsync::net::TransportErrorKind::kTimeout) << e.what();
  }
}

}  // namespace
