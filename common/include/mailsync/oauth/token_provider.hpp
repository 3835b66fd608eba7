#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>

#include "mailsync/config/secret.hpp"
#include "mailsync/http/http_client.hpp"

// Access tokens for IMAP XOAUTH2, from refresh tokens that must keep working headless for months.
namespace mailsync::oauth {

enum class Provider { kGoogle, kMicrosoft };

inline constexpr const char* kGoogleScope = "https://mail.google.com/";
inline constexpr const char* kMicrosoftScope =
    "https://outlook.office.com/IMAP.AccessAsUser.All offline_access";

// One refresh token and the client it belongs to.
struct Credential {
  Provider provider = Provider::kGoogle;
  std::string token_url;
  std::string client_id;
  std::optional<config::Secret> client_secret;
  config::Secret refresh_token;
  std::string label;  // who, for logs and errors: "gmail alice@gmail.com", "outlook me@outlook.com"
  // When the provider ends this refresh token on its own (mailsync.refresh_tokens): "none",
  // "google_testing_7d" (an app in Testing status), "microsoft_90d" (90 days without use).
  std::string expiry_rule = "none";
};

// What happened to a credential's refresh token since it was last asked (take_report).
struct TokenReport {
  std::optional<std::chrono::system_clock::time_point> refreshed_at;  // a refresh worked
  std::optional<std::string> refused;  // it was refused (the words; no secret in them)
  bool empty() const { return !refreshed_at && !refused; }
};

// The refresh token was refused (invalid_grant) or the client is misconfigured (invalid_client):
// retrying cannot help until a person acts; what() says what to run.
class AuthRequired : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The token endpoint could not be reached or kept failing after the retries: try again later.
class TokenUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct AccessToken {
  std::string value;
  std::chrono::system_clock::time_point expires_at;
};

struct TokenProviderOptions {
  http::HttpOptions http;
  int attempts = 4;  // per refresh, for network errors and 5xx
  std::chrono::milliseconds first_backoff{500};
  std::chrono::seconds refresh_margin{
      300};  // refresh this long before expiry (at most half the lifetime)
  std::function<std::chrono::system_clock::time_point()> now = [] {
    return std::chrono::system_clock::now();
  };
  std::function<void(std::chrono::milliseconds)> sleep;  // default: std::this_thread::sleep_for
};

// Caches access tokens per credential until shortly before they expire; threads share it. When
// many threads need the same credential's token at once, one refreshes and the others wait for
// its result. When Microsoft rotates a refresh token, the new one is used from then on and, if the
// old one came from a file, written back to that file atomically (0600); otherwise a warning says,
// once, that it lives only in memory. Tokens never reach a log line or an error message.
class TokenProvider {
 public:
  explicit TokenProvider(TokenProviderOptions options = {});

  // Throws AuthRequired or TokenUnavailable.
  AccessToken get(const Credential& credential);

  // The server refused `rejected` (IMAP AUTHENTICATE failed): the next get() refreshes.
  void invalidate(const Credential& credential, const std::string& rejected);

  int refreshes() const;  // grants requested so far, successful or not

  // The refresh or refusal of `credential` not reported yet, then forgotten: a run writes it to
  // the database (mailsync.refresh_tokens) once, not on every use of a cached token.
  TokenReport take_report(const Credential& credential);
  // The server refused even a fresh access token of this credential (IMAP AUTHENTICATE).
  void mark_refused(const Credential& credential, const std::string& why);

 private:
  struct Entry;
  std::shared_ptr<Entry> entry_for(const Credential& credential);
  AccessToken refresh(const Credential& credential, Entry& entry);

  TokenProviderOptions options_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;
  std::atomic<int> refreshes_{0};
};

}  // namespace mailsync::oauth
