#include "mailsync/util/random.hpp"

#include <openssl/rand.h>

#include <stdexcept>

namespace mailsync::util {

std::string random_bytes(size_t count) {
  std::string out(count, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(count)) != 1)
    throw std::runtime_error("OpenSSL RAND_bytes failed");
  return out;
}

}  // namespace mailsync::util
