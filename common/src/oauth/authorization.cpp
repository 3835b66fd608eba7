#include "mailsync/oauth/authorization.hpp"

#include "mailsync/util/base64.hpp"
#include "mailsync/util/random.hpp"
#include "mailsync/util/sha256.hpp"

namespace mailsync::oauth {

Pkce make_pkce() {
  Pkce pkce;
  pkce.verifier = util::base64url_encode(util::random_bytes(32));
  const auto digest = util::Sha256::of(pkce.verifier);
  pkce.challenge = util::base64url_encode(
      std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
  return pkce;
}

std::string make_state() {
  return util::base64url_encode(util::random_bytes(16));
}

std::string authorization_url(const AuthorizationRequest& request) {
  const bool google = request.provider == Provider::kGoogle;
  http::FormFields query = {
      {"client_id", request.client_id}, {"redirect_uri", request.redirect_uri},
      {"response_type", "code"},        {"scope", google ? kGoogleScope : kMicrosoftScope},
      {"state", request.state},         {"code_challenge", request.code_challenge},
      {"code_challenge_method", "S256"}};
  if (google) {
    query.emplace_back("access_type", "offline");
    query.emplace_back("prompt", "consent");
  } else {
    query.emplace_back("response_mode", "query");
  }
  if (request.login_hint) query.emplace_back("login_hint", *request.login_hint);
  return request.authorize_url +
         (request.authorize_url.find('?') == std::string::npos ? "?" : "&") +
         http::form_encode(query);
}

TokenResponse exchange_code(const CodeExchange& exchange, const http::HttpOptions& http_options) {
  http::FormFields fields = {{"grant_type", "authorization_code"},
                             {"code", exchange.code},
                             {"redirect_uri", exchange.redirect_uri},
                             {"client_id", exchange.client_id},
                             {"code_verifier", exchange.code_verifier}};
  if (exchange.client_secret) fields.emplace_back("client_secret", *exchange.client_secret);
  if (exchange.provider == Provider::kMicrosoft) fields.emplace_back("scope", kMicrosoftScope);
  http::HttpClient client(http_options);
  const http::HttpResponse response = client.post_form(exchange.token_url, fields);
  return parse_token_response(response.status, response.body);
}

}  // namespace mailsync::oauth
