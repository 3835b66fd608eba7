#include <gtest/gtest.h>

#include "mailsync/http/http_client.hpp"

namespace {

TEST(FormEncode, EscapesEverythingButUnreservedCharacters) {
  EXPECT_EQ(mailsync::http::form_encode(
                {{"grant_type", "refresh_token"},
                 {"refresh_token", "1//0g-a_b.c~d+e/f=g&h i"},
                 {"scope", "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"}}),
            "grant_type=refresh_token&refresh_token=1%2F%2F0g-a_b.c~d%2Be%2Ff%3Dg%26h%20i"
            "&scope=https%3A%2F%2Foutlook.office.com%2FIMAP.AccessAsUser.All%20offline_access");
}

TEST(FormEncode, EncodesUtf8BytesAndEmptyValues) {
  EXPECT_EQ(mailsync::http::form_encode({{"name", "Entw\xc3\xbcrfe"}, {"empty", ""}}),
            "name=Entw%C3%BCrfe&empty=");
}

}  // namespace
