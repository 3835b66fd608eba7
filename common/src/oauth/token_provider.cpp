#include "mailsync/oauth/token_provider.hpp"

#include <spdlog/spdlog.h>

#include <thread>
#include <utility>

#include "mailsync/metrics.hpp"
#include "mailsync/oauth/token_response.hpp"
#include "mailsync/util/sha256.hpp"

namespace mailsync::oauth {

struct TokenProvider::Entry {
  std::mutex refresh_mutex;  // held while refreshing: the single flight
  std::optional<AccessToken> token;
  std::chrono::system_clock::time_point refresh_at;
  std::string refresh_token;  // the current one; differs from the configured one after rotation
  bool rotation_warned = false;
  std::mutex report_mutex;  // not refresh_mutex: take_report must not wait for a refresh
  TokenReport report;
};

TokenProvider::TokenProvider(TokenProviderOptions options) : options_(std::move(options)) {
  if (!options_.sleep)
    options_.sleep = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
}

int TokenProvider::refreshes() const {
  return refreshes_.load();
}

std::shared_ptr<TokenProvider::Entry> TokenProvider::entry_for(const Credential& credential) {
  // Keyed by the configured refresh token's hash (never the token itself), client and endpoint.
  const std::string key = credential.token_url + "\n" + credential.client_id + "\n" +
                          util::Sha256::hex_of(credential.refresh_token.reveal());
  std::lock_guard lock(mutex_);
  auto& entry = entries_[key];
  if (!entry) {
    entry = std::make_shared<Entry>();
    entry->refresh_token = credential.refresh_token.reveal();
  }
  return entry;
}

AccessToken TokenProvider::get(const Credential& credential) {
  const std::shared_ptr<Entry> entry = entry_for(credential);
  std::lock_guard lock(entry->refresh_mutex);  // waiters get the token the first one fetched
  if (entry->token && options_.now() < entry->refresh_at) return *entry->token;
  const std::string provider = credential.provider == Provider::kGoogle ? "google" : "microsoft";
  try {
    AccessToken token = refresh(credential, *entry);
    metrics::of(metrics::get().token_refreshes, "provider", provider).Increment();
    return token;
  } catch (...) {
    metrics::of(metrics::get().token_refresh_failures, "provider", provider).Increment();
    throw;
  }
}

TokenReport TokenProvider::take_report(const Credential& credential) {
  const std::shared_ptr<Entry> entry = entry_for(credential);
  std::lock_guard lock(entry->report_mutex);
  return std::exchange(entry->report, {});
}

void TokenProvider::mark_refused(const Credential& credential, const std::string& why) {
  const std::shared_ptr<Entry> entry = entry_for(credential);
  std::lock_guard lock(entry->report_mutex);
  entry->report = {std::nullopt, why};
}

void TokenProvider::invalidate(const Credential& credential, const std::string& rejected) {
  const std::shared_ptr<Entry> entry = entry_for(credential);
  std::lock_guard lock(entry->refresh_mutex);
  if (entry->token && entry->token->value == rejected) entry->token.reset();
}

AccessToken TokenProvider::refresh(const Credential& credential, Entry& entry) {
  const bool google = credential.provider == Provider::kGoogle;
  http::FormFields fields = {{"grant_type", "refresh_token"},
                             {"client_id", credential.client_id},
                             {"refresh_token", entry.refresh_token}};
  if (credential.client_secret)
    fields.emplace_back("client_secret", credential.client_secret->reveal());
  if (!google) fields.emplace_back("scope", kMicrosoftScope);

  std::chrono::milliseconds backoff = options_.first_backoff;
  std::string last_problem;
  for (int attempt = 1; attempt <= options_.attempts; ++attempt) {
    ++refreshes_;
    std::optional<TokenResponse> response;
    try {
      http::HttpClient client(options_.http);
      const http::HttpResponse http = client.post_form(credential.token_url, fields);
      response = parse_token_response(http.status, http.body);
    } catch (const http::HttpError& e) {
      if (!e.retryable())
        throw TokenUnavailable(credential.label + ": token endpoint: " + e.what());
      last_problem = e.what();
    }
    if (response) {
      if (const auto* grant = std::get_if<TokenGrant>(&*response)) {
        const auto now = options_.now();
        const auto margin =
            std::min<std::chrono::seconds>(options_.refresh_margin, grant->expires_in / 2);
        entry.token = AccessToken{grant->access_token, now + grant->expires_in};
        entry.refresh_at = now + grant->expires_in - margin;
        if (grant->refresh_token && *grant->refresh_token != entry.refresh_token) {
          const std::string rotated_from =
              std::exchange(entry.refresh_token, *grant->refresh_token);
          const std::string& where = credential.refresh_token.reference();
          std::optional<config::SecretWrite> stored;
          try {
            stored =
                config::write_back(credential.refresh_token, entry.refresh_token, rotated_from);
            if (stored == config::SecretWrite::kWritten)
              spdlog::info("oauth: {}: stored the rotated refresh token in {}", credential.label,
                           where);
            else if (stored)
              // Another process refreshed with the same token and stored its new one first.
              // Microsoft keeps both valid ("refresh tokens aren't revoked when used to acquire
              // new access tokens": learn.microsoft.com, refresh-tokens); keep theirs where it is
              // stored and ours in memory rather than overwrite a newer one.
              spdlog::info(
                  "oauth: {}: {} already holds a refresh token another process rotated; kept "
                  "it, this process goes on with its own",
                  credential.label, where);
          } catch (const std::exception& e) {
            stored = config::SecretWrite::kKeptOther;  // warned here, not again below
            spdlog::warn(
                "oauth: {}: the refresh token was rotated but could not be stored in {} ({}); it "
                "is kept in memory until restart",
                credential.label, where, e.what());
          }
          if (!stored && !entry.rotation_warned) {
            entry.rotation_warned = true;
            spdlog::warn(
                "oauth: {}: the provider rotated the refresh token; it came from {}, so the new "
                "one is kept only in memory until mailsync restarts. Give it as file:PATH or "
                "aws-sm:SECRET_ID#KEY to have it stored",
                credential.label, where);
          }
        }
        {
          std::lock_guard report_lock(entry.report_mutex);
          entry.report = {now, std::nullopt};
        }
        spdlog::info("oauth: {}: new access token, valid {} s", credential.label,
                     grant->expires_in.count());
        return *entry.token;
      }
      const auto& error = std::get<TokenError>(*response);
      const std::string what =
          error.error + (error.description.empty() ? "" : ": " + error.description);
      if (error.kind == TokenError::Kind::kInvalidGrant ||
          error.kind == TokenError::Kind::kInvalidClient) {
        entry.token.reset();
        {
          std::lock_guard report_lock(entry.report_mutex);
          entry.report = {std::nullopt, "the token endpoint refused it: " + what};
        }
        throw AuthRequired(credential.label + ": the token endpoint refused the " +
                           (error.kind == TokenError::Kind::kInvalidGrant ? "refresh token"
                                                                          : "client id or secret") +
                           " (" + what + "); get a new refresh token with `mailsync auth " +
                           (google ? "gmail" : "microsoft") + "`, update " +
                           credential.refresh_token.reference() +
                           ", then run `mailsync resume` for the route");
      }
      // Any other refusal (invalid_request, invalid_scope, ...) says nothing definitive about the
      // refresh token: not auth_required, but no use asking again at once either. The run fails
      // with these words and the queue retries it with backoff.
      if (error.kind == TokenError::Kind::kOther)
        throw TokenUnavailable(credential.label + ": the token endpoint rejected the request (" +
                               what + "); the refresh token was not refused, so this is retried");
      last_problem = "HTTP " + std::to_string(error.status) + " " + what;
    }
    if (attempt < options_.attempts) {
      spdlog::warn("oauth: {}: token endpoint unavailable ({}); retrying in {} ms",
                   credential.label, last_problem, backoff.count());
      options_.sleep(backoff);
      backoff *= 2;
    }
  }
  throw TokenUnavailable(credential.label + ": token endpoint unavailable after " +
                         std::to_string(options_.attempts) + " attempts: " + last_problem);
}

}  // namespace mailsync::oauth
