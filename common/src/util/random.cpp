#include "mailsync/util/random.hpp"

#include <openssl/rand.h>

#include <random>
#include <stdexcept>

namespace mailsync::util {

std::string random_bytes(size_t count) {
  std::string out(count, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(count)) != 1)
    throw std::runtime_error("OpenSSL RAND_bytes failed");
  return out;
}

std::string random_hex(size_t length) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(length, '0');
  for (auto& c : out) c = kDigits[rng() & 15];
  return out;
}

}  // namespace mailsync::util
