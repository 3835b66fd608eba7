#include "mailsync/oauth/token_response.hpp"

#include <nlohmann/json.hpp>

namespace mailsync::oauth {

TokenResponse parse_token_response(long http_status, std::string_view body) {
  using Kind = TokenError::Kind;
  const nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  const bool temporary_status = http_status >= 500 || http_status == 429 || http_status == 408;
  // Not the endpoint's own words (a proxy's or a firewall's page, a truncated body), whatever
  // the status: nothing definitive about the refresh token, so transient.
  if (doc.is_discarded() || !doc.is_object())
    return TokenError{Kind::kTemporary, http_status,
                      "the token endpoint's answer is not a JSON object", ""};

  if (http_status == 200) {
    const auto token = doc.find("access_token");
    if (token == doc.end() || !token->is_string() || token->get<std::string>().empty())
      return TokenError{Kind::kTemporary, http_status,
                        "no access_token in the token endpoint's answer", ""};
    TokenGrant grant;
    grant.access_token = token->get<std::string>();
    if (const auto expires = doc.find("expires_in"); expires != doc.end()) {
      long long seconds = -1;
      if (expires->is_number_integer())
        seconds = expires->get<long long>();
      else if (expires->is_string())
        seconds = std::strtoll(expires->get<std::string>().c_str(), nullptr, 10);  // some quote it
      if (seconds > 0 && seconds < 10LL * 365 * 86400)
        grant.expires_in = std::chrono::seconds(seconds);
    }
    if (const auto refresh = doc.find("refresh_token");
        refresh != doc.end() && refresh->is_string() && !refresh->get<std::string>().empty())
      grant.refresh_token = refresh->get<std::string>();
    if (const auto scope = doc.find("scope"); scope != doc.end() && scope->is_string())
      grant.scope = scope->get<std::string>();
    return grant;
  }

  TokenError error;
  error.status = http_status;
  // Only a string is an error code; anything else (a number, an object from a broken proxy) is
  // no code at all. doc.value() would throw on a non-string (found by the oauth_token fuzzer).
  if (const auto code = doc.find("error"); code != doc.end() && code->is_string())
    error.error = code->get<std::string>();
  if (const auto description = doc.find("error_description");
      description != doc.end() && description->is_string())
    error.description = description->get<std::string>().substr(0, 300);
  if (error.error == "invalid_grant")
    error.kind = Kind::kInvalidGrant;
  else if (error.error == "invalid_client" || error.error == "unauthorized_client")
    error.kind = Kind::kInvalidClient;
  else if (temporary_status || error.error == "temporarily_unavailable" ||
           error.error == "server_error")
    error.kind = Kind::kTemporary;
  else
    error.kind = Kind::kOther;
  if (error.error.empty()) error.error = "HTTP " + std::to_string(http_status);
  return error;
}

}  // namespace mailsync::oauth
