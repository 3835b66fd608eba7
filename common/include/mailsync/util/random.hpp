#pragma once

#include <string>

namespace mailsync::util {

// `count` bytes from OpenSSL's CSPRNG (PKCE verifiers, OAuth state). Throws std::runtime_error
// if the generator fails.
std::string random_bytes(size_t count);

}  // namespace mailsync::util
