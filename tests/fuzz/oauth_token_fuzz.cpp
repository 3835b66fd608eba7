// Fuzz target: an OAuth token endpoint's answer (oauth/token_response.hpp), status and body from
// the input. It must never throw, a grant always has a non-empty access token and a lifetime in
// range, an error's description stays within its 300 characters.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "mailsync/oauth/token_response.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mailsync::oauth;
  if (size == 0) return 0;
  constexpr long kStatuses[] = {200, 400, 401, 403, 404, 408, 429, 500, 502, 503};
  const long status = kStatuses[data[0] % (sizeof kStatuses / sizeof kStatuses[0])];
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  const TokenResponse response = parse_token_response(status, body);
  if (const auto* grant = std::get_if<TokenGrant>(&response)) {
    if (status != 200 || grant->access_token.empty() || grant->expires_in.count() <= 0)
      __builtin_trap();
  } else {
    const auto& error = std::get<TokenError>(response);
    if (error.description.size() > 300 || error.error.empty()) __builtin_trap();
  }
  return 0;
}
