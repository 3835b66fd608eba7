#include <gtest/gtest.h>

#include "mailsync/imap/utf7.hpp"

namespace {

using mailsync::imap::decode_mailbox_name;
using mailsync::imap::encode_mailbox_name;

TEST(ModifiedUtf7, RoundTripsNames) {
  const std::pair<std::string, std::string> names[] = {
      {"INBOX", "INBOX"},
      {"Entw\xc3\xbc"
       "rfe",
       "Entw&APw-rfe"},
      {"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "&ZeVnLIqe-"},
      {"&", "&-"},
      {"Tom & Jerry", "Tom &- Jerry"},
      {"~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
       "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
      {"\xf0\x9f\x98\x80", "&2D3eAA-"},  // U+1F600, a surrogate pair
      {"Gmail/\xc3\x9cn\xc3\xaf"
       "c\xc3\xb6"
       "d\xc3\xa9 & co",
       "Gmail/&ANw-n&AO8-c&APY-d&AOk- &- co"},
      {"", ""},
  };
  for (const auto& [utf8, mutf7] : names) {
    EXPECT_EQ(encode_mailbox_name(utf8), mutf7) << utf8;
    EXPECT_EQ(decode_mailbox_name(mutf7), utf8) << mutf7;
  }
}

TEST(ModifiedUtf7, RefusesWhatTheRfcForbids) {
  for (const char* bad : {"&", "&Jjo", "&AGE-", "&Jjo!-", "&2D0-", "&3gA-", "caf\xc3\xa9",
                          "tab\there", "&ZeVnLIqe", "&ZeVnLIqeA-"})
    EXPECT_FALSE(decode_mailbox_name(bad).has_value()) << bad;
}

TEST(ModifiedUtf7, RefusesInvalidUtf8) {
  for (const char* bad : {"\xff", "\xc3", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80"})
    EXPECT_FALSE(encode_mailbox_name(bad).has_value());
}

}  // namespace
