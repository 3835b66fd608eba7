#pragma once

#include <string>

namespace mailsync::util {

// `count` bytes from OpenSSL's CSPRNG (PKCE verifiers, OAuth state). Throws std::runtime_error
// if the generator fails.
std::string random_bytes(size_t count);

// `length` hex digits from a fast per-thread generator: ids (run ids, worker owners), never
// secrets.
std::string random_hex(size_t length);

}  // namespace mailsync::util
