#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

// What an OAuth 2.0 token endpoint answers (RFC 6749 sections 5.1 and 5.2), read without trusting
// it: a pure function over the status and the body.
namespace mailsync::oauth {

struct TokenGrant {
  std::string access_token;
  std::chrono::seconds expires_in{3600};
  std::optional<std::string> refresh_token;  // Google on a code exchange; Microsoft every time
  std::string scope;
};

struct TokenError {
  enum class Kind {
    kInvalidGrant,  // the refresh token (or code) is expired, revoked or unknown: a person must act
    kInvalidClient,  // client id or secret wrong: a configuration error
    kTemporary,      // 5xx, 429, temporarily_unavailable, unreadable answer from a broken proxy
    kOther,          // any other 4xx (invalid_request, invalid_scope, ...)
  };
  Kind kind = Kind::kOther;
  long status = 0;
  std::string error;        // the "error" field, or a description of what was wrong
  std::string description;  // "error_description", at most 300 characters
};

using TokenResponse = std::variant<TokenGrant, TokenError>;

TokenResponse parse_token_response(long http_status, std::string_view body);

}  // namespace mailsync::oauth
