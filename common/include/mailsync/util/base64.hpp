#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mailsync::util {

// Standard base64 (RFC 4648 section 4) with padding, as SASL (RFC 4422) and XOAUTH2 use it.
std::string base64_encode(std::string_view bytes);

// base64url without padding (RFC 4648 section 5), as PKCE (RFC 7636) and OAuth state use it.
std::string base64url_encode(std::string_view bytes);

// Strict decoding: padding required, no whitespace, no other alphabet. nullopt on bad input.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace mailsync::util
