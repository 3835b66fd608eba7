#pragma once

#include <array>
#include <memory>
#include <string>
#include <string_view>

namespace mailsync::util {

// Incremental SHA-256 (OpenSSL EVP): feed bytes as they stream in, read the digest at the end.
// Used for migration checksums and, later, for the SHA-256 of every copied message.
class Sha256 {
 public:
  using Digest = std::array<unsigned char, 32>;

  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(std::string_view bytes);
  // Finishes the hash; the object is reset and can be reused.
  Digest finish();

  static Digest of(std::string_view bytes);
  static std::string hex_of(std::string_view bytes);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string to_hex(const Sha256::Digest& digest);

}  // namespace mailsync::util
