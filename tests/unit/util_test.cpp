#include <gtest/gtest.h>

#include "mailsync/util/base64.hpp"
#include "mailsync/util/sha256.hpp"
#include "mailsync/util/strings.hpp"

namespace {

using mailsync::util::base64_decode;
using mailsync::util::base64_encode;

TEST(Base64, EncodesTheRfc4648TestVectors) {
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(plain), encoded);
    EXPECT_EQ(base64_decode(encoded), plain);
  }
}

TEST(Base64, RoundTripsEveryByteValue) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  EXPECT_EQ(base64_decode(base64_encode(all)), all);
}

TEST(Base64, RejectsMalformedInput) {
  for (const char* bad : {"Zg=", "Zg", "Z===", "Zm9v!A==", "Zg==Zg==", "Zm 9v", "=Zg="})
    EXPECT_FALSE(base64_decode(bad).has_value()) << bad;
}

TEST(Base64, EncodesAnXoauth2InitialResponse) {
  // The SASL XOAUTH2 initial client response of Google's documentation.
  EXPECT_EQ(base64_encode("user=someuser@example.com\x01"
                          "auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"),
            "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQm"
            "hkSFJoZG1semRHRXVZMjl0Q2cBAQ==");
}

TEST(Sha256, MatchesKnownDigests) {
  EXPECT_EQ(mailsync::util::Sha256::hex_of(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(mailsync::util::Sha256::hex_of("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, IncrementalEqualsOneShot) {
  mailsync::util::Sha256 hash;
  hash.update("a");
  hash.update("");
  hash.update("bc");
  EXPECT_EQ(mailsync::util::to_hex(hash.finish()), mailsync::util::Sha256::hex_of("abc"));
  hash.update("abc");  // reusable after finish()
  EXPECT_EQ(mailsync::util::to_hex(hash.finish()), mailsync::util::Sha256::hex_of("abc"));
}

TEST(OneLine, JoinsTrimmedNonEmptyLines) {
  EXPECT_EQ(mailsync::util::one_line("connection failed: refused\n\tIs the server running?\n"),
            "connection failed: refused; Is the server running?");
  EXPECT_EQ(mailsync::util::one_line("a\r\n\r\nb"), "a; b");
  EXPECT_EQ(mailsync::util::one_line(""), "");
}

}  // namespace
