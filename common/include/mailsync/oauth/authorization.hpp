#pragma once

#include <optional>
#include <string>

#include "mailsync/http/http_client.hpp"
#include "mailsync/oauth/token_provider.hpp"
#include "mailsync/oauth/token_response.hpp"

// The authorization-code flow with PKCE (RFC 6749 4.1, RFC 7636, RFC 8252 for native apps on a
// loopback redirect), for `mailsync auth gmail|microsoft`.
namespace mailsync::oauth {

struct Pkce {
  std::string verifier;   // 43 characters of base64url from 32 random bytes
  std::string challenge;  // base64url(SHA-256(verifier)), method S256
};
Pkce make_pkce();
std::string make_state();  // 22 characters of base64url from 16 random bytes

struct AuthorizationRequest {
  Provider provider = Provider::kGoogle;
  std::string
      authorize_url;  // https://accounts.google.com/o/oauth2/v2/auth, .../oauth2/v2.0/authorize
  std::string client_id;
  std::string redirect_uri;  // http://127.0.0.1:PORT/
  std::string state;
  std::string code_challenge;
  std::optional<std::string> login_hint;
};

// The URL to open in a browser: response_type=code, the provider's IMAP scope, PKCE S256, state;
// for Google also access_type=offline and prompt=consent, so a refresh token is always issued.
std::string authorization_url(const AuthorizationRequest& request);

struct CodeExchange {
  Provider provider = Provider::kGoogle;
  std::string token_url;
  std::string client_id;
  std::optional<std::string> client_secret;
  std::string code;
  std::string redirect_uri;
  std::string code_verifier;
};

TokenResponse exchange_code(const CodeExchange& exchange, const http::HttpOptions& http);

}  // namespace mailsync::oauth
